// Package tlbtrace counts TLB flushes by issuing task and reason with the
// kernel's tlb:tlb_flush tracepoint, in a tracefs instance of its own so it
// neither needs function tracing nor disturbs other tracing users.
// Shootdown IPIs in /proc/interrupts miss most flushes; the tracepoint
// sees local flushes too.
package tlbtrace

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Root is the tracefs mount point.
var Root = "/sys/kernel/tracing"

// Counts are the flushes seen, by task.
type Counts struct {
	Total    uint64                       `json:"total"`
	ByPID    map[int]uint64               `json:"by_pid"`
	ByComm   map[string]uint64            `json:"by_comm"`
	ByReason map[string]map[string]uint64 `json:"by_comm_reason"` // comm -> reason -> n
	// ByTGID counts flushes by the thread group (process) of the task the
	// CPU ran when it traced them, and reason. The kernel records the
	// TGID itself (options/record-tgid), so threads that have exited by
	// the time the counts are read are still charged to their process.
	ByTGID map[int]map[string]uint64 `json:"by_tgid_reason"`
	// Shootdowns counts, by PID, the flushes that are not the routine
	// "flush on task switch".
	Shootdowns map[int]uint64 `json:"shootdowns_by_pid"`
}

// Reasons of the tlb:tlb_flush tracepoint (arch/x86 enum tlb_flush_reason).
const (
	// TaskSwitch: the flush every context switch between address spaces
	// makes; it says nothing of page sharing.
	TaskSwitch = "flush on task switch"
	// RemoteSend is traced on the CPU that issues a shootdown to other
	// CPUs, in the issuing task: the one event that names who caused a
	// remote shootdown.
	RemoteSend = "remote IPI send"
	// RemoteReceived and RemoteWrongCPU are traced on the receiving CPU,
	// in whatever task it runs then: they say nothing of the issuer.
	RemoteReceived = "remote shootdown"
	RemoteWrongCPU = "remote wrong CPU"
	// Local shootdowns flush only the issuing CPU.
	LocalShootdown   = "local shootdown"
	LocalMMShootdown = "local MM shootdown"
)

// Kind sorts a reason into "remote" (issued), "received", "local" or
// "task-switch"; kernels differ in the case of the names.
func Kind(reason string) string {
	switch strings.ToLower(reason) {
	case strings.ToLower(RemoteSend):
		return "remote"
	case strings.ToLower(RemoteReceived), strings.ToLower(RemoteWrongCPU):
		return "received"
	case strings.ToLower(TaskSwitch):
		return "task-switch"
	}
	return "local"
}

// Tracer is a running count.
type Tracer struct {
	dir    string
	pipe   *os.File
	mu     sync.Mutex
	counts Counts
	done   chan struct{}
}

// Start mounts tracefs if needed, makes an instance, enables tlb_flush and
// starts counting.
func Start() (*Tracer, error) {
	if _, err := os.Stat(filepath.Join(Root, "instances")); err != nil {
		if err := unix.Mount("nodev", Root, "tracefs", 0, ""); err != nil {
			return nil, fmt.Errorf("tlbtrace: mount tracefs at %s: %w (needs root)", Root, err)
		}
	}
	if _, err := os.Stat(filepath.Join(Root, "events/tlb/tlb_flush")); err != nil {
		return nil, fmt.Errorf("tlbtrace: kernel has no tlb:tlb_flush tracepoint: %w", err)
	}
	dir := filepath.Join(Root, "instances", fmt.Sprintf("unipool-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		return nil, fmt.Errorf("tlbtrace: %w", err)
	}
	t := &Tracer{dir: dir, done: make(chan struct{}), counts: Counts{
		ByPID: map[int]uint64{}, ByComm: map[string]uint64{}, ByReason: map[string]map[string]uint64{}, Shootdowns: map[int]uint64{},
		ByTGID: map[int]map[string]uint64{}}}
	if err := os.WriteFile(filepath.Join(dir, "options/record-tgid"), []byte("1"), 0); err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("tlbtrace: record-tgid: %w", err)
	}
	// A large buffer: ksmd can issue tens of thousands of flushes a minute.
	os.WriteFile(filepath.Join(dir, "buffer_size_kb"), []byte("16384"), 0)
	if err := os.WriteFile(filepath.Join(dir, "events/tlb/tlb_flush/enable"), []byte("1"), 0); err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("tlbtrace: enable tlb_flush: %w", err)
	}
	pipe, err := os.Open(filepath.Join(dir, "trace_pipe"))
	if err != nil {
		t.cleanup()
		return nil, fmt.Errorf("tlbtrace: %w", err)
	}
	t.pipe = pipe
	go t.read()
	return t, nil
}

