// Package testcli runs the unipool CLI from end-to-end tests with a
// deadline: a run that hangs fails its test at once, naming the command
// (unikernel, monitor, mode), instead of waiting for the suite's timeout.
package testcli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Limit is how long one CLI run may take in the tests. Generous: under the
// emulated KVM host (scripts/kvmhost) creating a handful of VMs takes
// seconds; a run that needs longer is a hang.
const Limit = 3 * time.Minute

// Run runs bin with args (env added to this process's environment) and
// returns its stdout, stderr and exit status. If it has not ended within
// limit it is killed and t fails, naming the command; t also fails if it
// cannot be started.
func Run(t testing.TB, limit time.Duration, env []string, bin string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	var o, e buffer
	cmd := exec.Command(bin, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = &o, &e
	// If the test binary dies (a -timeout panic, a kill), the CLI dies
	// with it instead of running on, orphaned.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", Name(bin, args), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	var err error
	select {
	case err = <-done:
	case <-timer.C:
		cmd.Process.Kill()
		// A process stuck in the kernel may not even die: do not wait
		// for it longer than a moment.
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		t.Fatalf("%s: no result within %v (hung; killed); stderr so far: %q", Name(bin, args), limit, e.String())
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return o.String(), e.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", Name(bin, args), err)
	}
	return o.String(), e.String(), 0
}

// Name is the command as a shell line, for messages.
func Name(bin string, args []string) string {
	return "unipool " + strings.Join(args, " ")
}

// buffer is a bytes.Buffer safe to read while the command writes to it.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
