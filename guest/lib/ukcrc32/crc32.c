/* Three build-time implementations with identical results:
 * - default: one 256-entry table per polynomial in read-only data;
 * - CRC32_SLICE8: slicing-by-8, eight tables per polynomial derived at
 *   first use (bss), or earlier by crc32_prepare / crc32c_prepare;
 * - CRC32_BITWISE: no tables at all, a bit at a time (smallest, slowest). */
#include <ukcrc32.h>

#define POLY_IEEE 0xedb88320u
#define POLY_CASTAGNOLI 0x82f63b78u

#if defined(CRC32_BITWISE) && CRC32_BITWISE
static uint32_t crc_run(uint32_t poly, int which, uint32_t crc,
			const uint8_t *p, size_t n)
{
	int k;

	(void)which;
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (poly & (0u - (crc & 1)));
	}
	return ~crc;
}

static void derive(uint32_t poly, int which)
{
	(void)poly;
	(void)which;
}
#elif defined(CRC32_SLICE8) && CRC32_SLICE8
static uint32_t slice[2][8][256];
static int slice_ready[2];

static void slice_init(uint32_t poly, int which)
{
	uint32_t(*t)[256] = slice[which];
	int i, k;

	for (i = 0; i < 256; i++) {
		uint32_t c = (uint32_t)i;

		for (k = 0; k < 8; k++)
			c = (c >> 1) ^ (poly & (0u - (c & 1)));
		t[0][i] = c;
	}
	for (i = 0; i < 256; i++)
		for (k = 1; k < 8; k++)
			t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
	slice_ready[which] = 1;
}

static void derive(uint32_t poly, int which)
{
	if (!slice_ready[which])
		slice_init(poly, which);
}

static uint32_t crc_run(uint32_t poly, int which, uint32_t crc,
			const uint8_t *p, size_t n)
{
	uint32_t(*t)[256];

	derive(poly, which);
	t = slice[which];
	crc = ~crc;
	while (n >= 8) {
		uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
				     (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
		uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 |
			      (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;

		crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^
		      t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
		      t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^
		      t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
		p += 8;
		n -= 8;
	}
	while (n--)
		crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xff];
	return ~crc;
}
#else
#include "crc32_tables.h"

static uint32_t crc_run(uint32_t poly, int which, uint32_t crc,
			const uint8_t *p, size_t n)
{
	const uint32_t *t = which ? crc32_table_castagnoli : crc32_table_ieee;

	(void)poly;
	crc = ~crc;
	while (n--)
		crc = (crc >> 8) ^ t[(crc ^ *p++) & 0xff];
	return ~crc;
}

static void derive(uint32_t poly, int which)
{
	(void)poly;
	(void)which;
}
#endif

/* What the variant derives before its first CRC (slicing-by-8's tables;
 * the others have nothing to derive): see ukcrc32.h. */
void crc32_prepare(void)
{
	derive(POLY_IEEE, 0);
}

void crc32c_prepare(void)
{
	derive(POLY_CASTAGNOLI, 1);
}

uint32_t crc32_update(uint32_t crc, const void *data, size_t n)
{
	return crc_run(POLY_IEEE, 0, crc, data, n);
}

uint32_t crc32_ieee(const void *data, size_t n)
{
	return crc_run(POLY_IEEE, 0, 0, data, n);
}

uint32_t crc32c_update(uint32_t crc, const void *data, size_t n)
{
	return crc_run(POLY_CASTAGNOLI, 1, crc, data, n);
}

uint32_t crc32c(const void *data, size_t n)
{
	return crc_run(POLY_CASTAGNOLI, 1, 0, data, n);
}
