// Package launch turns pooled unikernel names into what a monitor runs,
// checking every blob it will map against its digest first: a corrupt pool
// file is refused, never run. The run command, the demo and the benchmarks
// share it.
package launch

import (
	"errors"
	"fmt"
	"math/bits"
	"os"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/pool"
)

// Resolve finds each name in the pool at dir and opens every blob its
// description names, read-only, checked on the open descriptor (the
// monitors use those descriptors; Close closes them). cmdline, when not empty,
// replaces every description's default command line.
func Resolve(dir string, names []string, cmdline string) ([]monitor.Unikernel, error) {
	return resolve(dir, names, cmdline, false, false)
}

// ResolveSnapshots is Resolve for instances started from snapshots: every
// name must have one, and its pages are verified too.
func ResolveSnapshots(dir string, names []string, cmdline string) ([]monitor.Unikernel, error) {
	return resolve(dir, names, cmdline, true, false)
}

// ResolveLater is Resolve (ResolveSnapshots with snapshots) for a monitor
// that reads each description when it needs it (the process monitor:
// monitor.Unikernel.Describe): it makes every check Resolve makes, and
// the loader's (loader.Check: the monitor's own checks, so it need not
// read the description to make them), so a bad unikernel is refused
// here, before any instance starts, then lets each description go; its
// unikernels hold Describe instead of Config, and Checked.
// A thousand descriptions parsed and held at once were ~25 MB of live
// heap while a fleet started, whose spans and GC metadata the monitor
// kept for the rest of its run.
func ResolveLater(dir string, names []string, cmdline string, snapshots bool) ([]monitor.Unikernel, error) {
	uks, _, err := resolveRefs(dir, names, cmdline, snapshots, true)
	return uks, err
}

// ResolveLaterRefs is ResolveLater that also returns each unikernel's
// description Ref, in names' order, so that a process can hand what it
// resolved to the program it execs: there Later makes the same unikernels
// from the refs and the raw descriptors of their blobs (BlobFds, one map
// for all), without resolving again.
func ResolveLaterRefs(dir string, names []string, cmdline string, snapshots bool) ([]monitor.Unikernel, []pool.Ref, error) {
	return resolveRefs(dir, names, cmdline, snapshots, true)
}

// Later makes the unikernels ResolveLaterRefs returned, from its refs and
// the descriptors it held their blobs in (fds: still open, in this
// process): checked, each description read when its monitor needs it
// (monitor.Unikernel.Describe, by its Ref: checked against its digest).
func Later(dir string, names []string, refs []pool.Ref, fds map[string]int, cmdline string) ([]monitor.Unikernel, error) {
	if len(refs) != len(names) {
		return nil, fmt.Errorf("%d refs for %d unikernels", len(refs), len(names))
	}
	p, err := pool.Open(dir)
	if err != nil {
		return nil, err
	}
	uks := make([]monitor.Unikernel, len(names))
	for i, name := range names {
		ref := refs[i]
		uks[i] = monitor.Unikernel{Name: name, BlobPath: p.BlobPath, BlobFds: fds, Cmdline: cmdline, Checked: true,
			Describe: func() (*desc.Config, error) { return p.Describe(ref) }}
	}
	return uks, nil
}

func resolve(dir string, names []string, cmdline string, snapshots, later bool) ([]monitor.Unikernel, error) {
	uks, _, err := resolveRefs(dir, names, cmdline, snapshots, later)
	return uks, err
}

