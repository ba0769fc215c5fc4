#include <stdio.h>
#include <uk/plat.h>
int puts(const char *s) { while (*s) ukplat_putc(*s++); ukplat_putc('\n'); return 0; }
void __stack_chk_fail(void) { ukplat_exit(127); }
