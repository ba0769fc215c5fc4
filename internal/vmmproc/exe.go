package vmmproc

import (
	"fmt"
	"io"
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

// CopyExecutable copies the lean monitor binary (Executable) into dir
// for monitor processes to run, and returns the copy's path. A copy, so
// that no page of the monitor's binary is shared with another process
// that maps the original (another bench, a daemon's jails): its PSS is
// then what a host that runs only that monitor pays for it (the file
// pages of a binary are split among the processes that map them). The
// caller removes it.
func CopyExecutable(dir string) (string, error) {
	src, err := Executable()
	if err != nil {
		return "", err
	}
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out, err := os.CreateTemp(dir, Binary+"-*")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Chmod(0o755)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out.Name())
		return "", fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Name(), nil
}
