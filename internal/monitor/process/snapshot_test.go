package process

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
)

// readyGuest writes a word to its heap and 'B' to the console, stops at
// the ready port, then checks the word is still there, prints 'R' and
// exits with its instance id from the boot info (%rbx, kept across the
// ready point).
const readyGuest = `
	mov %rdi, %rbx
	mov 32(%rdi), %r12
	movabs $0x1122334455667788, %rax
	mov %rax, 0x2000(%r12)
	mov $0x3f8, %dx
	mov $'B', %al
	out %al, %dx
	xor %eax, %eax
	mov $0x502, %dx
	out %eax, %dx
	movabs $0x1122334455667788, %rax
	cmp %rax, 0x2000(%r12)
	jne 1f
	mov $0x3f8, %dx
	mov $'R', %al
	out %al, %dx
	mov 64(%rbx), %eax
	mov $0x501, %dx
	out %eax, %dx
1:	mov $99, %eax
	mov $0x501, %dx
	out %eax, %dx
`

// snapshotOf captures uk and attaches the snapshot to its description,
// its pages as blob files in dir.
func snapshotOf(t *testing.T, dir string, uk monitor.Unikernel) monitor.Unikernel {
	t.Helper()
	c, err := (&Monitor{}).Capture(context.Background(), uk, monitor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := &desc.Snapshot{Monitor: Name, MemSize: c.MemSize, StackBootArea: c.StackBootArea, StackBootRoom: c.StackBootRoom, Regs: c.Regs, Console: c.Console}
	paths := map[string]string{}
	for _, pg := range c.Pages {
		sum := sha256.Sum256(pg.Data)
		d := "sha256:" + hex.EncodeToString(sum[:])
		paths[d] = filepath.Join(dir, "page-"+hex.EncodeToString(sum[:]))
		if err := os.WriteFile(paths[d], pg.Data, 0o444); err != nil && !os.IsPermission(err) {
			t.Fatal(err)
		}
		s.Pages = append(s.Pages, desc.Page{Addr: pg.Addr, Digest: d})
	}
	cfg := *uk.Config
	cfg.Snapshot = s
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	blob := uk.BlobPath
	uk.Config = &cfg
	uk.BlobPath = func(d string) string {
		if p, ok := paths[d]; ok {
			return p
		}
		return blob(d)
	}
	return uk
}

func TestInstancesResumeFromTheSnapshotWithTheirOwnBootInfo(t *testing.T) {
	dir := t.TempDir()
	uk := pooled(t, dir, "app", readyGuest)
	// Cold, the ready port changes nothing.
	for i, r := range runPooled(t, []monitor.Unikernel{uk}, monitor.Options{N: 2}) {
		if r.Error != "" || r.Output != "BR" || r.ExitCode != i {
			t.Fatalf("cold instance %d: exit %d output %q error %q", i, r.ExitCode, r.Output, r.Error)
		}
	}
	snap := snapshotOf(t, dir, uk)
	s := snap.Config.Snapshot
	// %rbx holds the boot info's address: BootStackRoom into the stack's
	// top page.
	if s.Console != "B" || s.Regs.RBX%abi.PageSize != loader.BootStackRoom || s.Regs.RBX < abi.PrivateBase || s.Regs.RBX >= abi.PrivateLimit ||
		s.StackBootArea != loader.SnapshotBootArea || s.StackBootRoom != loader.BootStackRoom || s.BootArea != 0 || len(s.Pages) == 0 {
		t.Fatalf("snapshot: console %q, rbx %#x, %d pages", s.Console, s.Regs.RBX, len(s.Pages))
	}
	heapWord := false
	for _, pg := range s.Pages {
		if pg.Addr < abi.PrivateBase || pg.Addr >= abi.PrivateLimit && pg.Addr < abi.ASLRBase {
			continue
		}
		heapWord = true
	}
	if !heapWord {
		t.Errorf("no page of the per-instance area in the snapshot: %+v", s.Pages)
	}
	rs := runPooled(t, []monitor.Unikernel{snap}, monitor.Options{N: 3, Snapshot: true})
	for i, r := range rs {
		// 'B' was written before the snapshot: it is replayed, not rerun.
		if r.Error != "" || r.Output != "BR" || r.ExitCode != i {
			t.Errorf("instance %d from the snapshot: exit %d output %q error %q", i, r.ExitCode, r.Output, r.Error)
		}
	}
}

// dataGuest writes a word to the app's private part (its data) and one to
// its heap before the ready point, and after it only reads the first.
const dataGuest = `
	mov 32(%%rdi), %%r12
	movabs $0x1122334455667788, %%rax
	movabs $%#x, %%r13
	mov %%rax, (%%r13)
	mov %%rax, 0x2000(%%r12)
	xor %%eax, %%eax
	mov $0x502, %%dx
	out %%eax, %%dx
	movabs $0x1122334455667788, %%rax
	cmp %%rax, (%%r13)
	jne 1f
	xor %%eax, %%eax
	mov $0x501, %%dx
	out %%eax, %%dx
1:	mov $99, %%eax
	mov $0x501, %%dx
	out %%eax, %%dx
`

// A library's stored page the instance only reads stays the blob's
// page-cache page, shared by every instance; the heap's stored pages
// (which every instance writes) are the instance's own copies, with no
// mapping of their own.
func TestSnapshotPagesOfALibraryStaySharedUntilWrittenAndTheHeapsAreCopied(t *testing.T) {
	dir := t.TempDir()
	cold, err := loader.Plan(pooled(t, dir, "app", readyGuest), loader.Options{MemSize: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var data uint64
	for _, m := range cold.Mappings {
		if m.Library == "app" && m.Part == loader.PartPrivate {
			data = m.Addr
		}
	}
	if data == 0 {
		t.Fatal("the app has no private part")
	}
	snap := snapshotOf(t, dir, pooled(t, dir, "app", fmt.Sprintf(dataGuest, data)))
	var heap uint64
	for _, pg := range snap.Config.Snapshot.Pages {
		if pg.Addr >= abi.PrivateBase && pg.Addr < abi.PrivateLimit {
			heap = pg.Addr
		}
	}
	if heap == 0 {
		t.Fatalf("no heap page in the snapshot: %+v", snap.Config.Snapshot.Pages)
	}
	held := map[int]bool{}
	rs := runPooled(t, []monitor.Unikernel{snap}, monitor.Options{N: 2, Snapshot: true, Hold: 30e9, Resident: func(pids []int) {
		for _, pid := range pids {
			if anon, line := mappingStat(t, pid, data, "Anonymous"); anon != 0 || !strings.Contains(line, filepath.Base(dir)) {
				t.Errorf("pid %d: data page %#x (%s) has %d anonymous KiB, want the blob's page", pid, data, line, anon)
			}
			if rss, _ := mappingStat(t, pid, data, "Rss"); rss == 0 {
				t.Errorf("pid %d: data page %#x not resident", pid, data)
			}
			if _, line := mappingStat(t, pid, heap, "Rss"); line != "" {
				t.Errorf("pid %d: heap page %#x is a mapping of its own: %s", pid, heap, line)
			}
			held[pid] = true
		}
		// Once every instance is built, the monitor holds none of the
		// pool's files (library blobs, snapshot pages): the instances'
		// mappings keep them.
		blobs := filepath.Dir(snap.BlobPath(snap.Config.Snapshot.Pages[0].Digest))
		fds, _ := os.ReadDir("/proc/self/fd")
		for _, fd := range fds {
			target, _ := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
			if strings.HasPrefix(target, blobs+"/") {
				t.Errorf("the monitor still holds %s open (fd %s) while its instances are held", target, fd.Name())
			}
		}
	}})
	for _, r := range rs {
		if r.Error != "" || r.ExitCode != 0 {
			t.Errorf("instance %d: exit %d error %q", r.Instance, r.ExitCode, r.Error)
		}
	}
	if len(held) != 2 {
		t.Errorf("%d instances held", len(held))
	}
}
