/* appring: a ukring buffer from the default allocator. */
#include <stdio.h>
#include <stdint.h>
#include <uk/alloc.h>
#include <uk/ring.h>
#include "common.h"

int main(int argc, char *argv[])
{
	struct uk_ring *r = uk_ring_alloc(64, uk_alloc_get_default());
	unsigned int work = 0;
	void *v;

	if (!r)
		return 1;
	for (uintptr_t i = 1; i <= 50; i++)
		if (uk_ring_enqueue(r, (void *)i))
			return 1;
	while ((v = uk_ring_dequeue_sc(r)))
		work += (unsigned int)(uintptr_t)v;
	uk_ring_free(r, uk_alloc_get_default());
	return report("appring", argc, argv, work);
}
