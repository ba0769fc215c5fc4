package testcli

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
)

// BuildCLI builds the CLI (cmd/unipool) and the lean monitor binary
// (cmd/unipool-vmm) into dir, side by side as `make build` installs them
// (bench memory / tlb run the monitor binary from next to the CLI), and
// returns the CLI's path.
func BuildCLI(dir string) (string, error) {
	out, err := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/unipool/unipool/cmd/unipool", "github.com/unipool/unipool/cmd/unipool-vmm").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "unipool"), nil
}

// Build is BuildCLI into a new temporary directory of t; it fails t if
// the build fails.
func Build(t testing.TB) string {
	t.Helper()
	bin, err := BuildCLI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}
