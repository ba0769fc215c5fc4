/* Host-side test driver for the guest runtime. The guest libraries are
 * linked in with every global symbol renamed to g_<name>, so the guest's
 * libc sits next to glibc; the driver compares the two, or checks the
 * guest code's invariants, and prints "FAIL ..." lines (exit status 1) or
 * results the Go test checks. Usage: driver COMMAND [SEED [N]]. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uk/bootinfo.h>

/* The guest's functions, renamed. */
int g_snprintf(char *, size_t, const char *, ...);
int g_sprintf(char *, const char *, ...);
int g_sscanf(const char *, const char *, ...);
int g_printf(const char *, ...);
int g_puts(const char *);
int g_fflush(void *);
double g_strtod(const char *, char **);
float g_strtof(const char *, char **);
long g_strtol(const char *, char **, int);
unsigned long g_strtoul(const char *, char **, int);
long long g_strtoll(const char *, char **, int);
unsigned long long g_strtoull(const char *, char **, int);
int *g___errno_location(void);
void *g_memcpy(void *, const void *, size_t);
void *g_memmove(void *, const void *, size_t);
void *g_memset(void *, int, size_t);
int g_memcmp(const void *, const void *, size_t);
void *g_memchr(const void *, int, size_t);
void *g_memrchr(const void *, int, size_t);
void *g_memmem(const void *, size_t, const void *, size_t);
size_t g_strlen(const char *);
size_t g_strnlen(const char *, size_t);
char *g_strchr(const char *, int);
char *g_strrchr(const char *, int);
char *g_strstr(const char *, const char *);
size_t g_strspn(const char *, const char *);
size_t g_strcspn(const char *, const char *);
char *g_strpbrk(const char *, const char *);
int g_strcmp(const char *, const char *);
int g_strncmp(const char *, const char *, size_t);
int g_strcasecmp(const char *, const char *);
int g_strncasecmp(const char *, const char *, size_t);
char *g_strtok_r(char *, const char *, char **);
char *g_strdup(const char *);
char *g_strncpy(char *, const char *, size_t);
char *g_strcat(char *, const char *);
void g_qsort(void *, size_t, size_t, int (*)(const void *, const void *));
void *g_bsearch(const void *, const void *, size_t, size_t, int (*)(const void *, const void *));
void *g_malloc(size_t);
void *g_calloc(size_t, size_t);
void *g_realloc(void *, size_t);
void g_free(void *);
int g_rand(void);
void g_srand(unsigned);
int g_setjmp(unsigned long *);
void g_longjmp(unsigned long *, int) __attribute__((noreturn));
const unsigned short **g___ctype_b_loc(void);
const int **g___ctype_toupper_loc(void);
int g_isalpha(int), g_isdigit(int), g_isspace(int), g_ispunct(int), g_isxdigit(int),
	g_isupper(int), g_islower(int), g_isprint(int), g_iscntrl(int), g_isgraph(int),
	g_isalnum(int), g_toupper(int), g_tolower(int);
long g_timegm(struct tm *);
struct tm *g_gmtime_r(const long *, struct tm *);
size_t g_strftime(char *, size_t, const char *, const struct tm *);
unsigned __int128 g___udivti3(unsigned __int128, unsigned __int128);
unsigned __int128 g___umodti3(unsigned __int128, unsigned __int128);
__int128 g___divti3(__int128, __int128);
int g___popcountdi2(uint64_t);
void g_uk_alloc_init(void *, size_t);
void g_uk_alloc_init_zeroed(void *, size_t);
void *g_uk_alloc_calloc(size_t);
void *g_uk_alloc_malloc(size_t);
void g_uk_alloc_free(void *);
void *g_uk_alloc_realloc(void *, size_t);
void *g_uk_alloc_memalign(size_t, size_t);
size_t g_uk_alloc_usable_size(void *);
int g_uk_alloc_check(void);
size_t g_uk_alloc_free_bytes(void);
void g_uk_alloc_walk_free(void (*)(void *, size_t, void *), void *);
uint64_t g_uk_random_u64(void);
uint64_t g_uk_random_below(uint64_t);
void g_uk_random_seed(uint64_t);
void g_uk_random_fill(void *, size_t);
void g_ukrand_chacha20_block(const uint32_t *, uint32_t, const uint32_t *, uint32_t *)
	__attribute__((weak));
uint64_t g_uk_time_ns(void);
void g_ukplat_entry(const struct uk_bootinfo *);
int g_ukboot_split_args(char *, char **, int);

static int failures;

static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("FAIL ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	if (++failures >= 20) {
		printf("FAIL too many failures, stopping\n");
		exit(1);
	}
}

static uint64_t rng;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t below(uint64_t n)
{
	return rnd() % n;
}

/* ---- the platform the guest code calls (io.S and start.S stand-ins) ---- */

static char console[1 << 16];
static size_t console_len;
static jmp_buf exit_jmp;
static int exit_code = -1;
static uint64_t fs_base_written;

void g_ukplat_outb(uint16_t port, uint8_t v)
{
	if (port == UK_PORT_COM1 && console_len < sizeof console)
		console[console_len++] = (char)v;
}

/* The ready point: counted; with a restore line set, the boot info is
 * rewritten there as a monitor restoring a snapshot does (another seed,
 * another command line). */
static int ready_seen;
static struct uk_bootinfo *ready_bi;
static const char *restore_cmdline;

void g_ukplat_outl(uint16_t port, uint32_t v)
{
	if (port == UK_PORT_READY) {
		ready_seen++;
		if (ready_bi && restore_cmdline) {
			ready_bi->seed = 5678;
			ready_bi->canary = 0x567800;
			ready_bi->cmdline = (uintptr_t)restore_cmdline;
			ready_bi->cmdline_len = strlen(restore_cmdline);
		}
		return;
	}
	if (port == UK_PORT_EXIT) {
		exit_code = (int)v;
		longjmp(exit_jmp, 1);
	}
}

/* Free-page reporting (ukplat_discard): whole pages, counted; the ones of
 * the scratch buffer below apart. */
static int discards;
static unsigned char scratch_buf[4 * 4096] __attribute__((aligned(4096)));
static uint64_t scratch_discarded;

void g_ukplat_discard_pages(uint64_t start, uint64_t len)
{
	if ((start | len) & 0xfff || !len)
		fail("discard of %#" PRIx64 "+%#" PRIx64 ": not whole pages", start, len);
	discards++;
	uint64_t lo = (uintptr_t)scratch_buf, hi = lo + sizeof scratch_buf;
	if (start < hi && start + len > lo) {
		if (start < lo || start + len > hi)
			fail("discard of %#" PRIx64 "+%#" PRIx64 ": beyond the scratch buffer", start, len);
		scratch_discarded += len;
	}
}

/* Scratch memory (UK_SCRATCH): a range from 100 bytes into the buffer to
 * its end (so three whole pages), and an entry whose pointer is NULL. */
__attribute__((used)) static unsigned char *scratch_ptr, *scratch_null;
__asm__(".data\n.balign 8\n.globl g___start_uk_scratch\ng___start_uk_scratch:\n"
	".quad scratch_ptr, 4 * 4096 - 100\n.quad scratch_null, 4096\n"
	".globl g___stop_uk_scratch\ng___stop_uk_scratch:\n.text\n");

void g_ukplat_hlt(void)
{
	fail("hlt reached");
	exit(1);
}

void g_ukplat_wrmsr(uint32_t msr, uint64_t v)
{
	if (msr != 0xc0000100)
		fail("wrmsr to unexpected MSR %#x", msr);
	fs_base_written = v;
}

/* start.S's static TLS reserve and TCB, adjacent as there. */
__asm__(".bss\n.balign 64\n.globl g_ukplat_tls_reserve\ng_ukplat_tls_reserve: .skip 4096\n"
	".globl g_ukplat_tcb0\ng_ukplat_tcb0: .skip 256\n.text\n");
extern unsigned char g_ukplat_tls_reserve[4096], g_ukplat_tcb0[256];

/* Constructors ukboot must run, in order, with (argc, argv). */
static int ctor_log[4], ctor_n, ctor_argc;
__attribute__((used)) static void ctor_a(int argc, char **argv)
{
	(void)argv;
	ctor_argc = argc;
	ctor_log[ctor_n++] = 1;
}
__attribute__((used)) static void ctor_b(void)
{
	ctor_log[ctor_n++] = 2;
}
__asm__(".data\n.balign 8\n.globl g___init_array_start\ng___init_array_start:\n"
	".quad ctor_a\n.quad ctor_b\n.globl g___init_array_end\ng___init_array_end:\n.text\n");

