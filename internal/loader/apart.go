package loader

// Plain images checked in a process of their own (CheckImages).
//
// debug/elf's parse of an image makes a Section, a reader and a name per
// section header and buffers sized by the header counts: garbage of the
// image's shape (~29 KB an aligned image of ~77 section headers, ~7 KB a
// DCE one of ~18), which puts a monitor that parses a fleet's images in
// size classes it uses for nothing else, and the Go runtime keeps the
// span-set metadata of every size class a process ever used for good
// (docs/notes/monitor-memory.md, Session 16 (heap16): the aligned-ksm
// monitor's ~160 KiB more anonymous memory than dce-ksm's in bench tlb).
// A monitor binary that serves image checks (ServeImageChecks, first in
// its main) parses in a child instead: the monitor re-executes itself as
// the checker, which confines its thread (no capabilities, a seccomp
// allow-list: read-only opens, reads, the Go runtime's calls), parses each
// image named on its stdin as CheckImage does and writes back what the
// monitor keeps of it (imageHeaders) in a fixed binary form; its garbage
// ends with it. The monitor trusts that answer no further than an image
// file's own headers: it decodes it with bounds on every count, checks it
// as a parse in the monitor is checked (imageHeaders.check: segments
// inside the file, the boot-info version, the dead-page list by
// elfimage.ParseDeadPages, the entry not on a dead page; layOut: where the
// segments lie), and the file's size and modification time against its
// own stat. A lying checker can make an image load as a different image
// made of the same file's bytes would, which the image's author can do
// anyway.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"syscall"
	"time"
	"unicode/utf8"

	"debug/elf"

	"github.com/unipool/unipool/internal/elfimage"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/seccomp"
)

// checkerEnv, set to "1" in its environment, makes a binary whose main
// calls ServeImageChecks the image checker.
const checkerEnv = "UNIPOOL_IMAGE_CHECKER"

// checkerExe is the binary CheckImages starts as the checker ("": parse
// in this process). ServeImageChecks sets it.
var checkerExe string

