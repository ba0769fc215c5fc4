package testcli

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Hand-made guests for the end-to-end tests: C built with the system's gcc
// and ld against the guest ABI's ports, no runtime.

// GuestIO is guest-side port I/O (the guest ABI): the console, the exit
// port, a number printer and the TSC.
const GuestIO = `
static inline void outb(unsigned short p, unsigned char v) { __asm__ volatile("outb %0,%1" :: "a"(v), "Nd"(p)); }
static inline void outl(unsigned short p, unsigned v) { __asm__ volatile("outl %0,%1" :: "a"(v), "Nd"(p)); }
static void puts_(const char *s) { while (*s) outb(0x3f8, *s++); }
static void putn_(unsigned long n) { char b[24]; int i = 23; b[i] = 0; do { b[--i] = '0' + n % 10; n /= 10; } while (n); puts_(b + i); }
static void exit_(int code) { outl(0x501, code); for (;;) __asm__ volatile("hlt"); }
static inline unsigned long rdtsc_(void) { unsigned lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return (unsigned long)hi << 32 | lo; }
`

// NeedTools skips t unless every tool is installed.
func NeedTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
}

// Object compiles C source src into DIR/NAME.o, a relocatable object as a
// library of the map is built (position-independent, a section per
// function and object, no red zone), and returns its path.
func Object(t testing.TB, dir, name, src string) string {
	t.Helper()
	c, o, obj := filepath.Join(dir, name+".c"), filepath.Join(dir, name+"-cc.o"), filepath.Join(dir, name+".o")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{
		{"gcc", "-O2", "-ffreestanding", "-nostdlib", "-fpie", "-mno-red-zone", "-ffunction-sections",
			"-fdata-sections", "-fno-plt", "-fno-stack-protector", "-c", "-o", o, c},
		{"ld", "-r", "-o", obj, o},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, out)
		}
	}
	return obj
}

// PlainImage compiles a static image (ld's default layout at 0x400000)
// whose _start runs body, into DIR/NAME.
func PlainImage(t testing.TB, dir, name, body string) string {
	t.Helper()
	src, img := filepath.Join(dir, name+".c"), filepath.Join(dir, name)
	if err := os.WriteFile(src, []byte(GuestIO+"void _start(void) {"+body+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-O2", "-static", "-nostdlib", "-ffreestanding", "-fno-pie", "-no-pie",
		"-fno-stack-protector", "-o", img, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return img
}

// PooledDemo links a two-library unikernel "demo" (the app calls libgreet,
// which keeps a counter in its private data) aligned to a new pool's map
// and adds it, all through bin's CLI, and returns the pool. It prints
// "hello from libgreet" twice and exits 0.
func PooledDemo(t testing.TB, bin string) string {
	t.Helper()
	dir := t.TempDir()
	pool := filepath.Join(dir, "pool")
	lib := Object(t, dir, "libgreet", GuestIO+`int greet_count;
void greet(void) { puts_("hello from libgreet\n"); greet_count++; }
`)
	app := Object(t, dir, "appdemo", GuestIO+`void greet(void); extern int greet_count;
void _start(void) { greet(); greet(); exit_(greet_count == 2 ? 0 : 1); }
`)
	img := filepath.Join(dir, "demo.elf")
	if _, stderr, code := Run(t, Limit, nil, bin, "link", "--layout", "aligned", "--pool", pool, "-o", img, lib, app); code != 0 {
		t.Fatalf("unipool link: status %d: %s", code, stderr)
	}
	if _, stderr, code := Run(t, Limit, nil, bin, "pool", "add", "--pool", pool, "--name", "demo", img); code != 0 {
		t.Fatalf("unipool pool add: status %d: %s", code, stderr)
	}
	return pool
}