/* The init phase (UK_INIT_PHASE): one function, recording what had happened
 * when it ran; with init_draws set it asks ukrand for a number, which must
 * stop the guest (a snapshot would share it). */
static int init_calls, init_ready_seen = -1, init_ctor_n = -1, init_draws;
__attribute__((used)) static void init_fn(void)
{
	init_calls++;
	init_ready_seen = ready_seen;
	init_ctor_n = ctor_n;
	if (init_draws)
		(void)g_uk_random_u64();
}
__asm__(".data\n.balign 8\n.globl g___start_uk_init_phase\ng___start_uk_init_phase:\n"
	".quad init_fn\n.globl g___stop_uk_init_phase\ng___stop_uk_init_phase:\n.text\n");

static void (*guest_main)(void);
static int main_argc;
static char main_argv[8][64];

int g_main(int argc, char **argv)
{
	main_argc = argc;
	for (int i = 0; i < argc && i < 8; i++)
		snprintf(main_argv[i], sizeof main_argv[i], "%s", argv[i]);
	if (argv[argc] != NULL)
		fail("argv[argc] is not NULL");
	if (guest_main)
		guest_main();
	return 42;
}

/* ---- printf ---- */

static const double special_doubles[] = {
	0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.5, 0.125, 0.375, 1e15, 1e16, 1e17, 1e21, 1e22, 1e23,
	123456789.125, DBL_MAX, DBL_MIN, 4.9406564584124654e-324, 2.2250738585072009e-308,
	0.1, 0.2, 0.3, 9.5, 99.5, 999.5, 0.05, 0.15, 0.25, 0.35, 1e-5, 1e-4, 0.0001234,
	123456.5, 999999.5, 9999995, 0.999999, 0.9999995, 1e100, 1e-100, 5e-324, 1.7976931348623157e308,
	3.14159265358979, 2.718281828459045, 1e300, 8.5, 7.5, 0.45, 1.005, 2.675,
};

static double rand_double(void)
{
	switch (below(5)) {
	case 0: {
		uint64_t b = rnd();
		double d;
		memcpy(&d, &b, sizeof d);
		return d;
	}
	case 1:
		return special_doubles[below(sizeof special_doubles / sizeof special_doubles[0])] *
		       (below(2) ? 1 : -1);
	case 2: /* exact binary fractions: ties in decimal rounding */
		return (double)(int64_t)(below(1 << 20) - (1 << 19)) / (double)(1 << below(12));
	case 3:
		return (double)(int64_t)rnd() / pow(10, (double)below(30));
	default: {
		double inf = 1.0 / 0.0;
		double v[] = {inf, -inf, nan(""), -nan("")};
		return v[below(4)];
	}
	}
}

static const char *const strings[] = {"", "a", "hello", "hello, world", "with\ttab",
				      "a fairly long string that goes on and on and on"};

static int64_t rand_int(void)
{
	static const int64_t edge[] = {0, 1, -1, 9, 10, -10, 127, 128, -128, 255, 256, 32767, -32768,
				       65535, INT_MAX, INT_MIN, UINT_MAX, LLONG_MAX, LLONG_MIN, 1000000};
	switch (below(3)) {
	case 0:
		return edge[below(sizeof edge / sizeof edge[0])];
	case 1:
		return (int64_t)rnd() >> below(64);
	default:
		return (int64_t)rnd();
	}
}

static void cmd_printf(int n)
{
	char fmt[64], gb[2048], hb[2048];
	for (int i = 0; i < n; i++) {
		static const char convs[] = "diuoxXcspfFeEgGaA%";
		char conv = convs[below(sizeof convs - 1)];
		const char *flagset;
		switch (conv) {
		case 'd': case 'i': flagset = "-+ 0"; break;
		case 'o': case 'x': case 'X': flagset = "-#0"; break;
		case 'u': flagset = "-0"; break;
		case 'c': case 's': case 'p': case '%': flagset = "-"; break;
		default: flagset = "-+ #0"; break;
		}
		char *p = fmt;
		*p++ = '[';
		*p++ = '%';
		for (const char *f = flagset; *f; f++)
			if (below(4) == 0)
				*p++ = *f;
		int star_w = 0, star_p = 0, wv = 0, pv = 0;
		int fl = conv == 'f' || conv == 'F' || conv == 'e' || conv == 'E' || conv == 'g' ||
			 conv == 'G' || conv == 'a' || conv == 'A';
		if (conv != '%') {
			switch (below(4)) {
			case 0: break;
			case 1: star_w = 1; wv = (int)below(40) - 10; p += sprintf(p, "*"); break;
			default: p += sprintf(p, "%d", (int)below(30) + 1); break;
			}
			if (conv != 'c' && conv != 'p' && below(2)) {
				int maxp = fl ? (below(8) ? 20 : 400) : 25;
				if (below(5) == 0) {
					star_p = 1;
					pv = (int)below((uint64_t)maxp + 5) - 3;
					p += sprintf(p, ".*");
				} else {
					p += sprintf(p, ".%d", (int)below((uint64_t)maxp + 1));
				}
			}
		}
		static const char *const ilens[] = {"", "", "hh", "h", "l", "ll", "z", "j"};
		const char *len = "";
		if (strchr("diuoxX", conv))
			len = ilens[below(8)];
		p += sprintf(p, "%s%c]", len, conv);
		int64_t iv = rand_int();
		double dv = rand_double();
		const char *sv = strings[below(sizeof strings / sizeof strings[0])];
		void *pvv = below(4) ? (void *)(uintptr_t)rnd() : NULL;

		int r1, r2;
#define BOTH(...)                                                             \
	do {                                                                  \
		r1 = g_snprintf(gb, sizeof gb, fmt, __VA_ARGS__);             \
		r2 = snprintf(hb, sizeof hb, fmt, __VA_ARGS__);               \
	} while (0)
#define WITH_STARS(v)                                                        \
	do {                                                                 \
		if (star_w && star_p)                                        \
			BOTH(wv, pv, v);                                     \
		else if (star_w)                                             \
			BOTH(wv, v);                                         \
		else if (star_p)                                             \
			BOTH(pv, v);                                         \
		else                                                         \
			BOTH(v);                                             \
	} while (0)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-security"
		switch (conv) {
		case 'd': case 'i':
			if (!strcmp(len, "l") || !strcmp(len, "z"))
				WITH_STARS((long)iv);
			else if (!strcmp(len, "ll") || !strcmp(len, "j"))
				WITH_STARS((long long)iv);
			else
				WITH_STARS((int)iv);
			break;
		case 'u': case 'o': case 'x': case 'X':
			if (!strcmp(len, "l") || !strcmp(len, "z"))
				WITH_STARS((unsigned long)iv);
			else if (!strcmp(len, "ll") || !strcmp(len, "j"))
				WITH_STARS((unsigned long long)iv);
			else
				WITH_STARS((unsigned)iv);
			break;
		case 'c': {
			int cv = (int)(32 + below(95));
			WITH_STARS(cv);
			break;
		}
		case 's':
			WITH_STARS(sv);
			break;
		case 'p':
			WITH_STARS(pvv);
			break;
		case '%':
			r1 = g_snprintf(gb, sizeof gb, fmt);
			r2 = snprintf(hb, sizeof hb, fmt);
			break;
		default:
			WITH_STARS(dv);
			break;
		}
#pragma GCC diagnostic pop
		if (r1 != r2 || strcmp(gb, hb)) {
			/* glibc drops the zeros '#' keeps in %#g when rounding
			 * carries into a new power of ten in the e style
			 * (%#g of 999999.5 gives "1.e+06"; C11 7.21.6.1 wants
			 * "1.00000e+06"): compare only the rest. */
			int prec = 6;
			const char *dot = strchr(fmt, '.');
			if (dot)
				prec = dot[1] == '*' ? (pv < 0 ? 6 : pv) : atoi(dot + 1);
			if (strchr(fmt, '#') && (conv == 'g' || conv == 'G') && prec > 1 &&
			    (strstr(hb, ".e") || strstr(hb, ".E")))
				continue;
			fail("printf %s (int %" PRId64 " double %a): guest %d \"%s\" glibc %d \"%s\"",
			     fmt, iv, dv, r1, gb, r2, hb);
		}
	}
	/* Truncation and the return value. */
	char small[8];
	int r = g_snprintf(small, sizeof small, "%s-%d", "abcdef", 12345);
	if (r != 12 || strcmp(small, "abcdef-"))
		fail("snprintf truncation: %d \"%s\"", r, small);
	r = g_snprintf(NULL, 0, "%d", 123456);
	if (r != 6)
		fail("snprintf(NULL, 0) returned %d", r);
	long long nn = 0;
	int ni = 0;
	g_snprintf(hb, sizeof hb, "abc%n%lld%lln", &ni, 12345LL, &nn);
	if (ni != 3 || nn != 8)
		fail("%%n stored %d and %lld", ni, nn);
}

