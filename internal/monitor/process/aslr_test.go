package process

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/monitor"
)

// What a guest could learn from its own memory, if it can read all of it.

// leak is a word in guest memory from which a secret follows.
type leak struct {
	addr uint64
	what string
}

// oldASLRStream is the PCG stream the loader once drew --aslr bases from,
// seeded by the seed it also wrote into the boot info.
const oldASLRStream = 0x756e69706f6f6c

// splitmixCanary is the canary the guest once derived from its seed.
func splitmixCanary(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return (z ^ (z >> 31)) &^ 0xff
}

// scanForSecrets reads every byte of d and reports each place a secret of
// the instance follows from, other than by pointing into its region:
//   - the canary's bytes (its 7 non-zero ones, at any alignment) anywhere
//     but in the TLS area (the TCB) and on the stack (saved guards);
//   - a word from which the canary follows by the splitmix64 derivation
//     the guest once used, or the library bases by the PCG stream the
//     loader once used (each word tried as the seed);
//   - a pointer into a region found outside the guest's own ranges (in
//     the monitor's stub or the kernel's pages).
//
// A pointer into a region tells the base of that region's group and only
// that: every library's and the app's for a pointer into the image (they
// slide as one; the map is public), the boot info's (and TLS's) chunk for
// a pointer to the stack, the heap's alone. That is what the groups being
// independent buys (loader.Layout.Groups), and all a pointer can give
// away; run --json states what is left of each region's bits.
func scanForSecrets(d monitor.MemoryDump) (leaks []leak, pointers, canaries int) {
	in := func(addr uint64) string { // the narrowest extent holding addr (TLS lies inside the boot info)
		best, width := "", ^uint64(0)
		for name, e := range d.Extents {
			if e[0] <= addr && addr < e[1] && e[1]-e[0] < width {
				best, width = name, e[1]-e[0]
			}
		}
		return best
	}
	var libBases = map[uint64]string{}
	for name, b := range d.Bases {
		libBases[b] = name
	}
	var canary [7]byte
	var c8 [8]byte
	binary.LittleEndian.PutUint64(c8[:], d.Canary)
	copy(canary[:], c8[1:])
	for _, r := range d.Ranges {
		if r.Data == nil {
			continue
		}
		for off := 0; ; {
			i := bytes.Index(r.Data[off:], canary[:])
			if i < 0 {
				break
			}
			at := r.Addr + uint64(off+i)
			if where := in(at); where == "tls" || where == "stack" {
				canaries++
			} else {
				leaks = append(leaks, leak{at, fmt.Sprintf("the canary's bytes, in %s", r.What)})
			}
			off += i + 1
		}
		own := in(r.Addr) != ""
		for off := 0; off+8 <= len(r.Data); off += 8 {
			w := binary.LittleEndian.Uint64(r.Data[off:])
			if w == 0 {
				continue
			}
			at := r.Addr + uint64(off)
			if splitmixCanary(w) == d.Canary {
				leaks = append(leaks, leak{at, fmt.Sprintf("%#x, in %s: the canary is splitmix64 of it", w, r.What)})
			}
			if lib := oldStreamBases(w, libBases); lib != "" {
				leaks = append(leaks, leak{at, fmt.Sprintf("%#x, in %s: seeds a PCG stream whose first base is %s's", w, r.What, lib)})
			}
			if target := in(w); target != "" {
				pointers++
				if !own {
					leaks = append(leaks, leak{at, fmt.Sprintf("%#x, in %s (not the guest's): points into %s", w, r.What, target)})
				}
			}
		}
	}
	return leaks, pointers, canaries
}

// oldStreamBases says whether w seeds the old PCG stream of library
// bases: its first draws (three, or as many as there are libraries) are
// each a library's base. It names the first one's library, or returns "".
// An old-style seed passes it whatever the draws (the old loader drew the
// bases in that order), so requiring more draws loses nothing; a word
// that is no seed passes one draw by chance with probability k/2^24 for k
// bases (~15), ~1e-6: over the up to ~1.1 million words of each of the 8
// instances the test reads, one draw alone could match several times a
// run (it failed a run once), two at most ~1e-5 of runs, three ~1e-11.
func oldStreamBases(w uint64, bases map[uint64]string) string {
	r := rand.New(rand.NewPCG(w, oldASLRStream))
	first := ""
	for range min(3, len(bases)) {
		lib := bases[abi.ASLRBase+r.Uint64N(abi.ASLRSize/abi.PageSize)*abi.PageSize]
		if lib == "" {
			return ""
		}
		if first == "" {
			first = lib
		}
	}
	return first
}

