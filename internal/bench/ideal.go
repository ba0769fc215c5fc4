package bench

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// PageCensus counts the distinct contents of the resident pages of a set
// of processes: the ideal (the physical limit) is one copy of each.
type PageCensus struct {
	Pages    uint64 // resident pages seen (over all processes)
	Distinct uint64 // distinct contents among them
	seen     map[[32]byte]struct{}
}

// NewPageCensus makes an empty census.
func NewPageCensus() *PageCensus { return &PageCensus{seen: map[[32]byte]struct{}{}} }

// AddProcess reads every present page of pid's mappings (from
// /proc/PID/pagemap and /proc/PID/mem) into the census. Only ranges whose
// address is in [lo, hi) are counted, so a monitor's own memory can be left
// out.
func (c *PageCensus) AddProcess(pid int, lo, hi uint64) error {
	maps, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return fmt.Errorf("census: %w", err)
	}
	defer maps.Close()
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return fmt.Errorf("census: %w", err)
	}
	defer pm.Close()
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return fmt.Errorf("census: %w", err)
	}
	defer mem.Close()
	sc := bufio.NewScanner(maps)
	page := make([]byte, 4096)
	entry := make([]byte, 8)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		if len(f) >= 6 && (f[5] == "[vvar]" || f[5] == "[vdso]" || f[5] == "[vsyscall]" || f[5] == "[vvar_vclock]") {
			continue
		}
		r := strings.SplitN(f[0], "-", 2)
		start, err1 := strconv.ParseUint(r[0], 16, 64)
		end, err2 := strconv.ParseUint(r[1], 16, 64)
		if err1 != nil || err2 != nil || !strings.HasPrefix(f[1], "r") {
			continue
		}
		for a := max(start, lo); a < min(end, hi); a += 4096 {
			if _, err := pm.ReadAt(entry, int64(a/4096*8)); err != nil {
				break
			}
			// bit 63: present, bit 62: swapped.
			if binary.LittleEndian.Uint64(entry)&(3<<62) == 0 {
				continue
			}
			if _, err := mem.ReadAt(page, int64(a)); err != nil {
				continue
			}
			c.Pages++
			h := sha256.Sum256(page)
			if _, ok := c.seen[h]; !ok {
				c.seen[h] = struct{}{}
				c.Distinct++
			}
		}
	}
	return sc.Err()
}
