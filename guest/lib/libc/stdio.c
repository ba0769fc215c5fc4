/* Streams. stdout and stderr go to the console; stdout is line buffered
 * (LIBC_STDOUT_UNBUFFERED: no buffering code at all, every write goes
 * straight to the console, and setvbuf cannot change that), stderr is
 * unbuffered. stdin is always at end of file. Memory streams (fmemopen,
 * and the ones sscanf builds) read or write a buffer. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uk/boot.h>
#include <uk/plat.h>
#include "libc_impl.h"

#ifndef LIBC_STDOUT_UNBUFFERED
#define STDOUT_BUFSIZE 1024
static unsigned char stdout_buf[STDOUT_BUFSIZE];
#endif

static struct _uk_file file_stdin = {.kind = UKF_EOF, .fd = 0, .flags = UKF_READ, .unget = EOF};
static struct _uk_file file_stdout = {
	.kind = UKF_CONSOLE,
	.fd = 1,
	.flags = UKF_WRITE,
#ifdef LIBC_STDOUT_UNBUFFERED
	.bufmode = _IONBF,
#else
	.bufmode = _IOLBF,
	.buf = stdout_buf,
	.bufsize = sizeof stdout_buf,
#endif
	.unget = EOF,
};
static struct _uk_file file_stderr = {
	.kind = UKF_CONSOLE, .fd = 2, .flags = UKF_WRITE, .bufmode = _IONBF, .unget = EOF};

#ifndef LIBC_STDOUT_UNBUFFERED
/* stdout (its FILE and its buffer) is the static one until the init phase
 * (before the ready point) moves both to one heap block: every instance
 * writes them (the buffer, and the FILE's position, which a flush sets back
 * to 0), and in the data arena their pages would be more snapshot pages
 * each instance copies, while the heap page they land on is written anyway
 * (the command line's copy goes next to them). Code reaches stdout only
 * through the `stdout` pointer, as glibc's does. */
static void stdout_buffer_to_heap(void)
{
	if (stdout == &file_stdout && file_stdout.buf == stdout_buf && !file_stdout.pos) {
		struct _uk_file *f = malloc(sizeof *f + STDOUT_BUFSIZE);
		if (f) {
			*f = file_stdout;
			f->buf = (unsigned char *)(f + 1);
			stdout = f;
		}
	}
}
UK_INIT_PHASE(stdout_buffer_to_heap);
#endif

/* glibc declares these as FILE * variables; objects built against glibc
 * load the pointer, so they must be variables here too. */
FILE *stdin = &file_stdin;
FILE *stdout = &file_stdout;
FILE *stderr = &file_stderr;

void uk_console_write(const char *s, size_t n)
{
	ukplat_console_write(s, n);
}

static int console_flush(FILE *f)
{
#ifndef LIBC_STDOUT_UNBUFFERED
	if (f->pos) {
		uk_console_write((const char *)f->buf, f->pos);
		f->pos = 0;
	}
#else
	(void)f;
#endif
	return 0;
}

/* Writes n bytes to f; returns how many were taken. */
static size_t stream_write(FILE *f, const char *s, size_t n)
{
	if (!(f->flags & UKF_WRITE)) {
		f->flags |= UKF_ERR;
		errno = EBADF;
		return 0;
	}
	if (f->kind == UKF_MEM) {
		size_t room = f->bufsize > f->pos ? f->bufsize - f->pos : 0;
		size_t k = n < room ? n : room;
		memcpy(f->buf + f->pos, s, k);
		f->pos += k;
		if (f->pos > f->len)
			f->len = f->pos;
		if (f->len < f->bufsize)
			f->buf[f->len] = 0;
		if (k < n) {
			f->flags |= UKF_ERR;
			errno = ENOSPC;
		}
		return k;
	}
	if (f->kind != UKF_CONSOLE) {
		f->flags |= UKF_ERR;
		errno = EBADF;
		return 0;
	}
#ifdef LIBC_STDOUT_UNBUFFERED
	uk_console_write(s, n);
	return n;
#else
	if (f->bufmode == _IONBF || !f->buf || !f->bufsize) {
		uk_console_write(s, n);
		return n;
	}
	size_t done = 0;
	while (done < n) {
		size_t room = f->bufsize - f->pos;
		size_t k = n - done < room ? n - done : room;
		memcpy(f->buf + f->pos, s + done, k);
		f->pos += k;
		done += k;
		if (f->pos == f->bufsize)
			console_flush(f);
	}
	if (f->bufmode == _IOLBF && memchr(s, '\n', n))
		console_flush(f);
	return n;
#endif
}

