/* ukallocbuddy: a binary buddy allocator.
 *
 * Blocks are powers of two, from 2^BUDDY_MIN_ORDER bytes up, each aligned
 * to its own size in absolute terms, so a block's buddy is addr ^ size and
 * memalign is just a bigger order. A side table holds one byte per
 * minimum-size block: nonzero only where a block starts, giving its order
 * and whether it is free. Nothing is stored in front of a payload, so a
 * 4 KiB request takes exactly a 4 KiB block.
 *
 * The table runs downwards and ends where the allocator's state starts,
 * which the blocks follow on the same page, a quarter into it: the state,
 * the first blocks' entries, a quarter page of small blocks and a first
 * block of up to half a page (stdout's, made before any request) are one
 * page that every request writes, not two.
 *
 * The heap is handed out from its low end as it is needed: [start, top) is
 * tiled by blocks (in use or on a free list), [top, end) is untouched, and
 * neither it nor its part of the table is ever read or written until a
 * request needs it. Memory a guest does not use then costs the host
 * nothing: the table (heap/33 bytes) and the free blocks of a heap cut up
 * in advance would otherwise be written, and on some hosts (no shared zero
 * page) even reading fresh memory makes it resident. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uk/alloc.h>

#ifndef BUDDY_MIN_ORDER
#define BUDDY_MIN_ORDER 5
#endif
#if BUDDY_MIN_ORDER < 4 || BUDDY_MIN_ORDER > 12
#error "BUDDY_MIN_ORDER must be in [4, 12]: blocks hold two list pointers and are 16-aligned"
#endif
#define MIN_SIZE ((uintptr_t)1 << BUDDY_MIN_ORDER)
#define MAX_ORDER 46 /* 64 TiB */
#define PAGE_SIZE ((uintptr_t)4096) /* what free-page reporting gives back */

#define META_FREE 0x80
#define META_ORDER(m) (((m) & 0x3f) - 1)
#define META(k, free) ((uint8_t)(((k) + 1) | ((free) ? META_FREE : 0)))

/* A free block's list links: the block's first 16 bytes, or for a block
 * of order TABLE_LINKS_ORDER and up, bytes LINK_OFF.. of its entries in
 * the table, which are otherwise zero (one byte per MIN_SIZE block, only
 * the first used). Such a block then holds nothing of the allocator's, so
 * free-page reporting can give back every whole page of it, its first
 * too: a freed buffer keeps none of its pages resident. */
struct free_block {
	uintptr_t next, prev; /* block addresses, 0 at the ends */
};
#define LINK_OFF 8
#define TABLE_LINKS_ORDER (BUDDY_MIN_ORDER + 5) /* 32 table bytes: room for both */

struct buddy {
	uintptr_t start, end;  /* managed bytes, MIN_SIZE aligned */
	uintptr_t top;         /* [start, top) is tiled by blocks; above: untouched */
	uintptr_t clean;       /* from here up the heap and its table entries are zero (never written) */
	uint8_t *meta_end;     /* one byte per MIN_SIZE block of [start, end), downwards from here (M) */
	uintptr_t free[MAX_ORDER + 1]; /* list heads: block addresses */
	size_t free_bytes;
};

/* The state lives in the heap it manages (init), between the first table
 * entries and the first blocks, not in the library's data: every
 * allocation writes it, so a page of its own in the data arena would be
 * one more page each instance copies from a snapshot; the page of the
 * first blocks is written anyway. Only the pointer is static, set before
 * the ready point. */
static struct buddy none, *bs = &none;
#define B (*bs)
/* The table entry of block index i: the table runs down from meta_end. */
#define M(i) (B.meta_end[-1 - (ptrdiff_t)(i)])

static size_t idx(uintptr_t a)
{
	return (a - B.start) >> BUDDY_MIN_ORDER;
}

/* Where the links of the free order-k block at a are: its entries
 * LINK_OFF.. LINK_OFF+15, the bytes from meta_end - idx - LINK_OFF - 16 up
 * (the table runs down). meta_end is 8-byte aligned (struct buddy starts
 * there) and a table-linked block's index is a multiple of 32, so the
 * links are aligned. */
static struct free_block *links(int k, uintptr_t a)
{
	if (k >= TABLE_LINKS_ORDER)
		return (struct free_block *)(void *)(B.meta_end - idx(a) - LINK_OFF - sizeof(struct free_block));
	return (struct free_block *)a;
}

