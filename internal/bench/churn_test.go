package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/unipool/unipool/internal/monitor"
	_ "github.com/unipool/unipool/internal/monitor/process"
)

// exitImage is a plain image that exits 0 at once.
func exitImage(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "exit.S")
	os.WriteFile(src, []byte(".globl _start\n_start:\n\tmov $0x501, %dx\n\txor %eax, %eax\n\tout %eax, %dx\n\thlt\n"), 0o644)
	img := filepath.Join(dir, "exit")
	if out, err := exec.Command("gcc", "-static", "-nostdlib", "-no-pie", "-Wl,-Ttext-segment=0x400000", "-o", img, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return img
}

func TestChurnKeepsAboutRateTimesLifetimeResidentAndEndsThemAll(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the process monitor's measurements need root")
	}
	mon, err := monitor.Open("process")
	if err != nil {
		t.Fatal(err)
	}
	img := exitImage(t)
	uks := []monitor.Unikernel{{Name: "a", Image: img}, {Name: "b", Image: img}}
	c := Churn{Rate: 20, Lifetime: 1, Duration: 3}
	mr, err := runChurn(context.Background(), mon, uks, Mode{Name: "packed-stock", Load: monitor.LoadStock}, c,
		map[string]string{}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	// About 60 arrivals, about 20 resident at a time.
	peak := 0
	for _, s := range mr.Samples {
		peak = max(peak, s.Resident)
	}
	if mr.Instances < 30 || mr.Instances > 100 || mr.Failed != 0 || peak < 5 || peak > 60 {
		t.Fatalf("%d instances, %d failed, at most %d resident: want about 60, none, about 20", mr.Instances, mr.Failed, peak)
	}
	if last := mr.Samples[len(mr.Samples)-1]; last.Resident != 0 {
		t.Fatalf("%d instances still resident at the end", last.Resident)
	}
	if mr.FinalBytes == 0 || mr.PeakBytes < mr.FinalBytes {
		t.Fatalf("steady state %d bytes, peak %d", mr.FinalBytes, mr.PeakBytes)
	}
}