int fflush(FILE *f)
{
	if (!f) {
		console_flush(stdout);
		console_flush(stderr);
		return 0;
	}
	if (f->kind == UKF_CONSOLE)
		return console_flush(f);
	return 0;
}

size_t fwrite(const void *p, size_t size, size_t n, FILE *f)
{
	if (!size || !n)
		return 0;
	size_t total = size * n;
	if (total / size != n) {
		f->flags |= UKF_ERR;
		errno = EOVERFLOW;
		return 0;
	}
	return stream_write(f, p, total) / size;
}

int fputc(int c, FILE *f)
{
	char ch = (char)c;
	return stream_write(f, &ch, 1) == 1 ? (unsigned char)c : EOF;
}

int putc(int c, FILE *f)
{
	return fputc(c, f);
}

int putchar(int c)
{
	return fputc(c, stdout);
}

int fputs(const char *s, FILE *f)
{
	size_t n = strlen(s);
	return stream_write(f, s, n) == n ? 0 : EOF;
}

int puts(const char *s)
{
	if (fputs(s, stdout) == EOF)
		return EOF;
	return fputc('\n', stdout) == EOF ? EOF : 0;
}

void perror(const char *s)
{
	const char *m = strerror(errno);
	if (s && *s) {
		fputs(s, stderr);
		fputs(": ", stderr);
	}
	fputs(m, stderr);
	fputc('\n', stderr);
}

int uk_file_getc(FILE *f)
{
	if (f->unget != EOF) {
		int c = f->unget;
		f->unget = EOF;
		return c;
	}
	if (f->kind == UKF_MEM && (f->flags & UKF_READ) && f->pos < f->len)
		return f->buf[f->pos++];
	f->flags |= UKF_EOFSEEN;
	return EOF;
}

int fgetc(FILE *f)
{
	return uk_file_getc(f);
}

int getc(FILE *f)
{
	return uk_file_getc(f);
}

int getchar(void)
{
	return uk_file_getc(stdin);
}

int ungetc(int c, FILE *f)
{
	if (c == EOF || f->unget != EOF)
		return EOF;
	f->unget = (unsigned char)c;
	f->flags &= ~UKF_EOFSEEN;
	return (unsigned char)c;
}

char *fgets(char *s, int n, FILE *f)
{
	int i = 0;
	if (n <= 0)
		return NULL;
	while (i < n - 1) {
		int c = uk_file_getc(f);
		if (c == EOF)
			break;
		s[i++] = (char)c;
		if (c == '\n')
			break;
	}
	if (i == 0)
		return NULL;
	s[i] = 0;
	return s;
}

size_t fread(void *p, size_t size, size_t n, FILE *f)
{
	if (!size || !n)
		return 0;
	unsigned char *d = p;
	size_t total = size * n, got = 0;
	if (total / size != n)
		return 0;
	while (got < total) {
		int c = uk_file_getc(f);
		if (c == EOF)
			break;
		d[got++] = (unsigned char)c;
	}
	return got / size;
}

static FILE *file_new(int kind, int fd, int flags)
{
	FILE *f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	f->kind = kind;
	f->fd = fd;
	f->flags = flags | UKF_ALLOCED;
	f->bufmode = _IONBF;
	f->unget = EOF;
	return f;
}

FILE *fopen(const char *path, const char *mode)
{
	(void)path;
	(void)mode;
	errno = ENOENT;
	return NULL;
}

FILE *fopen64(const char *path, const char *mode)
{
	return fopen(path, mode);
}

FILE *fdopen(int fd, const char *mode)
{
	if (fd == 0 && mode[0] == 'r')
		return file_new(UKF_EOF, 0, UKF_READ);
	if ((fd == 1 || fd == 2) && (mode[0] == 'w' || mode[0] == 'a'))
		return file_new(UKF_CONSOLE, fd, UKF_WRITE);
	errno = EBADF;
	return NULL;
}

FILE *fmemopen(void *buf, size_t size, const char *mode)
{
	if (!buf || !size) {
		errno = EINVAL;
		return NULL;
	}
	int rd = mode[0] == 'r' || strchr(mode, '+');
	int wr = mode[0] != 'r' || strchr(mode, '+');
	FILE *f = file_new(UKF_MEM, -1, (rd ? UKF_READ : 0) | (wr ? UKF_WRITE : 0));
	if (!f)
		return NULL;
	f->buf = buf;
	f->bufsize = size;
	if (mode[0] == 'r') {
		f->len = size;
	} else if (mode[0] == 'a') {
		f->len = strnlen(buf, size);
		f->pos = f->len;
	} else {
		f->buf[0] = 0;
	}
	return f;
}

