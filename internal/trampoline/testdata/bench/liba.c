/* Library a of the cost benchmark: one loop per kind of site. Built with
   the guest flags (-fno-plt): calls become "call *slot(%rip)" in place. */
extern volatile long b_counter;
long b_add(long, long);

long loop_callslot(long n) {
	long s = 0;
	for (long i = 0; i < n; i++)
		s = b_add(s, i);
	return s;
}

long loop_load(long n) {
	long s = 0;
	for (long i = 0; i < n; i++)
		s += b_counter; /* mov b_counter(%rip),%reg */
	return s;
}

long loop_rmw(long n) {
	for (long i = 0; i < n; i++)
		b_counter += i; /* read-modify-write through a scratch register */
	return b_counter;
}

long loop_local(long n) {
	static volatile long mine;
	long s = 0;
	for (long i = 0; i < n; i++)
		s += mine; /* the same load inside the library: no site */
	return s;
}
