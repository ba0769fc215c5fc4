package loader

import (
	"bytes"
	"encoding/binary"
	"os"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"debug/elf"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/elfimage"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/seccomp"
	"golang.org/x/sys/unix"
)

// The test binary serves image checks (as unipool-vmm and unipool do):
// CheckImages in these tests runs it as the checker.
func TestMain(m *testing.M) {
	ServeImageChecks()
	os.Exit(m.Run())
}

// deadImage is readsImage with a dead-page list.
func deadImage(t *testing.T) string {
	img := readsImage(t)
	withSection(t, img, elfimage.DeadSectionName, elfimage.EncodeDeadPages([]elfimage.PageRange{
		{Start: abi.MapBase + abi.PageSize, End: abi.MapBase + 2*abi.PageSize},
		{Start: abi.MapBase + 0x10000, End: abi.MapBase + 0x11000}}), 0)
	return img
}

// sameHeaders fails t unless a and b are the same headers (wherever
// their PT_LOAD lists were taken from).
func sameHeaders(t *testing.T, a, b *imageHeaders) {
	t.Helper()
	x, y := *a, *b
	x.store, y.store = nil, nil
	if len(x.progs) == 0 && len(y.progs) == 0 {
		x.progs, y.progs = nil, nil
	}
	if !reflect.DeepEqual(x, y) {
		t.Fatalf("headers\n%+v\nwant\n%+v", x, y)
	}
}

// The checker process keeps what a parse in the monitor keeps, and an
// instance laid out from its headers is the one laid out from the file.
func TestCheckImagesApartKeepsWhatCheckImageKeeps(t *testing.T) {
	if checkerExe == "" {
		t.Fatal("the test binary does not serve image checks (TestMain)")
	}
	many := readsImage(t)
	withSections(t, many, 40)
	paths := []string{readsImage(t), many, deadImage(t)}
	var store HeaderStore
	hs, err := CheckImages(paths, &store)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != len(paths) {
		t.Fatalf("%d headers for %d images", len(hs), len(paths))
	}
	opt := Options{Load: monitor.LoadNaive, Seed: 1, Canary: 2}
	for i, p := range paths {
		uk := monitor.Unikernel{Name: "img", Image: p}
		in, err := CheckImage(uk, nil)
		if err != nil {
			t.Fatal(err)
		}
		sameHeaders(t, hs[i].h, in.h)
		if i == 2 && len(hs[i].h.dead) != 2 {
			t.Fatalf("the dead-page list came back as %+v", hs[i].h.dead)
		}
		pa, err := PrepareReadsFrom(uk, hs[i])
		if err != nil {
			t.Fatal(err)
		}
		got, err := pa.PlanLast(opt)
		if err != nil {
			t.Fatal(err)
		}
		pr, err := PrepareReads(uk, true)
		if err != nil {
			t.Fatal(err)
		}
		want, err := pr.PlanLast(opt)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Mappings, want.Mappings) || !reflect.DeepEqual(got.Reads, want.Reads) || got.Entry != want.Entry {
			t.Fatalf("%s: laid out from the checker's headers\n%+v\n%+v\nwant\n%+v\n%+v", p, got.Mappings, got.Reads, want.Mappings, want.Reads)
		}
	}
}

// An image the monitor would refuse, the checker refuses, with the same
// message, and the run stops at it.
func TestCheckImagesApartRefusesWhatCheckImageRefuses(t *testing.T) {
	good := readsImage(t)
	cut := readsImage(t)
	file, err := os.ReadFile(cut)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cut, file[:len(file)-200], 0o644); err != nil {
		t.Fatal(err)
	}
	notELF := t.TempDir() + "/not-elf"
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\necho\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadEntry := readsImage(t)
	withSection(t, deadEntry, elfimage.DeadSectionName, elfimage.EncodeDeadPages([]elfimage.PageRange{
		{Start: abi.MapBase, End: abi.MapBase + abi.PageSize}}), 0)
	for _, bad := range []string{cut, notELF, deadEntry, t.TempDir() + "/missing"} {
		_, want := CheckImage(monitor.Unikernel{Name: "img", Image: bad}, nil)
		if want == nil {
			t.Fatalf("%s: CheckImage took it", bad)
		}
		_, got := CheckImages([]string{good, bad, good}, nil)
		if got == nil {
			t.Fatalf("%s: the checker took it", bad)
		}
		if got.Error() != want.Error() {
			t.Errorf("%s: the checker says\n%v\nCheckImage\n%v", bad, got, want)
		}
	}
}

// answer is the checker's answer for the image at path (encodeHeaders).
func answer(t *testing.T, path string) ([]byte, *imageHeaders) {
	t.Helper()
	h, err := checkOne(path)
	if err != nil {
		t.Fatal(err)
	}
	return encodeHeaders(nil, h), h
}

