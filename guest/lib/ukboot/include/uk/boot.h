/* ukboot: from the platform's entry to main() and back out. */
#ifndef UK_BOOT_H
#define UK_BOOT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* argv[0] of every unikernel (the command line holds only the arguments). */
#define UKBOOT_ARGV0 "unikernel"

/* Exit code of abort() (and so of failed asserts and stack-protector
 * failures): 128 + SIGABRT, what a shell reports for an aborted process. */
#define UKBOOT_EXIT_ABORT 134

/* Splits a command line in place into arguments, shell-like: blanks
 * separate arguments; '...' quotes literally; "..." quotes with \" and \\
 * escapes; a backslash outside quotes escapes the next byte; adjacent
 * pieces join. Stores at most max pointers into argv (if not NULL) and
 * returns the number of arguments found. */
int ukboot_split_args(char *line, char **argv, int max);

/* The init phase (guest ABI): UK_INIT_PHASE(fn) registers void fn(void) to
 * run once, after the heap is set up and before the ready point — before the
 * command line is read, before constructors and main. It is where an app
 * builds what does not depend on its request (compressor contexts, tables):
 * `unipool snapshot` stops after it, so what it allocates and writes is part
 * of the snapshot, shared by every instance started from it, and memory it
 * clears stays untouched in them (zero pages are not stored). It must not
 * read what belongs to an instance: the command line, the clock, random
 * numbers (ukrand stops the guest if asked before the ready point). On a cold
 * boot it runs at the same place, so output is the same either way. Several
 * functions run in link order. The app should also make fn idempotent and
 * call it from main, so that builds without ukboot (the native tests) work. */
typedef void (*ukboot_init_fn)(void);
#define UK_INIT_PHASE(fn)                                                                     \
	__attribute__((used, retain, section("uk_init_phase"), aligned(sizeof(void *))))       \
	static ukboot_init_fn ukboot_init_phase_##fn = fn

/* Scratch memory (guest ABI): UK_SCRATCH(var, size), at file scope, names
 * a pointer variable `var` (static or global) to `size` bytes the app keeps
 * from one request to the next only to reuse the memory (a compressor's
 * state, a work buffer), never for what it holds: each request writes the
 * memory before it reads it. When the request is done (exit), ukboot gives
 * the whole pages inside [var, var + size) back to the host with the free
 * heap (free-page reporting, heap and stack only); they then read as zero,
 * or as the snapshot had them, until written again. Nothing of one request
 * stays in them for the next. A NULL var is skipped. Natively (builds
 * without ukboot) the entry is an unused section. */
struct ukboot_scratch {
	void *const *ptr;
	size_t size;
};
#define UK_SCRATCH(var, sz)                                                                   \
	__attribute__((used, retain, section("uk_scratch"), aligned(sizeof(void *))))          \
	static const struct ukboot_scratch ukboot_scratch_##var = { (void *const *)&(var), (sz) }

#ifdef __cplusplus
}
#endif
#endif
