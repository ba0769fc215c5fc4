/* uktime: rdtsc scaled by the boot-info TSC frequency. rdtsc is allowed in
 * ring 3, so it runs natively under both monitors. */
#include <stdint.h>
#include <stdlib.h>
#include <uk/boot.h>
#include <uk/plat.h>
#include <uk/time.h>

#ifndef UKTIME_FALLBACK_KHZ
#define UKTIME_FALLBACK_KHZ 2000000 /* 2 GHz: a guess when the monitor has none */
#endif

/* The clock's state is the instance's own: it starts after the ready point.
 * It lives in a heap block the init phase allocates (the static one until
 * then), so that starting the clock writes a heap page each instance writes
 * anyway, not a page of the data arena it would copy from a snapshot. */
struct clock {
	uint64_t tsc0, khz, mult; /* ns = ticks * mult >> 32 */
};
static struct clock static_clock, *clk = &static_clock;
#define tsc0 (clk->tsc0)
#define khz (clk->khz)
#define mult (clk->mult)

static void clock_to_heap(void)
{
	if (clk == &static_clock && !mult) {
		struct clock *c = calloc(1, sizeof *c);
		if (c)
			clk = c;
	}
}
UK_INIT_PHASE(clock_to_heap);

uint64_t uk_time_tsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static void start(void)
{
	const struct uk_bootinfo *bi = ukplat_bootinfo();
	khz = bi && bi->tsc_khz ? bi->tsc_khz : UKTIME_FALLBACK_KHZ;
	mult = (1000000ULL << 32) / khz;
	tsc0 = uk_time_tsc();
}

/* Starts the clock at boot, before main; uk_time_ns starts it too if
 * another constructor asks first. */
__attribute__((constructor)) static void uktime_init(void)
{
	if (!mult)
		start();
}

uint64_t uk_time_tsc_khz(void)
{
	if (!mult)
		start();
	return khz;
}

uint64_t uk_time_ns(void)
{
	if (!mult)
		start();
	uint64_t ticks = uk_time_tsc() - tsc0;
	return (uint64_t)(((unsigned __int128)ticks * mult) >> 32);
}
