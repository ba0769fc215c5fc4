/* ukimage: 8-bit RGB images in memory and classic operations on them.
 * Pixels are row-major, 3 bytes each (R, G, B). Operations that change the
 * size return a new image; the others work in place. Integer arithmetic
 * throughout except where a kernel needs exp/sqrt, whose results are
 * rounded to fixed point first, so every build gives the same pixels. */
#ifndef UKIMAGE_H
#define UKIMAGE_H
#include <stddef.h>
#include <stdint.h>

struct image {
	int w, h;
	uint8_t *px;
};

struct image *image_new(int w, int h);
void image_free(struct image *img);
struct image *image_clone(const struct image *img);
/* image_generate paints a deterministic test picture from seed: a
 * gradient, circles, stripes and noise. */
void image_generate(struct image *img, uint32_t seed);
void image_grayscale(struct image *img);
void image_invert(struct image *img);
int image_box_blur(struct image *img, int radius);
int image_gaussian_blur(struct image *img, double sigma);
struct image *image_resize(const struct image *img, int w, int h);
struct image *image_rotate90(const struct image *img);
void image_flip_horizontal(struct image *img);
/* image_sobel returns the gradient magnitude of the luma as a gray image. */
struct image *image_sobel(const struct image *img);
void image_histogram(const struct image *img, uint32_t hist[256]);
/* image_otsu returns the threshold maximizing between-class variance. */
int image_otsu(const uint32_t hist[256]);
void image_threshold(struct image *img, int t);
uint8_t image_luma(uint8_t r, uint8_t g, uint8_t b);

#endif
