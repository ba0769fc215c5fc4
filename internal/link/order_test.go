package link

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// A batch of aligned links run all at once, started in a shuffled order,
// gives with an Order the map file (and its use counts) and the images of
// linking the batch one at a time in its order, byte for byte, every
// time: the fleet builders' map does not depend on their --jobs.
func TestParallelLinksInAnOrderGiveTheMapAndImagesOfTheSerialLink(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	// Extra libraries of different sizes (packed and page-aligned code,
	// data and bss), each image a different mix of them: which image
	// places a library first decides where it and its private part go.
	const nExtra, nImages = 5, 6
	extras := make([]Object, nExtra)
	for k := range nExtra {
		src := fmt.Sprintf(`int extra%[1]d_data[%[2]d] = {%[1]d};
static char extra%[1]d_bss[%[3]d];
int extra%[1]d(int x) { extra%[1]d_bss[x & %[4]d] = x; return x * %[1]d + extra%[1]d_data[x & 7]; }
`, k+1, 8+k*300, 64+k*1500, 63)
		if k%2 == 1 {
			// Code past a pack's limit: a page-aligned region.
			src += fmt.Sprintf(`const char extra%[1]d_table[%[2]d] = {1};
int extra%[1]d_big(int i) { return extra%[1]d_table[i]; }
`, k+1, 12<<10)
		}
		sub := filepath.Join(dir, fmt.Sprint("x", k))
		os.Mkdir(sub, 0o755)
		extras[k] = Object{Path: buildLib(t, sub, fmt.Sprint("extra", k+1), src), Name: fmt.Sprint("extra", k+1)}
	}
	objects := func(i int) []Object {
		base := g.objects(i%2 == 0)
		app := base[len(base)-1]
		objs := append([]Object{}, base[:len(base)-1]...)
		for k := range nExtra {
			if (i+k)%3 != 0 {
				objs = append(objs, extras[(i+k)%nExtra])
			}
		}
		return append(objs, app)
	}
	type batch struct {
		mapFile, uses []byte
		images        [nImages][]byte
	}
	read := func(out string) batch {
		var b batch
		var err error
		if b.mapFile, err = os.ReadFile(filepath.Join(out, "map.json")); err != nil {
			t.Fatal(err)
		}
		b.uses, _ = os.ReadFile(filepath.Join(out, "map.json.uses"))
		for i := range nImages {
			if b.images[i], err = os.ReadFile(filepath.Join(out, fmt.Sprint("img", i))); err != nil {
				t.Fatal(err)
			}
		}
		return b
	}
	// The reference: one link at a time, in order, without an Order.
	serial := filepath.Join(dir, "serial")
	os.Mkdir(serial, 0o755)
	for i := range nImages {
		mustLink(t, Options{Layout: LayoutAligned, Objects: objects(i), Output: filepath.Join(serial, fmt.Sprint("img", i)),
			MapPath: filepath.Join(serial, "map.json"), Groups: noGroups})
	}
	want := read(serial)
	if len(want.uses) == 0 {
		t.Fatal("the serial links used no pack: the test checks nothing about packs")
	}
	rng := rand.New(rand.NewPCG(19, 15))
	for round := range 4 {
		out := filepath.Join(dir, fmt.Sprint("round", round))
		os.Mkdir(out, 0o755)
		order := NewOrder(nImages)
		start := rng.Perm(nImages)
		if round == 0 {
			for i := range start {
				start[i] = nImages - 1 - i // the last first
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, nImages)
		for _, i := range start {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = Link(context.Background(), Options{Layout: LayoutAligned, Objects: objects(i), Output: filepath.Join(out, fmt.Sprint("img", i)),
					MapPath: filepath.Join(out, "map.json"), Groups: noGroups, Turn: order.Turn(i)})
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: link %d: %v", round, i, err)
			}
		}
		got := read(out)
		if !bytes.Equal(got.mapFile, want.mapFile) {
			t.Errorf("round %d (started in the order %v): the map file differs from the serial links'", round, start)
		}
		if !bytes.Equal(got.uses, want.uses) {
			t.Errorf("round %d (started in the order %v): the use counts differ from the serial links'", round, start)
		}
		for i := range nImages {
			if !bytes.Equal(got.images[i], want.images[i]) {
				t.Errorf("round %d (started in the order %v): image %d differs from the serial links'", round, start, i)
			}
		}
	}
}

// A turn waits for every turn before it, however they finish, and a link
// that fails (or is never run, its turn done by the caller) holds up no
// one.
func TestAnOrdersTurnsOpenInIndexOrder(t *testing.T) {
	o := NewOrder(4)
	open := func(i int) bool {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return o.Turn(i).wait(ctx) == nil
	}
	if !open(0) || open(1) {
		t.Fatal("turn 0 should be open, turn 1 not")
	}
	o.Turn(2).Done()
	o.Turn(2).Done()
	if open(1) || open(3) {
		t.Fatal("a later turn done opened an earlier or the next one")
	}
	o.Turn(0).Done()
	if !open(1) || open(3) {
		t.Fatal("turn 0 done should open turn 1 only")
	}
	o.Turn(1).Done()
	if !open(3) {
		t.Fatal("turns 0-2 done should open turn 3")
	}
	o.Turn(3).Done()
	// A link that fails before the map finishes its turn.
	o = NewOrder(2)
	if _, err := Link(context.Background(), Options{Turn: o.Turn(0)}); err == nil {
		t.Fatal("a link without output succeeded")
	}
	if !open(1) {
		t.Fatal("a failed link did not finish its turn")
	}
}
