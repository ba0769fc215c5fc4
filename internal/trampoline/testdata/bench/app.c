/* The cost benchmark's app: runs the loop named by argv[1] argv[2] times. */
long loop_call(long), loop_callslot(long), loop_load(long), loop_rmw(long), loop_local(long);

static long sys(long n, long a, long b, long c) {
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}

void app_main(long *sp) {
	char **argv = (char **)(sp + 1);
	long n = 0, r = -1;
	if (sp[0] < 3)
		sys(231, 2, 0, 0);
	for (char *p = argv[2]; *p; p++)
		n = n * 10 + (*p - '0');
	switch (argv[1][0]) {
	case 'c': r = loop_call(n); break;
	case 's': r = loop_callslot(n); break;
	case 'l': r = loop_load(n); break;
	case 'm': r = loop_rmw(n); break;
	case 'o': r = loop_local(n); break;
	}
	sys(231, r == -1 ? 1 : 0, 0, 0);
}
