/* The allocator interface. Exactly one allocator library (ukallocbuddy or
 * ukalloctlsf: "provides": "allocator" in lib.json) is linked into each
 * unikernel and defines all of these; libc's malloc family calls them and
 * ukboot calls uk_alloc_init with the boot-info heap. */
#ifndef UK_ALLOC_H
#define UK_ALLOC_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Hands the allocator [base, base+len). Called once, before any other. */
void uk_alloc_init(void *base, size_t len);
/* The same, for a heap that is all zero (fresh memory, as the monitors
 * give it): the allocator then never clears what it has not written
 * (calloc, its own tables), so pages nothing writes stay untouched. */
void uk_alloc_init_zeroed(void *base, size_t len);
/* A zeroed block (calloc); NULL when out of memory. */
void *uk_alloc_calloc(size_t size);
/* malloc semantics; blocks are 16-byte aligned. NULL when out of memory. */
void *uk_alloc_malloc(size_t size);
void uk_alloc_free(void *ptr);
void *uk_alloc_realloc(void *ptr, size_t size);
/* align must be a power of two. */
void *uk_alloc_memalign(size_t align, size_t size);
/* Bytes usable at ptr (>= the size asked for). */
size_t uk_alloc_usable_size(void *ptr);
/* Walks the allocator's structures; 0 if consistent, else a negative code
 * naming the first broken invariant (tests and debugging). */
int uk_alloc_check(void);
/* Bytes currently free (includes fragmentation). */
size_t uk_alloc_free_bytes(void);
/* Calls fn on every free range that holds none of the allocator's own
 * structures (list links, headers) and that may have been written: what
 * a guest can give back to its host (free-page reporting, ukplat_discard).
 * Ranges are not page-aligned. The allocator treats them as holding
 * undefined bytes afterwards (calloc clears them), so fn may replace their
 * contents. fn must not call the allocator. */
void uk_alloc_walk_free(void (*fn)(void *addr, size_t len, void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif
