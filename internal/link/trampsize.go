package link

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/unipool/unipool/internal/desc"
)

// ELF64 header and program header fields trimTramp reads and writes.
const (
	ehPhoff     = 0x20
	ehPhentsize = 0x36
	ehPhnum     = 0x38
	phType      = 0
	phVaddr     = 16
	phFilesz    = 32
	phMemsz     = 40
	ptLoad      = 1
)

// trimTramp shrinks each library's tramp PT_LOAD in the finished image
// at path to the pages its table uses. The region keeps the map's
// capacity (a later version may need more); the image only stops loading
// the unused rest, which a pooled loader never maps either (it maps
// pageUp(Tramp.Size)), so a plain load of the image (the KSM baselines)
// and `link bench` count the pages an instance really has. An unused
// table's segment becomes empty.
func trimTramp(path string, cfg *desc.Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(data) < 0x40 {
		return fmt.Errorf("%s: not an ELF64 file", path)
	}
	le := binary.LittleEndian
	off, size, n := le.Uint64(data[ehPhoff:]), uint64(le.Uint16(data[ehPhentsize:])), uint64(le.Uint16(data[ehPhnum:]))
	if size < 56 || off+size*n < off || off+size*n > uint64(len(data)) {
		return fmt.Errorf("%s: program headers outside the file", path)
	}
	want := map[uint64]uint64{} // tramp area address -> bytes to keep
	for _, l := range cfg.Libraries {
		if l.Region.TrampSize > 0 {
			want[l.Region.TrampAddr()] = pageUp(l.Tramp.Size)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for i := range n {
		ph := data[off+i*size : off+(i+1)*size]
		keep, ok := want[le.Uint64(ph[phVaddr:])]
		if le.Uint32(ph[phType:]) != ptLoad || !ok || keep >= le.Uint64(ph[phMemsz:]) {
			continue
		}
		le.PutUint64(ph[phFilesz:], min(keep, le.Uint64(ph[phFilesz:])))
		le.PutUint64(ph[phMemsz:], keep)
		if _, err := f.WriteAt(ph, int64(off+i*size)); err != nil {
			return err
		}
	}
	return f.Close()
}
