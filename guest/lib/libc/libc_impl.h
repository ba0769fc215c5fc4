/* libc internals shared between its source files (not installed). */
#ifndef LIBC_IMPL_H
#define LIBC_IMPL_H
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* Where formatted output goes: called with each piece, in order. */
typedef void (*uk_out_fn)(void *ctx, const char *s, size_t n);

/* The printf engine: returns the number of bytes produced (as printf). */
int uk_vformat(uk_out_fn out, void *ctx, const char *fmt, va_list ap);

/* Stream kinds. */
enum { UKF_CONSOLE, UKF_MEM, UKF_EOF };

/* Stream state flags. */
enum { UKF_ERR = 1, UKF_EOFSEEN = 2, UKF_READ = 4, UKF_WRITE = 8, UKF_ALLOCED = 16 };

struct _uk_file {
	int kind;
	int fd;
	int flags;
	int bufmode;           /* _IONBF, _IOLBF, _IOFBF */
	unsigned char *buf;    /* write buffer (console) or the memory (mem) */
	size_t bufsize;
	size_t pos;            /* bytes buffered (console) or position (mem) */
	size_t len;            /* mem: bytes of content */
	int unget;             /* pushed-back byte, or EOF */
};

/* Reads one byte for the scanf engine: EOF at the end. */
int uk_file_getc(FILE *f);

/* The scanf engine over a stream. */
int uk_vscan(FILE *f, const char *fmt, va_list ap);

/* Writes to the console (file descriptors 1 and 2). */
void uk_console_write(const char *s, size_t n);

#endif
