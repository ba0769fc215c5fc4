package elfimage

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/desc"
)

const testProgram = `
char msg[] = "hello";            /* .data */
char zeros[8192];                /* .bss */
const char ro[] = "read-only";   /* .rodata */
int _start(void) { zeros[0] = msg[0]; for (;;) __asm__ volatile("hlt"); }
`

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
}

// buildImage compiles testProgram into a static executable.
func buildImage(t *testing.T, extra ...string) string {
	t.Helper()
	needTools(t, "gcc")
	dir := t.TempDir()
	src := filepath.Join(dir, "p.c")
	if err := os.WriteFile(src, []byte(testProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "p.elf")
	args := append([]string{"-O1", "-ffreestanding", "-nostdlib", "-static", "-fno-asynchronous-unwind-tables", "-o", out, src}, extra...)
	if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	return out
}

func TestOpenReadsSegmentsEntryAndSymbols(t *testing.T) {
	path := buildImage(t, "-no-pie")
	im, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if im.Type() != elf.ET_EXEC {
		t.Errorf("type %v", im.Type())
	}
	start, ok := im.Symbol("_start")
	if !ok || start != im.Entry() {
		t.Fatalf("_start %#x (found %v), entry %#x", start, ok, im.Entry())
	}
	msg, ok := im.Symbol("msg")
	if !ok {
		t.Fatal("no msg symbol")
	}
	b, err := im.ReadAt(msg, 6)
	if err != nil || string(b) != "hello\x00" {
		t.Fatalf("ReadAt(msg) = %q, %v", b, err)
	}
	zeros, ok := im.Symbol("zeros")
	if !ok {
		t.Fatal("no zeros symbol")
	}
	b, err = im.ReadAt(zeros, 8192)
	if err != nil || !bytes.Equal(b, make([]byte, 8192)) {
		t.Fatalf("ReadAt(bss) not zero: %v", err)
	}
	var sawX bool
	for _, s := range im.Segments() {
		sawX = sawX || s.Flags&elf.PF_X != 0
	}
	if !sawX {
		t.Error("no executable segment")
	}
	if _, err := im.ReadAt(0x10, 1); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("reading an unmapped address: %v, want an error naming the file", err)
	}
	if _, err := im.Config(); !errors.Is(err, ErrNoConfig) {
		t.Errorf("Config of a plain image: %v, want ErrNoConfig", err)
	}
}

func TestOpenAcceptsStaticPIE(t *testing.T) {
	path := buildImage(t, "-static-pie")
	im, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if im.Type() != elf.ET_DYN {
		t.Errorf("type %v, want ET_DYN", im.Type())
	}
}

func TestConfigReadsTheUnipoolSection(t *testing.T) {
	needTools(t, "objcopy")
	path := buildImage(t, "-no-pie")
	im, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	base := im.Segments()[0].Vaddr &^ 0xfff
	cfg := desc.Config{SchemaVersion: desc.SchemaVersion, Layout: "aligned",
		Entry: desc.Addr{Lib: 0, Off: im.Entry() - base},
		Libraries: []desc.Library{{Name: "app", App: true,
			Region: desc.Region{Start: base, SharedSize: 0x100000}}}}
	addSection(t, path, cfg)
	im, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := im.Config()
	if err != nil {
		t.Fatal(err)
	}
	if got.Libraries[0].Name != "app" || got.Entry != cfg.Entry {
		t.Errorf("config %+v", got)
	}

	// A description that does not match the image is refused.
	cfg.Entry.Off += 4
	addSection(t, path, cfg)
	im, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := im.Config(); err == nil || !strings.Contains(err.Error(), "entry") {
		t.Errorf("mismatched entry: %v", err)
	}
}

func addSection(t *testing.T, path string, cfg desc.Config) {
	t.Helper()
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sec := filepath.Join(t.TempDir(), "sec.json")
	if err := os.WriteFile(sec, js, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--remove-section=" + desc.SectionName, "--add-section", desc.SectionName + "=" + sec, path}
	if b, err := exec.Command("objcopy", args...).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, b)
	}
}

func TestOpenRejectsBadInputNamingTheFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := map[string]string{
		write("text.txt", []byte("hello world, not ELF")): "not an ELF file",
		write("empty", nil): "not an ELF file",
	}
	good := buildImage(t, "-no-pie")
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	wrongArch := append([]byte(nil), data...)
	wrongArch[18] = byte(elf.EM_AARCH64) // e_machine
	cases[write("arm.elf", wrongArch)] = "EM_AARCH64"
	truncated := data[:200]
	cases[write("short.elf", truncated)] = ""
	relocatable := append([]byte(nil), data...)
	relocatable[16] = byte(elf.ET_REL)
	cases[write("rel.o", relocatable)] = "ET_REL"
	for path, want := range cases {
		_, err := Open(path)
		if err == nil {
			t.Errorf("%s: accepted", path)
			continue
		}
		if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q should name the file and say %q", path, err, want)
		}
	}
	if _, err := Open(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzRead(f *testing.F) {
	if _, err := exec.LookPath("gcc"); err == nil {
		dir := f.TempDir()
		src := filepath.Join(dir, "p.c")
		out := filepath.Join(dir, "p")
		if os.WriteFile(src, []byte(testProgram), 0o644) == nil &&
			exec.Command("gcc", "-O1", "-ffreestanding", "-nostdlib", "-static", "-no-pie", "-o", out, src).Run() == nil {
			if data, err := os.ReadFile(out); err == nil {
				f.Add(data)
			}
		}
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := Read("fuzz", data)
		if err != nil {
			return
		}
		for _, s := range im.Segments() {
			if s.MemSize > 1<<24 {
				continue
			}
			if _, err := im.ReadAt(s.Vaddr, s.MemSize); err != nil {
				t.Fatalf("segment %+v unreadable: %v", s, err)
			}
		}
		im.Config()
		im.Symbols()
	})
}
