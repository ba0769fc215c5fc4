/* ukplat: boot-info validation, TLS setup, console, exit, idle. */
#include <stddef.h>
#include <stdint.h>
#include <uk/bootinfo.h>
#include <uk/plat.h>
#include "tls.h"

/* io.S */
void ukplat_outb(uint16_t port, uint8_t v);
void ukplat_outl(uint16_t port, uint32_t v);
void ukplat_hlt(void);
void ukplat_discard_pages(uint64_t start, uint64_t len);
void ukplat_wrmsr(uint32_t msr, uint64_t v);
/* start.S: the static TLS reserve, immediately followed by the TCB. */
extern unsigned char ukplat_tls_reserve[UKPLAT_TLS_RESERVE];
extern unsigned char ukplat_tcb0[UKPLAT_TCB_SIZE];

/* Exit codes of the platform itself, above what apps normally use. */
#define UKPLAT_EXIT_BADBOOT 125

/* ukplat_entry runs while the TCB may still move (a large TLS image moves it
 * to the heap), so it and its helpers must not check the canary. */
#define NOSSP __attribute__((no_stack_protector, noinline))

static const struct uk_bootinfo *bootinfo;

/* The boot-info layout this ukplat accepts: the loader reads it from the
 * image (internal/abi.BootInfoVersionSymbol) and writes that version, so
 * images linked against an older ukplat keep booting. "retain": kept by
 * --gc-sections (dce) although no code reads it. */
__attribute__((used, retain)) const uint32_t ukplat_bootinfo_version = UK_BOOTINFO_VERSION;
static uintptr_t heap_start;
static size_t heap_len;
/* The thread control block FS points at (the static one, or the one
 * setup_tls moved to the heap). */
static unsigned char *tcb;
/* Set just before the ready write, so a snapshot holds it set: before it
 * (boot, the init phase) nothing may read what is the instance's own. */
static int ready;

void ukplat_console_putc(char c)
{
	ukplat_outb(UK_PORT_COM1, (uint8_t)c);
}

void ukplat_console_write(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		ukplat_outb(UK_PORT_COM1, (uint8_t)buf[i]);
}

void ukplat_exit(int code)
{
	ukplat_outl(UK_PORT_EXIT, (uint32_t)code);
	/* A monitor stops the guest at the exit port; if one does not, the
	 * guest must still not run on. */
	for (;;)
		ukplat_hlt();
}

NOSSP void ukplat_ready(void)
{
	ready = 1;
	ukplat_outl(UK_PORT_READY, 0);
	/* A restored instance reads its own boot info from here on: the
	 * canary of the snapshot is replaced by this instance's own, so no
	 * two instances share it. A cold boot's was taken (and cleared) by
	 * _start already. */
	volatile struct uk_bootinfo *bi = (volatile struct uk_bootinfo *)bootinfo;
	if (bi && bi->canary) {
		if (tcb)
			*(volatile uint64_t *)(tcb + UKPLAT_TCB_CANARY) = bi->canary;
		bi->canary = 0;
	}
}

int ukplat_is_ready(void)
{
	return ready;
}

void ukplat_discard(void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr, end = a + len;
	if (end < a)
		end = UINTPTR_MAX;
	uintptr_t lo = (a + 0xfff) & ~(uintptr_t)0xfff, hi = end & ~(uintptr_t)0xfff;
	if (lo < a || hi <= lo)
		return;
	ukplat_discard_pages(lo, hi - lo);
}

void ukplat_idle(void)
{
	ukplat_hlt();
}

const struct uk_bootinfo *ukplat_bootinfo(void)
{
	return bootinfo;
}

const char *ukplat_cmdline(void)
{
	if (!bootinfo || !bootinfo->cmdline)
		return "";
	return (const char *)(uintptr_t)bootinfo->cmdline;
}

void ukplat_heap(uintptr_t *start, size_t *len)
{
	*start = heap_start;
	*len = heap_len;
}

void *ukplat_tlsp(void)
{
	void *p;
	__asm__ volatile("movq %%fs:0, %0" : "=r"(p));
	return p;
}

