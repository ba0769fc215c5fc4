/* time.h. The clock is uktime's uk_time_ns (a weak reference: without
 * uktime linked the clocks report failure, as C allows). There is no wall
 * clock in the guest ABI, so calendar time counts from boot (the epoch). */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t uk_time_ns(void) __attribute__((weak));

clock_t clock(void)
{
	if (!uk_time_ns)
		return (clock_t)-1;
	return (clock_t)(uk_time_ns() / (1000000000 / CLOCKS_PER_SEC));
}

time_t time(time_t *t)
{
	time_t v = uk_time_ns ? (time_t)(uk_time_ns() / 1000000000) : (time_t)-1;
	if (t)
		*t = v;
	return v;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
	if (id < CLOCK_REALTIME || id > CLOCK_THREAD_CPUTIME_ID) {
		errno = EINVAL;
		return -1;
	}
	if (!uk_time_ns) {
		errno = ENOSYS;
		return -1;
	}
	uint64_t ns = uk_time_ns();
	ts->tv_sec = (time_t)(ns / 1000000000);
	ts->tv_nsec = (long)(ns % 1000000000);
	return 0;
}

/* Busy-waits: hlt would stop a guest that has no timer interrupt. */
static int wait_ns(uint64_t ns)
{
	if (!uk_time_ns) {
		errno = ENOSYS;
		return -1;
	}
	uint64_t end = uk_time_ns() + ns;
	while (uk_time_ns() < end)
		__builtin_ia32_pause();
	return 0;
}

int nanosleep(const struct timespec *req, struct timespec *rem)
{
	if (req->tv_nsec < 0 || req->tv_nsec >= 1000000000 || req->tv_sec < 0) {
		errno = EINVAL;
		return -1;
	}
	if (rem)
		rem->tv_sec = rem->tv_nsec = 0;
	return wait_ns((uint64_t)req->tv_sec * 1000000000 + (uint64_t)req->tv_nsec);
}

unsigned int sleep(unsigned int s)
{
	return wait_ns((uint64_t)s * 1000000000) ? s : 0;
}

int usleep(unsigned long us)
{
	return wait_ns((uint64_t)us * 1000);
}

double difftime(time_t a, time_t b)
{
	return (double)a - (double)b;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), and back. */
static long days_from_civil(long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long)doe - 719468;
}

struct tm *gmtime_r(const time_t *t, struct tm *tm)
{
	long secs = *t;
	long days = secs / 86400, rem = secs % 86400;
	if (rem < 0) {
		rem += 86400;
		days--;
	}
	tm->tm_hour = (int)(rem / 3600);
	tm->tm_min = (int)(rem % 3600 / 60);
	tm->tm_sec = (int)(rem % 60);
	tm->tm_wday = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday */
	long z = days + 719468;
	long era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long y = (long)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	tm->tm_year = (int)(y - 1900);
	tm->tm_mon = (int)m - 1;
	tm->tm_mday = (int)d;
	tm->tm_yday = (int)(days - days_from_civil(y, 1, 1));
	tm->tm_isdst = 0;
	tm->tm_gmtoff = 0;
	tm->tm_zone = "UTC";
	return tm;
}

struct tm *gmtime(const time_t *t)
{
	static struct tm tm;
	return gmtime_r(t, &tm);
}

time_t timegm(struct tm *tm)
{
	long y = tm->tm_year + 1900L + tm->tm_mon / 12;
	int mon = tm->tm_mon % 12;
	if (mon < 0) {
		mon += 12;
		y--;
	}
	long days = days_from_civil(y, (unsigned)mon + 1, 1) + tm->tm_mday - 1;
	time_t t = days * 86400 + tm->tm_hour * 3600L + tm->tm_min * 60L + tm->tm_sec;
	gmtime_r(&t, tm);
	return t;
}

static const char *const wdays[] = {"Sunday", "Monday", "Tuesday", "Wednesday",
				    "Thursday", "Friday", "Saturday"};
static const char *const months[] = {"January", "February", "March", "April", "May",
				     "June", "July", "August", "September", "October",
				     "November", "December"};

struct strf {
	char *s;
	size_t max, n;
};

