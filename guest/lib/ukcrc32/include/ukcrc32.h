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

#endif
