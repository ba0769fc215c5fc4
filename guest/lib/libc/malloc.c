/* The malloc family over the allocator interface (uk/alloc.h), which the
 * one allocator library linked into the unikernel implements. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uk/alloc.h>

void *malloc(size_t size)
{
	void *p = uk_alloc_malloc(size);
	if (!p)
		errno = ENOMEM;
	return p;
}

void free(void *p)
{
	if (p)
		uk_alloc_free(p);
}

void *calloc(size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = uk_alloc_calloc(total);
	if (!p)
		errno = ENOMEM;
	return p;
}

void *realloc(void *p, size_t size)
{
	if (!p)
		return malloc(size);
	void *q = uk_alloc_realloc(p, size);
	if (!q && size)
		errno = ENOMEM;
	return q;
}

void *reallocarray(void *p, size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, total);
}

static int valid_align(size_t align)
{
	return align && !(align & (align - 1));
}

void *memalign(size_t align, size_t size)
{
	if (!valid_align(align)) {
		errno = EINVAL;
		return NULL;
	}
	void *p = uk_alloc_memalign(align, size);
	if (!p)
		errno = ENOMEM;
	return p;
}

void *aligned_alloc(size_t align, size_t size)
{
	return memalign(align, size);
}

int posix_memalign(void **res, size_t align, size_t size)
{
	if (!valid_align(align) || align % sizeof(void *))
		return EINVAL;
	void *p = uk_alloc_memalign(align, size);
	if (!p)
		return ENOMEM;
	*res = p;
	return 0;
}

size_t malloc_usable_size(void *p)
{
	return p ? uk_alloc_usable_size(p) : 0;
}