static void strf_put(struct strf *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++, o->n++)
		if (o->n < o->max)
			o->s[o->n] = s[i];
}

static void strf_num(struct strf *o, long v, int width, char pad)
{
	char buf[24];
	int n = 0, neg = v < 0;
	unsigned long u = neg ? -(unsigned long)v : (unsigned long)v;
	do {
		buf[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	while (n < width && pad)
		buf[n++] = pad;
	if (neg)
		buf[n++] = '-';
	while (n)
		strf_put(o, &buf[--n], 1);
}

size_t strftime(char *s, size_t max, const char *fmt, const struct tm *tm)
{
	struct strf o = {s, max, 0};
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			strf_put(&o, fmt, 1);
			continue;
		}
		switch (*++fmt) {
		case 'Y': strf_num(&o, tm->tm_year + 1900L, 4, '0'); break;
		case 'y': strf_num(&o, (tm->tm_year + 1900L) % 100, 2, '0'); break;
		case 'C': strf_num(&o, (tm->tm_year + 1900L) / 100, 2, '0'); break;
		case 'm': strf_num(&o, tm->tm_mon + 1, 2, '0'); break;
		case 'd': strf_num(&o, tm->tm_mday, 2, '0'); break;
		case 'e': strf_num(&o, tm->tm_mday, 2, ' '); break;
		case 'H': strf_num(&o, tm->tm_hour, 2, '0'); break;
		case 'I': strf_num(&o, tm->tm_hour % 12 ? tm->tm_hour % 12 : 12, 2, '0'); break;
		case 'M': strf_num(&o, tm->tm_min, 2, '0'); break;
		case 'S': strf_num(&o, tm->tm_sec, 2, '0'); break;
		case 'j': strf_num(&o, tm->tm_yday + 1, 3, '0'); break;
		case 'u': strf_num(&o, tm->tm_wday ? tm->tm_wday : 7, 1, 0); break;
		case 'w': strf_num(&o, tm->tm_wday, 1, 0); break;
		case 'p': strf_put(&o, tm->tm_hour < 12 ? "AM" : "PM", 2); break;
		case 'a': strf_put(&o, wdays[tm->tm_wday % 7], 3); break;
		case 'A': strf_put(&o, wdays[tm->tm_wday % 7], strlen(wdays[tm->tm_wday % 7])); break;
		case 'b':
		case 'h': strf_put(&o, months[tm->tm_mon % 12], 3); break;
		case 'B': strf_put(&o, months[tm->tm_mon % 12], strlen(months[tm->tm_mon % 12])); break;
		case 'F':
			strf_num(&o, tm->tm_year + 1900L, 4, '0');
			strf_put(&o, "-", 1);
			strf_num(&o, tm->tm_mon + 1, 2, '0');
			strf_put(&o, "-", 1);
			strf_num(&o, tm->tm_mday, 2, '0');
			break;
		case 'T':
			strf_num(&o, tm->tm_hour, 2, '0');
			strf_put(&o, ":", 1);
			strf_num(&o, tm->tm_min, 2, '0');
			strf_put(&o, ":", 1);
			strf_num(&o, tm->tm_sec, 2, '0');
			break;
		case 'D':
			strf_num(&o, tm->tm_mon + 1, 2, '0');
			strf_put(&o, "/", 1);
			strf_num(&o, tm->tm_mday, 2, '0');
			strf_put(&o, "/", 1);
			strf_num(&o, (tm->tm_year + 1900L) % 100, 2, '0');
			break;
		case 's': {
			struct tm c = *tm;
			strf_num(&o, (long)timegm(&c), 1, 0);
			break;
		}
		case 'Z': strf_put(&o, "UTC", 3); break;
		case 'z': strf_put(&o, "+0000", 5); break;
		case 'n': strf_put(&o, "\n", 1); break;
		case 't': strf_put(&o, "\t", 1); break;
		case '%': strf_put(&o, "%", 1); break;
		case 0: fmt--; break;
		default: strf_put(&o, fmt - 1, 2); break;
		}
	}
	if (o.n >= max)
		return 0;
	s[o.n] = 0;
	return o.n;
}