// ServeImageChecks belongs first in the main of a monitor binary
// (unipool-vmm, unipool). Started as the image checker (by CheckImages),
// it checks the images its stdin names, answers on stdout and exits;
// otherwise it lets CheckImages start this binary as the checker. Without
// it CheckImages parses in the calling process.
func ServeImageChecks() {
	if os.Getenv(checkerEnv) != "1" {
		checkerExe = "/proc/self/exe"
		return
	}
	if err := serveChecks(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "image checker:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// The request (the monitor to the checker): "UPCQ", u32 count, then per
// image u32 length and the path. The answer: "UPCA", then per image in
// order u8 1 and its headers, or u8 0, u16 length and the error message.
// Headers: u64 entry, u8 flags (1 Linux boot, 2 multiboot), u32 boot-info
// version, i64 size, i64 modification time (ns), the PT_TLS header, u32
// count and the PT_LOAD headers (Memsz != 0, file order), u32 length and
// the dead-page list (elfimage.EncodeDeadPages; length 0: none). A
// program header: u32 type, u32 flags, u64 offset, vaddr, paddr, filesz,
// memsz, align. Little-endian.
const (
	requestMagic  = "UPCQ"
	answerMagic   = "UPCA"
	progSize      = 56
	maxCheckPaths = 1 << 20
	maxPathLen    = 4096
	maxCheckedMsg = 1024
	// At most 65,535 program headers (e_phnum) and 65,536 dead ranges
	// (elfimage.ParseDeadPages).
	maxLoads     = 0xffff
	maxDeadBytes = 16 + 16*65536
	flagLinux    = 1
	flagMB       = 2
)

// CheckImages is CheckImage of every image in paths, its headers' PT_LOAD
// lists taken from store: in a child process if this binary serves image
// checks (ServeImageChecks), else in this one. It fails on the first
// image that is refused, naming it.
func CheckImages(paths []string, store *HeaderStore) ([]*ImageHeaders, error) {
	if checkerExe == "" {
		hs := make([]*ImageHeaders, len(paths))
		for i, p := range paths {
			h, err := CheckImage(monitor.Unikernel{Name: p, Image: p}, store)
			if err != nil {
				return nil, err
			}
			hs[i] = h
		}
		return hs, nil
	}
	return checkApart(checkerExe, paths, store)
}

// checkerTimeout bounds a checker's answer: a parse of a fleet's images
// takes milliseconds each; a checker that has not answered by then is
// killed and the check fails, so that no image can hang a monitor's
// start.
var checkerTimeout = 2 * time.Minute

// checkApart runs exe as the checker on paths. (syscall.ForkExec, as the
// process monitor starts its zygotes: os/exec was ~30 KB more of the
// monitor binary.)
func checkApart(exe string, paths []string, store *HeaderStore) ([]*ImageHeaders, error) {
	var in, out, errs [2]int // [0] the read end, [1] the write end
	for i, p := range []*[2]int{&in, &out, &errs} {
		if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
			for _, q := range []*[2]int{&in, &out, &errs}[:i] {
				syscall.Close(q[0])
				syscall.Close(q[1])
			}
			return nil, fmt.Errorf("image checker: %w", err)
		}
	}
	pid, err := syscall.ForkExec(exe, []string{"unipool-image-checker"}, &syscall.ProcAttr{
		Env:   []string{checkerEnv + "=1"},
		Files: []uintptr{uintptr(in[0]), uintptr(out[1]), uintptr(errs[1])},
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	syscall.Close(in[0])
	syscall.Close(out[1])
	syscall.Close(errs[1])
	// This side's ends through the runtime's poller: a goroutine waiting
	// on them parks instead of blocking a thread in read(2) or write(2),
	// for which the runtime would start another (each 16 KiB of kernel
	// stack and the thread's own, kept idle for the run).
	for _, fd := range []int{in[1], out[0], errs[0]} {
		syscall.SetNonblock(fd, true)
	}
	inW, outR, errR := os.NewFile(uintptr(in[1]), "checker stdin"), os.NewFile(uintptr(out[0]), "checker stdout"), os.NewFile(uintptr(errs[0]), "checker stderr")
	defer outR.Close()
	if err != nil {
		inW.Close()
		errR.Close()
		return nil, fmt.Errorf("image checker: %w", err)
	}
	go func() {
		w := bufio.NewWriterSize(inW, 4096)
		writeRequest(w, paths)
		w.Flush()
		inW.Close()
	}()
	var stderr limitedBuffer
	stderrDone := make(chan struct{})
	go func() {
		io.Copy(&stderr, errR)
		errR.Close()
		close(stderrDone)
	}()
	due := time.Now().Add(checkerTimeout)
	if err := outR.SetReadDeadline(due); err != nil {
		// Not pollable: nothing would bound the wait.
		syscall.Kill(pid, syscall.SIGKILL)
	}
	r := bufio.NewReaderSize(outR, 4096)
	hs, derr := readAnswer(r, paths, store)
	if derr != nil && !time.Now().Before(due) {
		derr = fmt.Errorf("image checker: no answer in %v", checkerTimeout)
	}
	if derr == nil {
		if _, err := r.ReadByte(); err != io.EOF {
			derr = errors.New("image checker: more than its answer")
		}
	}
	if derr != nil {
		// Whatever it was doing: it is not needed any more.
		syscall.Kill(pid, syscall.SIGKILL)
	}
	// Its stderr's end is its exit (or its kill's): the wait then does
	// not block.
	<-stderrDone
	var ws syscall.WaitStatus
	for {
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
			break
		}
	}
	exited := ws.Exited() && ws.ExitStatus() == 0
	if derr != nil {
		if !exited && stderr.Len() > 0 {
			return nil, fmt.Errorf("%w (checker: %s: %s)", derr, waitString(ws), printable(stderr.Bytes()))
		}
		return nil, derr
	}
	if !exited {
		return nil, fmt.Errorf("image checker: %s: %s", waitString(ws), printable(stderr.Bytes()))
	}
	return hs, nil
}

func waitString(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}

func writeRequest(w io.Writer, paths []string) {
	var b [4]byte
	io.WriteString(w, requestMagic)
	binary.LittleEndian.PutUint32(b[:], uint32(len(paths)))
	w.Write(b[:])
	for _, p := range paths {
		binary.LittleEndian.PutUint32(b[:], uint32(len(p)))
		w.Write(b[:])
		io.WriteString(w, p)
	}
}

// readAnswer reads and checks the checker's answer for paths.
func readAnswer(r *bufio.Reader, paths []string, store *HeaderStore) ([]*ImageHeaders, error) {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil || string(magic[:]) != answerMagic {
		return nil, fmt.Errorf("image checker: no answer (%v)", err)
	}
	hs := make([]*ImageHeaders, len(paths))
	for i, path := range paths {
		fi, err := os.Stat(path)
		if err != nil {
			if b, perr := r.Peek(1); perr == nil && b[0] == 0 {
				// Refused by the checker too: its message (as
				// CheckImage's, which opens the file first).
				_, err = decodeHeaders(r, path, 0, 0, store)
				return nil, err
			}
			return nil, fmt.Errorf("image %s: %w", path, err)
		}
		h, err := decodeHeaders(r, path, fi.Size(), fi.ModTime().UnixNano(), store)
		if err != nil {
			return nil, err
		}
		// Where the segments lie, as CheckImage lays them out once.
		if _, err := h.image(nil, imageHeadersOnly); err != nil {
			return nil, err
		}
		hs[i] = &ImageHeaders{h}
	}
	return hs, nil
}

// decodeHeaders reads one image's answer (the image at path, of size and
// modification time modTime by the monitor's own stat) and checks it.
func decodeHeaders(r io.Reader, path string, size, modTime int64, store *HeaderStore) (*imageHeaders, error) {
	bad := func(what string) error {
		return fmt.Errorf("image %s: the image checker's answer: %s", path, what)
	}
	var b [progSize]byte
	if _, err := io.ReadFull(r, b[:1]); err != nil {
		return nil, bad("cut short")
	}
	le := binary.LittleEndian
	switch b[0] {
	case 0:
		if _, err := io.ReadFull(r, b[:2]); err != nil {
			return nil, bad("cut short")
		}
		n := int(le.Uint16(b[:]))
		if n > maxCheckedMsg {
			return nil, bad("an error message too long")
		}
		var msg [maxCheckedMsg]byte
		if _, err := io.ReadFull(r, msg[:n]); err != nil {
			return nil, bad("cut short")
		}
		return nil, errors.New(printable(msg[:n]))
	case 1:
	default:
		return nil, bad(fmt.Sprintf("status %d", b[0]))
	}
	if _, err := io.ReadFull(r, b[:8+1+4+8+8]); err != nil {
		return nil, bad("cut short")
	}
	h := &imageHeaders{path: path, entry: le.Uint64(b[0:]), bootInfo: le.Uint32(b[9:]), size: size, modTime: modTime, store: store}
	flags := b[8]
	if flags&^(flagLinux|flagMB) != 0 || flags == flagLinux|flagMB {
		return nil, bad(fmt.Sprintf("flags %#x", flags))
	}
	h.linux, h.multiboot = flags&flagLinux != 0, flags&flagMB != 0
	if int64(le.Uint64(b[13:])) != size || int64(le.Uint64(b[21:])) != modTime {
		return nil, fmt.Errorf("image %s: changed while it was checked", path)
	}
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, bad("cut short")
	}
	h.tls = decodeProg(b[:])
	if _, err := io.ReadFull(r, b[:4]); err != nil {
		return nil, bad("cut short")
	}
	n := le.Uint32(b[:])
	if n > maxLoads {
		return nil, bad(fmt.Sprintf("%d PT_LOAD headers", n))
	}
	h.progs = store.take(int(n))
	for range n {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, bad("cut short")
		}
		h.progs = append(h.progs, decodeProg(b[:]))
	}
	if _, err := io.ReadFull(r, b[:4]); err != nil {
		return nil, bad("cut short")
	}
	if dn := le.Uint32(b[:]); dn > 0 {
		if dn > maxDeadBytes {
			return nil, bad(fmt.Sprintf("a dead-page list of %d bytes", dn))
		}
		data := make([]byte, dn)
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, bad("cut short")
		}
		dead, err := elfimage.ParseDeadPages(path, data)
		if err != nil {
			return nil, err
		}
		if len(dead) > 0 {
			h.dead = dead
		}
	}
	if err := h.check(); err != nil {
		return nil, err
	}
	return h, nil
}

