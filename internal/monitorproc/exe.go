package monitorproc

import (
	"fmt"
	"io"
	"os"

	"github.com/unipool/unipool/internal/vmmproc"
)

// CopyExecutable copies the lean monitor binary (vmmproc.Executable) into dir
// for monitor processes to run, and returns the copy's path. A copy, so
// that no page of the monitor's binary is shared with another process
// that maps the original (another bench, a daemon's jails): its PSS is
// then what a host that runs only that monitor pays for it (the file
// pages of a binary are split among the processes that map them). The
// caller removes it.
func CopyExecutable(dir string) (string, error) {
	src, err := vmmproc.Executable()
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
	out, err := os.CreateTemp(dir, vmmproc.Binary+"-*")
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
