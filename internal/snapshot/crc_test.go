package snapshot

import (
	"bytes"
	"context"
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/unipool/unipool/guest"
	"github.com/unipool/unipool/internal/corpus"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/link"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/monitor/process"
	"github.com/unipool/unipool/internal/pool"
)

// slice8Tables is what ukcrc32's slicing-by-8 variant derives for a
// polynomial (reflected): eight 256-entry tables, little-endian words.
func slice8Tables(poly uint32) []byte {
	var t [8][256]uint32
	for i := range 256 {
		c := uint32(i)
		for range 8 {
			c = c>>1 ^ poly&(0-(c&1))
		}
		t[0][i] = c
	}
	for i := range 256 {
		for k := 1; k < 8; k++ {
			t[k][i] = t[k-1][i]>>8 ^ t[0][t[k-1][i]&0xff]
		}
	}
	out := make([]byte, 0, 8*256*4)
	for k := range t {
		for _, w := range t[k] {
			out = binary.LittleEndian.AppendUint32(out, w)
		}
	}
	return out
}

// crcGuest is the embedded guest tree with two apps, lz (every request
// computes a CRC-32 with ukcrc32) and hello (never does), and ukcrc32 in
// its slicing-by-8 variant only, drawn into every unikernel: hello links
// it as an extra its app never calls.
func crcGuest(t *testing.T) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	err := fs.WalkDir(guest.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if parts := strings.Split(p, "/"); parts[0] == "apps" && parts[1] != "lz" && parts[1] != "hello" {
			return nil
		}
		data, err := fs.ReadFile(guest.FS(), p)
		if err != nil {
			return err
		}
		if p == "lib/ukcrc32/lib.json" {
			data = []byte(`{"name": "ukcrc32", "popularity": 1, "deps": [],
  "variants": [{"id": "slice8", "defines": ["CRC32_SLICE8=1"]}]}`)
		}
		out[p] = &fstest.MapFile{Data: data, Mode: 0o644}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// snapshotMemory is a snapshot's stored pages in address order, adjacent
// ones joined: runs of what the guest had written at its ready point.
func snapshotMemory(t *testing.T, u monitor.Unikernel) [][]byte {
	t.Helper()
	pages := append([]desc.Page(nil), u.Config.Snapshot.Pages...)
	sort.Slice(pages, func(i, j int) bool { return pages[i].Addr < pages[j].Addr })
	var runs [][]byte
	var end uint64
	for _, pg := range pages {
		data, err := os.ReadFile(u.BlobPath(pg.Digest))
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) > 0 && pg.Addr == end {
			runs[len(runs)-1] = append(runs[len(runs)-1], data...)
		} else {
			runs = append(runs, data)
		}
		end = pg.Addr + uint64(len(data))
	}
	return runs
}

func holds(runs [][]byte, b []byte) bool {
	for _, r := range runs {
		if bytes.Contains(r, b) {
			return true
		}
	}
	return false
}

// TestSnapshotHoldsTheCRCTablesOnlyOfAnAppThatComputesCRCs: ukcrc32's
// slicing-by-8 tables are derived in the init phase of an app whose
// requests compute a CRC (it registers crc32_prepare), so its snapshot
// holds them — the same pages for every such unikernel, stored once in the
// pool — instead of every instance deriving a private copy during its
// request; a unikernel that links the library without calling it derives
// nothing before its ready point (its cold boots pay nothing for it).
// Started from the snapshot, the app prints what its cold boot prints.
func TestSnapshotHoldsTheCRCTablesOnlyOfAnAppThatComputesCRCs(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("the process monitor needs root (ptrace, namespaces)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	c, err := corpus.Build(ctx, corpus.Options{Count: 2, Seed: 1, Out: filepath.Join(dir, "corpus"), Guest: crcGuest(t),
		Extras: corpus.ExtrasDrawn, Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	poolDir := filepath.Join(dir, "pool")
	p, err := pool.Init(poolDir)
	if err != nil {
		t.Fatal(err)
	}
	byApp := map[string]corpus.Unikernel{}
	for _, u := range c.Unikernels {
		linked := false
		for _, l := range u.Libraries {
			linked = linked || l.Name == "ukcrc32" && l.Version == "slice8"
		}
		if !linked {
			t.Fatalf("%s does not link ukcrc32's slice8 variant: %+v", u.Name, u.Libraries)
		}
		objs, sums, err := link.ObjectsFromCorpus(c.Dir, u.Name)
		if err != nil {
			t.Fatal(err)
		}
		img := filepath.Join(dir, u.Name+".img")
		if _, err := link.Link(ctx, link.Options{Layout: link.LayoutAligned, Objects: objs, SHA256: sums, Output: img,
			MapPath: p.MapPath(), Cmdline: u.Input, Fragments: c.Fragments(&u)}); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Add(poolDir, img, pool.AddOptions{Name: u.Name, Cmdline: u.Input, InitBlobs: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := Take(ctx, poolDir, u.Name, Options{Timeout: time.Minute}); err != nil {
			t.Fatalf("snapshot %s: %v", u.Name, err)
		}
		byApp[u.App] = u
	}
	if len(byApp) != 2 {
		t.Fatalf("want one unikernel of lz and one of hello, got %v", c.Unikernels)
	}
	ieee, castagnoli := slice8Tables(0xedb88320), slice8Tables(0x82f63b78)
	for app, want := range map[string]bool{"lz": true, "hello": false} {
		u := byApp[app]
		uks, err := launch.ResolveSnapshots(poolDir, []string{u.Name}, u.Input)
		if err != nil {
			t.Fatal(err)
		}
		runs := snapshotMemory(t, uks[0])
		if got := holds(runs, ieee); got != want {
			t.Errorf("%s (%s): the snapshot holds IEEE's slicing-by-8 tables: %v, want %v", u.Name, app, got, want)
		}
		// Its request computes no CRC-32C: Castagnoli's stay underived.
		if holds(runs, castagnoli[1024:2048]) {
			t.Errorf("%s (%s): the snapshot holds Castagnoli's tables, which no request of it computes before its ready point", u.Name, app)
		}
		outputs := map[bool]string{}
		for _, snap := range []bool{false, true} {
			rs, err := (&process.Monitor{}).Run(ctx, uks, monitor.Options{Snapshot: snap, Timeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != 1 || rs[0].ExitCode != 0 || rs[0].Error != "" || !strings.Contains("\n"+rs[0].Output, "\n"+u.Expect+"\n") {
				t.Fatalf("%s, from its snapshot %v: %+v; want exit 0 and %q", u.Name, snap, rs, u.Expect)
			}
			outputs[snap] = rs[0].Output
		}
		if outputs[true] != outputs[false] {
			t.Errorf("%s: from its snapshot it printed %q, cold %q", u.Name, outputs[true], outputs[false])
		}
	}
}
