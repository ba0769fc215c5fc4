/* Library b of the cost benchmark: what the loops reach across libraries. */
volatile long b_counter;
long b_add(long x, long y) { return x + y; }
