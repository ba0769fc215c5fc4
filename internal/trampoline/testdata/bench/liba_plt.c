/* Built without -fno-plt: "call b_add" (rel32) -> call stub -> jmp *slot. */
long b_add(long, long);

long loop_call(long n) {
	long s = 0;
	for (long i = 0; i < n; i++)
		s = b_add(s, i);
	return s;
}
