#ifndef STDIO_H
#define STDIO_H
int puts(const char *s);
#endif