/* ---- strtod / strtol ---- */

static void check_strtod(const char *s)
{
	char *ge, *he;
	*g___errno_location() = 0;
	errno = 0;
	double g = g_strtod(s, &ge);
	double h = strtod(s, &he);
	int gerr = *g___errno_location(), herr = errno;
	uint64_t gb, hb;
	memcpy(&gb, &g, 8);
	memcpy(&hb, &h, 8);
	if (isnan(g) && isnan(h))
		gb = hb = (gb >> 63) == (hb >> 63);
	if (gb != hb || ge != he)
		fail("strtod(\"%.80s\"): guest %a (end %td) glibc %a (end %td)", s, g, ge - s, h, he - s);
	else if ((gerr == ERANGE) != (herr == ERANGE))
		fail("strtod(\"%.80s\"): guest errno %d glibc errno %d", s, gerr, herr);
	float gf = g_strtof(s, NULL), hf = strtof(s, NULL);
	/* strtof goes through double: a double rounding can differ by an ulp. */
	if (!(isnan(gf) && isnan(hf)) && gf != hf && fabsf(gf - hf) > fabsf(hf) * 1.2e-7f)
		fail("strtof(\"%.80s\"): guest %a glibc %a", s, gf, hf);
}

static void cmd_strtod(int n)
{
	static const char *const fixed[] = {
		"0", "-0", "1", "  +1.5e3xyz", ".5", "5.", ".", "e5", "-.e5", "0x", "0x.p1",
		"0x1p-1074", "0x1p-1075", "0x1.8p-1074", "0x1.fffffffffffff8p1023", "0x1.fffffffffffff7p1023",
		"0X1.ABCDEFp+10", "0x.8", "1e-400", "1e400", "-1e400", "4.9e-324", "2.4703282292062327e-324",
		"2.4703282292062328e-324", "2.2250738585072011e-308", "2.2250738585072012e-308",
		"1.7976931348623157e308", "1.7976931348623158e308", "1.7976931348623159e308",
		"inf", "-Infinity", "INFINITE", "nan", "-nan", "nan(123)", "nan(", "nanx", "1e", "1e+",
		"1e-5x", "123456789012345678901234567890", "0.000000000000000000000000000001234",
		"9007199254740993", "9007199254740992.5", "9007199254740993.0000000000000000001",
		"1.00000000000000011102230246251565404236316680908203125",
		"1.00000000000000011102230246251565404236316680908203124",
		"1.00000000000000011102230246251565404236316680908203126",
		"0.1", "0.2", "0.3", "123.456", "1e23", "8.589973e9", "  \t\n42", "+-1", "--1", "",
		"00000000000000000000000000000000000000001e-5", "1.e5", "0e999999", "1e-99999", "1e99999",
	};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		check_strtod(fixed[i]);
	char buf[1200];
	for (int i = 0; i < n; i++) {
		double d = rand_double();
		switch (below(5)) {
		case 0:
			snprintf(buf, sizeof buf, "%.17g", d);
			break;
		case 1:
			snprintf(buf, sizeof buf, "%.*e", (int)below(25), d);
			break;
		case 2:
			snprintf(buf, sizeof buf, "%a", d);
			break;
		case 3: { /* the exact midpoint between d and the next double, and
			   * a hair above or below it */
			if (!isfinite(d) || fabs(d) == DBL_MAX)
				d = 1.0;
			long double mid = ((long double)d + (long double)nextafter(d, INFINITY)) / 2;
			int k = snprintf(buf, sizeof buf, "%.800Le", mid);
			char *e = strchr(buf, 'e');
			char *last = e - 1;
			while (*last == '0')
				last--;
			switch (below(3)) {
			case 0: /* exact */
				break;
			case 1: /* above: append a 1 digit before the exponent */
				if (last + 2 < e) {
					last[1] = '1';
				} else {
					memmove(e + 1, e, (size_t)(buf + k - e) + 1);
					*e = '1';
				}
				break;
			default: /* below: decrement the last nonzero digit, 9s after */
				if (*last >= '1' && *last <= '9' && last + 2 < e) {
					(*last)--;
					memset(last + 1, '9', (size_t)(e - last - 1));
				}
				break;
			}
			break;
		}
		default: { /* random digits and exponent */
			char *p = buf;
			if (below(2))
				*p++ = '-';
			int nd = (int)below(below(4) ? 20 : 900) + 1;
			int point = (int)below((uint64_t)nd + 1);
			for (int j = 0; j < nd; j++) {
				if (j == point)
					*p++ = '.';
				*p++ = (char)('0' + below(10));
			}
			sprintf(p, "e%d", (int)below(700) - 350);
			break;
		}
		}
		check_strtod(buf);
	}
}

static void check_strtol(const char *s, int base)
{
	char *ge, *he;
	long long vals[8];
	int errs[8];
	char *ends[8];
#define ONE(k, fn, gfn)                                          \
	do {                                                     \
		*g___errno_location() = 0;                       \
		errno = 0;                                       \
		vals[k] = (long long)gfn(s, &ge, base);          \
		errs[k] = *g___errno_location();                 \
		ends[k] = ge;                                    \
		vals[k + 4] = (long long)fn(s, &he, base);       \
		errs[k + 4] = errno;                             \
		ends[k + 4] = he;                                \
	} while (0)
	ONE(0, strtol, g_strtol);
	ONE(1, strtoul, g_strtoul);
	ONE(2, strtoll, g_strtoll);
	ONE(3, strtoull, g_strtoull);
	static const char *const names[] = {"strtol", "strtoul", "strtoll", "strtoull"};
	for (int k = 0; k < 4; k++)
		if (vals[k] != vals[k + 4] || ends[k] != ends[k + 4] || errs[k] != errs[k + 4])
			fail("%s(\"%s\", %d): guest %lld end %td errno %d, glibc %lld end %td errno %d",
			     names[k], s, base, vals[k], ends[k] - s, errs[k], vals[k + 4],
			     ends[k + 4] - s, errs[k + 4]);
}

static void cmd_strtol(int n)
{
	static const char *const fixed[] = {"0", "-0", "123", "  -123abc", "+7", "0x1f", "0X1F",
		"0x", "0xg", "017", "08", "9223372036854775807", "9223372036854775808",
		"-9223372036854775808", "-9223372036854775809", "18446744073709551615",
		"18446744073709551616", "-18446744073709551615", "-1", "zz", "", "   ", "- 5", "1_000"};
	static const int bases[] = {0, 10, 16, 8, 2, 36};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++)
			check_strtol(fixed[i], bases[b]);
	char buf[80];
	static const char alphabet[] = "0123456789abcdefxXz+- ";
	for (int i = 0; i < n; i++) {
		int len = (int)below(30);
		for (int j = 0; j < len; j++)
			buf[j] = alphabet[below(sizeof alphabet - 1)];
		buf[len] = 0;
		check_strtol(buf, bases[below(sizeof bases / sizeof bases[0])]);
	}
}

/* ---- sscanf ---- */

