package monitor

import (
	"bufio"
	"encoding/binary"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ReturnCodePages gives the pages of this process's own executable that
// are still the file's (its code, its read-only data, and what of its
// writable data it never wrote) back to the host, those no other process
// maps (madvise MADV_PAGEOUT: the kernel reclaims them; one that is
// needed again is read back from the file). Pages it wrote are its own
// (anonymous): they stay. A process that holds a fleet (`unipool run
// --hold`, bench's monitor process) calls it once the fleet is held, as
// the last thing it does before it waits: it then runs a few pages of
// code, while the ~13 MiB of its binary that resolving, planning and
// starting a thousand unikernels ran stayed resident, paid by the host
// for the whole hold (two thirds of the held monitor process's PSS). Code
// run after it is read back (with its neighbours: the kernel's
// fault-around), so the caller calls it last. It returns how many bytes
// it asked the kernel to page out.
func ReturnCodePages() uint64 {
	maps, err := executableMappings()
	if err != nil {
		return 0
	}
	pagemap, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return 0
	}
	defer pagemap.Close()
	var n uint64
	pageout := func(lo, hi uintptr) {
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, lo, hi-lo, unix.MADV_PAGEOUT); e == 0 {
			n += uint64(hi - lo)
		}
	}
	const page = 4096
	buf := make([]byte, 8*512)
	for _, m := range maps {
		if !m.writable {
			pageout(m.lo, m.hi)
			continue
		}
		// A private writable mapping: only its pages that are still
		// the file's (pagemap bit 61), never the ones it wrote.
		run := uintptr(0)
		for a := m.lo; a < m.hi; {
			k := min(uintptr(len(buf)/8), (m.hi-a)/page)
			got, err := pagemap.ReadAt(buf[:8*k], int64(a/page*8))
			if err != nil || got != int(8*k) {
				break
			}
			for i := range k {
				e := binary.LittleEndian.Uint64(buf[8*i:])
				present, file := e&(1<<63) != 0, e&(1<<61) != 0
				at := a + i*page
				if present && file {
					if run == 0 {
						run = at
					}
				} else if run != 0 {
					pageout(run, at)
					run = 0
				}
			}
			a += k * page
		}
		if run != 0 {
			pageout(run, m.hi)
		}
	}
	return n
}

// exeMapping is one mapping of this process's own executable.
type exeMapping struct {
	lo, hi   uintptr
	writable bool
}

// executableMappings lists this process's mappings of its own executable.
func executableMappings() ([]exeMapping, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []exeMapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 || strings.Join(fs[5:], " ") != exe {
			continue
		}
		lo, hi, ok := strings.Cut(fs[0], "-")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || b <= a {
			continue
		}
		out = append(out, exeMapping{lo: uintptr(a), hi: uintptr(b), writable: strings.Contains(fs[1], "w")})
	}
	return out, sc.Err()
}