NOSSP static void puts_early(const char *s)
{
	while (*s)
		ukplat_outb(UK_PORT_COM1, (uint8_t)*s++);
}

NOSSP static void bytecopy(unsigned char *dst, const unsigned char *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = src[i];
}

NOSSP static void bytezero(unsigned char *dst, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = 0;
}

/* Copies the PT_TLS image into a block below a TCB (variant II: the
 * linker computed every TLS offset as off - round_up(memsz, align) from the
 * thread pointer) and, if the block cannot be the static one, moves the
 * TCB to the heap and points FS at it. Returns 0 or an error message. */
NOSSP static const char *setup_tls(const struct uk_bootinfo *bi)
{
	uint64_t align = bi->tls_align ? bi->tls_align : 1;
	if (align & (align - 1))
		return "ukplat: TLS alignment is not a power of two\n";
	if (bi->tls_filesz > bi->tls_memsz)
		return "ukplat: TLS file size exceeds its memory size\n";
	if (bi->tls_filesz && !bi->tls_image)
		return "ukplat: TLS image has no address\n";
	uint64_t size = (bi->tls_memsz + align - 1) & ~(align - 1);
	uint64_t a = align > UKPLAT_TLS_ALIGN ? align : UKPLAT_TLS_ALIGN;
	unsigned char *tp = ukplat_tcb0;
	if (bi->tls_area_size) {
		/* The monitor's TLS area (in the boot-info area under --aslr,
		 * else the top of the stack mapping): the TCB at its top, the
		 * block right below. */
		uintptr_t lo = bi->tls_area, hi = lo + bi->tls_area_size;
		if (hi < lo || hi - lo < UKPLAT_TCB_SIZE + size + a)
			return "ukplat: TLS area too small\n";
		tp = (unsigned char *)((hi - UKPLAT_TCB_SIZE) & ~(uintptr_t)(a - 1));
	} else if (size > UKPLAT_TLS_RESERVE || align > UKPLAT_TLS_ALIGN) {
		uintptr_t base = (heap_start + a - 1) & ~(uintptr_t)(a - 1);
		uintptr_t end = base + size + UKPLAT_TCB_SIZE;
		if (base < heap_start || end > heap_start + heap_len)
			return "ukplat: heap too small for the TLS block\n";
		tp = (unsigned char *)(base + size);
		heap_len -= end - heap_start;
		heap_start = end;
	}
	if (tp != ukplat_tcb0) {
		bytecopy(tp, ukplat_tcb0, UKPLAT_TCB_SIZE);
		*(uintptr_t *)(tp + UKPLAT_TCB_SELF) = (uintptr_t)tp;
		*(uintptr_t *)(tp + UKPLAT_TCB_SELF2) = (uintptr_t)tp;
		ukplat_wrmsr(UKPLAT_MSR_FS_BASE, (uintptr_t)tp);
		tcb = tp;
		/* The static TCB is no longer used: leave no copy of the
		 * canary in ukplat's bss. */
		bytezero(ukplat_tcb0, UKPLAT_TCB_SIZE);
	}
	unsigned char *block = tp - size;
	bytecopy(block, (const unsigned char *)(uintptr_t)bi->tls_image, bi->tls_filesz);
	bytezero(block + bi->tls_filesz, size - bi->tls_filesz);
	return 0;
}

/* Called by _start once FS points at the static TCB with its canary set. */
NOSSP __attribute__((noreturn)) void ukplat_entry(const struct uk_bootinfo *bi)
{
	if (!bi || bi->magic != UK_BOOTINFO_MAGIC || bi->version != UK_BOOTINFO_VERSION) {
		puts_early("ukplat: bad boot info (magic or version)\n");
		ukplat_exit(UKPLAT_EXIT_BADBOOT);
	}
	bootinfo = bi;
	tcb = ukplat_tcb0;
	heap_start = bi->heap_start;
	heap_len = bi->heap_size;
	if (bi->tls_memsz || bi->tls_area_size) {
		const char *err = setup_tls(bi);
		if (err) {
			puts_early(err);
			ukplat_exit(UKPLAT_EXIT_BADBOOT);
		}
	}
	ukboot_entry();
}