static void cmd_sscanf(void)
{
	int a = 0, b = 0, na = 0, nb = 0;
	char s1[64] = "", s2[64] = "";
	double d1 = 0, d2 = 0;
	unsigned u1 = 0, u2 = 0;
	long l1 = 0, l2 = 0;
	struct {
		const char *in, *fmt;
	} cases[] = {
		{"12 34", "%d %d"}, {"  -7,8", "%d,%d"}, {"0x1f 017", "%i %i"}, {"ff", "%x"},
		{"hello world", "%s %s"}, {"key=value;", "%[^=]=%[^;]"}, {"abc123", "%[a-z]%d"},
		{"3.25 -1e3", "%lf %lf"}, {"42abc", "%d%n"}, {"", "%d"}, {"x", "%d"}, {"12", "%1d%d"},
		{"%5", "%%%d"}, {"a b", "%c %c"}, {"4294967295", "%u"}, {"-9223372036854775808", "%ld"},
		{"inf nan", "%lf %lf"}, {"  12  ", " %d "}, {"1 2", "%*d %d"}, {"0x", "%x"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *in = cases[i].in, *fmt = cases[i].fmt;
		int rg, rh;
		char gr[200], hr[200];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#define SCAN2(...)                                                              \
	do {                                                                    \
		rg = g_sscanf(in, fmt, __VA_ARGS__);                            \
		snprintf(gr, sizeof gr, "%d|%d|%d|%s|%s|%g|%g|%u|%ld|%d", rg, a, b, s1, s2, d1, d2, \
			 u1, l1, na);                                           \
		a = b = na = 0;                                                 \
		s1[0] = s2[0] = 0;                                              \
		d1 = d2 = 0;                                                    \
		u1 = 0;                                                         \
		l1 = 0;                                                         \
		rh = sscanf(in, fmt, __VA_ARGS__);                              \
		snprintf(hr, sizeof hr, "%d|%d|%d|%s|%s|%g|%g|%u|%ld|%d", rh, a, b, s1, s2, d1, d2, \
			 u1, l1, na);                                           \
		a = b = na = 0;                                                 \
		s1[0] = s2[0] = 0;                                              \
		d1 = d2 = 0;                                                    \
		u1 = 0;                                                         \
		l1 = 0;                                                         \
	} while (0)
		if (strstr(fmt, "%lf"))
			SCAN2(&d1, &d2);
		else if (strstr(fmt, "%s") || strstr(fmt, "%["))
			if (strstr(fmt, "%d"))
				SCAN2(s1, &a);
			else
				SCAN2(s1, s2);
		else if (strstr(fmt, "%c"))
			SCAN2(s1, s2);
		else if (strstr(fmt, "%u"))
			SCAN2(&u1);
		else if (strstr(fmt, "%ld"))
			SCAN2(&l1);
		else if (strstr(fmt, "%n"))
			SCAN2(&a, &na);
		else
			SCAN2(&a, &b);
#pragma GCC diagnostic pop
		(void)nb;
		(void)u2;
		(void)l2;
		if (strcmp(gr, hr))
			fail("sscanf(\"%s\", \"%s\"): guest %s glibc %s", in, fmt, gr, hr);
	}
}

/* ---- memory and strings ---- */

static int sign(int x)
{
	return (x > 0) - (x < 0);
}

static void cmd_string(int n)
{
	static unsigned char a[600], b[600], c[600];
	for (int i = 0; i < n; i++) {
		size_t off1 = below(16), off2 = below(16), len = below(below(4) ? 40 : 500);
		for (size_t j = 0; j < sizeof a; j++)
			a[j] = (unsigned char)(below(4) ? 'a' + below(4) : below(256));
		memcpy(b, a, sizeof a);
		memcpy(c, a, sizeof a);
		/* memcpy / memset / memmove against glibc on copies */
		g_memcpy(b + off1, a + off2 + 40, len);
		memcpy(c + off1, a + off2 + 40, len);
		if (memcmp(b, c, sizeof b))
			fail("memcpy(+%zu, +%zu, %zu)", off1, off2, len);
		g_memset(b + off2, (int)i, len);
		memset(c + off2, (int)i, len);
		if (memcmp(b, c, sizeof b))
			fail("memset(+%zu, %d, %zu)", off2, i, len);
		size_t from = below(80), to = below(80);
		g_memmove(b + to, b + from, len);
		memmove(c + to, c + from, len);
		if (memcmp(b, c, sizeof b))
			fail("memmove(+%zu, +%zu, %zu)", to, from, len);
		/* comparisons: make a and b equal up to a random point */
		memcpy(b, a, sizeof a);
		size_t diff = below(len + 1);
		if (diff < len)
			b[off1 + diff] = (unsigned char)below(256);
		if (sign(g_memcmp(a + off1, b + off1, len)) != sign(memcmp(a + off1, b + off1, len)))
			fail("memcmp len %zu diff at %zu", len, diff);
		int ch = (int)(below(2) ? a[off1 + below(len + 1)] : below(256));
		if (g_memchr(a + off1, ch, len) != memchr(a + off1, ch, len))
			fail("memchr(+%zu, %d, %zu)", off1, ch, len);
		if (g_memrchr(a + off1, ch, len) != memrchr(a + off1, ch, len))
			fail("memrchr(+%zu, %d, %zu)", off1, ch, len);
		size_t nl = below(4) + 1;
		if (g_memmem(a, len, a + off1 + 3, nl) != memmem(a, len, a + off1 + 3, nl))
			fail("memmem len %zu nl %zu", len, nl);
		/* strings: NUL-terminate at random points */
		char *s = (char *)a + off1, *t = (char *)b + off2;
		for (size_t j = 0; j < 560; j++)
			if (a[j] == 0)
				a[j] = 'z';
		s[len] = 0;
		memcpy(b, a, sizeof a);
		t = (char *)b + off1;
		if (diff < len && below(2))
			t[diff] = (char)('a' + below(5));
		if (g_strlen(s) != strlen(s))
			fail("strlen at +%zu len %zu", off1, len);
		if (g_strnlen(s, diff) != strnlen(s, diff))
			fail("strnlen");
		if (sign(g_strcmp(s, t)) != sign(strcmp(s, t)))
			fail("strcmp \"%s\" \"%s\"", s, t);
		if (sign(g_strncmp(s, t, diff)) != sign(strncmp(s, t, diff)))
			fail("strncmp");
		if (sign(g_strcasecmp(s, t)) != sign(strcasecmp(s, t)))
			fail("strcasecmp");
		if (sign(g_strncasecmp(s, t, diff)) != sign(strncasecmp(s, t, diff)))
			fail("strncasecmp");
		if (g_strchr(s, ch) != strchr(s, ch))
			fail("strchr(%d)", ch);
		if (g_strrchr(s, ch) != strrchr(s, ch))
			fail("strrchr(%d)", ch);
		char needle[6];
		size_t ns = below(5), at = below(len + 1);
		snprintf(needle, ns + 1, "%s", s + at);
		if (below(3) == 0 && ns)
			needle[0] = 'd';
		if (g_strstr(s, needle) != strstr(s, needle))
			fail("strstr(\"%s\")", needle);
		static const char *const sets[] = {"", "a", "ab", "abc", "xyz", "abcd\x80\xff"};
		const char *set = sets[below(6)];
		if (g_strspn(s, set) != strspn(s, set) || g_strcspn(s, set) != strcspn(s, set) ||
		    g_strpbrk(s, set) != strpbrk(s, set))
			fail("strspn/strcspn/strpbrk with \"%s\"", set);
		char tok1[600], tok2[600], *sv1, *sv2;
		strcpy(tok1, s);
		strcpy(tok2, s);
		char *p1 = g_strtok_r(tok1, "ab", &sv1), *p2 = strtok_r(tok2, "ab", &sv2);
		while (p1 && p2 && p1 - tok1 == p2 - tok2 && !strcmp(p1, p2)) {
			p1 = g_strtok_r(NULL, "ab", &sv1);
			p2 = strtok_r(NULL, "ab", &sv2);
		}
		if (p1 || p2)
			fail("strtok_r diverged on \"%s\"", s);
	}
	char *d = g_strdup("duplicate me");
	if (!d || strcmp(d, "duplicate me"))
		fail("strdup");
	g_free(d);
	char nb[10];
	memset(nb, 'x', sizeof nb);
	g_strncpy(nb, "abc", 6);
	if (memcmp(nb, "abc\0\0\0xxxx", 10))
		fail("strncpy does not pad with NULs");
	/* ctype, against glibc's C locale, and the glibc table accessors */
	for (int ch = -1; ch < 256; ch++) {
		if (!!g_isalpha(ch) != !!isalpha(ch) || !!g_isdigit(ch) != !!isdigit(ch) ||
		    !!g_isspace(ch) != !!isspace(ch) || !!g_ispunct(ch) != !!ispunct(ch) ||
		    !!g_isxdigit(ch) != !!isxdigit(ch) || !!g_isupper(ch) != !!isupper(ch) ||
		    !!g_islower(ch) != !!islower(ch) || !!g_isprint(ch) != !!isprint(ch) ||
		    !!g_iscntrl(ch) != !!iscntrl(ch) || !!g_isgraph(ch) != !!isgraph(ch) ||
		    !!g_isalnum(ch) != !!isalnum(ch) || g_toupper(ch) != toupper(ch) ||
		    g_tolower(ch) != tolower(ch))
			fail("ctype differs for %d", ch);
		if ((*g___ctype_b_loc())[ch] != (*__ctype_b_loc())[ch])
			fail("__ctype_b_loc()[%d]: guest %#x glibc %#x", ch, (*g___ctype_b_loc())[ch],
			     (*__ctype_b_loc())[ch]);
		if ((*g___ctype_toupper_loc())[ch] != (*__ctype_toupper_loc())[ch])
			fail("__ctype_toupper_loc()[%d]", ch);
	}
	/* 128-bit division and popcount (libgcc.c) */
	for (int i = 0; i < n; i++) {
		unsigned __int128 x = ((unsigned __int128)rnd() << below(65)) | rnd();
		unsigned __int128 y = ((unsigned __int128)rnd() >> below(64)) << below(70);
		if (!y)
			y = 3;
		if (g___udivti3(x, y) != x / y || g___umodti3(x, y) != x % y)
			fail("128-bit unsigned division");
		__int128 sx = (__int128)x, sy = (__int128)y * (below(2) ? 1 : -1);
		if (g___divti3(sx, sy) != sx / sy)
			fail("128-bit signed division");
		uint64_t v = rnd() >> below(64);
		if (g___popcountdi2(v) != __builtin_popcountll(v))
			fail("popcount");
	}
	/* time: gmtime_r/timegm/strftime against glibc */
	for (int i = 0; i < n; i++) {
		long t = (long)(rnd() % 20000000000ULL) - 5000000000L;
		struct tm gt, ht;
		g_gmtime_r(&t, &gt);
		gmtime_r(&t, &ht);
		if (gt.tm_year != ht.tm_year || gt.tm_mon != ht.tm_mon || gt.tm_mday != ht.tm_mday ||
		    gt.tm_hour != ht.tm_hour || gt.tm_min != ht.tm_min || gt.tm_sec != ht.tm_sec ||
		    gt.tm_wday != ht.tm_wday || gt.tm_yday != ht.tm_yday)
			fail("gmtime_r(%ld)", t);
		if (g_timegm(&gt) != t)
			fail("timegm(gmtime_r(%ld))", t);
		char gs[100], hs[100];
		const char *f = "%Y-%m-%d %H:%M:%S %a %b %j %u %w %e %I%p %D %F %T %y %C %%";
		size_t gl = g_strftime(gs, sizeof gs, f, &gt), hl = strftime(hs, sizeof hs, f, &ht);
		if (gl != hl || strcmp(gs, hs))
			fail("strftime: guest \"%s\" glibc \"%s\"", gs, hs);
	}
}

/* ---- qsort / bsearch ---- */

struct rec {
	int key;
	char pad[9];
};

static int cmp_int(const void *x, const void *y)
{
	int a = *(const int *)x, b = *(const int *)y;
	return (a > b) - (a < b);
}

static int cmp_rec(const void *x, const void *y)
{
	return cmp_int(&((const struct rec *)x)->key, &((const struct rec *)y)->key);
}

static int cmp_byte(const void *x, const void *y)
{
	return *(const unsigned char *)x - *(const unsigned char *)y;
}

static void cmd_qsort(int n)
{
	static int g[20000], h[20000];
	static struct rec r[3000];
	for (int i = 0; i < n; i++) {
		size_t len = below(below(4) ? 50 : 20000);
		int pattern = (int)below(6);
		for (size_t j = 0; j < len; j++) {
			switch (pattern) {
			case 0: g[j] = (int)rnd(); break;
			case 1: g[j] = (int)below(5); break;             /* many duplicates */
			case 2: g[j] = (int)j; break;                    /* sorted */
			case 3: g[j] = (int)(len - j); break;            /* reversed */
			case 4: g[j] = (int)(j < len / 2 ? j : len - j); break; /* organ pipe */
			default: g[j] = 7; break;                        /* all equal */
			}
		}
		memcpy(h, g, len * sizeof g[0]);
		g_qsort(g, len, sizeof g[0], cmp_int);
		qsort(h, len, sizeof h[0], cmp_int);
		if (memcmp(g, h, len * sizeof g[0]))
			fail("qsort of %zu ints (pattern %d)", len, pattern);
		if (len) {
			int key = below(2) ? g[below(len)] : (int)rnd();
			int *fg = g_bsearch(&key, g, len, sizeof g[0], cmp_int);
			int *fh = bsearch(&key, h, len, sizeof h[0], cmp_int);
			if (!fg != !fh || (fg && *fg != key))
				fail("bsearch for %d", key);
		}
		/* odd element sizes: 16-byte records and single bytes */
		size_t rl = below(3000);
		for (size_t j = 0; j < rl; j++)
			r[j].key = (int)below(100);
		g_qsort(r, rl, sizeof r[0], cmp_rec);
		for (size_t j = 1; j < rl; j++)
			if (r[j - 1].key > r[j].key)
				fail("qsort of %zu records unsorted at %zu", rl, j);
		unsigned char bytes[300];
		size_t bl = below(sizeof bytes);
		for (size_t j = 0; j < bl; j++)
			bytes[j] = (unsigned char)rnd();
		g_qsort(bytes, bl, 1, cmp_byte);
		for (size_t j = 1; j < bl; j++)
			if (bytes[j - 1] > bytes[j])
				fail("qsort of bytes");
	}
}

/* ---- setjmp / longjmp ---- */

static unsigned long jb[8];
static volatile int jumps;

#pragma GCC diagnostic ignored "-Winfinite-recursion"
__attribute__((noinline)) static void deep(int k)
{
	if (k == 0)
		g_longjmp(jb, 0); /* longjmp(env, 0) must make setjmp return 1 */
	deep(k - 1);
	jumps++;
}

static void cmd_setjmp(void)
{
	volatile int local = 5;
	int r = g_setjmp(jb);
	if (r == 0) {
		local = 6;
		deep(10);
		fail("longjmp returned");
	} else if (r != 1 || local != 6 || jumps != 0) {
		fail("setjmp returned %d, local %d, jumps %d", r, local, jumps);
	}
	r = g_setjmp(jb);
	if (r == 0)
		g_longjmp(jb, 77);
	if (r != 77)
		fail("setjmp returned %d after longjmp(77)", r);
}

/* ---- allocator stress ---- */

struct alloc {
	unsigned char *p;
	size_t size, align;
	uint8_t tag;
};

static void fill(struct alloc *a)
{
	for (size_t i = 0; i < a->size; i++)
		a->p[i] = (uint8_t)(a->tag + i * 7);
}

static int intact(const struct alloc *a)
{
	for (size_t i = 0; i < a->size; i++)
		if (a->p[i] != (uint8_t)(a->tag + i * 7))
			return 0;
	return 1;
}

static int by_addr(const void *x, const void *y)
{
	const struct alloc *a = x, *b = y;
	return (a->p > b->p) - (a->p < b->p);
}

static size_t rand_size(void)
{
	switch (below(10)) {
	case 0: return 0;
	case 1: return below(100000);
	case 2: return (size_t)1 << below(17);
	default: return below(300);
	}
}

static void check_layout(struct alloc *live, size_t n, unsigned char *heap, size_t heaplen, int op)
{
	static struct alloc sorted[4096];
	memcpy(sorted, live, n * sizeof *live);
	qsort(sorted, n, sizeof *sorted, by_addr);
	for (size_t i = 0; i < n; i++) {
		struct alloc *a = &sorted[i];
		size_t usable = g_uk_alloc_usable_size(a->p);
		if (a->p < heap || a->p + usable > heap + heaplen)
			fail("op %d: block %p+%zu outside the heap", op, (void *)a->p, usable);
		if (usable < a->size)
			fail("op %d: usable size %zu < asked %zu", op, usable, a->size);
		if (i + 1 < n && a->p + usable > sorted[i + 1].p)
			fail("op %d: blocks %p+%zu and %p overlap", op, (void *)a->p, usable,
			     (void *)sorted[i + 1].p);
		if (!intact(a))
			fail("op %d: contents of %p+%zu changed", op, (void *)a->p, a->size);
	}
}

static unsigned char *walk_lo, *walk_hi;
static int walk_bad;

/* What a monitor may leave in a page the guest gave back: anything. */
static void scribble(void *addr, size_t len, void *arg)
{
	(void)arg;
	unsigned char *p = addr;
	if (p < walk_lo || p > walk_hi || len > (size_t)(walk_hi - p)) {
		walk_bad++;
		return;
	}
	memset(p, 0xdb, len);
}

/* zeroed: the heap is fresh memory and the allocator is told so
 * (uk_alloc_init_zeroed, as ukboot does); else it is dirty and it is not. */
static void cmd_alloc(int n, size_t heaplen, int zeroed)
{
	static struct alloc live[4096];
	size_t nlive = 0;
	/* A misaligned heap start: the allocator must align by itself. */
	unsigned char *mem = zeroed ? mmap(NULL, heaplen + 64, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
				    : malloc(heaplen + 64);
	if (mem == MAP_FAILED || !mem)
		fail("heap: %s", strerror(errno));
	unsigned char *heap = mem + 1 + below(15);
	if (zeroed) {
		g_uk_alloc_init_zeroed(heap, heaplen);
	} else {
		/* Not zero: the allocator may not assume fresh memory. */
		memset(mem, 0xa5, heaplen + 64);
		g_uk_alloc_init(heap, heaplen);
	}
	size_t initial = g_uk_alloc_free_bytes();
	if (g_uk_alloc_check())
		fail("check after init: %d", g_uk_alloc_check());
	if (initial < heaplen / 2)
		fail("only %zu of %zu heap bytes free after init", initial, heaplen);
	int nulls = 0;
	for (int op = 0; op < n; op++) {
		int what = (int)below(10);
		if (nlive == 4096 || (nlive && what < 4)) { /* free */
			size_t k = below(nlive);
			if (!intact(&live[k]))
				fail("op %d: contents of %p changed before free", op, (void *)live[k].p);
			g_uk_alloc_free(live[k].p);
			live[k] = live[--nlive];
		} else if (nlive && what < 6) { /* realloc */
			size_t k = below(nlive);
			size_t ns = rand_size();
			if (ns == 0)
				ns = 1;
			unsigned char *q = g_uk_alloc_realloc(live[k].p, ns);
			if (!q) {
				nulls++;
				if (!intact(&live[k]))
					fail("op %d: failed realloc changed the block", op);
				continue;
			}
			if (live[k].align && ((uintptr_t)q & 15))
				fail("op %d: realloc result %p misaligned", op, (void *)q);
			struct alloc old = live[k];
			live[k].p = q;
			size_t keep = old.size < ns ? old.size : ns;
			live[k].size = keep;
			if (!intact(&live[k]))
				fail("op %d: realloc(%zu -> %zu) lost contents", op, old.size, ns);
			live[k].size = ns;
			live[k].align = 16;
			fill(&live[k]);
		} else { /* malloc or memalign */
			struct alloc a = {NULL, rand_size(), 16, (uint8_t)rnd()};
			if (below(4) == 0) {
				a.align = (size_t)1 << below(14);
				a.p = g_uk_alloc_memalign(a.align, a.size);
			} else if (below(3) == 0) {
				/* calloc: zero, whether the memory was used before or not */
				a.p = g_uk_alloc_calloc(a.size);
				for (size_t j = 0; a.p && j < a.size; j++)
					if (a.p[j]) {
						fail("op %d: calloc(%zu) byte %zu is %#x", op, a.size, j, a.p[j]);
						break;
					}
			} else {
				a.p = g_uk_alloc_malloc(a.size);
			}
			if (!a.p) {
				nulls++;
				continue;
			}
			size_t want = a.align > 16 ? a.align : 16;
			if ((uintptr_t)a.p % want)
				fail("op %d: %p not aligned to %zu", op, (void *)a.p, want);
			fill(&a);
			live[nlive++] = a;
		}
		if (op % 512 == 511) {
			/* Free-page reporting: every range the walk reports may
			 * be given back to the host and read back as anything;
			 * no live block or allocator structure may be in one. */
			walk_lo = heap, walk_hi = heap + heaplen, walk_bad = 0;
			g_uk_alloc_walk_free(scribble, NULL);
			if (walk_bad)
				fail("op %d: walk_free reported %d ranges outside the heap", op, walk_bad);
			for (size_t k = 0; k < nlive; k++)
				if (!intact(&live[k]))
					fail("op %d: walk_free reported bytes of the live block %p", op, (void *)live[k].p);
			int c = g_uk_alloc_check();
			if (c)
				fail("op %d: allocator check %d after scribbling its free ranges", op, c);
		}
		if (op % 64 == 0 || op == n - 1) {
			int c = g_uk_alloc_check();
			if (c)
				fail("op %d: allocator check %d", op, c);
			check_layout(live, nlive, heap, heaplen, op);
		}
	}
	while (nlive) {
		nlive--;
		if (!intact(&live[nlive]))
			fail("contents changed before final free");
		g_uk_alloc_free(live[nlive].p);
	}
	if (g_uk_alloc_check())
		fail("check after freeing all: %d", g_uk_alloc_check());
	if (g_uk_alloc_free_bytes() != initial)
		fail("free bytes %zu after freeing all, %zu at start", g_uk_alloc_free_bytes(), initial);
	/* Everything merged back: a block of half the heap fits again. */
	void *big = g_uk_alloc_malloc(heaplen / 4);
	if (!big)
		fail("no block of %zu after freeing all (free %zu)", heaplen / 4, initial);
	g_uk_alloc_free(big);
	/* Exhaustion: allocate until NULL, then free all and check. */
	static void *many[200000];
	size_t nm = 0;
	while (nm < 200000 && (many[nm] = g_uk_alloc_malloc(1000 + below(3000))))
		nm++;
	if (nm == 200000)
		fail("heap of %zu never ran out", heaplen);
	if (g_uk_alloc_check())
		fail("check when full: %d", g_uk_alloc_check());
	while (nm)
		g_uk_alloc_free(many[--nm]);
	if (g_uk_alloc_free_bytes() != initial || g_uk_alloc_check())
		fail("after exhaustion: free %zu (want %zu), check %d", g_uk_alloc_free_bytes(),
		     initial, g_uk_alloc_check());
	/* malloc(0) gives distinct blocks; free(NULL) is a no-op. */
	void *z1 = g_uk_alloc_malloc(0), *z2 = g_uk_alloc_malloc(0);
	if (!z1 || !z2 || z1 == z2)
		fail("malloc(0) gave %p and %p", z1, z2);
	g_uk_alloc_free(z1);
	g_uk_alloc_free(z2);
	g_uk_alloc_free(NULL);
	if (g_uk_alloc_malloc((size_t)1 << 62) || g_uk_alloc_memalign(3, 10))
		fail("absurd requests did not fail");
	/* A tiny heap must not crash. */
	static unsigned char tiny[40];
	g_uk_alloc_init(tiny, sizeof tiny);
	(void)g_uk_alloc_malloc(8);
	g_uk_alloc_init(tiny, 0);
	if (g_uk_alloc_malloc(8) || g_uk_alloc_check())
		fail("empty heap handed out memory");
	printf("ops %d nulls %d initial-free %zu\n", n, nulls, initial);
	if (zeroed)
		munmap(mem, heaplen + 64);
	else
		free(mem);
}

/* Pages of [p, p+len) the kernel has mapped in, read or written (a page
 * only read maps the shared zero page, where a host has one: mincore
 * counts it too). */
static size_t resident_pages(unsigned char *p, size_t len)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), n = (len + ps - 1) / ps, r = 0;
	unsigned char *vec = malloc(n);
	if (mincore(p, len, vec))
		fail("mincore: %s", strerror(errno));
	for (size_t i = 0; i < n; i++)
		r += vec[i] & 1;
	free(vec);
	return r;
}