func (t *Tracer) read() {
	defer close(t.done)
	sc := bufio.NewScanner(t.pipe)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		t.add(sc.Text())
	}
}

func (t *Tracer) add(line string) {
	comm, pid, tgid, reason, ok := ParseLine(line)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counts.Total++
	t.counts.ByPID[pid]++
	t.counts.ByComm[comm]++
	if reason != TaskSwitch {
		t.counts.Shootdowns[pid]++
	}
	m := t.counts.ByReason[comm]
	if m == nil {
		m = map[string]uint64{}
		t.counts.ByReason[comm] = m
	}
	m[reason]++
	if tgid < 0 {
		tgid = pid
	}
	g := t.counts.ByTGID[tgid]
	if g == nil {
		g = map[string]uint64{}
		t.counts.ByTGID[tgid] = g
	}
	g[reason]++
}

// ParseLine reads one trace_pipe line of a tlb_flush event, with or
// without the TGID column (tgid is -1 without):
// "  ksmd-37  (   37) [001] d..2.  1234.5: tlb_flush: pages:1 reason:remote IPI send (4)".
func ParseLine(line string) (comm string, pid, tgid int, reason string, ok bool) {
	i := strings.Index(line, " tlb_flush: ")
	if i < 0 {
		return "", 0, 0, "", false
	}
	head := strings.TrimSpace(line[:i])
	cpu := strings.Index(head, " [")
	if cpu < 0 {
		return "", 0, 0, "", false
	}
	task := strings.TrimSpace(head[:cpu])
	tgid = -1
	if strings.HasSuffix(task, ")") {
		open := strings.LastIndexByte(task, '(')
		if open < 0 {
			return "", 0, 0, "", false
		}
		g, err := strconv.Atoi(strings.TrimSpace(task[open+1 : len(task)-1]))
		if err != nil {
			tgid = -1 // "(-------)": not recorded
		} else {
			tgid = g
		}
		task = strings.TrimSpace(task[:open])
	}
	dash := strings.LastIndexByte(task, '-')
	if dash < 0 {
		return "", 0, 0, "", false
	}
	pid, err := strconv.Atoi(task[dash+1:])
	if err != nil {
		return "", 0, 0, "", false
	}
	rest := line[i+len(" tlb_flush: "):]
	r := strings.Index(rest, "reason:")
	if r < 0 {
		return "", 0, 0, "", false
	}
	reason = rest[r+len("reason:"):]
	if p := strings.LastIndex(reason, " ("); p >= 0 {
		reason = reason[:p]
	}
	return task[:dash], pid, tgid, reason, true
}

// Snapshot returns the counts so far.
func (t *Tracer) Snapshot() Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := Counts{Total: t.counts.Total, ByPID: map[int]uint64{}, ByComm: map[string]uint64{}, ByReason: map[string]map[string]uint64{},
		Shootdowns: map[int]uint64{}, ByTGID: map[int]map[string]uint64{}}
	for k, m := range t.counts.ByTGID {
		c.ByTGID[k] = map[string]uint64{}
		for r, v := range m {
			c.ByTGID[k][r] = v
		}
	}
	for k, v := range t.counts.ByPID {
		c.ByPID[k] = v
	}
	for k, v := range t.counts.Shootdowns {
		c.Shootdowns[k] = v
	}
	for k, v := range t.counts.ByComm {
		c.ByComm[k] = v
	}
	for k, m := range t.counts.ByReason {
		c.ByReason[k] = map[string]uint64{}
		for r, v := range m {
			c.ByReason[k][r] = v
		}
	}
	return c
}

// Stop disables the event, drains what is buffered, removes the instance
// and returns the counts.
func (t *Tracer) Stop() Counts {
	os.WriteFile(filepath.Join(t.dir, "events/tlb/tlb_flush/enable"), []byte("0"), 0)
	// trace_pipe blocks when empty; closing it ends the reader.
	t.pipe.SetReadDeadline(timeNowPlus())
	t.pipe.Close()
	<-t.done
	// What the reader had not consumed is still in the ring buffer: the
	// non-consuming "trace" file shows exactly those events.
	if f, err := os.Open(filepath.Join(t.dir, "trace")); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			t.add(sc.Text())
		}
		f.Close()
	}
	t.cleanup()
	return t.Snapshot()
}

func (t *Tracer) cleanup() {
	os.WriteFile(filepath.Join(t.dir, "events/tlb/tlb_flush/enable"), []byte("0"), 0)
	os.Remove(t.dir)
}

var _ io.Reader = (*os.File)(nil)
