/* appbss: an app whose code refers to its own .bss (and .data), as
 * appthreads' counters do: compiled by the test with Unikraft's x86_64
 * code generation flags and linked as the app of a Unikraft build. */
int printf(const char *fmt, ...);

static volatile unsigned int counter;       /* .bss */
static volatile unsigned int buffer[300];   /* .bss, more than a page */
static volatile unsigned int seed = 12345;  /* .data */

int main(int argc, char *argv[])
{
	(void)argv;
	for (int i = 0; i < 300; i++)
		buffer[i] = seed + (unsigned int)i + (unsigned int)argc;
	for (int i = 0; i < 300; i++)
		counter += buffer[i];
	printf("appbss %08x\n", counter);
	return 0;
}