func decodeProg(b []byte) elf.ProgHeader {
	le := binary.LittleEndian
	return elf.ProgHeader{Type: elf.ProgType(le.Uint32(b[0:])), Flags: elf.ProgFlag(le.Uint32(b[4:])),
		Off: le.Uint64(b[8:]), Vaddr: le.Uint64(b[16:]), Paddr: le.Uint64(b[24:]),
		Filesz: le.Uint64(b[32:]), Memsz: le.Uint64(b[40:]), Align: le.Uint64(b[48:])}
}

func appendProg(b []byte, p elf.ProgHeader) []byte {
	le := binary.LittleEndian
	b = le.AppendUint32(b, uint32(p.Type))
	b = le.AppendUint32(b, uint32(p.Flags))
	for _, v := range []uint64{p.Off, p.Vaddr, p.Paddr, p.Filesz, p.Memsz, p.Align} {
		b = le.AppendUint64(b, v)
	}
	return b
}

// encodeHeaders appends h's answer to b.
func encodeHeaders(b []byte, h *imageHeaders) []byte {
	le := binary.LittleEndian
	b = append(b, 1)
	b = le.AppendUint64(b, h.entry)
	var flags byte
	if h.linux {
		flags |= flagLinux
	}
	if h.multiboot {
		flags |= flagMB
	}
	b = append(b, flags)
	b = le.AppendUint32(b, h.bootInfo)
	b = le.AppendUint64(b, uint64(h.size))
	b = le.AppendUint64(b, uint64(h.modTime))
	b = appendProg(b, h.tls)
	b = le.AppendUint32(b, uint32(len(h.progs)))
	for _, p := range h.progs {
		b = appendProg(b, p)
	}
	if len(h.dead) == 0 {
		return le.AppendUint32(b, 0)
	}
	d := elfimage.EncodeDeadPages(h.dead)
	b = le.AppendUint32(b, uint32(len(d)))
	return append(b, d...)
}

