package process

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
)

// A description that claims more of a blob than the blob file holds (a
// damaged pool, or a file swapped after launch verified it) is refused
// before the instance maps anything, naming the unikernel and the blob:
// mapped, the pages past the file's end would be a SIGBUS where the
// guest touches them, or nothing at all where it does not.
func TestAMappingPastItsBlobsEndIsRefusedNamingTheUnikernelAndTheBlob(t *testing.T) {
	// An init blob (libc's data, copy-on-write) that is empty: libc never
	// reads its data, so the instance ran to its end before.
	short, _ := withInitBlob(t)
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	blobs := short.BlobPath
	short.BlobPath = func(d string) string {
		if d == "sha256:init" {
			return empty
		}
		return blobs(d)
	}

	// A snapshot whose page of the app's data (which the guest reads after
	// its ready point) is at 0x1000 in a page pack of one page.
	dir := t.TempDir()
	cold, err := loader.Plan(pooled(t, dir, "app", readyGuest), loader.Options{MemSize: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var data uint64
	for _, m := range cold.Mappings {
		if m.Library == "app" && m.Part == loader.PartPrivate {
			data = m.Addr
		}
	}
	snap := snapshotOf(t, dir, pooled(t, dir, "app", fmt.Sprintf(dataGuest, data)))
	packData := make([]byte, abi.PageSize)
	sum := sha256.Sum256(packData)
	pack := "sha256:" + hex.EncodeToString(sum[:])
	packPath := filepath.Join(dir, "pack")
	if err := os.WriteFile(packPath, packData, 0o444); err != nil {
		t.Fatal(err)
	}
	s := *snap.Config.Snapshot
	s.Pages = append(s.Pages[:0:0], s.Pages...)
	found := false
	for i, pg := range s.Pages {
		if pg.Addr == data {
			s.Pages[i].Blob, s.Pages[i].Offset, found = pack, abi.PageSize, true
		}
	}
	if !found {
		t.Fatalf("no snapshot page at the app's data %#x: %+v", data, s.Pages)
	}
	cfg := *snap.Config
	cfg.Snapshot = &s
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	snap.Config = &cfg
	pages := snap.BlobPath
	snap.BlobPath = func(d string) string {
		if d == pack {
			return packPath
		}
		return pages(d)
	}

	for _, c := range []struct {
		what string
		uk   monitor.Unikernel
		opt  monitor.Options
		want []string
	}{
		{"init blob", short, monitor.Options{N: 2}, []string{`unikernel "app"`, `library "libc" private`, "blob sha256:init (" + empty + "), which holds 0 bytes"}},
		{"snapshot page pack", snap, monitor.Options{N: 2, Snapshot: true},
			[]string{`unikernel "app"`, fmt.Sprintf("at %#x maps [0x1000,0x2000) of blob %s (%s), which holds 4096 bytes", data, pack, packPath)}},
	} {
		for _, r := range runPooled(t, []monitor.Unikernel{c.uk}, c.opt) {
			ok := r.ExitCode == -1 && r.Output == ""
			for _, w := range c.want {
				ok = ok && strings.Contains(r.Error, w)
			}
			if !ok {
				t.Errorf("%s: instance %d: exit %d, output %q, error %q; want it refused before it ran, naming %q", c.what, r.Instance, r.ExitCode, r.Output, r.Error, c.want)
			}
		}
	}
}
