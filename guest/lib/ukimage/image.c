/* IMAGE_BLUR_NAIVE sums the full (2r+1)^2 window per pixel instead of two
 * separable passes; both clamp at the edges and divide once, so they give
 * identical pixels. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <ukimage.h>

struct image *image_new(int w, int h)
{
	struct image *img;

	if (w <= 0 || h <= 0 || w > 16384 || h > 16384)
		return NULL;
	img = malloc(sizeof(*img));
	if (!img)
		return NULL;
	img->px = calloc((size_t)w * (size_t)h, 3);
	if (!img->px) {
		free(img);
		return NULL;
	}
	img->w = w;
	img->h = h;
	return img;
}

void image_free(struct image *img)
{
	if (img) {
		free(img->px);
		free(img);
	}
}

struct image *image_clone(const struct image *img)
{
	struct image *c = image_new(img->w, img->h);

	if (c)
		memcpy(c->px, img->px, (size_t)img->w * (size_t)img->h * 3);
	return c;
}

uint8_t image_luma(uint8_t r, uint8_t g, uint8_t b)
{
	/* BT.601 weights in 8.8 fixed point */
	return (uint8_t)((77u * r + 150u * g + 29u * b + 128) >> 8);
}

static uint32_t xorshift(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

static uint8_t clamp255(int v)
{
	return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

void image_generate(struct image *img, uint32_t seed)
{
	int cx[4], cy[4], rr[4], col[4][3];
	uint32_t s = seed ? seed : 0x9e3779b9u;
	int x, y, k;

	for (k = 0; k < 4; k++) {
		cx[k] = (int)(xorshift(&s) % (uint32_t)img->w);
		cy[k] = (int)(xorshift(&s) % (uint32_t)img->h);
		rr[k] = 2 + (int)(xorshift(&s) % (uint32_t)(img->w / 3 + 1));
		col[k][0] = (int)(xorshift(&s) & 255);
		col[k][1] = (int)(xorshift(&s) & 255);
		col[k][2] = (int)(xorshift(&s) & 255);
	}
	for (y = 0; y < img->h; y++) {
		for (x = 0; x < img->w; x++) {
			uint8_t *p = img->px + ((size_t)y * (size_t)img->w + (size_t)x) * 3;
			int r = x * 255 / img->w, g = y * 255 / img->h;
			int b = ((x / 4 + y / 4) & 1) ? 200 : 40;

			for (k = 0; k < 4; k++) {
				int dx = x - cx[k], dy = y - cy[k];

				if (dx * dx + dy * dy <= rr[k] * rr[k]) {
					r = (r + col[k][0]) / 2;
					g = (g + col[k][1]) / 2;
					b = (b + col[k][2]) / 2;
				}
			}
			k = (int)(xorshift(&s) % 17) - 8;
			p[0] = clamp255(r + k);
			p[1] = clamp255(g + k);
			p[2] = clamp255(b - k);
		}
	}
}

void image_grayscale(struct image *img)
{
	size_t i, n = (size_t)img->w * (size_t)img->h;

	for (i = 0; i < n; i++) {
		uint8_t *p = img->px + 3 * i;
		uint8_t l = image_luma(p[0], p[1], p[2]);

		p[0] = p[1] = p[2] = l;
	}
}

void image_invert(struct image *img)
{
	size_t i, n = (size_t)img->w * (size_t)img->h * 3;

	for (i = 0; i < n; i++)
		img->px[i] = (uint8_t)(255 - img->px[i]);
}

static int clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

int image_box_blur(struct image *img, int radius)
{
	int w = img->w, h = img->h, x, y, c;
	uint32_t count = (uint32_t)(2 * radius + 1) * (uint32_t)(2 * radius + 1);
	uint8_t *out;

	if (radius <= 0)
		return 0;
	out = malloc((size_t)w * (size_t)h * 3);
	if (!out)
		return -1;
#if defined(IMAGE_BLUR_NAIVE) && IMAGE_BLUR_NAIVE
	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++)
			for (c = 0; c < 3; c++) {
				uint32_t sum = 0;
				int dx, dy;

				for (dy = -radius; dy <= radius; dy++)
					for (dx = -radius; dx <= radius; dx++) {
						int sx = clampi(x + dx, 0, w - 1);
						int sy = clampi(y + dy, 0, h - 1);

						sum += img->px[((size_t)sy * (size_t)w + (size_t)sx) * 3 + (size_t)c];
					}
				out[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)c] =
					(uint8_t)((sum + count / 2) / count);
			}
#else
	{
		uint32_t *rows = malloc((size_t)w * (size_t)h * 3 * sizeof(uint32_t));

		if (!rows) {
			free(out);
			return -1;
		}
		/* horizontal window sums, kept undivided */
		for (y = 0; y < h; y++)
			for (c = 0; c < 3; c++) {
				uint32_t sum = 0;
				int k;

				for (k = -radius; k <= radius; k++)
					sum += img->px[((size_t)y * (size_t)w + (size_t)clampi(k, 0, w - 1)) * 3 + (size_t)c];
				for (x = 0; x < w; x++) {
					rows[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)c] = sum;
					sum += img->px[((size_t)y * (size_t)w + (size_t)clampi(x + radius + 1, 0, w - 1)) * 3 + (size_t)c];
					sum -= img->px[((size_t)y * (size_t)w + (size_t)clampi(x - radius, 0, w - 1)) * 3 + (size_t)c];
				}
			}
		/* vertical sums of those, divided once */
		for (x = 0; x < w; x++)
			for (c = 0; c < 3; c++) {
				uint32_t sum = 0;
				int k;

				for (k = -radius; k <= radius; k++)
					sum += rows[((size_t)clampi(k, 0, h - 1) * (size_t)w + (size_t)x) * 3 + (size_t)c];
				for (y = 0; y < h; y++) {
					out[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)c] =
						(uint8_t)((sum + count / 2) / count);
					sum += rows[((size_t)clampi(y + radius + 1, 0, h - 1) * (size_t)w + (size_t)x) * 3 + (size_t)c];
					sum -= rows[((size_t)clampi(y - radius, 0, h - 1) * (size_t)w + (size_t)x) * 3 + (size_t)c];
				}
			}
		free(rows);
	}
