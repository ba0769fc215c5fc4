/* image: "<op> <width> <height> <seed>": paints a generated picture, runs
 * one operation on it (blur, gauss, gray, sobel, resize, rotate, otsu,
 * invert) and prints the result's size, mean luma and CRC-32. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uk/boot.h>
#include <ukargs.h>
#include <ukcrc32.h>
#include <ukimage.h>

/* Every request computes a CRC-32: the tables ukcrc32 derives for it (its
 * slicing-by-8 variant) are derived in the init phase, so a boot snapshot
 * holds them, mapped from the pool by every instance. */
static void crc_tables(void)
{
	crc32_prepare();
}
UK_INIT_PHASE(crc_tables);

int main(int argc, char **argv)
{
	struct image *img, *out = NULL;
	long w, h, seed;
	uint32_t hist[256];
	uint64_t lsum = 0;
	const char *op;
	int i, extra = -1;

	if (argc != 5 || args_long(argv[2], 1, 2048, &w) || args_long(argv[3], 1, 2048, &h) ||
	    args_long(argv[4], 0, 0x7fffffff, &seed)) {
		printf("usage: image OP W H SEED\n");
		return 2;
	}
	op = argv[1];
	img = image_new((int)w, (int)h);
	if (!img)
		return 1;
	image_generate(img, (uint32_t)seed);
	if (strcmp(op, "blur") == 0) {
		if (image_box_blur(img, 2))
			return 1;
	} else if (strcmp(op, "gauss") == 0) {
		if (image_gaussian_blur(img, 1.5))
			return 1;
	} else if (strcmp(op, "gray") == 0) {
		image_grayscale(img);
	} else if (strcmp(op, "invert") == 0) {
		image_invert(img);
	} else if (strcmp(op, "sobel") == 0) {
		out = image_sobel(img);
	} else if (strcmp(op, "resize") == 0) {
		out = image_resize(img, (int)(w * 2 / 3 + 1), (int)(h * 3 / 2));
	} else if (strcmp(op, "rotate") == 0) {
		out = image_rotate90(img);
		if (out)
			image_flip_horizontal(out);
	} else if (strcmp(op, "otsu") == 0) {
		image_histogram(img, hist);
		extra = image_otsu(hist);
		image_threshold(img, extra);
	} else {
		printf("image: unknown operation %s\n", op);
		return 2;
	}
	if (out) {
		image_free(img);
		img = out;
	} else if (strcmp(op, "sobel") == 0 || strcmp(op, "resize") == 0 ||
		   strcmp(op, "rotate") == 0) {
		return 1;
	}
	image_histogram(img, hist);
	for (i = 0; i < 256; i++)
		lsum += (uint64_t)i * hist[i];
	printf("image %s %dx%d mean=%llu crc=%08x", op, img->w, img->h,
	       (unsigned long long)(lsum / ((uint64_t)img->w * (uint64_t)img->h)),
	       (unsigned)crc32_ieee(img->px, (size_t)img->w * (size_t)img->h * 3));
	if (extra >= 0)
		printf(" threshold=%d", extra);
	printf("\n");
	image_free(img);
	return 0;
}
