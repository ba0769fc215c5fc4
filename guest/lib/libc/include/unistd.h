#ifndef _UNISTD_H
#define _UNISTD_H
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define STDIN_FILENO 0
#define STDOUT_FILENO 1
#define STDERR_FILENO 2

/* File descriptors 1 and 2 write to the console; 0 reads end of file.
 * There is no filesystem: other descriptors fail with EBADF. */
ssize_t write(int fd, const void *buf, size_t n);
ssize_t read(int fd, void *buf, size_t n);
int close(int fd);
off_t lseek(int fd, off_t off, int whence);
off64_t lseek64(int fd, off64_t off, int whence);
int isatty(int fd);
unsigned int sleep(unsigned int s);
int usleep(unsigned long us);
long sysconf(int name);
int getpagesize(void);
pid_t getpid(void);

#define _SC_PAGESIZE 30
#define _SC_PAGE_SIZE _SC_PAGESIZE
#define _SC_NPROCESSORS_ONLN 84

#ifdef __cplusplus
}
#endif
#endif
