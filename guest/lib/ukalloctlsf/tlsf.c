/* ukalloctlsf: a Two-Level Segregated Fit allocator (Masmano et al., 2004).
 *
 * Free blocks sit in lists indexed by a first level (power of two of the
 * size) and a second level (2^TLSF_SL_LOG2 linear steps inside it); two
 * bitmap levels find a fitting list in O(1). Every block starts with a
 * 16-byte header (previous physical block, payload size | FREE) so
 * payloads stay 16-byte aligned; free blocks keep their list links in the
 * payload. Neighbouring free blocks are always merged.
 *
 * The pool grows from its low end as requests need it: blocks tile
 * [first, top), and [top, end) is untouched, never read or written until a
 * request takes it in. A block freed at the top goes back to it. So a guest
 * pays for the heap it uses, not for the heap it was given (on a host
 * without a shared zero page, even reading fresh memory makes it
 * resident). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uk/alloc.h>

#ifndef TLSF_SL_LOG2
#define TLSF_SL_LOG2 5
#endif
#if TLSF_SL_LOG2 < 2 || TLSF_SL_LOG2 > 6
#error "TLSF_SL_LOG2 must be in [2, 6]"
#endif
#define SL_COUNT (1 << TLSF_SL_LOG2)
#define ALIGN_LOG2 4
#define ALIGN ((size_t)1 << ALIGN_LOG2)
/* Sizes below SMALL fall in first level 0, in SL_COUNT steps of ALIGN. */
#define FL_SHIFT (TLSF_SL_LOG2 + ALIGN_LOG2)
#define SMALL ((size_t)1 << FL_SHIFT)
#define FL_MAX 40 /* largest block: under 2^40 bytes */
#define FL_COUNT (FL_MAX - FL_SHIFT + 1)
#define MAX_SIZE (((size_t)1 << FL_MAX) - 1)

#define HDR 16
#define MIN_PAYLOAD 16 /* room for the two list links */
#define F_FREE ((size_t)1)

struct block {
	struct block *prev_phys;
	size_t size; /* payload bytes, a multiple of ALIGN, | F_FREE */
	struct block *next_free, *prev_free; /* free blocks only */
};

/* The control block lives in the heap it manages (init), not in the
 * library's data: every malloc and free writes it, so in the data arena its
 * page would be one more page each instance copies (from a snapshot, or
 * cold), while the page of the first blocks (stdout's, made before any
 * request) is written anyway. Its fixed part (struct tlsf: what every
 * malloc and free writes, and the bitmaps) sits a little into a page, the
 * first blocks right after it on the same page; the list heads run
 * downwards from it, small sizes first, so the heads of small blocks share
 * that page too and those of large ones lie on the pages below, written
 * only when a large block is free between used ones. A head is defined
 * only where its bitmap bit is set (an empty list's head is never read), so
 * the pages of heads of empty lists are garbage free-page reporting can give
 * back. Only the pointer is static, set before the ready point. */
struct tlsf {
	struct block *first;
	struct block *last; /* the block that ends at top, or NULL */
	uintptr_t top, end;
	uintptr_t clean; /* from here up the pool is zero (never written) */
	uintptr_t base;  /* the heap's start: [base, the heads) is never used */
	size_t free_bytes;
	uint64_t fl_bitmap;
	uint64_t sl_bitmap[FL_COUNT];
};
#define PAGE_SIZE ((uintptr_t)4096) /* what free-page reporting gives back */
#define HEADS_BYTES ((uintptr_t)FL_COUNT * SL_COUNT * sizeof(struct block *))
/* Where in its page struct tlsf starts: the heads of the smallest sizes
 * (blocks under 4 KiB with TLSF_SL_LOG2 5) lie before it on that page. */
#define HOT_HEADS_BYTES ((uintptr_t)1024)

static struct tlsf none, *tp = &none;
#define T (*tp)
/* The head of list (fl, sl): the heads run down from struct tlsf. Read it
 * only where its bit in sl_bitmap is set. */
