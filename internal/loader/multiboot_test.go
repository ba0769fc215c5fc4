package loader

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/monitor"
)

// multibootKernel assembles testdata/multiboot.S into an ELF32 multiboot
// kernel (GNU as and ld, as a multiboot kernel is built).
func multibootKernel(t *testing.T, patch func([]byte)) string {
	t.Helper()
	dir := t.TempDir()
	obj, img := filepath.Join(dir, "k.o"), filepath.Join(dir, "k.elf")
	for _, c := range [][]string{
		{"as", "--32", "-o", obj, "testdata/multiboot.S"},
		{"ld", "-m", "elf_i386", "-Ttext=0x100000", "-e", "_start", "-o", img, obj},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	if patch != nil {
		data, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		patch(data)
		if err := os.WriteFile(img, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// TestAMultibootKernelIsLoadedAtItsAddressesWithTheInfoItsEntryReads: an
// ELF32 kernel with a multiboot header boots by BootMultiboot; its
// segments land at their physical addresses, and the information page
// holds the flags, the command line (the kernel's name first, as QEMU and
// GRUB pass it), the memory map with the instance's RAM, and our name.
func TestAMultibootKernelIsLoadedAtItsAddressesWithTheInfoItsEntryReads(t *testing.T) {
	img := multibootKernel(t, nil)
	p, err := Prepare(monitor.Unikernel{Name: "mb", Image: img}, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.Boot() != BootMultiboot {
		t.Fatalf("boot %q, want %q", p.Boot(), BootMultiboot)
	}
	lay, err := p.Plan(Options{Cmdline: "a b"})
	if err != nil {
		t.Fatal(err)
	}
	if lay.Boot != BootMultiboot || lay.Entry != 0x10000c || lay.BootInfo != abi.LegacyPrivateBase {
		t.Fatalf("boot %q entry %#x info %#x", lay.Boot, lay.Entry, lay.BootInfo)
	}
	read := func(addr, n uint64) []byte {
		m := lay.Find(addr)
		if m == nil {
			t.Fatalf("%#x is not mapped", addr)
		}
		out := make([]byte, n)
		if off := addr - m.Addr; off < uint64(len(m.Data)) {
			copy(out, m.Data[off:])
		}
		return out
	}
	if code := read(0x10000c, 5); !bytes.Equal(code, []byte{0x3d, 0x02, 0xb0, 0xad, 0x2b}) { // cmp $0x2badb002,%eax
		t.Fatalf("entry bytes %x", code)
	}
	le := binary.LittleEndian
	mbi := read(lay.BootInfo, 128)
	flags := le.Uint32(mbi[0:])
	if flags != mbInfoMemory|mbInfoCmdline|mbInfoMemMap|mbInfoLoaderName {
		t.Errorf("flags %#x", flags)
	}
	cmd := read(uint64(le.Uint32(mbi[16:])), 256)
	if got, want := string(cmd[:bytes.IndexByte(cmd, 0)]), img+" a b"; got != want {
		t.Errorf("command line %q, want %q", got, want)
	}
	if at := uint64(le.Uint32(mbi[16:])); at != lay.BootInfo+mbiCmdlineOff || lay.Find(at).Part != PartMultibootInfo {
		t.Errorf("command line at %#x (%s), want in the info page at +%#x", at, lay.Find(at).Part, mbiCmdlineOff)
	}
	name := read(uint64(le.Uint32(mbi[64:])), 16)
	if !bytes.HasPrefix(name, []byte(MultibootLoaderName+"\x00")) {
		t.Errorf("boot loader name %q", name)
	}
	mmapLen, mmapAddr := le.Uint32(mbi[44:]), uint64(le.Uint32(mbi[48:]))
	if mmapLen != mbMmapEntrySize {
		t.Fatalf("memory map of %d bytes, want one entry", mmapLen)
	}
	e := read(mmapAddr, mbMmapEntrySize)
	ram := lay.Find(le.Uint64(e[4:]))
	if le.Uint32(e[0:]) != 20 || le.Uint32(e[20:]) != 1 || ram == nil || ram.Part != PartRAM || ram.Size != le.Uint64(e[12:]) {
		t.Errorf("memory map entry %x does not describe the RAM mapping %+v", e, ram)
	}
}

// TestAMultibootCommandLineLiesInTheInfoPageWhenItFits: up to 2031
// bytes go into the information page after the boot loader's name, one
// page for both; a longer one gets pages of its own after it. The memory
// map is the same either way.
func TestAMultibootCommandLineLiesInTheInfoPageWhenItFits(t *testing.T) {
	le := binary.LittleEndian
	for _, c := range []struct {
		cmdline string
		parts   []string
		cmdAddr uint64
	}{
		{"/tmp/hello-qemu.elf a b", []string{"vga:32", "multiboot info:1", "ram:4096"}, 0x2000_0810},
		{strings.Repeat("x", 2031), []string{"vga:32", "multiboot info:1", "ram:4096"}, 0x2000_0810},
		{strings.Repeat("y", 2032), []string{"vga:32", "multiboot info:1", "cmdline:1", "ram:4096"}, 0x2000_1000},
		{strings.Repeat("z", 4096), []string{"vga:32", "multiboot info:1", "cmdline:2", "ram:4096"}, 0x2000_1000},
	} {
		lay := &Layout{}
		if err := lay.addMultibootMemory(Options{Cmdline: c.cmdline}); err != nil {
			t.Fatalf("%d bytes: %v", len(c.cmdline), err)
		}
		if got := firmwareParts(lay); strings.Join(got, " ") != strings.Join(c.parts, " ") {
			t.Errorf("%d bytes: parts %q, want %q", len(c.cmdline), got, c.parts)
		}
		mbi := layoutBytes(t, lay, lay.BootInfo, abi.PageSize)
		ptr := uint64(le.Uint32(mbi[mbiCmdline:]))
		if ptr != c.cmdAddr {
			t.Errorf("%d bytes: command line at %#x, want %#x", len(c.cmdline), ptr, c.cmdAddr)
		}
		if got := layoutBytes(t, lay, ptr, uint64(len(c.cmdline))+1); string(got) != c.cmdline+"\x00" {
			t.Errorf("%d bytes: the guest reads %.40q... at the pointer", len(c.cmdline), got)
		}
		name := layoutBytes(t, lay, uint64(le.Uint32(mbi[mbiLoaderName:])), 8)
		if string(name) != MultibootLoaderName+"\x00" {
			t.Errorf("%d bytes: boot loader name %q", len(c.cmdline), name)
		}
		mmap := layoutBytes(t, lay, uint64(le.Uint32(mbi[mbiMmapAddr:])), mbMmapEntrySize)
		if le.Uint32(mbi[mbiMmapLength:]) != mbMmapEntrySize || le.Uint64(mmap[4:]) != 0x2020_0000 || le.Uint64(mmap[12:]) != LinuxMinMem || le.Uint32(mmap[20:]) != 1 {
			t.Errorf("%d bytes: memory map %x, want the RAM at 0x2020_0000", len(c.cmdline), mmap)
		}
	}
}

// TestAnELF32ImageWithoutAUsableMultibootHeaderIsRefusedByName: no header
// (a bad checksum is no header), or one that requires what this loader
// cannot do.
func TestAnELF32ImageWithoutAUsableMultibootHeaderIsRefusedByName(t *testing.T) {
	at := func(data []byte) int {
		i := bytes.Index(data, []byte{0x02, 0xb0, 0xad, 0x1b})
		if i < 0 {
			t.Fatal("no multiboot header in the test kernel")
		}
		return i
	}
	for _, c := range []struct {
		what  string
		patch func([]byte)
		want  string
	}{
		{"bad checksum", func(d []byte) { d[at(d)+8]++ }, "without a multiboot header"},
		{"a required feature", func(d []byte) {
			i := at(d)
			binary.LittleEndian.PutUint32(d[i+4:], 3|1<<3)
			binary.LittleEndian.PutUint32(d[i+8:], checksum(3|1<<3))
		}, "requires features 0x8"},
		{"a.out kludge", func(d []byte) {
			i := at(d)
			binary.LittleEndian.PutUint32(d[i+4:], 3|1<<16)
			binary.LittleEndian.PutUint32(d[i+8:], checksum(3|1<<16))
		}, "a.out kludge"},
	} {
		img := multibootKernel(t, c.patch)
		_, err := Prepare(monitor.Unikernel{Name: "mb", Image: img}, false)
		if err == nil || !strings.Contains(err.Error(), img) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %s and saying %q", c.what, err, img, c.want)
		}
		if err := Check(monitor.Unikernel{Name: "mb", Image: img}, false); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Check: error %v, want Prepare's (%q)", c.what, err, c.want)
		}
	}
}

// checksum is the header word that makes magic + flags + checksum 0.
func checksum(flags uint32) uint32 {
	magic := uint32(MultibootHeaderMagic)
	return -(magic + flags)
}

// FuzzMultibootHeader: any first 8 KiB of a file is answered without a
// panic, and a header it accepts has the magic, a checksum that holds and
// no requirement beyond page alignment, memory info and video mode.
func FuzzMultibootHeader(f *testing.F) {
	hdr := make([]byte, 16)
	binary.LittleEndian.PutUint32(hdr[4:], MultibootHeaderMagic)
	binary.LittleEndian.PutUint32(hdr[8:], 3)
	binary.LittleEndian.PutUint32(hdr[12:], checksum(3))
	f.Add(hdr)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		flags, ok, err := multibootHeader(bytes.NewReader(data))
		if ok && err == nil && flags&0xffff&^7 != 0 {
			t.Fatalf("accepted required flags %#x", flags)
		}
		if !ok && err == nil && flags != 0 {
			t.Fatalf("no header but flags %#x", flags)
		}
	})
}
