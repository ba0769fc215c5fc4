/* uksort: sorting algorithms beyond libc's qsort. */
#ifndef UKSORT_H
#define UKSORT_H
#include <stddef.h>
#include <stdint.h>

typedef int (*sort_cmp_fn)(const void *a, const void *b);

/* sort_merge is stable; it needs n*size bytes of scratch (malloc); returns
 * -1 if that allocation fails (the array is then unchanged). */
int sort_merge(void *base, size_t n, size_t size, sort_cmp_fn cmp);
/* sort_heap is in place, not stable, O(n log n) worst case. */
void sort_heap(void *base, size_t n, size_t size, sort_cmp_fn cmp);
/* sort_insertion is stable, for short or nearly sorted arrays. */
void sort_insertion(void *base, size_t n, size_t size, sort_cmp_fn cmp);
/* sort_quick_i64: introsort (quicksort, median of three, heapsort fallback). */
void sort_quick_i64(int64_t *a, size_t n);
/* sort_radix_u32/u64: LSD radix sort; -1 if scratch allocation fails. */
int sort_radix_u32(uint32_t *a, size_t n);
int sort_radix_u64(uint64_t *a, size_t n);
int sort_is_sorted_i64(const int64_t *a, size_t n);
/* sort_unique_i64 removes adjacent duplicates; returns the new length. */
size_t sort_unique_i64(int64_t *a, size_t n);
/* sort_bsearch_i64 returns the index of key or -1. */
long sort_bsearch_i64(const int64_t *a, size_t n, int64_t key);

#endif
