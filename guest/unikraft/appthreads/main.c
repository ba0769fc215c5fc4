/* appthreads: uksched + ukschedcoop threads. */
#include <stdio.h>
#include <uk/sched.h>
#include <uk/thread.h>
#include "common.h"

static volatile unsigned int total;
static volatile int finished;

static __noreturn void worker(void *arg)
{
	unsigned int k = (unsigned int)(unsigned long)arg;

	for (unsigned int i = 0; i < 1000; i++) {
		total += k;
		if (i % 100 == 0)
			uk_sched_yield();
	}
	finished++;
	uk_sched_thread_exit();
}

int main(int argc, char *argv[])
{
	struct uk_sched *s = uk_sched_current();

	for (unsigned long k = 1; k <= 4; k++)
		if (!uk_sched_thread_create(s, worker, (void *)k, "worker"))
			return 1;
	while (finished < 4)
		uk_sched_yield();
	return report("appthreads", argc, argv, total);
}
