#include <uk/plat.h>
static void outb(unsigned short port, unsigned char v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
void ukplat_putc(char c) { outb(0x3f8, (unsigned char)c); }
void ukplat_exit(int code)
{
	__asm__ volatile("outl %0, %1" : : "a"((unsigned)code), "Nd"((unsigned short)0x501));
	for (;;)
		__asm__ volatile("hlt");
}
