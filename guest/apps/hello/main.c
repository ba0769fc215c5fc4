/* hello: the smallest FaaS function: greets its input. */
#include <stdio.h>
#include <stdlib.h>
#include <ukargs.h>

int main(int argc, char **argv)
{
	char *who = args_join(argc, argv, 1);

	if (!who)
		return 1;
	printf("Hello, %s!\n", who[0] ? who : "world");
	free(who);
	return 0;
}
