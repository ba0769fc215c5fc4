/* Layout of the platform's static thread control block, shared by start.S
 * and plat.c. x86-64 TLS variant II: the TLS block sits right below the
 * thread pointer; the TCB starts at it. Offsets follow glibc's tcbhead_t so
 * that code compiled against glibc finds what it expects at %fs:0x28. */
#ifndef UKPLAT_TLS_H
#define UKPLAT_TLS_H

#define UKPLAT_MSR_FS_BASE   0xc0000100
#define UKPLAT_TCB_SELF      0x00 /* %fs:0 = thread pointer (for TLS LE/IE code) */
#define UKPLAT_TCB_SELF2     0x10 /* tcbhead_t.self */
#define UKPLAT_TCB_CANARY    0x28 /* tcbhead_t.stack_guard: -fstack-protector */
#define UKPLAT_TCB_SIZE      0x100
/* TLS images up to this size (and alignment up to UKPLAT_TLS_ALIGN) fit in
 * the static reserve below the TCB; bigger ones are carved from the heap. */
#define UKPLAT_TLS_RESERVE   0x1000
#define UKPLAT_TLS_ALIGN     64

#endif
