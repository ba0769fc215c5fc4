package loader

import (
	"strings"
	"testing"
)

func TestCheckFileRangeRefusesAPagePastTheFilesEnd(t *testing.T) {
	for _, c := range []struct {
		off, size, file uint64
		ok              bool
	}{
		{0, 0x1000, 0x1000, true},
		{0x1000, 0x1000, 0x1800, true}, // the last page's tail reads as zeros
		{0, 0x2000, 0x1000, false},
		{0x1000, 0x1000, 0x1000, false},
		{0, 0x1000, 0, false},
		{0, 0x800, 0x1, true},              // a sub-page mapping maps its page
		{1 << 63, 1 << 63, 1 << 12, false}, // wraps
		{0x1000, ^uint64(0) - 0x800, ^uint64(0), false},
	} {
		m := Mapping{Addr: 0x40000000, Size: c.size, Offset: c.off, File: "/pool/blob", Digest: "sha256:ab", Library: "libc", Part: PartShared}
		err := m.CheckFileRange(c.file)
		if (err == nil) != c.ok {
			t.Errorf("[%#x,+%#x) of a %#x-byte file: %v, want ok %v", c.off, c.size, c.file, err, c.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), "blob sha256:ab (/pool/blob)") || !strings.Contains(err.Error(), `library "libc"`)) {
			t.Errorf("error %q does not name the blob and the library", err)
		}
	}
}
