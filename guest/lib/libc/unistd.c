/* File descriptors: 1 and 2 are the console, 0 is an empty input, and
 * there is no filesystem. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include "libc_impl.h"

ssize_t write(int fd, const void *buf, size_t n)
{
	if (fd != 1 && fd != 2) {
		errno = EBADF;
		return -1;
	}
	/* Keep the order of bytes already buffered in stdout. */
	fflush(stdout);
	uk_console_write(buf, n);
	return (ssize_t)n;
}

ssize_t read(int fd, void *buf, size_t n)
{
	(void)buf;
	(void)n;
	if (fd != 0) {
		errno = EBADF;
		return -1;
	}
	return 0;
}

int close(int fd)
{
	if (fd < 0 || fd > 2) {
		errno = EBADF;
		return -1;
	}
	return 0;
}

off_t lseek(int fd, off_t off, int whence)
{
	(void)off;
	(void)whence;
	errno = fd >= 0 && fd <= 2 ? ESPIPE : EBADF;
	return -1;
}

off64_t lseek64(int fd, off64_t off, int whence)
{
	return lseek(fd, off, whence);
}

int open(const char *path, int flags, ...)
{
	(void)path;
	(void)flags;
	errno = ENOENT;
	return -1;
}

int open64(const char *path, int flags, ...)
{
	(void)path;
	(void)flags;
	errno = ENOENT;
	return -1;
}

int isatty(int fd)
{
	if (fd >= 0 && fd <= 2)
		return 1;
	errno = EBADF;
	return 0;
}

pid_t getpid(void)
{
	return 1;
}

int getpagesize(void)
{
	return 4096;
}

long sysconf(int name)
{
	switch (name) {
	case _SC_PAGESIZE:
		return 4096;
	case _SC_NPROCESSORS_ONLN:
		return 1;
	}
	errno = EINVAL;
	return -1;
}
