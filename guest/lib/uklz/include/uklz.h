/* uklz: an LZ77 compressor (hash chains, optional lazy matching) with its
 * own stream format:
 *   varint(original length), then sequences of
 *   varint(literal count), literals, [varint(match length - 4),
 *   varint(offset - 1)]; the match part is absent once the output is full.
 * Varints are LEB128. The window is 32 KiB. */
#ifndef UKLZ_H
#define UKLZ_H
#include <stddef.h>

#define LZ_WINDOW 32768
#define LZ_LEVEL_MIN 1 /* one hash probe, greedy */
#define LZ_LEVEL_MAX 9 /* 256 probes, lazy */

/* lz_bound is the largest compressed size of n input bytes. */
size_t lz_bound(size_t n);
/* lz_compress returns the compressed size, or -1 if cap is too small or
 * memory runs out. Output depends only on the input and level. */
long lz_compress(const void *src, size_t n, void *dst, size_t cap, int level);
/* lz_decompressed_size reads the header; -1 if malformed. */
long lz_decompressed_size(const void *src, size_t n);
/* lz_decompress returns the decompressed size, or -1 if the input is
 * corrupt or does not fit in cap. Never reads or writes out of bounds. */
long lz_decompress(const void *src, size_t n, void *dst, size_t cap);

#endif