/* A guest that allocates little must touch little of its heap: the
 * allocator may not read or write what it has not handed out (its own
 * tables included). Fresh anonymous memory, as the monitors give. */
static void cmd_touch(int n)
{
	size_t heaplen = 8 << 20, ps = (size_t)sysconf(_SC_PAGESIZE);
	unsigned char *heap = mmap(NULL, heaplen, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (heap == MAP_FAILED)
		fail("mmap: %s", strerror(errno));
	g_uk_alloc_init_zeroed(heap, heaplen);
	size_t r0 = resident_pages(heap, heaplen);
	if (r0 > 1)
		fail("init alone made %zu pages of an %zu-byte heap resident", r0, heaplen);
	/* A first block of half a page, written (stdout's, made before any
	 * request), then small ones (a command line, argv): the allocator's
	 * state shares its page with them. */
	void *first = g_uk_alloc_malloc(2048 - 64);
	if (!first)
		fail("malloc of the first block failed");
	memset(first, 0x11, 2048 - 64);
	for (int i = 0; i < 4; i++) {
		void *s = g_uk_alloc_malloc(100);
		if (!s)
			fail("malloc of a small first block failed");
		memset(s, 0x22, 100);
	}
	printf("first-block-resident %zu\n", resident_pages(heap, heaplen));
	/* What a small request does: a command line, argv, a few strings
	 * and a buffer that grows, some of it freed. */
	void *live[256];
	size_t nlive = 0, bytes = 0;
	for (int i = 0; i < n && nlive < 256; i++) {
		size_t s = 8 + below(300);
		live[nlive] = g_uk_alloc_malloc(s);
		if (!live[nlive])
			fail("malloc(%zu) failed", s);
		memset(live[nlive++], 0x5a, s);
		bytes += s;
		if (below(4) == 0) {
			size_t k = below(nlive);
			g_uk_alloc_free(live[k]);
			live[k] = live[--nlive];
		}
	}
	char *buf = NULL;
	for (size_t s = 16; s <= 4096; s *= 2) {
		buf = g_uk_alloc_realloc(buf, s);
		if (!buf)
			fail("realloc to %zu failed", s);
		memset(buf, 0x33, s);
	}
	bytes += 4096;
	if (g_uk_alloc_check())
		fail("allocator check %d", g_uk_alloc_check());
	/* Every byte asked for in its own page, at worst twice (power-of-two
	 * blocks), plus the allocator's table: a handful of pages, not the
	 * heap/33 bytes of a table set up in advance. */
	size_t r = resident_pages(heap, heaplen), limit = 2 * (bytes + ps - 1) / ps + 4;
	if (r > limit)
		fail("%zu pages of the heap resident after %zu bytes allocated (limit %zu)", r, bytes, limit);
	/* calloc of fresh memory clears nothing: a MiB costs the host the
	 * block's header or table entry, not 256 pages of zeros. (A malloc of
	 * a MiB first, so that the calloc's block needs no alignment gap,
	 * whose free blocks get headers of their own.) */
	if (!g_uk_alloc_malloc(1 << 20))
		fail("malloc(1 MiB) failed");
	r = resident_pages(heap, heaplen);
	unsigned char *big = g_uk_alloc_calloc(1 << 20);
	if (!big)
		fail("calloc(1 MiB) failed");
	size_t rc = resident_pages(heap, heaplen);
	if (rc > r + 2)
		fail("calloc(1 MiB) of fresh heap made %zu more pages resident (limit 2)", rc - r);
	for (size_t j = 0; j < (1 << 20); j++)
		if (big[j]) {
			fail("calloc(1 MiB) byte %zu is %#x", j, big[j]);
			break;
		}
	printf("resident %zu pages after %zu bytes (limit %zu), %zu more after calloc(1 MiB)\n", r, bytes, limit, rc - r);
	munmap(heap, heaplen);
}

/* ---- ukrand ---- */

static void cmd_rand(uint64_t seed)
{
	g_uk_random_seed(seed);
	for (int i = 0; i < 8; i++)
		printf("%016" PRIx64 "\n", g_uk_random_u64());
	if (g_ukrand_chacha20_block) {
		/* RFC 8439, 2.3.2 */
		uint32_t key[8], nonce[3] = {0x09000000, 0x4a000000, 0}, out[16];
		for (int i = 0; i < 8; i++)
			key[i] = (uint32_t)(4 * i) | (uint32_t)(4 * i + 1) << 8 |
				 (uint32_t)(4 * i + 2) << 16 | (uint32_t)(4 * i + 3) << 24;
		g_ukrand_chacha20_block(key, 1, nonce, out);
		printf("chacha");
		for (int i = 0; i < 16; i++)
			printf(" %08x", out[i]);
		printf("\n");
	}
	/* uniformity of uk_random_below and the fill tail */
	int hist[10] = {0};
	for (int i = 0; i < 100000; i++)
		hist[g_uk_random_below(10)]++;
	for (int i = 0; i < 10; i++)
		if (hist[i] < 9000 || hist[i] > 11000)
			fail("uk_random_below(10): bucket %d has %d of 100000", i, hist[i]);
	unsigned char buf[37];
	memset(buf, 0, sizeof buf);
	g_uk_random_fill(buf, 35);
	if (buf[35] || buf[36])
		fail("uk_random_fill wrote past its length");
	/* libc's rand goes through ukrand and stays in [0, RAND_MAX] */
	g_srand(7);
	int r1 = g_rand();
	g_srand(7);
	if (g_rand() != r1)
		fail("srand(7) does not restart rand()");
	for (int i = 0; i < 1000; i++) {
		int r = g_rand();
		if (r < 0 || r > RAND_MAX)
			fail("rand() = %d", r);
	}
}

/* ---- boot: ukplat_entry -> ukboot -> main -> exit ---- */

static void boot_main_prints(void)
{
	g_printf("main: %d args, float %.3f, hex %#x\n", main_argc, 2.0 / 3, 255);
}

static char tls_template[64] = "TLSDATA";

static void cmd_boot(const char *cmdline, int tls_kind, const char *restore)
{
	static unsigned char heap[1 << 20] __attribute__((aligned(16)));
	struct uk_bootinfo bi = {
		.magic = UK_BOOTINFO_MAGIC,
		.version = UK_BOOTINFO_VERSION,
		.cmdline = (uintptr_t)cmdline,
		.cmdline_len = strlen(cmdline),
		.heap_start = (uintptr_t)heap,
		.heap_size = sizeof heap,
		.seed = 1234,
		.monitor = UK_MONITOR_PROCESS,
		.canary = 0x123400,
	};
	static unsigned char tls_area[3 * 4096] __attribute__((aligned(4096)));
	if (tls_kind) {
		/* 1: fits the static reserve. 2: too big, moves to the heap. */
		bi.tls_image = (uintptr_t)tls_template;
		bi.tls_filesz = 8;
		bi.tls_memsz = tls_kind == 1 ? 64 : 8192;
		bi.tls_align = tls_kind == 1 ? 16 : 128;
	}
	if (tls_kind == 3) {
		/* 3: as 2, in an area of the monitor's own. */
		bi.tls_area = (uintptr_t)tls_area;
		bi.tls_area_size = sizeof tls_area;
	}
	guest_main = boot_main_prints;
	/* What start.S does before calling ukplat_entry. */
	*(uint64_t *)g_ukplat_tcb0 = (uintptr_t)g_ukplat_tcb0;
	*(uint64_t *)(g_ukplat_tcb0 + 0x28) = bi.canary;
	bi.canary = 0;
	ready_bi = &bi;
	restore_cmdline = restore;
	scratch_ptr = scratch_buf + 100;
	if (!setjmp(exit_jmp))
		g_ukplat_entry(&bi);
	{
		unsigned char *tp = fs_base_written ? (unsigned char *)(uintptr_t)fs_base_written : g_ukplat_tcb0;
		printf("ready %d canary %#lx bootinfo-canary %#lx static-tcb-canary %#lx\n", ready_seen,
		       (unsigned long)*(uint64_t *)(tp + 0x28), (unsigned long)bi.canary,
		       tp == g_ukplat_tcb0 ? 0 : (unsigned long)*(uint64_t *)(g_ukplat_tcb0 + 0x28));
	}
	printf("exit %d\n", exit_code);
	printf("ctors %d:%d,%d argc-seen-by-ctor %d\n", ctor_n, ctor_log[0], ctor_log[1], ctor_argc);
	printf("init-phase %d ready-before %d ctors-before %d\n", init_calls, init_ready_seen, init_ctor_n);
	printf("scratch pages given back %" PRIu64 "\n", scratch_discarded / 4096);
	printf("argc %d\n", main_argc);
	for (int i = 0; i < main_argc && i < 8; i++)
		printf("argv[%d] <%s>\n", i, main_argv[i]);
	if (tls_kind) {
		unsigned char *tp = fs_base_written ? (unsigned char *)(uintptr_t)fs_base_written
						    : g_ukplat_tcb0;
		uint64_t size = (bi.tls_memsz + bi.tls_align - 1) & ~(bi.tls_align - 1);
		unsigned char *block = tp - size;
		if ((uintptr_t)tp % bi.tls_align)
			fail("thread pointer %p not aligned to %lu", (void *)tp, (unsigned long)bi.tls_align);
		if (memcmp(block, tls_template, 8))
			fail("TLS image not copied below the thread pointer");
		for (uint64_t i = 8; i < size; i++)
			if (block[i])
				fail("TLS bss byte %lu not zero", (unsigned long)i);
		if (*(uint64_t *)tp != (uintptr_t)tp)
			fail("%%fs:0 does not point to itself");
		if (tls_kind == 2 && (tp < heap || tp >= heap + sizeof heap))
			fail("large TLS block not carved from the heap");
		if (tls_kind == 3 && (tp < tls_area || tp >= tls_area + sizeof tls_area))
			fail("TLS block not in the monitor's TLS area");
		printf("tls-moved %d\n", fs_base_written != 0);
	}
	printf("console <<%.*s>>\n", (int)console_len, console);
}

static void cmd_badboot(void)
{
	struct uk_bootinfo bi = {.magic = 1};
	if (!setjmp(exit_jmp))
		g_ukplat_entry(&bi);
	printf("exit %d\nconsole <<%.*s>>\n", exit_code, (int)console_len, console);
}

static void cmd_split(void)
{
	static const char *const lines[] = {
		"", "   ", "a", " a  b\tc ", "\"quoted arg\" plain", "'single \"kept\"' x",
		"a\\ b", "\"esc \\\" and \\\\ and \\n\"", "joined\"together\"'again'", "\"\"",
		"\"unterminated", "{\"json\": [1, 2]}", "'{\"json\": [1, 2]}'",
	};
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
		char buf[128], *argv[16];
		strcpy(buf, lines[i]);
		int n = g_ukboot_split_args(buf, argv, 16);
		printf("%zu:%d", i, n);
		for (int k = 0; k < n && k < 16; k++)
			printf(" <%s>", argv[k]);
		printf("\n");
	}
}

