#ifndef UK_PLAT_H
#define UK_PLAT_H
void ukplat_putc(char c);
__attribute__((noreturn)) void ukplat_exit(int code);
#endif