// encodeError appends an answer refusing the image with err to b.
func encodeError(b []byte, err error) []byte {
	msg := err.Error()
	if len(msg) > maxCheckedMsg {
		msg = msg[:maxCheckedMsg]
	}
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(msg)))
	return append(b, msg...)
}

// serveChecks is the checker: it confines its thread, then answers the
// request on in on out.
func serveChecks(in io.Reader, out io.Writer) error {
	// For good: the filter is this thread's (the Go runtime starts no
	// thread from a locked one: its template thread does).
	runtime.LockOSThread()
	if err := seccomp.ConfineThread(seccomp.ImageChecker(os.Getpid())); err != nil {
		return err
	}
	r := bufio.NewReaderSize(in, 4096)
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil || string(b[:]) != requestMagic {
		return fmt.Errorf("no request (%v)", err)
	}
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return err
	}
	n := binary.LittleEndian.Uint32(b[:])
	if n > maxCheckPaths {
		return fmt.Errorf("%d images", n)
	}
	w := bufio.NewWriterSize(out, 64<<10)
	w.WriteString(answerMagic)
	var buf []byte
	for range n {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return err
		}
		l := binary.LittleEndian.Uint32(b[:])
		if l > maxPathLen {
			return fmt.Errorf("a path of %d bytes", l)
		}
		p := make([]byte, l)
		if _, err := io.ReadFull(r, p); err != nil {
			return err
		}
		h, err := checkOne(string(p))
		buf = buf[:0]
		if err != nil {
			buf = encodeError(buf, err)
		} else {
			buf = encodeHeaders(buf, h)
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return w.Flush()
}

// checkOne is CheckImage's parse and checks of the image at path.
func checkOne(path string) (*imageHeaders, error) {
	h, err := CheckImage(monitor.Unikernel{Name: path, Image: path}, nil)
	if err != nil {
		return nil, err
	}
	return h.h, nil
}

// limitedBuffer keeps the first 4 KiB written to it (the checker's
// stderr, for a report).
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// printable is s (from the checker: not trusted) as one line of
// printable ASCII (anything else a '?'), at most maxCheckedMsg bytes.
func printable(s []byte) string {
	if len(s) > maxCheckedMsg {
		s = s[:maxCheckedMsg]
	}
	b := bytes.TrimSpace(s)
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		if r < 0x20 || r > 0x7e {
			r = '?'
		}
		out = append(out, byte(r))
	}
	return string(out)
}
