package vmmproc

import (
	"fmt"
	"os"
	"path/filepath"
)

// Binary is the lean monitor binary's name (cmd/unipool-vmm). It is
// installed next to the unipool executable (`make build`: bin/unipool,
// bin/unipool-vmm).
const Binary = "unipool-vmm"

// Executable is the lean monitor binary next to the running executable
// (os.Executable's directory), or an error naming the path it looked at
// and how to build it.
func Executable() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("the monitor binary %s: %w", Binary, err)
	}
	path := filepath.Join(filepath.Dir(self), Binary)
	st, err := os.Stat(path)
	if err == nil && (st.IsDir() || st.Mode().Perm()&0o111 == 0) {
		err = fmt.Errorf("not an executable file")
	}
	if err != nil {
		return "", fmt.Errorf("the monitor processes run the lean monitor binary %s, which must sit next to %s: %w "+
			"(`make build` builds both, bin/unipool and bin/%s; or `go build -o %s ./cmd/unipool-vmm`)",
			path, self, err, Binary, path)
	}
	return path, nil
}
