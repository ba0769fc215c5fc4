/* SORT_INSERTION_CUTOFF: below it, merge sort and introsort finish with
 * insertion sort. SORT_RADIX_BITS: digit width of the radix sorts (8 or 11:
 * four or three passes over 32-bit keys). Both change code, not results. */
#include <stdlib.h>
#include <string.h>
#include <uksort.h>

#ifndef SORT_INSERTION_CUTOFF
#define SORT_INSERTION_CUTOFF 16
#endif
#ifndef SORT_RADIX_BITS
#define SORT_RADIX_BITS 8
#endif
#define RADIX (1u << SORT_RADIX_BITS)

static void swap_bytes(unsigned char *a, unsigned char *b, size_t size)
{
	while (size--) {
		unsigned char t = *a;

		*a++ = *b;
		*b++ = t;
	}
}

void sort_insertion(void *base, size_t n, size_t size, sort_cmp_fn cmp)
{
	unsigned char *a = base;
	size_t i, j;

	for (i = 1; i < n; i++)
		for (j = i; j > 0 && cmp(a + (j - 1) * size, a + j * size) > 0; j--)
			swap_bytes(a + (j - 1) * size, a + j * size, size);
}

static void merge_rec(unsigned char *a, unsigned char *tmp, size_t n,
		      size_t size, sort_cmp_fn cmp)
{
	size_t mid = n / 2, i = 0, j = mid, k = 0;

	if (n <= SORT_INSERTION_CUTOFF) {
		sort_insertion(a, n, size, cmp);
		return;
	}
	merge_rec(a, tmp, mid, size, cmp);
	merge_rec(a + mid * size, tmp, n - mid, size, cmp);
	if (cmp(a + (mid - 1) * size, a + mid * size) <= 0)
		return; /* already in order */
	while (i < mid && j < n) {
		/* <= keeps equal elements in their original order */
		if (cmp(a + i * size, a + j * size) <= 0)
			memcpy(tmp + k++ * size, a + i++ * size, size);
		else
			memcpy(tmp + k++ * size, a + j++ * size, size);
	}
	while (i < mid)
		memcpy(tmp + k++ * size, a + i++ * size, size);
	memcpy(a, tmp, k * size);
}

int sort_merge(void *base, size_t n, size_t size, sort_cmp_fn cmp)
{
	unsigned char *tmp;

	if (n < 2)
		return 0;
	tmp = malloc(n * size);
	if (!tmp)
		return -1;
	merge_rec(base, tmp, n, size, cmp);
	free(tmp);
	return 0;
}

static void sift_down(unsigned char *a, size_t root, size_t n, size_t size,
		      sort_cmp_fn cmp)
{
	for (;;) {
		size_t child = 2 * root + 1;

		if (child >= n)
			return;
		if (child + 1 < n && cmp(a + child * size, a + (child + 1) * size) < 0)
			child++;
		if (cmp(a + root * size, a + child * size) >= 0)
			return;
		swap_bytes(a + root * size, a + child * size, size);
		root = child;
	}
}

void sort_heap(void *base, size_t n, size_t size, sort_cmp_fn cmp)
{
	unsigned char *a = base;
	size_t i;

	if (n < 2)
		return;
	for (i = n / 2; i-- > 0;)
		sift_down(a, i, n, size, cmp);
	for (i = n - 1; i > 0; i--) {
		swap_bytes(a, a + i * size, size);
		sift_down(a, 0, i, size, cmp);
	}
}

static void i64_insertion(int64_t *a, size_t n)
{
	size_t i, j;

	for (i = 1; i < n; i++) {
		int64_t v = a[i];

		for (j = i; j > 0 && a[j - 1] > v; j--)
			a[j] = a[j - 1];
		a[j] = v;
	}
}

static void i64_heapsort(int64_t *a, size_t n)
{
	size_t i, end;

	for (i = n / 2; i-- > 0;) {
		size_t r = i;

		for (;;) {
			size_t c = 2 * r + 1;
			int64_t t;

			if (c >= n)
				break;
			if (c + 1 < n && a[c] < a[c + 1])
				c++;
			if (a[r] >= a[c])
				break;
			t = a[r]; a[r] = a[c]; a[c] = t;
			r = c;
		}
	}
	for (end = n - 1; end > 0; end--) {
		size_t r = 0;
		int64_t t = a[0];

		a[0] = a[end];
		a[end] = t;
		for (;;) {
			size_t c = 2 * r + 1;

			if (c >= end)
				break;
			if (c + 1 < end && a[c] < a[c + 1])
				c++;
			if (a[r] >= a[c])
				break;
			t = a[r]; a[r] = a[c]; a[c] = t;
			r = c;
		}
	}
}

