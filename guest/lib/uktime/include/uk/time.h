/* uktime: a monotonic clock from the TSC. The boot info gives the TSC
 * frequency; when it does not (0), UKTIME_FALLBACK_KHZ is assumed. */
#ifndef UK_TIME_H
#define UK_TIME_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
/* Nanoseconds since the clock started (at boot, before main). */
uint64_t uk_time_ns(void);
/* The raw time-stamp counter. */
uint64_t uk_time_tsc(void);
/* The TSC frequency the clock uses, in kHz. */
uint64_t uk_time_tsc_khz(void);
#ifdef __cplusplus
}
#endif
#endif
