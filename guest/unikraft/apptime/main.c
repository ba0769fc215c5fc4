/* apptime: posix-time's clock_gettime and uktimeconv. */
#include <stdio.h>
#include <time.h>
#include <uk/timeconv.h>
#include "common.h"

int main(int argc, char *argv[])
{
	struct timespec t0, t1;
	unsigned int work = 0;

	if (clock_gettime(CLOCK_MONOTONIC, &t0) || clock_gettime(CLOCK_MONOTONIC, &t1))
		return 1;
	if (t1.tv_sec > t0.tv_sec || (t1.tv_sec == t0.tv_sec && t1.tv_nsec >= t0.tv_nsec))
		work = 1000;
	for (long y = 1900; y <= 2100; y++)
		work += uktimeconv_is_leap_year(y);
	return report("apptime", argc, argv, work);
}