#endif
	memcpy(img->px, out, (size_t)w * (size_t)h * 3);
	free(out);
	return 0;
}

int image_gaussian_blur(struct image *img, double sigma)
{
	int w = img->w, h = img->h, radius, k, x, y, c;
	uint32_t weights[64], total = 0;
	uint32_t *tmp;

	if (sigma <= 0)
		return 0;
	radius = (int)ceil(sigma * 3);
	if (radius > 31)
		radius = 31;
	/* weights rounded to 16-bit fixed point, so the rest is exact */
	for (k = -radius; k <= radius; k++) {
		weights[k + radius] = (uint32_t)floor(65536.0 * exp(-(double)(k * k) / (2 * sigma * sigma)) + 0.5);
		total += weights[k + radius];
	}
	tmp = malloc((size_t)w * (size_t)h * 3 * sizeof(uint32_t));
	if (!tmp)
		return -1;
	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++)
			for (c = 0; c < 3; c++) {
				uint64_t sum = 0;

				for (k = -radius; k <= radius; k++)
					sum += (uint64_t)weights[k + radius] *
					       img->px[((size_t)y * (size_t)w + (size_t)clampi(x + k, 0, w - 1)) * 3 + (size_t)c];
				tmp[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)c] =
					(uint32_t)((sum * 256 + total / 2) / total); /* 8.8 */
			}
	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++)
			for (c = 0; c < 3; c++) {
				uint64_t sum = 0;

				for (k = -radius; k <= radius; k++)
					sum += (uint64_t)weights[k + radius] *
					       tmp[((size_t)clampi(y + k, 0, h - 1) * (size_t)w + (size_t)x) * 3 + (size_t)c];
				img->px[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)c] =
					clamp255((int)((sum + (uint64_t)total * 128) / ((uint64_t)total * 256)));
			}
	free(tmp);
	return 0;
}

struct image *image_resize(const struct image *img, int w, int h)
{
	struct image *out = image_new(w, h);
	int x, y, c;

	if (!out)
		return NULL;
	for (y = 0; y < h; y++) {
		/* source coordinates in 16.16 fixed point, pixel centers aligned */
		int64_t sy = ((int64_t)(2 * y + 1) * img->h * 65536 / (2 * h)) - 32768;
		int y0, y1;
		int64_t fy;

		if (sy < 0)
			sy = 0;
		y0 = (int)(sy >> 16);
		fy = sy & 0xffff;
		y1 = y0 + 1 < img->h ? y0 + 1 : y0;
		for (x = 0; x < w; x++) {
			int64_t sx = ((int64_t)(2 * x + 1) * img->w * 65536 / (2 * w)) - 32768;
			int x0, x1;
			int64_t fx;

			if (sx < 0)
				sx = 0;
			x0 = (int)(sx >> 16);
			fx = sx & 0xffff;
			x1 = x0 + 1 < img->w ? x0 + 1 : x0;
			for (c = 0; c < 3; c++) {
				const uint8_t *p = img->px;
				int64_t a = p[((size_t)y0 * (size_t)img->w + (size_t)x0) * 3 + (size_t)c];
				int64_t b = p[((size_t)y0 * (size_t)img->w + (size_t)x1) * 3 + (size_t)c];
				int64_t d = p[((size_t)y1 * (size_t)img->w + (size_t)x0) * 3 + (size_t)c];
				int64_t e = p[((size_t)y1 * (size_t)img->w + (size_t)x1) * 3 + (size_t)c];
				int64_t top = a * (65536 - fx) + b * fx;
				int64_t bot = d * (65536 - fx) + e * fx;
				int64_t v = (top * (65536 - fy) + bot * fy + (1ll << 31)) >> 32;

				out->px[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)c] = clamp255((int)v);
			}
		}
	}
	return out;
}