#define HEAD(fl, sl) (((struct block **)(void *)tp)[-1 - ((ptrdiff_t)(fl) * SL_COUNT + (sl))])

static size_t bsize(const struct block *b)
{
	return b->size & ~F_FREE;
}

static int is_free(const struct block *b)
{
	return (b->size & F_FREE) != 0;
}

static void *payload(struct block *b)
{
	return (char *)b + HDR;
}

static struct block *from_payload(void *p)
{
	return (struct block *)((char *)p - HDR);
}

static struct block *next_phys(struct block *b)
{
	return (struct block *)((char *)b + HDR + bsize(b));
}

/* Makes p the physical predecessor of n, which may be the top. */
static void set_prev(struct block *n, struct block *p)
{
	if ((uintptr_t)n == T.top)
		T.last = p;
	else
		n->prev_phys = p;
}

static struct block *prev_of(struct block *n)
{
	return (uintptr_t)n == T.top ? T.last : n->prev_phys;
}

static int fls64(size_t x)
{
	return 63 - __builtin_clzll((unsigned long long)x);
}

static void mapping(size_t s, int *fl, int *sl)
{
	if (s < SMALL) {
		*fl = 0;
		*sl = (int)(s >> ALIGN_LOG2);
	} else {
		int f = fls64(s);
		*sl = (int)((s >> (f - TLSF_SL_LOG2)) ^ SL_COUNT);
		*fl = f - FL_SHIFT + 1;
	}
}

/* Rounds s up to the next list boundary, so that any block of the list
 * found is big enough. */
static size_t round_for_search(size_t s)
{
	if (s >= SMALL)
		s += ((size_t)1 << (fls64(s) - TLSF_SL_LOG2)) - 1;
	return s;
}

static void insert_free(struct block *b)
{
	int fl, sl;
	mapping(bsize(b), &fl, &sl);
	struct block *h = T.sl_bitmap[fl] & (1ULL << sl) ? HEAD(fl, sl) : NULL;
	b->size |= F_FREE;
	b->prev_free = NULL;
	b->next_free = h;
	if (h)
		h->prev_free = b;
	HEAD(fl, sl) = b;
	T.fl_bitmap |= 1ULL << fl;
	T.sl_bitmap[fl] |= 1ULL << sl;
	T.free_bytes += bsize(b);
}

static void remove_free(struct block *b)
{
	int fl, sl;
	mapping(bsize(b), &fl, &sl);
	if (b->prev_free)
		b->prev_free->next_free = b->next_free;
	else
		HEAD(fl, sl) = b->next_free;
	if (b->next_free)
		b->next_free->prev_free = b->prev_free;
	if (!HEAD(fl, sl)) {
		T.sl_bitmap[fl] &= ~(1ULL << sl);
		if (!T.sl_bitmap[fl])
			T.fl_bitmap &= ~(1ULL << fl);
	}
	b->size &= ~F_FREE;
	T.free_bytes -= bsize(b);
}

static struct block *find_free(size_t s)
{
	int fl, sl;
	mapping(round_for_search(s), &fl, &sl);
	if (fl >= FL_COUNT)
		return NULL;
	uint64_t slmap = T.sl_bitmap[fl] & (~0ULL << sl);
	if (!slmap) {
		uint64_t flmap = fl + 1 < 64 ? T.fl_bitmap & (~0ULL << (fl + 1)) : 0;
		if (!flmap)
			return NULL;
		fl = __builtin_ctzll(flmap);
		slmap = T.sl_bitmap[fl];
	}
	return HEAD(fl, __builtin_ctzll(slmap));
}

/* Frees the unlisted block b: merges it with free neighbours and lists
 * the result. */
