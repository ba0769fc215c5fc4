/* ukcrc32: CRC-32 (IEEE 802.3, as zlib and PNG) and CRC-32C (Castagnoli). */
#ifndef UKCRC32_H
#define UKCRC32_H
#include <stddef.h>
#include <stdint.h>

/* crc32_update continues a CRC the way zlib's crc32() does: start from 0. */
uint32_t crc32_update(uint32_t crc, const void *data, size_t n);
uint32_t crc32_ieee(const void *data, size_t n);
uint32_t crc32c_update(uint32_t crc, const void *data, size_t n);
uint32_t crc32c(const void *data, size_t n);

/* crc32_prepare (IEEE: crc32_update, crc32_ieee) and crc32c_prepare
 * (Castagnoli) derive now what the build's variant would derive at its
 * first CRC of that polynomial: slicing-by-8's eight tables (8 KiB, bss);
 * the table and bitwise variants have nothing to derive. An app whose
 * every request computes one registers it in its init phase
 * (UK_INIT_PHASE, <uk/boot.h>), so that a boot snapshot holds the tables
 * (the same pages in every snapshot, stored once in the pool and mapped by
 * every instance) instead of each instance deriving a private copy during
 * its request; a cold boot derives them as early, not more. The library
 * never registers them itself: a unikernel that links it without calling
 * it (an extra of a shared configuration) derives nothing. */
void crc32_prepare(void);
void crc32c_prepare(void);

#endif
