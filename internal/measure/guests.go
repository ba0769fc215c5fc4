package measure

// Guests that live inside a monitor process (the kvm monitor: every VM's
// guest memory is a range of its address space), measured from another
// process. The monitor names the ranges (GuestRanges); the measurer reads
// their pages from /proc/PID/pagemap, /proc/PID/maps and /proc/PID/mem
// (GuestSet.Bytes, Census.AddGuests): the guests' part of the monitor
// process's PSS moves to the instances, the census reads their pages,
// and nothing the measurer holds is in any figure.

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/unipool/unipool/internal/monitor"
)

// GuestRange is a range of a monitor process's address space that holds
// guest memory.
type GuestRange struct {
	Addr uint64 `json:"addr"`
	Size uint64 `json:"size"`
	// Runtime: boot info, stack, heap (else an image's pages).
	Runtime bool `json:"runtime,omitempty"`
	// Guests is how many guests map the range (a shared blob mapping is
	// every guest's of its set; 0 means 1): the census counts its pages
	// that many times, as it counts a shared page in every instance
	// process that maps it.
	Guests int `json:"guests,omitempty"`
}

// GuestRanges lists g's ranges as addresses of this process (the monitor
// process's: call it there), one entry per distinct range, sorted.
func GuestRanges(g monitor.HeldGuests) []GuestRange {
	idx := map[GuestRange]int{}
	var out []GuestRange
	g.Ranges(func(b []byte, runtime bool) {
		if len(b) == 0 {
			return
		}
		k := GuestRange{Addr: uint64(uintptrOf(b)), Size: uint64(len(b)), Runtime: runtime}
		if i, ok := idx[k]; ok {
			out[i].Guests++
			return
		}
		idx[k] = len(out)
		k.Guests = 1
		out = append(out, k)
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out
}

// GuestSet is the guests of one monitor process.
type GuestSet struct {
	Pid    int
	Ranges []GuestRange
}

// Bytes is the guests' own resident memory: every present page of the
// ranges that is anonymous and mapped only there (a guest's own page:
// not the kernel's zero page, not KSM-merged), and every present file
// page (a blob's, or an init blob's page no guest wrote yet) once,
// however many ranges map it. Each such page is wholly in the process's
// PSS as long as no other process maps the files.
func (s GuestSet) Bytes() (uint64, error) {
	m, err := s.Read()
	return m.Anon + m.File, err
}

// GuestMemory is the guests' own resident memory (GuestSet.Bytes), its
// anonymous pages and its file pages apart.
type GuestMemory struct {
	Anon, File uint64
}

// Read is Bytes, its anonymous and file pages apart.
func (s GuestSet) Read() (GuestMemory, error) {
	if len(s.Ranges) == 0 {
		return GuestMemory{}, nil
	}
	vmas, err := readVMAs(s.Pid)
	if err != nil {
		return GuestMemory{}, err
	}
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", s.Pid))
	if err != nil {
		return GuestMemory{}, fmt.Errorf("measure: %w", err)
	}
	defer pm.Close()
	var anon uint64
	files := map[filePage]struct{}{}
	seen := map[[2]uint64]bool{} // a range listed twice counts once
	for _, r := range s.Ranges {
		if seen[[2]uint64{r.Addr, r.Size}] {
			continue
		}
		seen[[2]uint64{r.Addr, r.Size}] = true
		err := walkPagemap(pm, r.Addr, r.Size, func(addr, e uint64) {
			switch {
			case e&PagemapPresent == 0:
			case e&PagemapFile == 0:
				if e&PagemapExclusive != 0 {
					anon += PageSize
				}
			default:
				if v := vmas.find(addr); v != nil && v.inode != 0 {
					files[filePage{v.dev, v.inode, (v.off + addr - v.start) / PageSize}] = struct{}{}
				} else {
					// Shared anonymous memory (no file to key it by):
					// the page of this address.
					files[filePage{"", 0, addr / PageSize}] = struct{}{}
				}
			}
		})
		if err != nil {
			return GuestMemory{}, err
		}
	}
	return GuestMemory{Anon: anon, File: uint64(len(files)) * PageSize}, nil
}

// AddGuests counts every present page of s's ranges (read from
// /proc/PID/mem), each range's pages as many times as guests map it.
func (c *Census) AddGuests(s GuestSet) error {
	if len(s.Ranges) == 0 {
		return nil
	}
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", s.Pid))
	if err != nil {
		return fmt.Errorf("census: %w", err)
	}
	defer pm.Close()
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", s.Pid))
	if err != nil {
		return fmt.Errorf("census: %w", err)
	}
	defer mem.Close()
	page := make([]byte, PageSize)
	for _, r := range s.Ranges {
		a := AreaOf(r.Runtime)
		n := max(r.Guests, 1)
		err := walkPagemap(pm, r.Addr, r.Size, func(addr, e uint64) {
			if !present(e) {
				return
			}
			if _, err := mem.ReadAt(page, int64(addr)); err != nil {
				return
			}
			for range n {
				c.Add(page, a)
			}
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// walkPagemap calls f with the pagemap entry of every page of [addr,
// addr+size), reading pm (a /proc/PID/pagemap) in chunks.
func walkPagemap(pm *os.File, addr, size uint64, f func(addr, entry uint64)) error {
	const chunk = 1 << 14 // pages per read
	first := addr / PageSize
	pages := (addr%PageSize + size + PageSize - 1) / PageSize
	buf := make([]byte, 8*min(pages, chunk))
	for done := uint64(0); done < pages; {
		n := min(pages-done, chunk)
		b := buf[:8*n]
		if _, err := pm.ReadAt(b, int64((first+done)*8)); err != nil {
			return fmt.Errorf("measure: %s at %#x: %w", pm.Name(), (first+done)*PageSize, err)
		}
		for i := uint64(0); i < n; i++ {
			f((first+done+i)*PageSize, binary.LittleEndian.Uint64(b[8*i:]))
		}
		done += n
	}
	return nil
}

// filePage is a page of a file: its device, inode and page offset.
type filePage struct {
	dev   string
	inode uint64
	page  uint64
}

// vma is a mapping of /proc/PID/maps.
type vma struct {
	start, end, off uint64
	dev             string
	inode           uint64
}

type vmaList []vma

// find is the mapping holding addr, nil if none.
func (l vmaList) find(addr uint64) *vma {
	i := sort.Search(len(l), func(i int) bool { return l[i].end > addr })
	if i < len(l) && l[i].start <= addr {
		return &l[i]
	}
	return nil
}

// readVMAs reads pid's mappings, in address order.
func readVMAs(pid int) (vmaList, error) {
	path := fmt.Sprintf("/proc/%d/maps", pid)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("measure: %w", err)
	}
	defer f.Close()
	var l vmaList
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := parseVMA(sc.Text())
		if ok {
			l = append(l, v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("measure: %s: %w", path, err)
	}
	return l, nil
}

// parseVMA parses one line of /proc/PID/maps: "lo-hi perms offset dev
// inode [path]".
func parseVMA(line string) (vma, bool) {
	f := strings.Fields(line)
	if len(f) < 5 {
		return vma{}, false
	}
	lo, hi, ok := strings.Cut(f[0], "-")
	if !ok {
		return vma{}, false
	}
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	off, err3 := strconv.ParseUint(f[2], 16, 64)
	inode, err4 := strconv.ParseUint(f[4], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || end <= start {
		return vma{}, false
	}
	return vma{start: start, end: end, off: off, dev: f[3], inode: inode}, true
}
