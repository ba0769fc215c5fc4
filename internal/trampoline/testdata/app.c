/* The app: calls every test function of library a and prints the results
   with raw system calls (a static Linux program, no libc). */
typedef int (*binop)(int, int);
int a_call(int), a_tail(int), a_load(void), a_apply(int, int, int), a_hook(int);
binop a_fp(void);
void a_store(int);
long a_wide(long), a_half(long), a_app(long);
long a_jcc(long, long), a_plaincall(long, long), a_dsjmp(long, long), a_abs32(void), a_abs64(void), a_abs32s(void), a_absidx(long),
    a_absdisp(void), a_absbase(long), a_absbi(long, long), a_pushabs(void),
    a_storeabs(long, long), a_cmpflags(void), a_loadr10(void), a_addmem(long), a_callmem(long), a_jmpmem(long),
    a_jmptab(long), a_leaext(long, long), a_redzone(void), a_aluimm(void *), a_aluimm_rax(void *), a_memimm(void),
    a_sse(long), a_gotadd(void), a_gotcall(long), a_gotcmp(void), a_weak(void), a_local(void);
extern int b_counter, b_array[];
long a_tls_gd(long), a_tls_ie(long), a_tls_desc(long);

long app_cb(long x) { return x * 7; }

static long sys(long n, long a, long b, long c) {
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}

static char buf[4096];
static int pos;

static void put(const char *s) {
	while (*s)
		buf[pos++] = *s++;
}

static void num(long v) {
	char t[24];
	int n = 0;
	if (v < 0) {
		buf[pos++] = '-';
		v = -v;
	}
	do
		t[n++] = '0' + v % 10;
	while ((v /= 10) != 0);
	while (n)
		buf[pos++] = t[--n];
}

#define SHOW(name, expr) \
	do { \
		put(name "="); \
		num(expr); \
		put("\n"); \
	} while (0)

void app_main(void) {
	SHOW("call", a_call(4));
	SHOW("tail", a_tail(5));
	SHOW("fp", a_fp()(6, 7));
	SHOW("load", a_load());
	a_store(9);
	SHOW("store", a_load());
	SHOW("apply0", a_apply(0, 3, 4));
	SHOW("apply1", a_apply(1, 3, 4));
	SHOW("hook", a_hook(1));
	SHOW("wide", a_wide(234));
	SHOW("half", a_half(44));
	SHOW("app", a_app(3));
	SHOW("jcc0", a_jcc(0, 5));
	SHOW("jcc1", a_jcc(2, 5));
	SHOW("plaincall", a_plaincall(30, 3));
	SHOW("dsjmp", a_dsjmp(6, 8));
	SHOW("abs32", a_abs32());
	SHOW("abs64", a_abs64());
	SHOW("abs32s", a_abs32s());
	SHOW("absidx", a_absidx(3));
	SHOW("absdisp", a_absdisp());
	SHOW("absbase", a_absbase(8));
	SHOW("absbi", a_absbi(4, 2));
	SHOW("pushabs", a_pushabs());
	SHOW("storeabs", a_storeabs(20, 22));
	SHOW("loadr10", a_loadr10());
	SHOW("cmpflags", a_cmpflags());
	a_store(5);
	SHOW("cmpflags5", a_cmpflags());
	SHOW("addmem", a_addmem(3));
	SHOW("callmem", a_callmem(2));
	SHOW("jmpmem", a_jmpmem(3));
	SHOW("jmptab0", a_jmptab(0));
	SHOW("jmptab1", a_jmptab(1));
	SHOW("leaext", a_leaext(6, 9));
	SHOW("redzone", a_redzone());
	SHOW("aluimm", a_aluimm(&b_counter));
	SHOW("aluimm_no", a_aluimm(b_array));
	SHOW("aluimm_rax", a_aluimm_rax(&b_array[3]));
	SHOW("memimm", a_memimm());
	SHOW("sse", a_sse(10));
	SHOW("gotadd", a_gotadd());
	SHOW("gotcall", a_gotcall(2));
	SHOW("gotcmp", a_gotcmp());
	SHOW("weak", a_weak());
	SHOW("tls_gd", a_tls_gd(5));
	SHOW("tls_ie", a_tls_ie(7));
	SHOW("tls_desc", a_tls_desc(9));
	SHOW("local", a_local());
	sys(1, 1, (long)buf, pos);
	sys(231, 0, 0, 0);
}
