/* appsglist: a scatter-gather list over three buffers. */
#include <stdio.h>
#include <uk/alloc.h>
#include <uk/sglist.h>
#include "common.h"

static char a[100], b[200], c[300];

int main(int argc, char *argv[])
{
	struct uk_alloc *al = uk_alloc_get_default();
	struct uk_sglist *sg = uk_sglist_alloc(al, 8);
	unsigned int work;

	if (!sg)
		return 1;
	if (uk_sglist_append(sg, a, sizeof(a)) || uk_sglist_append(sg, b, sizeof(b)) ||
	    uk_sglist_append(sg, c, sizeof(c)))
		return 1;
	work = (unsigned int)uk_sglist_length(sg) + sg->sg_nseg;
	uk_sglist_free(sg, al);
	return report("appsglist", argc, argv, work);
}
