package microvm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/monitor"
)

// A copy-on-write mapping (an init blob, a snapshot page) that claims more
// of its blob than the file holds stops the call, naming the unikernel
// and the blob. Before, the range was copied from the layout's bytes
// instead: an init blob's from the private blob (the VM ran), a snapshot
// page's from nothing (the page read as zeros).
func TestACopyOnWriteMappingPastItsBlobsEndIsRefusedNamingTheUnikernelAndTheBlob(t *testing.T) {
	needKVM(t)
	dir := t.TempDir()
	word := []byte{0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11}
	uk := withInit(t, dir, pooled(t, dir, "initread"), word)
	// The private blob (the same bytes) under a name of its own, the init
	// blob an empty file.
	init := uk.Config.Libraries[0].Init.Digest
	full := uk.BlobPath(init)
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	priv := *uk.Config.Private
	priv.Digest = "sha256:private"
	uk.Config.Private = &priv
	blobs := uk.BlobPath
	uk.BlobPath = func(d string) string {
		switch d {
		case init:
			return empty
		case priv.Digest:
			return full
		}
		return blobs(d)
	}
	var err error
	opt := monitor.Options{N: 1, Timeout: guestTimeout}
	inTime(t, names([]monitor.Unikernel{uk}, opt), func() {
		_, err = Monitor{}.Run(context.Background(), []monitor.Unikernel{uk}, opt)
	})
	for _, w := range []string{"initread instance 0", `library "ukinitread" private`, "blob " + init + " (" + empty + "), which holds 0 bytes"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Fatalf("a VM whose init blob is empty: %v; want it refused naming %q", err, w)
		}
	}
	t.Logf("refused: %v", err)
}
