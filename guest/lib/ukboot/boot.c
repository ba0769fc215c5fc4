/* ukboot: heap, constructors, arguments, main, exit. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uk/alloc.h>
#include <uk/boot.h>
#include <uk/plat.h>

/* Provided by the linker script (ld's default one, and unipool's); weak so
 * that an image without constructors links too. */
extern void (*__preinit_array_start[])(int, char **) __attribute__((weak));
extern void (*__preinit_array_end[])(int, char **) __attribute__((weak));
extern void (*__init_array_start[])(int, char **) __attribute__((weak));
extern void (*__init_array_end[])(int, char **) __attribute__((weak));
extern void (*__fini_array_start[])(void) __attribute__((weak));
extern void (*__fini_array_end[])(void) __attribute__((weak));

int main(int argc, char **argv);

/* The init phase's functions (UK_INIT_PHASE): a collection section, so ld
 * defines its bounds; weak, for images without one. */
extern ukboot_init_fn __start_uk_init_phase[] __attribute__((weak));
extern ukboot_init_fn __stop_uk_init_phase[] __attribute__((weak));
/* The scratch ranges (UK_SCRATCH): a collection section too. */
extern const struct ukboot_scratch __start_uk_scratch[] __attribute__((weak));
extern const struct ukboot_scratch __stop_uk_scratch[] __attribute__((weak));

#define ATEXIT_MAX 32
static void (*atexit_fns[ATEXIT_MAX])(void);
static int atexit_n;

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int ukboot_split_args(char *line, char **argv, int max)
{
	char *in = line, *out = line;
	int argc = 0;
	for (;;) {
		while (is_blank(*in))
			in++;
		if (!*in)
			break;
		char *start = out;
		while (*in && !is_blank(*in)) {
			char c = *in++;
			if (c == '\'') {
				while (*in && *in != '\'')
					*out++ = *in++;
				if (*in)
					in++;
			} else if (c == '"') {
				while (*in && *in != '"') {
					if (*in == '\\' && (in[1] == '"' || in[1] == '\\'))
						in++;
					*out++ = *in++;
				}
				if (*in)
					in++;
			} else if (c == '\\' && *in) {
				*out++ = *in++;
			} else {
				*out++ = c;
			}
		}
		/* The terminator may overwrite the blank that ended this
		 * argument: out never passes in. */
		int at_end = !*in;
		if (!at_end)
			in++;
		*out++ = 0;
		if (argv && argc < max)
			argv[argc] = start;
		argc++;
		if (at_end)
			break;
	}
	return argc;
}

static void run_constructors(int argc, char **argv)
{
	if (__preinit_array_start)
		for (void (**f)(int, char **) = __preinit_array_start; f < __preinit_array_end; f++)
			(*f)(argc, argv);
	if (__init_array_start)
		for (void (**f)(int, char **) = __init_array_start; f < __init_array_end; f++)
			(*f)(argc, argv);
}

static void run_destructors(void)
{
	while (atexit_n > 0)
		atexit_fns[--atexit_n]();
	if (__fini_array_start)
		for (void (**f)(void) = __fini_array_end; f > __fini_array_start;)
			(*--f)();
}

int atexit(void (*fn)(void))
{
	if (atexit_n == ATEXIT_MAX)
		return -1;
	atexit_fns[atexit_n++] = fn;
	return 0;
}

static void give_back(void *addr, size_t len, void *arg)
{
	(void)arg;
	ukplat_discard(addr, len);
}

/* The request is done: what the heap has free, the apps' scratch memory
 * (UK_SCRATCH: kept for reuse, written before it is read) and the stack
 * below this frame are garbage, and a monitor may give their pages back to
 * the host (free-page reporting) while the instance stays resident. All but
 * the page below this frame, which the rest of the exit path uses. */
static void report_free_pages(void)
{
	uk_alloc_walk_free(give_back, NULL);
	if (__start_uk_scratch)
		for (const struct ukboot_scratch *s = __start_uk_scratch; s < __stop_uk_scratch; s++)
			if (*s->ptr)
				ukplat_discard(*s->ptr, s->size);
	const struct uk_bootinfo *bi = ukplat_bootinfo();
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	if (bi && sp > bi->stack_start && sp <= bi->stack_start + bi->stack_size) {
		uintptr_t below = (sp & ~(uintptr_t)0xfff) - 0x1000;
		if (below > bi->stack_start)
			ukplat_discard((void *)(uintptr_t)bi->stack_start, below - bi->stack_start);
	}
}

void exit(int code)
{
	run_destructors();
	fflush(NULL);
	report_free_pages();
	ukplat_exit(code);
}

void _Exit(int code)
{
	ukplat_exit(code);
}

void _exit(int code)
{
	ukplat_exit(code);
}

void abort(void)
{
	ukplat_exit(UKBOOT_EXIT_ABORT);
}

/* The init phase: what apps build before their request (<uk/boot.h>). Runs
 * before the ready point, so its frames are gone when the canary changes. */
__attribute__((noinline)) static void run_init_phase(void)
{
	if (__start_uk_init_phase)
		for (ukboot_init_fn *f = __start_uk_init_phase; f < __stop_uk_init_phase; f++)
			(*f)();
}

/* Everything of this instance's own: its command line, then constructors
 * (they get argc/argv, and may read the seed or start the clock), then main.
 * Runs after the ready point, so under a restored snapshot it reads the
 * restored instance's boot info. */
__attribute__((noinline, noreturn)) static void run_request(void)
{
	/* Arguments are split in a heap copy: the boot-info command line
	 * stays as the monitor wrote it (ukplat_cmdline). */
	const char *cmdline = ukplat_cmdline();
	size_t len = strlen(cmdline);
	char *line = malloc(len + 1);
	int argc = 1;
	char **argv = NULL;
	if (line) {
		memcpy(line, cmdline, len + 1);
		int n = ukboot_split_args(line, NULL, 0);
		/* Counting rewrote the line in place: split a fresh copy. */
		memcpy(line, cmdline, len + 1);
		argv = malloc(((size_t)n + 2) * sizeof *argv);
		if (argv)
			argc = 1 + ukboot_split_args(line, argv + 1, n);
	}
	static char *fallback[2];
	if (!argv)
		argv = fallback;
	argv[0] = (char *)UKBOOT_ARGV0;
	argv[argc] = NULL;

	run_constructors(argc, argv);
	exit(main(argc, argv));
}

/* No stack protector: ukplat_ready may change the canary under this frame. */
__attribute__((no_stack_protector)) void ukboot_entry(void)
{
	uintptr_t heap;
	size_t heap_len;
	ukplat_heap(&heap, &heap_len);
	/* The monitors give fresh (zero) memory: guest ABI. */
	uk_alloc_init_zeroed((void *)heap, heap_len);
	run_init_phase();
	/* Boot is done: what follows depends on the instance (guest ABI,
	 * the ready point). */
	ukplat_ready();
	run_request();
}
