/* Guest ABI: the boot-info structure the monitor passes in %rdi.
 * Mirrors internal/abi/abi.go (BootInfo) byte for byte. */
#ifndef UK_BOOTINFO_H
#define UK_BOOTINFO_H

#define UK_BOOTINFO_MAGIC   0x314c4f4f50494e55ULL /* "UNIPOOL1" */
#define UK_BOOTINFO_VERSION 2
#define UK_PORT_COM1        0x3f8
#define UK_PORT_EXIT        0x501
#define UK_PORT_READY       0x502 /* boot done, request not yet read (snapshot point) */
#define UK_PORT_DISCARD     0x503 /* %rdi, %rsi: whole pages the guest no longer needs (free-page reporting) */
#define UK_MONITOR_KVM      1
#define UK_MONITOR_PROCESS  2

/* start.S reads the canary by offset. */
#define UK_BOOTINFO_CANARY 128

#ifndef __ASSEMBLER__
#include <stdint.h>

struct uk_bootinfo {
	uint64_t magic;       /*   0 */
	uint32_t version;     /*   8 */
	uint32_t flags;       /*  12 */
	uint64_t cmdline;     /*  16: NUL-terminated command line */
	uint64_t cmdline_len; /*  24 */
	uint64_t heap_start;  /*  32 */
	uint64_t heap_size;   /*  40 */
	uint64_t stack_start; /*  48: lowest stack address */
	uint64_t stack_size;  /*  56 */
	uint64_t instance_id; /*  64 */
	uint64_t seed;        /*  72: ukrand's seed; ukrand clears it once read */
	uint64_t tsc_khz;     /*  80: 0 if unknown */
	uint64_t monitor;     /*  88: UK_MONITOR_* */
	uint64_t tls_image;   /*  96: PT_TLS init image, 0 if none */
	uint64_t tls_filesz;  /* 104 */
	uint64_t tls_memsz;   /* 112 */
	uint64_t tls_align;   /* 120 */
	uint64_t canary;      /* 128: stack-protector canary; cleared once copied to the TCB */
	uint64_t tls_area;    /* 136: the TLS block + TCB go here (tls_area_size != 0) */
	uint64_t tls_area_size; /* 144 */
	uint64_t reserved;    /* 152 */
};                        /* 160 bytes */

_Static_assert(sizeof(struct uk_bootinfo) == 160, "bootinfo layout");
_Static_assert(__builtin_offsetof(struct uk_bootinfo, canary) == UK_BOOTINFO_CANARY, "canary offset");
#endif
#endif