static void list_push(int k, uintptr_t a)
{
	struct free_block *b = links(k, a);
	b->prev = 0;
	b->next = B.free[k];
	if (b->next)
		links(k, b->next)->prev = a;
	B.free[k] = a;
	M(idx(a)) = META(k, 1);
	B.free_bytes += (size_t)1 << k;
}

static void list_remove(int k, uintptr_t a)
{
	struct free_block *b = links(k, a);
	if (b->prev)
		links(k, b->prev)->next = b->next;
	else
		B.free[k] = b->next;
	if (b->next)
		links(k, b->next)->prev = b->prev;
	if (k >= TABLE_LINKS_ORDER)
		b->next = b->prev = 0; /* a block's entries past its first are zero */
	M(idx(a)) = 0;
	B.free_bytes -= (size_t)1 << k;
}

static int order_for(size_t size)
{
	if (size <= MIN_SIZE)
		return BUDDY_MIN_ORDER;
	if (size > ((size_t)1 << MAX_ORDER))
		return -1;
	return 64 - __builtin_clzll((unsigned long long)size - 1);
}

static void init(void *base, size_t len);

void uk_alloc_init(void *base, size_t len)
{
	init(base, len);
	B.clean = B.end; /* nothing known: clear whatever is taken in */
}

void uk_alloc_init_zeroed(void *base, size_t len)
{
	init(base, len);
	B.clean = B.start;
}

static void init(void *base, size_t len)
{
	uintptr_t lo = (uintptr_t)base, hi = lo + len;
	bs = &none;
	if (hi < lo || hi - lo < PAGE_SIZE + sizeof(struct buddy) + 4 * MIN_SIZE) {
		memset(&none, 0, sizeof none);
		return;
	}
	/* The table needs a byte per block of what follows it, so
	 * len / (MIN_SIZE + 1) + 1 bytes suffice; it is cleared only as the
	 * heap is taken into use (take_up), so memory need not be fresh. It
	 * runs down from the state, and the blocks start right after the
	 * state, a quarter into a page: a first block of up to half a page
	 * (stdout's) goes to the page's second half, the small blocks made
	 * next fill the quarter before it, and all of them share the page
	 * with the state and the entries of the first 600 blocks. (Up to a
	 * page of the heap is left out for that.) */
	size_t nmeta = len / (MIN_SIZE + 1) + 1;
	uintptr_t st = lo + nmeta + sizeof(struct buddy);
	st += (PAGE_SIZE / 4 - st) & (PAGE_SIZE - 1);
	if (st >= hi || st < lo) {
		memset(&none, 0, sizeof none);
		return;
	}
	bs = (struct buddy *)(st - sizeof(struct buddy));
	memset(bs, 0, sizeof *bs);
	B.meta_end = (uint8_t *)bs;
	B.start = st;
	B.end = hi & ~(MIN_SIZE - 1);
	if (B.start >= B.end) {
		B.start = B.end = 0;
		return;
	}
	B.top = B.start;
}

/* Moves the top up to t (MIN_SIZE aligned, at most end), clearing the
 * table entries of what it takes in (nothing there is a block yet) where
 * they may have been written: never above the clean mark, so that a large
 * block's table entries, all zero but its first, stay untouched pages. */
static void take_up(uintptr_t t)
{
	uintptr_t dirty = t < B.clean ? t : B.clean;
	if (dirty > B.top)
		memset(B.meta_end - idx(dirty), 0, idx(dirty) - idx(B.top));
	B.top = t;
	if (t > B.clean)
		B.clean = t;
}

static void free_block(uintptr_t a, int k);

/* A new block of order k from above the top, or 0 if it does not fit. The
 * gap below it, left by its alignment, goes to the free lists. */
static uintptr_t carve(int k)
{
	uintptr_t size = (uintptr_t)1 << k;
	uintptr_t a = (B.top + size - 1) & ~(size - 1);
	if (a < B.top || a > B.end || B.end - a < size)
		return 0;
	uintptr_t gap = B.top;
	take_up(a + size);
	/* The gap as the largest self-aligned blocks that fit, each freed (a
	 * free block of its own size may end where the gap starts). */
	while (gap < a) {
		int j = __builtin_ctzll(gap);
		if (j > MAX_ORDER)
			j = MAX_ORDER;
		while (gap + ((uintptr_t)1 << j) > a)
			j--;
		free_block(gap, j);
		gap += (uintptr_t)1 << j;
	}
	return a;
}

