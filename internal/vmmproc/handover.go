package vmmproc

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// A program hands the one it execs (the same process) a value as JSON in
// a memfd named by an environment variable: no limit on its size, unlike
// an argument's. ExecRun hands the lean binary its RunRequest; Run, after
// the resolve, hands its own next program the resolved fleet.

// execWithJSON execs exe with this process's command line and environment
// plus env=FD, FD a memfd (memfdName) holding v as JSON. It returns only
// if the exec failed, the memfd closed.
func execWithJSON(exe, memfdName, env string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	// Not close-on-exec: the next program reads it (takeJSON).
	fd, err := unix.MemfdCreate(memfdName, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for b := data; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		return err
	}
	return syscall.Exec(exe, os.Args, append(os.Environ(), fmt.Sprintf("%s=%d", env, fd)))
}

// takeJSON reads into v the value an execWithJSON handed this program
// under env, if any (ok): from its descriptor, which it closes, env
// unset. what names the value in errors.
func takeJSON(env, what string, v any) (ok bool, err error) {
	s, ok := os.LookupEnv(env)
	if !ok {
		return false, nil
	}
	os.Unsetenv(env)
	fd, err := strconv.Atoi(s)
	if err != nil || fd < 3 {
		return true, fmt.Errorf("%s=%q: not a descriptor", env, s)
	}
	f := os.NewFile(uintptr(fd), what)
	defer f.Close()
	data, err := io.ReadAll(f)
	if err == nil {
		err = json.Unmarshal(data, v)
	}
	if err != nil {
		return true, fmt.Errorf("the %s (%s=%d): %w", what, env, fd, err)
	}
	return true, nil
}