struct image *image_rotate90(const struct image *img)
{
	struct image *out = image_new(img->h, img->w);
	int x, y;

	if (!out)
		return NULL;
	/* clockwise: (x, y) -> (h-1-y, x) */
	for (y = 0; y < img->h; y++)
		for (x = 0; x < img->w; x++)
			memcpy(out->px + ((size_t)x * (size_t)out->w + (size_t)(img->h - 1 - y)) * 3,
			       img->px + ((size_t)y * (size_t)img->w + (size_t)x) * 3, 3);
	return out;
}

void image_flip_horizontal(struct image *img)
{
	int x, y;

	for (y = 0; y < img->h; y++)
		for (x = 0; x < img->w / 2; x++) {
			uint8_t *a = img->px + ((size_t)y * (size_t)img->w + (size_t)x) * 3;
			uint8_t *b = img->px + ((size_t)y * (size_t)img->w + (size_t)(img->w - 1 - x)) * 3;
			uint8_t t[3];

			memcpy(t, a, 3);
			memcpy(a, b, 3);
			memcpy(b, t, 3);
		}
}

struct image *image_sobel(const struct image *img)
{
	struct image *out = image_new(img->w, img->h);
	uint8_t *luma;
	int x, y, w = img->w, h = img->h;

	if (!out)
		return NULL;
	luma = malloc((size_t)w * (size_t)h);
	if (!luma) {
		image_free(out);
		return NULL;
	}
	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++) {
			const uint8_t *p = img->px + ((size_t)y * (size_t)w + (size_t)x) * 3;

			luma[(size_t)y * (size_t)w + (size_t)x] = image_luma(p[0], p[1], p[2]);
		}
#define L(xx, yy) ((int)luma[(size_t)clampi(yy, 0, h - 1) * (size_t)w + (size_t)clampi(xx, 0, w - 1)])
	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++) {
			int gx = -L(x - 1, y - 1) - 2 * L(x - 1, y) - L(x - 1, y + 1) +
				 L(x + 1, y - 1) + 2 * L(x + 1, y) + L(x + 1, y + 1);
			int gy = -L(x - 1, y - 1) - 2 * L(x, y - 1) - L(x + 1, y - 1) +
				 L(x - 1, y + 1) + 2 * L(x, y + 1) + L(x + 1, y + 1);
			/* sqrt of an exact integer, correctly rounded by sqrtsd */
			int mag = (int)sqrt((double)(gx * gx + gy * gy));
			uint8_t *o = out->px + ((size_t)y * (size_t)w + (size_t)x) * 3;

			o[0] = o[1] = o[2] = clamp255(mag);
		}
#undef L
	free(luma);
	return out;
}

void image_histogram(const struct image *img, uint32_t hist[256])
{
	size_t i, n = (size_t)img->w * (size_t)img->h;

	memset(hist, 0, 256 * sizeof(uint32_t));
	for (i = 0; i < n; i++) {
		const uint8_t *p = img->px + 3 * i;

		hist[image_luma(p[0], p[1], p[2])]++;
	}
}

int image_otsu(const uint32_t hist[256])
{
	uint64_t total = 0, sum = 0, sumb = 0, wb = 0;
	double bestv = -1;
	int t, best = 0;

	for (t = 0; t < 256; t++) {
		total += hist[t];
		sum += (uint64_t)t * hist[t];
	}
	for (t = 0; t < 256; t++) {
		uint64_t wf;
		double diff, v;

		wb += hist[t];
		sumb += (uint64_t)t * hist[t];
		if (wb == 0)
			continue;
		wf = total - wb;
		if (wf == 0)
			break;
		/* between-class variance times total^2:
		 * (sumb*wf - (sum-sumb)*wb)^2 / (wb*wf) */
		diff = (double)sumb * (double)wf - (double)(sum - sumb) * (double)wb;
		v = diff * diff / ((double)wb * (double)wf);
		if (v > bestv) {
			bestv = v;
			best = t;
		}
	}
	return best;
}

void image_threshold(struct image *img, int t)
{
	size_t i, n = (size_t)img->w * (size_t)img->h;

	for (i = 0; i < n; i++) {
		uint8_t *p = img->px + 3 * i;
		uint8_t v = image_luma(p[0], p[1], p[2]) > t ? 255 : 0;

		p[0] = p[1] = p[2] = v;
	}
}