/* The free buddy of the order-k block at a, or 0. */
static uintptr_t free_buddy(uintptr_t a, int k)
{
	if (k >= MAX_ORDER)
		return 0;
	uintptr_t b = a ^ ((uintptr_t)1 << k);
	if (b < B.start || b + ((uintptr_t)1 << k) > B.top)
		return 0;
	return M(idx(b)) == META(k, 1) ? b : 0;
}

/* A block of order k: the smallest free one that fits, split down, else a
 * new one from above the top. */
static void *alloc_order(int k)
{
	if (k > MAX_ORDER)
		return NULL;
	int j = k;
	while (j <= MAX_ORDER && !B.free[j])
		j++;
	if (j > MAX_ORDER) {
		uintptr_t a = carve(k);
		if (!a)
			return NULL;
		M(idx(a)) = META(k, 0);
		return (void *)a;
	}
	uintptr_t a = B.free[j];
	list_remove(j, a);
	while (j > k) {
		j--;
		list_push(j, a + ((uintptr_t)1 << j));
	}
	M(idx(a)) = META(k, 0);
	return (void *)a;
}

void *uk_alloc_malloc(size_t size)
{
	int k = order_for(size);
	return k < 0 ? NULL : alloc_order(k);
}

/* The order of the allocated block at p; traps on anything else, since
 * freeing a pointer the allocator did not hand out corrupts the heap. */
static int block_order(void *p)
{
	uintptr_t a = (uintptr_t)p;
	if (a < B.start || a >= B.top || (a & (MIN_SIZE - 1)))
		__builtin_trap();
	uint8_t m = M(idx(a));
	if (!m || (m & META_FREE))
		__builtin_trap();
	return META_ORDER(m);
}

static void free_block(uintptr_t a, int k)
{
	uintptr_t b;
	while ((b = free_buddy(a, k))) {
		list_remove(k, b);
		M(idx(a > b ? a : b)) = 0;
		a = a < b ? a : b;
		k++;
	}
	if (a + ((uintptr_t)1 << k) != B.top) {
		list_push(k, a);
		return;
	}
	/* The last block goes back above the top, and so does every free
	 * block that then ends at the top: memory freed at the end of the
	 * heap can be carved again in any size. */
	M(idx(a)) = 0;
	B.top = a;
	for (int j = BUDDY_MIN_ORDER; j <= MAX_ORDER; j++) {
		uintptr_t x = B.top - ((uintptr_t)1 << j);
		if (x < B.start || x > B.top)
			break;
		if ((x & (((uintptr_t)1 << j) - 1)) || M(idx(x)) != META(j, 1))
			continue;
		list_remove(j, x);
		B.top = x;
		j = BUDDY_MIN_ORDER - 1;
	}
}

void uk_alloc_free(void *p)
{
	if (!p)
		return;
	int k = block_order(p);
	M(idx((uintptr_t)p)) = 0;
	free_block((uintptr_t)p, k);
}

void *uk_alloc_calloc(size_t size)
{
	uintptr_t clean = B.clean;
	void *p = uk_alloc_malloc(size);
	uintptr_t a = (uintptr_t)p;
	if (p && a < clean)
		memset(p, 0, clean - a < size ? clean - a : size);
	return p;
}

size_t uk_alloc_usable_size(void *p)
{
	return p ? (size_t)1 << block_order(p) : 0;
}

void *uk_alloc_realloc(void *p, size_t size)
{
	if (!p)
		return uk_alloc_malloc(size);
	if (!size) {
		uk_alloc_free(p);
		return NULL;
	}
	uintptr_t a = (uintptr_t)p;
	int k = block_order(p), want = order_for(size);
	if (want < 0)
		return NULL;
	if (want <= k) {
		/* Shrink: hand the upper halves back. */
		while (k > want) {
			k--;
			list_push(k, a + ((uintptr_t)1 << k));
		}
		M(idx(a)) = META(k, 0);
		return p;
	}
	/* Grow in place while we are the lower buddy and the upper is free. */
	int g = k;
	while (g < want && !(a & ((uintptr_t)1 << g))) {
		uintptr_t b = a + ((uintptr_t)1 << g);
		if (b == B.top && B.end - b >= ((uintptr_t)1 << g)) {
			take_up(b + ((uintptr_t)1 << g)); /* the buddy is untouched */
		} else {
			if (!free_buddy(a, g))
				break;
			list_remove(g, b);
		}
		g++;
	}
	M(idx(a)) = META(g, 0);
	if (g == want)
		return p;
	void *q = alloc_order(want);
	if (!q)
		return NULL; /* p stays valid (possibly larger now) */
	memcpy(q, p, (size_t)1 << k);
	uk_alloc_free(p);
	return q;
}

