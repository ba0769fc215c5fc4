/* Library a: what gcc makes of cross-library references (guest flags). */
extern int b_counter, b_array[];
extern long b_wide;
extern double b_half;
int b_add(int, int);
int b_mul(int, int);
extern int (*b_hook)(int, int);
long app_cb(long);

typedef int (*binop)(int, int);

/* A function-pointer array in data: absolute addresses in a's private part. */
binop a_ops[] = {b_add, b_mul};

__attribute__((noinline)) int a_call(int x) { return b_add(x, 1) * 2; }
__attribute__((noinline)) int a_tail(int x) { return b_mul(x, 3); }
__attribute__((noinline)) binop a_fp(void) { return b_add; }
__attribute__((noinline)) int a_load(void) { return b_counter + b_array[2]; }
__attribute__((noinline)) void a_store(int v) { b_counter = v; }
__attribute__((noinline)) int a_apply(int i, int x, int y) { return a_ops[i](x, y); }
__attribute__((noinline)) int a_hook(int x) { return b_hook(x, 10); }
__attribute__((noinline)) long a_wide(long v) { b_wide += v; return b_wide; }
__attribute__((noinline)) long a_half(long x) { return (long)(x * b_half); }
/* A library calling into the app region (as ukboot calls main). */
__attribute__((noinline)) long a_app(long x) { return app_cb(x) + 1; }
