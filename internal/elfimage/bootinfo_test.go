package elfimage

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// linkWith links a static image whose data holds src's definitions.
func linkWith(t *testing.T, src string) *elf.File {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc")
	}
	dir := t.TempDir()
	c, img := filepath.Join(dir, "x.c"), filepath.Join(dir, "x.elf")
	os.WriteFile(c, []byte(src+"\nvoid _start(void) { for (;;); }\n"), 0o644)
	if out, err := exec.Command("gcc", "-O2", "-nostdlib", "-static", "-ffreestanding", "-o", img, c).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	f, err := elf.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestBootInfoVersionIsReadFromTheGuestAndIsOneForOlderImages(t *testing.T) {
	if v, err := BootInfoVersion(linkWith(t, `const unsigned ukplat_bootinfo_version = 2;`)); v != 2 || err != nil {
		t.Errorf("image saying 2: %d, %v", v, err)
	}
	if v, err := BootInfoVersion(linkWith(t, `const unsigned other = 2;`)); v != 1 || err != nil {
		t.Errorf("image from before the symbol: %d, %v; want 1", v, err)
	}
	_, err := BootInfoVersion(linkWith(t, `const unsigned ukplat_bootinfo_version = 99;`))
	if err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("image wanting version 99: %v", err)
	}
}