// The monitor checks the checker's answer as it checks a parse of its
// own: a segment outside the file, more file than memory, a header that
// is not a load among the loads, a bad dead-page list or one listing the
// entry, a boot-info version it does not write, flags that say nothing
// known, a file that changed, too many headers, an answer cut short: all
// refused, naming the image.
func TestTheMonitorChecksTheCheckersAnswer(t *testing.T) {
	path := deadImage(t)
	good, h := answer(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	size, mtime := fi.Size(), fi.ModTime().UnixNano()
	got, err := decodeHeaders(bytes.NewReader(good), path, size, mtime, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameHeaders(t, got, h)
	le := binary.LittleEndian
	const progs = 1 + 8 + 1 + 4 + 8 + 8 + progSize + 4 // the first PT_LOAD
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, b := range map[string][]byte{
		"segment past the file's end":  edit(func(b []byte) []byte { le.PutUint64(b[progs+8:], uint64(size)); return b }),
		"file bytes beyond memory":     edit(func(b []byte) []byte { le.PutUint64(b[progs+32:], 1<<40); return b }),
		"a PT_NOTE among the loads":    edit(func(b []byte) []byte { le.PutUint32(b[progs:], uint32(elf.PT_NOTE)); return b }),
		"a load of no memory":          edit(func(b []byte) []byte { le.PutUint64(b[progs+40:], 0); return b }),
		"a wrapping segment":           edit(func(b []byte) []byte { le.PutUint64(b[progs+16:], 1<<64-abi.PageSize); return b }),
		"boot info version 0":          edit(func(b []byte) []byte { le.PutUint32(b[10:], 0); return b }),
		"boot info version too new":    edit(func(b []byte) []byte { le.PutUint32(b[10:], abi.BootInfoVersion+1); return b }),
		"unknown flags":                edit(func(b []byte) []byte { b[9] = 4; return b }),
		"Linux and multiboot":          edit(func(b []byte) []byte { b[9] = flagLinux | flagMB; return b }),
		"another size":                 edit(func(b []byte) []byte { le.PutUint64(b[14:], uint64(size+1)); return b }),
		"another modification time":    edit(func(b []byte) []byte { le.PutUint64(b[22:], uint64(mtime+1)); return b }),
		"a TLS header of another type": edit(func(b []byte) []byte { le.PutUint32(b[30:], uint32(elf.PT_LOAD)); return b }),
		"too many loads":               edit(func(b []byte) []byte { le.PutUint32(b[progs-4:], maxLoads+1); return b }),
		"the entry's page dead": edit(func(b []byte) []byte {
			d := elfimage.EncodeDeadPages([]elfimage.PageRange{{Start: pageDown(h.entry), End: pageDown(h.entry) + abi.PageSize}})
			n := len(b) - len(elfimage.EncodeDeadPages(h.dead)) - 4
			return append(le.AppendUint32(b[:n], uint32(len(d))), d...)
		}),
		"an unsorted dead list": edit(func(b []byte) []byte {
			d := elfimage.EncodeDeadPages(h.dead)
			at := len(b) - 2*16         // its two ranges, 16 bytes each
			copy(b[at:], d[len(d)-16:]) // the second range first
			copy(b[at+16:], d[len(d)-32:len(d)-16])
			return b
		}),
		"status 2":    {2},
		"cut short":   good[:len(good)-1],
		"nothing":     nil,
		"a long text": append([]byte{0}, le.AppendUint16(nil, maxCheckedMsg+1)...),
	} {
		if _, err := decodeHeaders(bytes.NewReader(b), path, size, mtime, nil); err == nil {
			t.Errorf("%s: taken", name)
		} else if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v (does not name the image)", name, err)
		}
	}
	// A refusal comes back as the checker's message, made printable.
	b := encodeError(nil, errString("image "+path+": bad\x1b[2J\xff"))
	_, err = decodeHeaders(bytes.NewReader(b), path, size, mtime, nil)
	if err == nil || err.Error() != "image "+path+": bad?[2J?" {
		t.Errorf("a refusal reads %q", err)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// Decoding the checker's answer allocates the same whatever the image's
// PT_LOAD count (the list comes from the store's chunks) and section
// count (the answer has none).
func TestDecodingAnAnswerAllocatesTheSameForAnyShape(t *testing.T) {
	plain := readsImage(t)
	many, _ := manySegmentImage(t, 30, abi.PageSize)
	withSections(t, many, 99)
	allocs := func(path string) float64 {
		b, _ := answer(t, path)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		var store HeaderStore
		return testing.AllocsPerRun(50, func() {
			store.progs = make([]elf.ProgHeader, headerChunk)
			if _, err := decodeHeaders(bytes.NewReader(b), path, fi.Size(), fi.ModTime().UnixNano(), &store); err != nil {
				t.Fatal(err)
			}
		}) - 1 // the chunk made above
	}
	a, b := allocs(plain), allocs(many)
	t.Logf("decode allocations: %v (4 PT_LOADs, no sections), %v (30, 101)", a, b)
	if a != b || a > 4 {
		t.Errorf("decoding allocates %v and %v, want the same, at most 4", a, b)
	}
}

// FuzzDecodeHeaders: whatever the checker answers, decoding it neither
// panics nor takes headers that fail the monitor's own checks, and what
// it takes encodes to an answer that decodes to the same headers.
func FuzzDecodeHeaders(f *testing.F) {
	const size, mtime = 1 << 20, 12345
	le := binary.LittleEndian
	seed := func(h *imageHeaders) { f.Add(encodeHeaders(nil, h)) }
	load := elf.ProgHeader{Type: elf.PT_LOAD, Flags: elf.PF_R | elf.PF_X, Off: 0x1000, Vaddr: abi.MapBase, Filesz: 0x2000, Memsz: 0x3000}
	seed(&imageHeaders{entry: abi.MapBase, bootInfo: 1, size: size, modTime: mtime, progs: []elf.ProgHeader{load}})
	seed(&imageHeaders{entry: abi.MapBase + 0x2000, bootInfo: abi.BootInfoVersion, size: size, modTime: mtime, progs: []elf.ProgHeader{load},
		tls:  elf.ProgHeader{Type: elf.PT_TLS, Memsz: 64},
		dead: []elfimage.PageRange{{Start: abi.MapBase, End: abi.MapBase + 0x1000}}})
	f.Add(encodeError(nil, errString("image x: refused")))
	f.Add(le.AppendUint32([]byte{1}, 7))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHeaders(bytes.NewReader(b), "img", size, mtime, nil)
		if err != nil {
			return
		}
		if err := h.check(); err != nil {
			t.Fatalf("taken, but its check says %v", err)
		}
		for _, p := range h.progs {
			if p.Type != elf.PT_LOAD || p.Memsz == 0 || p.Filesz > p.Memsz || p.Off+p.Filesz > size || p.Off+p.Filesz < p.Off {
				t.Fatalf("taken a load %+v of a %d-byte file", p, size)
			}
		}
		again, err := decodeHeaders(bytes.NewReader(encodeHeaders(nil, h)), "img", size, mtime, nil)
		if err != nil {
			t.Fatalf("its own encoding refused: %v", err)
		}
		sameHeaders(t, again, h)
	})
}

// The checker's thread opens files read-only and nothing else: no file
// opened for writing or created, no process started (a refused call
// fails with EPERM).
func TestTheImageCheckerFilterRefusesWritesAndExecs(t *testing.T) {
	dir := t.TempDir()
	img := readsImage(t)
	type result struct {
		read, write, create, exec error
	}
	done := make(chan result)
	go func() {
		// Locked and never unlocked: the confined thread ends with this
		// goroutine.
		runtime.LockOSThread()
		var r result
		if err := seccomp.ConfineThread(seccomp.ImageChecker(os.Getpid())); err != nil {
			r.read = err
			done <- r
			return
		}
		if f, err := os.Open(img); err != nil {
			r.read = err
		} else {
			f.Close()
		}
		_, r.write = unix.Open(img, unix.O_WRONLY, 0)
		_, r.create = unix.Open(dir+"/new", unix.O_RDONLY|unix.O_CREAT, 0o644)
		_, r.exec = syscall.ForkExec("/bin/true", []string{"true"}, nil)
		done <- r
	}()
	r := <-done
	if r.read != nil {
		t.Fatalf("the confined thread cannot read an image: %v", r.read)
	}
	for name, err := range map[string]error{"open for writing": r.write, "create": r.create, "exec": r.exec} {
		if err != unix.EPERM {
			t.Errorf("%s: %v, want EPERM", name, err)
		}
	}
	if _, err := os.Stat(dir + "/new"); err == nil {
		t.Error("the confined thread created a file")
	}
}

// A checker that does not answer is killed when its time is up, and the
// check fails saying so: no image can hang a monitor's start.
func TestACheckerThatDoesNotAnswerIsKilledAndTheCheckFails(t *testing.T) {
	hang := t.TempDir() + "/hang"
	if err := os.WriteFile(hang, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	old := checkerTimeout
	checkerTimeout = 200 * time.Millisecond
	defer func() { checkerTimeout = old }()
	_, err := checkApart(hang, []string{readsImage(t)}, nil)
	if err == nil || !strings.Contains(err.Error(), "no answer in 200ms") {
		t.Fatalf("err %v, want the checker's time up", err)
	}
}
