package jail

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrepareLinksOnlyTheGivenBlobsAndRefusesBadOnes(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "blob")
	if err := os.WriteFile(src, []byte("x"), 0o444); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "jail")
	dgst := "sha256:" + strings.Repeat("ab", 32)
	if err := Prepare(root, map[string]string{dgst: src}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.Stat(src)
	b, err := os.Stat(filepath.Join(root, BlobPath(dgst)))
	if err != nil || !os.SameFile(a, b) {
		t.Fatalf("the jail's blob is not a hard link to the pool's file: %v", err)
	}
	for _, bad := range []string{"sha256:../../etc/passwd", "md5:abc", "sha256:a/b"} {
		if err := Prepare(root, map[string]string{bad: src}); err == nil {
			t.Errorf("Prepare took digest %q", bad)
		}
	}
	private := filepath.Join(dir, "private")
	os.WriteFile(private, []byte("y"), 0o400)
	err = Prepare(root, map[string]string{"sha256:" + strings.Repeat("cd", 32): private})
	if err == nil || !strings.Contains(err.Error(), "0444") {
		t.Errorf("a blob the jail's user cannot read: %v", err)
	}
}