static void release(struct block *b)
{
	struct block *n = next_phys(b);
	if ((uintptr_t)n != T.top && is_free(n)) {
		remove_free(n);
		b->size += HDR + bsize(n);
		set_prev(next_phys(b), b);
	}
	struct block *p = b->prev_phys;
	if (p && is_free(p)) {
		remove_free(p);
		p->size += HDR + bsize(b);
		set_prev(next_phys(p), p);
		b = p;
	}
	if ((uintptr_t)next_phys(b) == T.top) {
		/* The last block: back above the top (its predecessor is in
		 * use, free neighbours being merged). */
		T.top = (uintptr_t)b;
		T.last = b->prev_phys;
		return;
	}
	insert_free(b);
}

/* Trims the used block b to s payload bytes, releasing the rest. */
static void trim(struct block *b, size_t s)
{
	if (bsize(b) < s + HDR + MIN_PAYLOAD)
		return;
	struct block *r = (struct block *)((char *)payload(b) + s);
	r->size = bsize(b) - s - HDR;
	r->prev_phys = b;
	b->size = s;
	set_prev(next_phys(r), r);
	release(r);
}

static size_t adjust(size_t size)
{
	if (size > MAX_SIZE)
		return 0;
	size_t s = (size + ALIGN - 1) & ~(ALIGN - 1);
	return s < MIN_PAYLOAD ? MIN_PAYLOAD : s;
}

static void init(void *base, size_t len);

void uk_alloc_init(void *base, size_t len)
{
	init(base, len);
	if (tp != &none)
		T.clean = T.end; /* nothing known: clear whatever calloc hands out */
}

void uk_alloc_init_zeroed(void *base, size_t len)
{
	init(base, len);
	if (tp != &none)
		T.clean = T.top;
}

static void init(void *base, size_t len)
{
	/* none stays zero (bss, as loaded): no pool, every malloc fails.
	 * The heads need no clearing: a head is read only where its bitmap
	 * bit is set. */
	tp = &none;
	uintptr_t lo = (uintptr_t)base, hi = lo + len;
	if (hi < lo)
		return;
	/* struct tlsf at HOT_HEADS_BYTES into a page, all the heads below it
	 * in the heap. */
	uintptr_t t = lo + HEADS_BYTES;
	t += (HOT_HEADS_BYTES - t) & (PAGE_SIZE - 1);
	uintptr_t first = (t + sizeof(struct tlsf) + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1);
	hi &= ~(uintptr_t)(ALIGN - 1);
	if (t < lo || first < t || first > hi || hi - first < HDR + MIN_PAYLOAD)
		return;
	if (hi - first > HDR + MAX_SIZE)
		hi = first + HDR + (MAX_SIZE & ~(ALIGN - 1));
	tp = (struct tlsf *)t;
	memset(tp, 0, sizeof *tp);
	T.base = lo;
	T.first = (struct block *)first;
	T.top = first;
	T.end = hi;
}

/* The top only moves up past the clean mark by taking in untouched memory. */
static void raise_clean(void)
{
	if (T.top > T.clean)
		T.clean = T.top;
}

/* A block of at least s payload bytes, taken off the free lists or from
 * above the top; NULL if none fits. */
static struct block *take(size_t s)
{
	struct block *b = find_free(s);
	if (b) {
		remove_free(b);
		return b;
	}
	if (T.end - T.top < HDR + s)
		return NULL;
	b = (struct block *)T.top;
	b->prev_phys = T.last;
	b->size = s;
	T.top = (uintptr_t)next_phys(b);
	T.last = b;
	raise_clean();
	return b;
}

void *uk_alloc_malloc(size_t size)
{
	size_t s = adjust(size);
	if (!s)
		return NULL;
	struct block *b = take(s);
	if (!b)
		return NULL;
	trim(b, s);
	return payload(b);
}

/* The header of an allocated payload; traps on pointers the allocator did
 * not hand out (or already took back), which would corrupt the heap. */
