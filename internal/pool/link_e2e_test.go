package pool

import (
	"path/filepath"
	"testing"

	"github.com/unipool/unipool/internal/pool/pooltest"
)

// The poster's case through the real toolchain: two unikernels linked by
// `unipool link --layout aligned` against the pool's map, one with a library
// (ukc) inserted in the middle of the link order. Added to the pool, the
// libraries they share are the same blobs; only the apps and ukc differ.
func TestLinkedImagesShareLibraryBlobsInThePool(t *testing.T) {
	pooltest.Images(t) // skips without gcc/binutils
	bin := pooltest.CLI(t)
	work := t.TempDir()
	srcs := map[string]string{
		"libuka.o":   pooltest.HelloLibA,
		"libukb.o":   pooltest.HelloLibB,
		"apphello.o": pooltest.HelloApp,
		"libukc.o": `long c_state = 7;
long c_next(void) { c_state = c_state * 6364136223846793005L + 1; return c_state; }`,
		"appworld.o": `int a_len(void); unsigned int b_sum(int); long c_next(void);
void _start(void) { volatile long x = a_len() + b_sum(4) + c_next(); (void)x; for (;;) __asm__ volatile("hlt"); }`,
	}
	pooltest.CompileObjects(t, work, srcs)
	dir := filepath.Join(work, "pool")
	o := func(n string) string { return filepath.Join(work, n) }
	// --no-packs: each library a blob of its own (packs: internal/link's
	// TestAPackPageIsTheSameInEveryImageThatUsesAnyOfItsMembers).
	pooltest.Run(t, bin, "link", "--layout", "aligned", "--no-packs", "--pool", dir, "-o", o("hello.elf"), o("apphello.o"), o("libuka.o"), o("libukb.o"))
	pooltest.Run(t, bin, "link", "--layout", "aligned", "--no-packs", "--pool", dir, "-o", o("world.elf"), o("appworld.o"), o("libuka.o"), o("libukc.o"), o("libukb.o"))
	pooltest.Unipool(t, dir, "add", o("hello.elf"))
	pooltest.Unipool(t, dir, "add", o("world.elf"))

	p := mustOpen(t, dir)
	mustVerify(t, p)
	digests := func(name string) map[string]string {
		c, err := p.Resolve(name)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, l := range c.Libraries {
			m[l.Name] = l.Shared.Digest
		}
		return m
	}
	h, w := digests("hello"), digests("world")
	for _, lib := range []string{"uka", "ukb"} {
		if h[lib] == "" || h[lib] != w[lib] {
			t.Errorf("library %s: blob %q in hello, %q in world; want one blob", lib, h[lib], w[lib])
		}
	}
	if w["ukc"] == "" || h["apphello"] == w["appworld"] {
		t.Errorf("ukc %q, apps %q %q: want ukc pooled and the apps distinct", w["ukc"], h["apphello"], w["appworld"])
	}
	s, err := p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.LibraryUses != 5 || s.LibraryBlobs != 3 || s.AppBlobs != 2 {
		t.Errorf("stats %+v: want 5 library uses in 3 blobs, and 2 app blobs", s)
	}
}
