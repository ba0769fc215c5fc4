package loader

import "fmt"

// CheckFileRange checks that m, a mapping of its File, lies inside that
// file, which holds size bytes (the monitor's fstat of the descriptor it
// maps): a page mapped wholly past a file's end is no page at all, and
// the instance touching it takes a SIGBUS (the process monitor) or the
// monitor reading it one (the KVM monitor copying a piece). A description
// that claims more of a blob than the blob holds (a damaged pool, or a
// pool file swapped after it was verified) is so refused before anything
// is mapped, for every kind of mapped blob: a library's shared part or
// pack, its init blob, the data arena's pages in the private blob, a
// snapshot's page pack or page blob, and a plain image's file. The part
// of the last page past the file's end reads as zeros, as a loader
// expects. Both monitors call it; they name the unikernel.
func (m *Mapping) CheckFileRange(size uint64) error {
	n := pageUp(m.Size) // what a monitor maps
	end := m.Offset + n
	if m.File != "" && n >= m.Size && end >= m.Offset && pageUp(size) >= size && end <= pageUp(size) {
		return nil
	}
	what := m.Part
	if m.Library != "" {
		what = fmt.Sprintf("library %q %s", m.Library, m.Part)
	}
	name := "file"
	if m.Digest != "" {
		name = "blob " + m.Digest
	}
	return fmt.Errorf("%s at %#x maps [%#x,%#x) of %s (%s), which holds %d bytes", what, m.Addr, m.Offset, end, name, m.File, size)
}
