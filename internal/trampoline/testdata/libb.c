/* Library b: the target of every cross-library reference in the tests. */
int b_counter = 5;
int b_array[4] = {1, 2, 3, 4};
long b_wide = 1000;
double b_half = 0.5;

int b_add(int x, int y) { return x + y; }
int b_mul(int x, int y) { return x * y; }

/* A function pointer in b's data: an absolute address in a private part. */
int (*b_hook)(int, int) = b_add;

/* An event as Unikraft's event.h makes it: a header holding the end of
   its handler list, which follows it (liba's a_memimm compares the two). */
long b_event[3] = {0, 7, 8};
long *b_event_end = &b_event[3];
long *b_event_last;

/* Thread-local: a's accesses are relaxed by ld to thread-pointer offsets. */
__thread long b_tls;