int fclose(FILE *f)
{
	fflush(f);
	if (f->flags & UKF_ALLOCED)
		free(f);
	return 0;
}

int feof(FILE *f)
{
	return (f->flags & UKF_EOFSEEN) != 0;
}

int ferror(FILE *f)
{
	return (f->flags & UKF_ERR) != 0;
}

void clearerr(FILE *f)
{
	f->flags &= ~(UKF_ERR | UKF_EOFSEEN);
}

int fileno(FILE *f)
{
	if (f->fd < 0)
		errno = EBADF;
	return f->fd;
}

int fseek(FILE *f, long off, int whence)
{
	if (f->kind != UKF_MEM) {
		errno = ESPIPE;
		return -1;
	}
	long base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? (long)f->pos : (long)f->len;
	if (base + off < 0 || (size_t)(base + off) > f->bufsize) {
		errno = EINVAL;
		return -1;
	}
	f->pos = (size_t)(base + off);
	f->unget = EOF;
	f->flags &= ~UKF_EOFSEEN;
	return 0;
}

long ftell(FILE *f)
{
	if (f->kind != UKF_MEM) {
		errno = ESPIPE;
		return -1;
	}
	return (long)f->pos - (f->unget != EOF);
}

void rewind(FILE *f)
{
	fseek(f, 0, SEEK_SET);
	clearerr(f);
}

int setvbuf(FILE *f, char *buf, int mode, size_t size)
{
	(void)buf;
	(void)size;
	if (mode != _IONBF && mode != _IOLBF && mode != _IOFBF)
		return -1;
	if (f->kind == UKF_CONSOLE) {
		console_flush(f);
		f->bufmode = f->buf ? mode : _IONBF;
	}
	return 0;
}

void setbuf(FILE *f, char *buf)
{
	setvbuf(f, buf, buf ? _IOFBF : _IONBF, BUFSIZ);
}

int remove(const char *path)
{
	(void)path;
	errno = ENOENT;
	return -1;
}

int rename(const char *oldpath, const char *newpath)
{
	(void)oldpath;
	(void)newpath;
	errno = ENOENT;
	return -1;
}

/* printf family */

static void out_file(void *ctx, const char *s, size_t n)
{
	stream_write(ctx, s, n);
}

int vfprintf(FILE *f, const char *fmt, va_list ap)
{
	int r = uk_vformat(out_file, f, fmt, ap);
	return ferror(f) ? -1 : r;
}

int fprintf(FILE *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vfprintf(f, fmt, ap);
	va_end(ap);
	return r;
}

int vprintf(const char *fmt, va_list ap)
{
	return vfprintf(stdout, fmt, ap);
}

int printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vfprintf(stdout, fmt, ap);
	va_end(ap);
	return r;
}

static void out_console(void *ctx, const char *s, size_t n)
{
	(void)ctx;
	uk_console_write(s, n);
}

int vdprintf(int fd, const char *fmt, va_list ap)
{
	if (fd != 1 && fd != 2) {
		errno = EBADF;
		return -1;
	}
	if (fd == 1)
		fflush(stdout);
	return uk_vformat(out_console, NULL, fmt, ap);
}

int dprintf(int fd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vdprintf(fd, fmt, ap);
	va_end(ap);
	return r;
}

struct strbuf {
	char *s;
	size_t cap; /* bytes available including the NUL */
	size_t len;
};

static void out_str(void *ctx, const char *s, size_t n)
{
	struct strbuf *b = ctx;
	if (b->len + 1 < b->cap) {
		size_t room = b->cap - 1 - b->len;
		memcpy(b->s + b->len, s, n < room ? n : room);
	}
	b->len += n;
}

int vsnprintf(char *s, size_t n, const char *fmt, va_list ap)
{
	struct strbuf b = {s, n, 0};
	int r = uk_vformat(out_str, &b, fmt, ap);
	if (n)
		s[b.len < n ? b.len : n - 1] = 0;
	return r;
}

int snprintf(char *s, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vsnprintf(s, n, fmt, ap);
	va_end(ap);
	return r;
}

int vsprintf(char *s, const char *fmt, va_list ap)
{
	return vsnprintf(s, SIZE_MAX / 2, fmt, ap);
}

int sprintf(char *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vsprintf(s, fmt, ap);
	va_end(ap);
	return r;
}

int vasprintf(char **s, const char *fmt, va_list ap)
{
	va_list aq;
	va_copy(aq, ap);
	int n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	*s = NULL;
	if (n < 0)
		return -1;
	char *p = malloc((size_t)n + 1);
	if (!p)
		return -1;
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	*s = p;
	return n;
}

int asprintf(char **s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vasprintf(s, fmt, ap);
	va_end(ap);
	return r;
}