func resolveRefs(dir string, names []string, cmdline string, snapshots, later bool) ([]monitor.Unikernel, []pool.Ref, error) {
	p, err := pool.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	// The parsed index is not needed once the names are resolved
	// (Describe reads by digest); the unikernels keep p (BlobPath).
	defer p.DropIndex()
	// One verified descriptor per blob, shared by every unikernel of the
	// call: the monitors map and read these, never the paths.
	verified := map[string]*os.File{}
	// Later: the same as raw descriptors (monitor.Unikernel.BlobFds).
	var fds map[string]int
	if later {
		fds = map[string]int{}
	}
	open := p.OpenBlob
	if later {
		// Each verified file is kept as a raw descriptor and its
		// os.File closed at once: only one os.File at a time.
		open = func(dgst string) (*os.File, error) {
			f, err := p.OpenBlob(dgst)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				return nil, fmt.Errorf("blob %s: %w", dgst, err)
			}
			fds[dgst] = fd
			return nil, nil
		}
	}
	snapOK := map[string]bool{} // snapshot blobs verified (the zero blob, shared packs)
	fail := func(err error) ([]monitor.Unikernel, []pool.Ref, error) {
		for _, f := range verified {
			f.Close()
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, nil, err
	}
	resolveRef := p.ResolveRef
	if later {
		// Each description is checked here and let go: parsed for
		// that one use, not compacted.
		resolveRef = p.ResolveRefOnce
	}
	uks := make([]monitor.Unikernel, 0, len(names))
	var refs []pool.Ref
	if later {
		refs = make([]pool.Ref, 0, len(names))
	}
	for _, name := range names {
		ref, cfg, err := resolveRef(name)
		if errors.Is(err, pool.ErrNotFound) {
			return fail(fmt.Errorf("no unikernel %q in pool %s (`unipool pool ls` lists what is there)", name, dir))
		}
		if err != nil {
			return fail(err)
		}
		if err := openBlobs(name, cfg, open, verified, fds); err != nil {
			return fail(fmt.Errorf("%w; refusing to run it. `unipool pool add` of its image again "+
				"(or of any image with this blob) rewrites the blob; `unipool pool verify` checks the whole pool", err))
		}
		if snapshots && cfg.Snapshot == nil {
			return fail(fmt.Errorf("unikernel %q has no snapshot (`unipool snapshot %s` takes one)", name, name))
		}
		if snapshots {
			// Snapshot pages are many small blobs: checked here, read
			// by path later (not held open, one descriptor each).
			if err := VerifySnapshot(name, cfg, p.VerifyBlob, snapOK); err != nil {
				return fail(fmt.Errorf("%w; refusing to run it (`unipool pool verify` checks the whole pool)", err))
			}
		}
		u := monitor.Unikernel{Name: name, Config: cfg, BlobPath: p.BlobPath, Blobs: verified, Cmdline: cmdline}
		if later {
			// The monitor's checks, on this parse: it then reads the
			// description once, to plan (monitor.Unikernel.Checked),
			// not once more to check it.
			u.Blobs, u.BlobFds = nil, fds
			if err := loader.Check(u, false); err != nil {
				return fail(err)
			}
			u.Config, u.Checked = nil, true
			u.Describe = func() (*desc.Config, error) { return p.Describe(ref) }
			refs = append(refs, ref)
		}
		uks = append(uks, u)
	}
	return uks, refs, nil
}

// Blobs lists the blobs a description maps (not its snapshot pages):
// digest -> what it is, for errors.
func Blobs(cfg *desc.Config) map[string]string {
	m := map[string]string{}
	for _, l := range cfg.Libraries {
		if l.Shared.Digest != "" {
			m[l.Shared.Digest] = "library " + l.Name
		}
		if l.Init != nil && l.Init.Digest != "" {
			m[l.Init.Digest] = "library " + l.Name + " init blob"
		}
	}
	if cfg.Private != nil && cfg.Private.Digest != "" {
		m[cfg.Private.Digest] = "private blob"
	}
	return m
}

// SnapshotBlobs lists the blobs of cfg's snapshot (the page packs and
// page blobs its pages lie in, and its zero blob): digest -> what it is.
// Nil without a snapshot.
func SnapshotBlobs(cfg *desc.Config) map[string]string {
	s := cfg.Snapshot
	if s == nil {
		return nil
	}
	m := map[string]string{}
	for _, pg := range s.Pages {
		if b := pg.BlobDigest(); m[b] == "" {
			if pg.Blob != "" {
				m[b] = fmt.Sprintf("snapshot page pack (page at %#x)", pg.Addr)
			} else {
				m[b] = fmt.Sprintf("snapshot page at %#x", pg.Addr)
			}
		}
	}
	if s.Zero != "" {
		m[s.Zero] = "snapshot zero blob"
	}
	return m
}

