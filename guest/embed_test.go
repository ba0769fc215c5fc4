package guest_test

import (
	"io/fs"
	"os"
	"sort"
	"testing"

	"github.com/unipool/unipool/guest"
	"github.com/unipool/unipool/internal/corpus"
)

func guestFiles(t *testing.T, fsys fs.FS) map[string]bool {
	t.Helper()
	files := map[string]bool{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && corpus.IsGuestFile(p) {
			files[p] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestEmbeddedTreeIsTheTreeOnDisk: an installed unipool builds from the
// embedded tree, so a source the patterns of embed.go miss would make it
// build other unikernels than a checkout does.
func TestEmbeddedTreeIsTheTreeOnDisk(t *testing.T) {
	disk := guestFiles(t, os.DirFS("."))
	embedded := guestFiles(t, guest.FS())
	var missing, extra []string
	for f := range disk {
		if !embedded[f] {
			missing = append(missing, f)
		}
	}
	for f := range embedded {
		if !disk[f] {
			extra = append(extra, f)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("guest files not embedded (add a pattern to embed.go): %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("embedded files not on disk (rebuild): %v", extra)
	}
	err := fs.WalkDir(guest.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !corpus.IsGuestFile(p) {
			t.Errorf("%s is embedded but the build does not read it", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
