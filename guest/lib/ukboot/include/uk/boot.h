/* ukboot: from the platform's entry to main() and back out. */
#ifndef UK_BOOT_H
#define UK_BOOT_H

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

#ifdef __cplusplus
}
#endif
#endif
