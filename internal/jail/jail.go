// Package jail confines a group of instances the way Firecracker's jailer
// confines one microVM: a process of its own in new user, mount, PID, IPC,
// UTS and network namespaces, whose root is a directory holding only the
// pool blobs its instances map (hard links to the pool's read-only files,
// so the page cache is still shared with every other jail), mounted
// read-only, in a cgroup of its own with a memory limit. Its root in the
// user namespace is an unprivileged host uid of its own, so a jail that
// escaped its namespaces could neither write the pool nor signal another
// jail; /dev/kvm, when needed, is handed in as an open descriptor instead
// of a device node.
//
// The daemon side prepares the directory (Prepare) and starts the process
// (Command); the process, first thing, calls Enter.
package jail

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// blobsDir is where a jail's blobs are, inside its root.
const blobsDir = "/blobs/sha256"

// BlobPath is the path of a blob ("sha256:HEX") inside a jail.
func BlobPath(dgst string) string {
	return filepath.Join(blobsDir, strings.TrimPrefix(dgst, "sha256:"))
}

// Prepare makes root a jail's directory: blobs/sha256/HEX for each digest
// of blobs (a hard link to the pool file it maps to: the same inode, read
// only, shared page cache), and the mount point of its /proc. root must be
// on the pool's file system.
func Prepare(root string, blobs map[string]string) error {
	for _, d := range []string{filepath.Join(root, blobsDir), filepath.Join(root, "proc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("jail %s: %w", root, err)
		}
	}
	for dgst, src := range blobs {
		if !strings.HasPrefix(dgst, "sha256:") || strings.ContainsAny(dgst[7:], "/.") {
			return fmt.Errorf("jail %s: blob %q: not a sha256 digest", root, dgst)
		}
		fi, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("jail %s: %w", root, err)
		}
		if fi.Mode().Perm()&0o004 == 0 {
			return fmt.Errorf("jail %s: blob %s is mode %v: a jail reads its blobs as an unprivileged user; pool blobs are stored 0444 (chmod 0444 it)", root, src, fi.Mode().Perm())
		}
		dst := filepath.Join(root, BlobPath(dgst))
		err = os.Link(src, dst)
		if errors.Is(err, unix.EXDEV) {
			return fmt.Errorf("jail %s: cannot hard-link blob %s: the jail directory is not on the pool's file system (choose --jail-dir on it)", root, src)
		}
		if err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("jail %s: %w", root, err)
		}
	}
	return nil
}

// Cleanup removes a jail's directory (its process must be gone: its mounts
// lived in its own mount namespace and went with it).
func Cleanup(root string) error { return os.RemoveAll(root) }

// ExeFD is the descriptor a jail's process is started from (Command) and
// that Enter closes.
const ExeFD = 3

// Command is the jail's process: the executable open as exe (the lean
// monitor binary) with args, in new namespaces, its root user mapped to
// host uid and gid id, killed when its parent dies. It runs exe through
// its descriptor (/proc/self/fd/ExeFD in the new process), so no path
// outside the jail need be searchable by the jail's uid (exe need only be
// executable by others); Enter closes that descriptor. The caller adds
// Stdin/Stdout, appends to ExtraFiles (descriptors ExeFD+1, ...) and
// starts it.
func Command(exe *os.File, id int, args ...string) *exec.Cmd {
	cmd := exec.Command(fmt.Sprintf("/proc/self/fd/%d", ExeFD), args...)
	cmd.Args[0] = filepath.Base(exe.Name())
	cmd.ExtraFiles = []*os.File{exe}
	cmd.Env = []string{}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWIPC |
			unix.CLONE_NEWUTS | unix.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: id, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: id, Size: 1}},
		// The maps do not change who the child is: it becomes the
		// namespace's root (host uid id) by setuid/setgid inside it.
		Credential: &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
		Pdeathsig:  syscall.SIGKILL,
	}
	return cmd
}

// viewBase is where Expose makes jails' directories reachable.
const viewBase = "/run/unipool"

// Expose makes dir (the jails' directories, which must sit on the pool's
// file system for the hard links, anywhere under it, perhaps below
// directories only root may search) reachable by the jails' unprivileged
// users: it bind-mounts dir at a path of its own under /run/unipool, whose
// every directory others may search (not read), and returns that path.
// A mount left behind by a daemon that was killed is replaced.
func Expose(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(viewBase, 0o711); err != nil {
		return "", err
	}
	if err := os.Chmod(viewBase, 0o711); err != nil {
		return "", err
	}
	if err := os.Chmod(abs, 0o711); err != nil {
		return "", err
	}
	view := filepath.Join(viewBase, "jails-"+strings.NewReplacer("/", "_").Replace(strings.Trim(abs, "/")))
	if err := os.MkdirAll(view, 0o711); err != nil {
		return "", err
	}
	unix.Unmount(view, unix.MNT_DETACH) // a stale one, if any
	if err := unix.Mount(abs, view, "", unix.MS_BIND, ""); err != nil {
		return "", fmt.Errorf("jails: bind %s at %s: %w", abs, view, err)
	}
	return view, nil
}

// Unexpose undoes Expose.
func Unexpose(view string) error {
	if err := unix.Unmount(view, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("jails: unmount %s: %w", view, err)
	}
	return os.Remove(view)
}

// Enter, called by the jail's process first thing, closes the
// descriptor it was started from (ExeFD) and makes root (a path
// under Expose's view) its root directory: its mounts become private to
// its namespace, root is bind-mounted onto itself with a fresh /proc (of
// its own PID namespace) and pivoted to, the old root detached, and the
// new root remounted read only. Nothing of the host's file system stays
// reachable.
func Enter(root string) error {
	step := func(what string, err error) error {
		if err != nil {
			return fmt.Errorf("jail %s: %s: %w", root, what, err)
		}
		return nil
	}
	// The executable's descriptor (Command): a file outside the root.
	if err := step("close the executable's descriptor", unix.Close(ExeFD)); err != nil {
		return err
	}
	if err := step("make mounts private", unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")); err != nil {
		return err
	}
	if err := step("bind its root", unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, "")); err != nil {
		return err
	}
	if err := step("mount /proc", unix.Mount("proc", filepath.Join(root, "proc"), "proc",
		unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")); err != nil {
		return err
	}
	if err := step("chdir", unix.Chdir(root)); err != nil {
		return err
	}
	// pivot_root(".", "."): the old root ends up stacked under the new
	// one, and detaching "." then drops it.
	if err := step("pivot_root", unix.PivotRoot(".", ".")); err != nil {
		return err
	}
	if err := step("detach the old root", unix.Unmount(".", unix.MNT_DETACH)); err != nil {
		return err
	}
	if err := step("chdir /", unix.Chdir("/")); err != nil {
		return err
	}
	// Read-only, keeping the flags the kernel locks from the original
	// mount (a remount in a user namespace may not clear them).
	var st unix.Statfs_t
	if err := step("statfs /", unix.Statfs("/", &st)); err != nil {
		return err
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV)
	for _, f := range []struct{ st, ms int64 }{
		{unix.ST_NOEXEC, unix.MS_NOEXEC}, {unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if st.Flags&f.st != 0 {
			flags |= uintptr(f.ms)
		}
	}
	if err := step("remount / read-only", unix.Mount("", "/", "", flags, "")); err != nil {
		return err
	}
	return step("no new privileges", unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
}
