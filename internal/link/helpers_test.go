package link

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// guestCFlags are docs/formats.md's guest flags, without the stack
// protector (these test guests set up no TLS for its canary).
var guestCFlags = []string{"-O2", "-ffreestanding", "-nostdlib", "-fpie", "-mno-red-zone",
	"-ffunction-sections", "-fdata-sections", "-fno-plt", "-fno-stack-protector", "-fcommon"}

func needToolchain(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"gcc", "ld", "objcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
}

func run(t testing.TB, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// buildLib compiles C source into dir/libNAME.o the way Unikraft builds a
// library: compile, then `ld -r` into one relocatable object.
func buildLib(t testing.TB, dir, name, src string, cflags ...string) string {
	t.Helper()
	c := filepath.Join(dir, name+".c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, name+".c.o")
	flags := cflags
	if flags == nil {
		flags = guestCFlags
	}
	run(t, dir, "gcc", append(append([]string{}, flags...), "-c", c, "-o", tmp)...)
	out := filepath.Join(dir, "lib"+name+".o")
	run(t, dir, "ld", "-r", tmp, "-o", out)
	return out
}

// The test guest: a tiny Unikraft-shaped unikernel that prints through
// COM1 and exits through port 0x501, like the real guest (docs/guest-abi.md).
const (
	srcPlat = `
__asm__(".section .text._start,\"ax\",@progbits\n"
        ".globl _start\n_start:\n"
        "  andq $-16, %rsp\n  call boot_run\n1: hlt\n  jmp 1b\n");
void plat_putc(char c) { __asm__ volatile("outb %0, %1" :: "a"(c), "Nd"((unsigned short)0x3f8)); }
void plat_exit(int code) {
	__asm__ volatile("outl %0, %1" :: "a"(code), "Nd"((unsigned short)0x501));
	for (;;) __asm__ volatile("hlt");
}
const char plat_banner[] = "plat";
`
	srcBoot = `
typedef void (*ctor_fn)(void);
extern ctor_fn __init_array_start[], __init_array_end[];
extern int main(void);
extern void plat_exit(int);
int boot_ctors;
void boot_run(void) {
	for (ctor_fn *c = __init_array_start; c < __init_array_end; c++) {
		(*c)();
		boot_ctors++;
	}
	plat_exit(main());
}
`
	srcLibc = `
extern void plat_putc(char);
typedef unsigned long size_t;
size_t strlen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }
void *memset(void *d, int c, size_t n) { unsigned char *p = d; while (n--) *p++ = (unsigned char)c; return d; }
void *memcpy(void *d, const void *s, size_t n) { unsigned char *p = d; const unsigned char *q = s; while (n--) *p++ = *q++; return d; }
static const char digits[] = "0123456789abcdef";
const char *libc_names[] = {"zero", "one", "two"};  /* .data.rel.ro: absolute addresses */
int puts(const char *s) { while (*s) plat_putc(*s++); plat_putc('\n'); return 0; }
void put_hex(unsigned long v) {
	char buf[17]; int i = 16; buf[16] = 0;
	do { buf[--i] = digits[v & 15]; v >>= 4; } while (v);
	puts(buf + i);
}
`
	srcRand = `
static unsigned long state;
static const unsigned long mult[4] = {6364136223846793005UL, 1442695040888963407UL, 3, 5};
__attribute__((constructor)) static void rand_seed(void) { state = 42; }
unsigned long rand_next(void) { state = state * mult[0] + mult[1]; return state >> 33; }
`
	srcAlloc = `
static char arena[1 << 16];
static unsigned long used;
extern void *memset(void *, int, unsigned long);
int alloc_ready;
__attribute__((constructor)) static void alloc_init(void) { alloc_ready = 1; }
void *malloc(unsigned long n) {
	n = (n + 15) & ~15UL;
	if (used + n > sizeof arena) return 0;
	void *p = arena + used; used += n;
	return memset(p, 0, n);
}
`
	srcApp = `
extern int puts(const char *);
extern void put_hex(unsigned long);
extern void *malloc(unsigned long);
extern void *memcpy(void *, const void *, unsigned long);
extern const char *libc_names[];
extern int alloc_ready, boot_ctors;
int main(void) {
	char *s = malloc(32);
	memcpy(s, "hello from the app", 19);
	puts(s);
	puts(libc_names[2]);
	put_hex(alloc_ready * 0x100 + 0xabc);
	return 7;
}
`
)

// guest builds the test guest's objects into dir; with rand, also ukrand.
type guest struct {
	plat, boot, libc, rand, alloc, app string
}

func buildGuest(t testing.TB, dir string) guest {
	t.Helper()
	return guest{
		plat:  buildLib(t, dir, "ukplat", srcPlat),
		boot:  buildLib(t, dir, "ukboot", srcBoot),
		libc:  buildLib(t, dir, "libc", srcLibc),
		rand:  buildLib(t, dir, "ukrand", srcRand),
		alloc: buildLib(t, dir, "ukalloc", srcAlloc),
		app:   buildLib(t, dir, "apphello", srcApp),
	}
}

// objects is the link order without ukrand (or with it, in the middle).
func (g guest) objects(withRand bool) []Object {
	paths := []string{g.plat, g.boot, g.libc}
	if withRand {
		paths = append(paths, g.rand)
	}
	paths = append(paths, g.alloc, g.app)
	objs, err := ObjectsFromPaths(paths, nil, nil, "")
	if err != nil {
		panic(err)
	}
	return objs
}

func mustLink(t testing.TB, opt Options) *Result {
	t.Helper()
	res, err := Link(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