static struct block *used_block(void *p)
{
	if (((uintptr_t)p & (ALIGN - 1)) || !T.first || (uintptr_t)p <= (uintptr_t)T.first ||
	    (uintptr_t)p >= T.top)
		__builtin_trap();
	struct block *b = from_payload(p);
	if (is_free(b) || !bsize(b) || (uintptr_t)next_phys(b) > T.top || prev_of(next_phys(b)) != b)
		__builtin_trap();
	return b;
}

void uk_alloc_free(void *p)
{
	if (!p)
		return;
	release(used_block(p));
}

void *uk_alloc_calloc(size_t size)
{
	uintptr_t clean = T.clean;
	void *p = uk_alloc_malloc(size);
	uintptr_t a = (uintptr_t)p;
	if (p && a < clean)
		memset(p, 0, clean - a < size ? clean - a : size);
	return p;
}

size_t uk_alloc_usable_size(void *p)
{
	return p ? bsize(used_block(p)) : 0;
}

void *uk_alloc_realloc(void *p, size_t size)
{
	if (!p)
		return uk_alloc_malloc(size);
	if (!size) {
		uk_alloc_free(p);
		return NULL;
	}
	struct block *b = used_block(p);
	size_t s = adjust(size);
	if (!s)
		return NULL;
	if (s <= bsize(b)) {
		trim(b, s);
		return p;
	}
	struct block *n = next_phys(b);
	if ((uintptr_t)n == T.top) {
		/* The last block grows into the untouched part. */
		if (T.end - (uintptr_t)payload(b) >= s) {
			b->size = s;
			T.top = (uintptr_t)next_phys(b);
			raise_clean();
			return p;
		}
	} else if (is_free(n) && bsize(b) + HDR + bsize(n) >= s) {
		remove_free(n);
		b->size += HDR + bsize(n);
		set_prev(next_phys(b), b);
		trim(b, s);
		return p;
	}
	void *q = uk_alloc_malloc(size);
	if (!q)
		return NULL;
	memcpy(q, p, bsize(b));
	release(b);
	return q;
}

void *uk_alloc_memalign(size_t align, size_t size)
{
	if (!align || (align & (align - 1)))
		return NULL;
	if (align <= ALIGN)
		return uk_alloc_malloc(size);
	size_t s = adjust(size);
	if (!s || align > MAX_SIZE / 4)
		return NULL;
	/* Room for the aligned payload plus a leading gap that can become a
	 * free block of its own. */
	size_t need = s + align + HDR + MIN_PAYLOAD;
	struct block *b = take(need);
	if (!b)
		return NULL;
	uintptr_t p = (uintptr_t)payload(b);
	uintptr_t a = (p + align - 1) & ~(uintptr_t)(align - 1);
	if (a != p && a - p < HDR + MIN_PAYLOAD)
		a += align;
	if (a != p) {
		/* Split off the gap; b's previous block is used (free blocks
		 * are always merged), so the gap is listed as is. */
		struct block *nb = from_payload((void *)a);
		nb->size = bsize(b) - (a - p);
		nb->prev_phys = b;
		set_prev(next_phys(nb), nb);
		b->size = a - p - HDR;
		release(b);
		b = nb;
	}
	trim(b, s);
	return payload(b);
}

size_t uk_alloc_free_bytes(void)
{
	size_t above = T.end - T.top;
	return T.free_bytes + (above > HDR ? above - HDR : 0);
}

