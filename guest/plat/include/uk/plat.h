/* ukplat: the platform layer every unikernel links (guest ABI in
 * ARCHITECTURE.md and uk/bootinfo.h). Only the instructions the guest ABI
 * allows are used here (outb/outl, hlt, wrmsr): under the process monitor
 * they trap to the monitor, which emulates them. */
#ifndef UK_PLAT_H
#define UK_PLAT_H
#include <stddef.h>
#include <stdint.h>
#include <uk/bootinfo.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The boot info the monitor passed to _start. Never NULL once C runs. */
const struct uk_bootinfo *ukplat_bootinfo(void);

/* The NUL-terminated command line ("" when the monitor gave none). */
const char *ukplat_cmdline(void);

/* The heap left for the allocator: the boot-info heap minus what the
 * platform took for a TLS block too big for its static reserve. */
void ukplat_heap(uintptr_t *start, size_t *len);

/* Console output on COM1, one outb per byte. */
void ukplat_console_putc(char c);
void ukplat_console_write(const char *buf, size_t len);

/* Ends the guest with code (outl to port 0x501); never returns. */
__attribute__((noreturn)) void ukplat_exit(int code);

/* The ready point: boot is done and nothing of this instance's own (its
 * command line, seed, clock) has been read yet. Writes port 0x502; a
 * monitor may stop the guest there and keep its memory as a snapshot, and
 * later resume copies of it with another instance's boot info. On return
 * the stack canary has been derived again from the boot info's seed (the
 * same value on a cold boot, a fresh one after a restore). The caller and
 * every frame below it must not check the canary on return (no stack
 * protector, or never return). */
void ukplat_ready(void);

/* Whether the ready point has passed (on a cold boot and in an instance
 * restored from a snapshot alike). Before it — boot and the init phase
 * (UK_INIT_PHASE in <uk/boot.h>) — whatever the guest computes may end up in
 * a snapshot every instance shares, so libraries that hand out secrets
 * (ukrand) refuse to run. */
int ukplat_is_ready(void);

/* Free-page reporting: the guest no longer needs the whole pages inside
 * [addr, addr+len) (a part of a page at either end is kept). Writes port
 * 0x503 with the page range in %rdi/%rsi; a monitor may give the pages back
 * to the host, and each then reads as zero or as it was in the snapshot the
 * instance started from, so callers must treat the range as holding
 * undefined bytes. A monitor may also ignore the write. Only heap and stack
 * pages are given back. */
void ukplat_discard(void *addr, size_t len);

/* Waits for the next event (hlt). */
void ukplat_idle(void);

/* The current thread pointer (the FS base _start set). */
void *ukplat_tlsp(void);

/* Called by the platform once the thread pointer and stack canary are set;
 * provided by ukboot. */
__attribute__((noreturn)) void ukboot_entry(void);

#ifdef __cplusplus
}
#endif
#endif
