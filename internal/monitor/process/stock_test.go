package process

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unipool/unipool/internal/monitor"
)

// plainImage links src (GNU as) into a static ELF executable at the packed
// images' base, as ld lays out a stock image.
func plainImage(t *testing.T, src string) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	s := filepath.Join(dir, "img.S")
	if err := os.WriteFile(s, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "img")
	out, err := exec.Command("gcc", "-static", "-nostdlib", "-no-pie", "-Wl,-Ttext-segment=0x400000", "-Wl,-z,max-page-size=4096",
		"-Wl,--build-id=none", "-o", img, s).CombinedOutput()
	if err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return img
}

func TestStockLoadMapsTheImageFilePrivateAndRunsItLikeANaiveCopy(t *testing.T) {
	// Reads its initialised data, writes the bss, exits with the value.
	img := plainImage(t, `
	.data
val:	.quad 7
	.bss
buf:	.skip 20000
	.text
	.globl _start
_start:
	mov val(%rip), %rax
	mov %rax, buf+12000(%rip)
	mov buf+12000(%rip), %eax
	mov $0x501, %dx
	out %eax, %dx
	hlt
`)
	uk := monitor.Unikernel{Name: "img", Image: img}
	for _, load := range []string{monitor.LoadStock, monitor.LoadNaive} {
		var maps string
		rs := runPooled(t, []monitor.Unikernel{uk}, monitor.Options{N: 2, Load: load, Hold: time.Minute, Resident: func(pids []int) {
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pids[0]))
			if err != nil {
				t.Error(err)
			}
			maps = string(data)
		}})
		for _, r := range rs {
			if r.Error != "" || r.ExitCode != 7 {
				t.Fatalf("%s: exit %d error %q", load, r.ExitCode, r.Error)
			}
		}
		var code string
		for _, line := range strings.Split(maps, "\n") {
			if strings.HasPrefix(line, "00401000-") || strings.HasPrefix(line, "00400000-") && strings.Contains(line, "r-x") {
				code = line
			}
		}
		fromFile := strings.HasSuffix(code, img) && strings.Contains(code, " r-xp ")
		if fromFile != (load == monitor.LoadStock) {
			t.Errorf("%s: code mapping %q; want the image file mapped private only when stock\n%s", load, code, maps)
		}
	}
}