void uk_alloc_walk_free(void (*fn)(void *addr, size_t len, void *arg), void *arg)
{
	if (tp == &none)
		return;
	for (int fl = 0; fl < FL_COUNT; fl++)
		for (uint64_t m = T.sl_bitmap[fl]; m; m &= m - 1)
			for (struct block *b = HEAD(fl, __builtin_ctzll(m)); b; b = b->next_free)
				if (bsize(b) > MIN_PAYLOAD)
					fn((char *)payload(b) + MIN_PAYLOAD, bsize(b) - MIN_PAYLOAD, arg);
	/* The whole pages below struct tlsf that hold no head of a
	 * non-empty list: garbage (the heads of empty lists, and the unused
	 * start of the heap). */
	uintptr_t pg = (T.base + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1), run = pg;
	uintptr_t below = (uintptr_t)tp & ~(PAGE_SIZE - 1);
	for (; pg < below; pg += PAGE_SIZE) {
		int used = 0;
		for (int fl = 0; fl < FL_COUNT && !used; fl++)
			for (uint64_t m = T.sl_bitmap[fl]; m && !used; m &= m - 1) {
				uintptr_t h = (uintptr_t)&HEAD(fl, __builtin_ctzll(m));
				used = h >= pg && h < pg + PAGE_SIZE;
			}
		if (used) {
			if (pg > run)
				fn((void *)run, pg - run, arg);
			run = pg + PAGE_SIZE;
		}
	}
	if (below > run)
		fn((void *)run, below - run, arg);
	/* Freed at the end of the pool: written, now above the top. calloc
	 * clears memory below the clean mark, so all of it may read back as
	 * anything; the mark first moves up to a whole page (what is above
	 * it was never written: only its zeros are lost, and calloc clears
	 * them again), so that the page it ends in is reported too. */
	if (T.clean > T.top) {
		uintptr_t c = (T.clean + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
		if (c > T.end || c < T.clean)
			c = T.end;
		T.clean = c;
		fn((void *)T.top, T.clean - T.top, arg);
	}
}

int uk_alloc_check(void)
{
	if (!T.first)
		return T.fl_bitmap ? -1 : 0;
	if (T.top < (uintptr_t)T.first || T.top > T.end)
		return -12;
	size_t free_seen = 0, nfree = 0;
	struct block *prev = NULL;
	for (struct block *b = T.first;; b = next_phys(b)) {
		if ((uintptr_t)b >= T.top) {
			if ((uintptr_t)b != T.top || T.last != prev)
				return -2; /* the chain overruns the top */
			if (prev && is_free(prev))
				return -6; /* a free last block belongs above the top */
			break;
		}
		if (b->prev_phys != prev)
			return -2; /* broken physical chain */
		if (((uintptr_t)payload(b)) & (ALIGN - 1) || bsize(b) & (ALIGN - 1))
			return -3;
		if (!bsize(b))
			return -6; /* no empty blocks */
		if (is_free(b)) {
			if (prev && is_free(prev))
				return -4; /* two free neighbours left unmerged */
			int fl, sl, found = 0;
			mapping(bsize(b), &fl, &sl);
			for (struct block *f = T.sl_bitmap[fl] & (1ULL << sl) ? HEAD(fl, sl) : NULL; f;
			     f = f->next_free)
				if (f == b)
					found = 1;
			if (!found)
				return -5; /* a free block missing from its list */
			free_seen += bsize(b);
			nfree++;
		}
		prev = b;
	}
	size_t listed = 0;
	for (int fl = 0; fl < FL_COUNT; fl++) {
		if (!!(T.fl_bitmap & (1ULL << fl)) != !!T.sl_bitmap[fl])
			return -7;
		for (int sl = 0; sl < SL_COUNT; sl++) {
			if (!(T.sl_bitmap[fl] & (1ULL << sl)))
				continue; /* an empty list: its head is garbage */
			struct block *h = HEAD(fl, sl);
			if (!h)
				return -8; /* bitmap disagrees with the list */
			for (struct block *f = h, *pf = NULL; f; pf = f, f = f->next_free) {
				int rfl, rsl;
				mapping(bsize(f), &rfl, &rsl);
				if (!is_free(f) || rfl != fl || rsl != sl || f->prev_free != pf)
					return -9;
				if (++listed > nfree)
					return -10;
			}
		}
	}
	if (listed != nfree)
		return -10;
	return free_seen == T.free_bytes ? 0 : -11;
}
