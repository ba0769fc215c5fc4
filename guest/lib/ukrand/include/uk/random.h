/* ukrand: a seeded pseudo-random generator. The seed comes from the boot
 * info (a per-instance value from the monitor); the sequence depends on it
 * and on the compiled algorithm (xoshiro256** or ChaCha20), so nothing that
 * must be reproducible across unikernels may depend on the values. */
#ifndef UK_RANDOM_H
#define UK_RANDOM_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
uint64_t uk_random_u64(void);
uint32_t uk_random_u32(void);
/* Uniform in [0, n) without modulo bias; 0 when n is 0. */
uint64_t uk_random_below(uint64_t n);
void uk_random_fill(void *buf, size_t n);
/* Restarts the sequence from seed (srand uses this). */
void uk_random_seed(uint64_t seed);
#ifdef __cplusplus
}
#endif
#endif