static void intro(int64_t *a, size_t n, int depth)
{
	while (n > SORT_INSERTION_CUTOFF) {
		size_t i, j, mid = n / 2;
		int64_t pivot, t;

		if (depth-- == 0) {
			i64_heapsort(a, n);
			return;
		}
		/* median of three into a[mid] */
		if (a[mid] < a[0]) { t = a[mid]; a[mid] = a[0]; a[0] = t; }
		if (a[n - 1] < a[0]) { t = a[n - 1]; a[n - 1] = a[0]; a[0] = t; }
		if (a[n - 1] < a[mid]) { t = a[n - 1]; a[n - 1] = a[mid]; a[mid] = t; }
		pivot = a[mid];
		/* Hoare partition */
		i = 0;
		j = n - 1;
		for (;;) {
			while (a[i] < pivot)
				i++;
			while (a[j] > pivot)
				j--;
			if (i >= j)
				break;
			t = a[i]; a[i] = a[j]; a[j] = t;
			i++;
			j--;
		}
		/* recurse into the smaller side, loop on the larger */
		if (j + 1 < n - j - 1) {
			intro(a, j + 1, depth);
			a += j + 1;
			n -= j + 1;
		} else {
			intro(a + j + 1, n - j - 1, depth);
			n = j + 1;
		}
	}
	i64_insertion(a, n);
}

void sort_quick_i64(int64_t *a, size_t n)
{
	int depth = 0;
	size_t m;

	for (m = n; m > 1; m >>= 1)
		depth += 2;
	intro(a, n, depth);
}

int sort_radix_u32(uint32_t *a, size_t n)
{
	uint32_t *tmp, *src = a, *dst;
	size_t *count;
	unsigned shift;

	if (n < 2)
		return 0;
	tmp = malloc(n * sizeof(*tmp));
	count = malloc(RADIX * sizeof(*count));
	if (!tmp || !count) {
		free(tmp);
		free(count);
		return -1;
	}
	dst = tmp;
	for (shift = 0; shift < 32; shift += SORT_RADIX_BITS) {
		size_t i, sum = 0;
		uint32_t *t;

		memset(count, 0, RADIX * sizeof(*count));
		for (i = 0; i < n; i++)
			count[(src[i] >> shift) & (RADIX - 1)]++;
		for (i = 0; i < RADIX; i++) {
			size_t c = count[i];

			count[i] = sum;
			sum += c;
		}
		for (i = 0; i < n; i++)
			dst[count[(src[i] >> shift) & (RADIX - 1)]++] = src[i];
		t = src;
		src = dst;
		dst = t;
	}
	if (src != a)
		memcpy(a, src, n * sizeof(*a));
	free(tmp);
	free(count);
	return 0;
}

int sort_radix_u64(uint64_t *a, size_t n)
{
	uint64_t *tmp, *src = a, *dst;
	size_t *count;
	unsigned shift;

	if (n < 2)
		return 0;
	tmp = malloc(n * sizeof(*tmp));
	count = malloc(RADIX * sizeof(*count));
	if (!tmp || !count) {
		free(tmp);
		free(count);
		return -1;
	}
	dst = tmp;
	for (shift = 0; shift < 64; shift += SORT_RADIX_BITS) {
		size_t i, sum = 0;
		uint64_t *t;

		memset(count, 0, RADIX * sizeof(*count));
		for (i = 0; i < n; i++)
			count[(src[i] >> shift) & (RADIX - 1)]++;
		for (i = 0; i < RADIX; i++) {
			size_t c = count[i];

			count[i] = sum;
			sum += c;
		}
		for (i = 0; i < n; i++)
			dst[count[(src[i] >> shift) & (RADIX - 1)]++] = src[i];
		t = src;
		src = dst;
		dst = t;
	}
	if (src != a)
		memcpy(a, src, n * sizeof(*a));
	free(tmp);
	free(count);
	return 0;
}

int sort_is_sorted_i64(const int64_t *a, size_t n)
{
	size_t i;

	for (i = 1; i < n; i++)
		if (a[i - 1] > a[i])
			return 0;
	return 1;
}

size_t sort_unique_i64(int64_t *a, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++)
		if (o == 0 || a[o - 1] != a[i])
			a[o++] = a[i];
	return o;
}

long sort_bsearch_i64(const int64_t *a, size_t n, int64_t key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (a[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && a[lo] == key ? (long)lo : -1;
}