/* One input from a Go fuzz test: the number parsers against glibc. */
static void cmd_parse1(const char *s)
{
	check_strtod(s);
	static const int bases[] = {0, 2, 8, 10, 16, 36};
	for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++)
		check_strtol(s, bases[b]);
	int gi = -1, hi = -1, gn = -1, hn = -1;
	double gd = -1, hd = -1;
	char gs[256] = "", hs[256] = "";
	if (strlen(s) < 200) {
		int rg = g_sscanf(s, "%d %lf %255s%n", &gi, &gd, gs, &gn);
		int rh = sscanf(s, "%d %lf %255s%n", &hi, &hd, hs, &hn);
		if (rg != rh || gi != hi || (gd != hd && !(isnan(gd) && isnan(hd))) || strcmp(gs, hs) ||
		    (rg == 3 && gn != hn))
			fail("sscanf(\"%s\", \"%%d %%lf %%s%%n\"): guest %d %d %g %s %d, glibc %d %d %g %s %d",
			     s, rg, gi, gd, gs, gn, rh, hi, hd, hs, hn);
	}
}

/* One command line from a Go fuzz test: the arguments, hex-encoded. */
static void cmd_split1(const char *line)
{
	char *buf = strdup(line);
	int n = g_ukboot_split_args(buf, NULL, 0);
	strcpy(buf, line);
	char **argv = calloc((size_t)n + 1, sizeof *argv);
	if (g_ukboot_split_args(buf, argv, n) != n)
		fail("the counting and the storing pass disagree");
	printf("%d\n", n);
	for (int i = 0; i < n; i++) {
		for (const unsigned char *p = (const unsigned char *)argv[i]; *p; p++)
			printf("%02x", *p);
		printf("\n");
	}
	free(argv);
	free(buf);
}