void *uk_alloc_memalign(size_t align, size_t size)
{
	if (!align || (align & (align - 1)))
		return NULL;
	int k = order_for(size);
	if (k < 0)
		return NULL;
	int ka = __builtin_ctzll(align);
	return alloc_order(k > ka ? k : ka);
}

size_t uk_alloc_free_bytes(void)
{
	return B.free_bytes + (B.end - B.top);
}

void uk_alloc_walk_free(void (*fn)(void *addr, size_t len, void *arg), void *arg)
{
	for (int k = BUDDY_MIN_ORDER; k <= MAX_ORDER; k++)
		for (uintptr_t b = B.free[k]; b; b = links(k, b)->next) {
			size_t off = k >= TABLE_LINKS_ORDER ? 0 : sizeof(struct free_block);
			if (((size_t)1 << k) > off)
				fn((void *)(b + off), ((size_t)1 << k) - off, arg);
		}
	/* Freed at the end of the heap: written, now above the top, and its
	 * table entries, all zero now. take_up clears entries below the clean
	 * mark before any is read and calloc clears memory below it, so all of
	 * that may read back as anything. The mark first moves up to whole
	 * pages of both (what is above it was never written: only its zeros
	 * are lost, and they are cleared again when taken in), so that the
	 * pages it ends in are reported too. */
	if (B.clean > B.top) {
		uintptr_t c = (B.clean + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
		/* The table runs down: the entries of [top, clean) end at
		 * meta_end - idx(top) and start at meta_end - idx(clean), which
		 * moves down to a page boundary. */
		uintptr_t t = (uintptr_t)(B.meta_end - idx(B.clean)) & ~(PAGE_SIZE - 1);
		uintptr_t ct = B.start + (((uintptr_t)B.meta_end - t) << BUDDY_MIN_ORDER);
		if (ct > c)
			c = ct;
		if (c > B.end || c < B.clean)
			c = B.end;
		B.clean = c;
		fn((void *)B.top, B.clean - B.top, arg);
		fn(B.meta_end - idx(B.clean), idx(B.clean) - idx(B.top), arg);
	}
}

int uk_alloc_check(void)
{
	size_t free_seen = 0, nfree[MAX_ORDER + 1] = {0};
	if (B.top < B.start || B.top > B.end || (B.top & (MIN_SIZE - 1)))
		return -10;
	for (uintptr_t a = B.start; a < B.top;) {
		uint8_t m = M(idx(a));
		if (!m)
			return -1; /* a gap between blocks */
		int k = META_ORDER(m);
		uintptr_t sz = (uintptr_t)1 << k;
		if (k < BUDDY_MIN_ORDER || k > MAX_ORDER || (a & (sz - 1)))
			return -2; /* bad order or misaligned block */
		if (a + sz > B.top)
			return -3;
		for (uintptr_t i = a + MIN_SIZE; i < a + sz; i += MIN_SIZE) {
			size_t e = idx(i) - idx(a);
			if ((m & META_FREE) && k >= TABLE_LINKS_ORDER && e >= LINK_OFF &&
			    e < LINK_OFF + sizeof(struct free_block))
				continue; /* its list links */
			if (M(idx(i)))
				return -4; /* a block start inside a block */
		}
		if (m & META_FREE) {
			if (free_buddy(a, k))
				return -5; /* two free buddies left unmerged */
			free_seen += sz;
			nfree[k]++;
		}
		a += sz;
	}
	for (int k = 0; k <= MAX_ORDER; k++) {
		size_t n = 0;
		for (uintptr_t b = B.free[k], prev = 0; b; prev = b, b = links(k, b)->next) {
			if (b < B.start || b >= B.top || (b & (MIN_SIZE - 1)) ||
			    M(idx(b)) != META(k, 1))
				return -6; /* listed but not a free block of this order */
			if (links(k, b)->prev != prev)
				return -8;
			if (++n > nfree[k])
				return -7;
		}
		if (n != nfree[k])
			return -7; /* a free block missing from its list */
	}
	return free_seen == B.free_bytes ? 0 : -9;
}