func TestLeakScanFindsTheOldSeedFromWhichCanaryAndBasesFollowed(t *testing.T) {
	// The layout as it once was: the seed in the boot info, the canary
	// splitmix64 of it, the bases the PCG stream of it.
	const seed = 0x1234_5678
	base := abi.ASLRBase + rand.New(rand.NewPCG(seed, oldASLRStream)).Uint64N(abi.ASLRSize/abi.PageSize)*abi.PageSize
	boot := make([]byte, abi.PageSize)
	binary.LittleEndian.PutUint64(boot[72:], seed)
	stray := make([]byte, abi.PageSize)
	binary.LittleEndian.PutUint64(stray[13:], splitmixCanary(seed)) // a canary copy, unaligned
	binary.LittleEndian.PutUint64(stray[64:], base+0x40)            // a pointer, in the monitor's page
	d := monitor.MemoryDump{
		Bases: map[string]uint64{"libc": base}, Canary: splitmixCanary(seed),
		Extents: map[string][2]uint64{"libc": {base, base + abi.PageSize}, "bootinfo": {abi.PrivateBase, abi.PrivateBase + abi.PageSize}},
		Ranges: []monitor.DumpRange{{Addr: abi.PrivateBase, Size: abi.PageSize, What: "bootinfo", Data: boot},
			{Addr: 0x7f00_0000_0000, Size: abi.PageSize, What: "stub", Data: stray}},
	}
	leaks, _, _ := scanForSecrets(d)
	var found []string
	for _, l := range leaks {
		found = append(found, l.what)
	}
	got := strings.Join(found, "\n")
	for _, want := range []string{"the canary is splitmix64 of it", "first base is libc's", "the canary's bytes, in stub", "points into libc"} {
		if !strings.Contains(got, want) {
			t.Errorf("the scan missed %q; it found:\n%s", want, got)
		}
	}
}

// corpusPool builds a small corpus in dir through the CLI and links every
// unikernel aligned into dir/pool.
func corpusPool(dir string) error {
	bin := filepath.Join(dir, "unipool")
	if out, err := exec.Command("go", "build", "-o", bin, "../../../cmd/unipool").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	corpusDir, pool := filepath.Join(dir, "corpus"), filepath.Join(dir, "pool")
	run := func(args ...string) error {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("unipool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run("corpus", "build", "--count", "4", "--seed", "15", "--out", corpusDir); err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(corpusDir, "corpus.json"))
	if err != nil {
		return err
	}
	var c struct{ Unikernels []struct{ Name string } }
	if err := json.Unmarshal(data, &c); err != nil {
		return err
	}
	for _, u := range c.Unikernels {
		img := filepath.Join(dir, u.Name+".elf")
		if err := run("link", "--layout", "aligned", "--pool", pool, "--corpus", corpusDir, "--unikernel", u.Name, "-o", img); err != nil {
			return err
		}
		if err := run("pool", "add", "--pool", pool, "--name", u.Name, img); err != nil {
			return err
		}
	}
	return nil
}

func TestASLRGuestMemoryHoldsNothingFromWhichAnotherRegionsBaseOrTheCanaryFollows(t *testing.T) {
	for _, tool := range []string{"gcc", "ld", "objcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	if err := corpusPool(dir); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "corpus", "corpus.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Unikernels []struct{ Name, Input, Expect string }
	}
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	for _, u := range c.Unikernels {
		uks, err := launch.Resolve(filepath.Join(dir, "pool"), []string{u.Name}, u.Input)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		dumps := map[int]monitor.MemoryDump{}
		rs := runPooled(t, uks, monitor.Options{N: 2, ASLR: true, Dump: func(i int, d monitor.MemoryDump) {
			mu.Lock()
			dumps[i] = d
			mu.Unlock()
		}})
		launch.Close(uks)
		canaries := map[uint64]bool{}
		for i, r := range rs {
			if r.Error != "" || !strings.Contains(r.Output, u.Expect) {
				t.Fatalf("%s/%d: error %q, output %q lacks %q", u.Name, i, r.Error, r.Output, u.Expect)
			}
			d, ok := dumps[i]
			if !ok || len(d.Ranges) == 0 {
				t.Fatalf("%s/%d: no memory dump", u.Name, i)
			}
			canaries[d.Canary] = true
			// Every region of the guest lies in the ASLR window: nothing
			// of it at a fixed address.
			var names []string
			for name, e := range d.Extents {
				names = append(names, name)
				if e[0] < abi.ASLRBase || e[1] > abi.ASLRBase+abi.ASLRSize {
					t.Errorf("%s/%d: %s at [%#x,%#x), outside the ASLR window", u.Name, i, name, e[0], e[1])
				}
			}
			sort.Strings(names)
			for _, area := range []string{"bootinfo", "stack", "heap", "tls"} {
				if _, ok := d.Extents[area]; !ok {
					t.Errorf("%s/%d: no %s area (have %v)", u.Name, i, area, names)
				}
			}
			leaks, pointers, homes := scanForSecrets(d)
			var bytes uint64
			for _, r := range d.Ranges {
				bytes += uint64(len(r.Data))
			}
			t.Logf("%s/%d: %d KiB read in %d ranges, %d pointers into regions, the canary %d times in its TCB or stack frames, %d leaks",
				u.Name, i, bytes>>10, len(d.Ranges), pointers, homes, len(leaks))
			if pointers == 0 || homes == 0 {
				t.Errorf("%s/%d: no pointer or no canary found at all: the dump cannot be the guest's memory", u.Name, i)
			}
			for _, l := range leaks {
				t.Errorf("%s/%d: at %#x: %s", u.Name, i, l.addr, l.what)
			}
		}
		if len(canaries) != len(rs) {
			t.Errorf("%s: %d instances share canaries", u.Name, len(rs))
		}
	}
}