/* Free-page reporting as ukboot does it: each reported range's whole pages
 * are given back (here: madvise on the driver's own anonymous heap). */
static void give_back_pages(void *addr, size_t len, void *arg)
{
	(void)arg;
	uintptr_t a = (uintptr_t)addr, ps = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = (a + ps - 1) & ~(ps - 1), hi = (a + len) & ~(ps - 1);
	if (hi > lo && madvise((void *)lo, hi - lo, MADV_DONTNEED))
		fail("madvise: %s", strerror(errno));
}

/* giveback: what free-page reporting leaves resident. A 64 KiB buffer is
 * written and freed while a block above it keeps the heap's top up:
 * "freed-buffer-resident" counts its pages left after the report. Then
 * 1 MiB of small blocks is written and everything is freed:
 * "all-freed-resident" counts the heap's pages left after the report. */
static void cmd_giveback(void)
{
	size_t heaplen = 8 << 20;
	unsigned char *heap = mmap(NULL, heaplen, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (heap == MAP_FAILED)
		fail("mmap: %s", strerror(errno));
	g_uk_alloc_init_zeroed(heap, heaplen);
	void *low = g_uk_alloc_malloc(100);
	unsigned char *buf = g_uk_alloc_malloc(64 << 10);
	void *high = g_uk_alloc_malloc(100);
	if (!low || !buf || !high)
		fail("malloc failed");
	memset(buf, 0x5a, 64 << 10);
	g_uk_alloc_free(buf);
	g_uk_alloc_walk_free(give_back_pages, NULL);
	if (g_uk_alloc_check())
		fail("allocator check %d after giving back", g_uk_alloc_check());
	{
		uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE);
		uintptr_t lo = ((uintptr_t)buf + ps - 1) & ~(ps - 1), hi = ((uintptr_t)buf + (64 << 10)) & ~(ps - 1);
		printf("freed-buffer-resident %zu\n", resident_pages((unsigned char *)lo, hi - lo));
	}
	static void *small[1 << 14];
	size_t n = 0;
	for (size_t bytes = 0; bytes < (1 << 20) && n < sizeof small / sizeof *small; n++) {
		size_t s = 16 + below(200);
		if (!(small[n] = g_uk_alloc_malloc(s)))
			fail("malloc(%zu) failed", s);
		memset(small[n], 0x33, s);
		bytes += s;
	}
	while (n)
		g_uk_alloc_free(small[--n]);
	g_uk_alloc_free(high);
	g_uk_alloc_free(low);
	g_uk_alloc_walk_free(give_back_pages, NULL);
	if (g_uk_alloc_check())
		fail("allocator check %d after giving back", g_uk_alloc_check());
	/* The heap is usable again, the given-back table too. */
	for (int i = 0; i < 1000; i++)
		if (!(small[i] = g_uk_alloc_malloc(16 + below(200))))
			fail("malloc after giving back failed");
	if (g_uk_alloc_check())
		fail("allocator check %d after reuse", g_uk_alloc_check());
	for (int i = 0; i < 1000; i++)
		g_uk_alloc_free(small[i]);
	g_uk_alloc_walk_free(give_back_pages, NULL);
	printf("all-freed-resident %zu\n", resident_pages(heap, heaplen));
	/* The page of the first block: the allocator's own page is that one
	 * (its state shares it with the first blocks). */
	printf("first-block-page %zu\n", (size_t)(((uintptr_t)low - (uintptr_t)heap) / 4096));
	{ /* which, to tell what stayed */
		unsigned char vec[2048];
		if (!mincore(heap, heaplen, vec))
			for (size_t i = 0; i < heaplen / 4096; i++)
				if (vec[i] & 1)
					printf("resident page %zu\n", i);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: driver COMMAND [SEED [N]]\n");
		return 2;
	}
	const char *cmd = argv[1];
	rng = argc > 2 ? strtoull(argv[2], NULL, 0) : 1;
	int n = argc > 3 ? atoi(argv[3]) : 1000;
	/* Heap for the guest libc's own malloc (strdup, ...). */
	if (strcmp(cmd, "alloc") && strcmp(cmd, "touch") && strcmp(cmd, "giveback") && strcmp(cmd, "boot") && strcmp(cmd, "badboot")) {
		static unsigned char heap[8 << 20];
		g_uk_alloc_init(heap, sizeof heap);
	}
	if (!strcmp(cmd, "printf"))
		cmd_printf(n);
	else if (!strcmp(cmd, "strtod"))
		cmd_strtod(n);
	else if (!strcmp(cmd, "strtol"))
		cmd_strtol(n);
	else if (!strcmp(cmd, "sscanf"))
		cmd_sscanf();
	else if (!strcmp(cmd, "string"))
		cmd_string(n);
	else if (!strcmp(cmd, "qsort"))
		cmd_qsort(n);
	else if (!strcmp(cmd, "setjmp"))
		cmd_setjmp();
	else if (!strcmp(cmd, "alloc"))
		cmd_alloc(n, argc > 4 ? strtoull(argv[4], NULL, 0) : 8 << 20, argc > 5 && !strcmp(argv[5], "zeroed"));
	else if (!strcmp(cmd, "touch"))
		cmd_touch(n);
	else if (!strcmp(cmd, "giveback"))
		cmd_giveback();
	else if (!strcmp(cmd, "rand"))
		cmd_rand(rng);
	else if (!strcmp(cmd, "boot"))
		cmd_boot(argc > 3 ? argv[3] : "", argc > 4 ? atoi(argv[4]) : 0, argc > 5 ? argv[5] : NULL);
	else if (!strcmp(cmd, "boot-init-draws")) {
		init_draws = 1;
		cmd_boot("a", 0, NULL);
	} else if (!strcmp(cmd, "badboot"))
		cmd_badboot();
	else if (!strcmp(cmd, "split"))
		cmd_split();
	else if (!strcmp(cmd, "parse1") && argc > 2)
		cmd_parse1(argv[2]);
	else if (!strcmp(cmd, "split1") && argc > 2)
		cmd_split1(argv[2]);
	else {
		fprintf(stderr, "unknown command %s\n", cmd);
		return 2;
	}
	return failures ? 1 : 0;
}
