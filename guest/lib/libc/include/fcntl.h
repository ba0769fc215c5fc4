#ifndef _FCNTL_H
#define _FCNTL_H
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif
#define O_RDONLY 00
#define O_WRONLY 01
#define O_RDWR   02
#define O_CREAT  0100
#define O_EXCL   0200
#define O_TRUNC  01000
#define O_APPEND 02000
#define O_CLOEXEC 02000000

/* No filesystem: open fails with ENOENT. */
int open(const char *path, int flags, ...);
int open64(const char *path, int flags, ...);
#ifdef __cplusplus
}
#endif
#endif