// VerifySnapshot checks, with verify (which re-hashes a blob's file), every
// blob of cfg's snapshot (each page pack once, however many of its pages
// the snapshot uses); ok holds the blobs already checked (the zero blob,
// packs that other snapshots of the call share) and gets cfg's.
func VerifySnapshot(name string, cfg *desc.Config, verify func(dgst string) error, ok map[string]bool) error {
	s := cfg.Snapshot
	if s == nil {
		return nil
	}
	for _, pg := range s.Pages {
		b := pg.BlobDigest()
		if ok[b] {
			continue
		}
		if err := verify(b); err != nil {
			if pg.Blob != "" {
				return fmt.Errorf("unikernel %q: snapshot page pack %s (page at %#x): %w", name, b, pg.Addr, err)
			}
			return fmt.Errorf("unikernel %q: snapshot page at %#x: %w", name, pg.Addr, err)
		}
		ok[b] = true
	}
	if z := s.Zero; z != "" && !ok[z] {
		if err := verify(z); err != nil {
			return fmt.Errorf("unikernel %q: snapshot zero blob: %w", name, err)
		}
		ok[z] = true
	}
	return nil
}

// OpenBlobs opens (with open, which checks each on its descriptor) every
// blob of cfg that verified does not hold yet, and adds it there.
func OpenBlobs(name string, cfg *desc.Config, open func(dgst string) (*os.File, error), verified map[string]*os.File) error {
	return openBlobs(name, cfg, open, verified, nil)
}

// openBlobs is OpenBlobs; a blob in fds is held there (open, which adds
// it, returns no file).
func openBlobs(name string, cfg *desc.Config, open func(dgst string) (*os.File, error), verified map[string]*os.File, fds map[string]int) error {
	for dgst, what := range Blobs(cfg) {
		if _, ok := fds[dgst]; ok || verified[dgst] != nil {
			continue
		}
		f, err := open(dgst)
		if err != nil {
			return fmt.Errorf("unikernel %q: %s: %w", name, what, err)
		}
		if f != nil {
			verified[dgst] = f
		}
	}
	return nil
}

// Close closes the blob files Resolve opened.
func Close(uks []monitor.Unikernel) { Closer(uks)() }

// Closer returns a function that closes the blob files of uks, holding
// the files but not the descriptions: a caller that defers it lets the
// descriptions go once the monitor has planned their instances (a
// thousand of them are ~15 MiB a monitor would hold for the whole run).
//
// The raw descriptors (ResolveLater's) it holds as a bitset by number, one
// bit each, not as a map and a list: for a fleet of 1000 those grew
// through size classes of 14-18 KiB that nothing else in a monitor
// allocates in, and each size class costs the runtime metadata it keeps
// for good (desc.Scratch says why).
func Closer(uks []monitor.Unikernel) func() {
	var files []*os.File
	seen := map[*os.File]bool{}
	maxFd := -1
	for _, u := range uks {
		for _, f := range u.Blobs {
			if !seen[f] {
				seen[f] = true
				files = append(files, f)
			}
		}
		for _, fd := range u.BlobFds {
			maxFd = max(maxFd, fd)
		}
	}
	fds := make([]uint64, (maxFd+64)/64)
	for _, u := range uks {
		for _, fd := range u.BlobFds {
			if fd >= 0 {
				fds[fd/64] |= 1 << (fd % 64)
			}
		}
	}
	return func() {
		for _, f := range files {
			f.Close()
		}
		for i, w := range fds {
			for ; w != 0; w &= w - 1 {
				unix.Close(i*64 + bits.TrailingZeros64(w))
			}
		}
	}
}
