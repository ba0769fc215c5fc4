package microvm

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/kvm"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/testcli"
)

// TestAMultibootKernelStartsIn32BitModeWithTheMagicAndItsInfo: the
// loader's test kernel (testdata/multiboot.S: an ELF32 multiboot kernel)
// checks %eax for the boot loader's magic and prints the command line it
// finds through the information at %ebx, then powers off through ACPI:
// it prints nothing unless the entry state is the Multiboot one.
func TestAMultibootKernelStartsIn32BitModeWithTheMagicAndItsInfo(t *testing.T) {
	needKVM(t)
	testcli.NeedTools(t, "as", "ld")
	bin := cliBinary(t)
	dir := t.TempDir()
	obj, img := filepath.Join(dir, "k.o"), filepath.Join(dir, "k.elf")
	for _, c := range [][]string{
		{"as", "--32", "-o", obj, "../../loader/testdata/multiboot.S"},
		{"ld", "-m", "elf_i386", "-Ttext=0x100000", "-e", "_start", "-o", img, obj},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	stdout, stderr, code := cli(t, bin, "run", "--json", "--monitor", "kvm", "--timeout", "60s", "--image", img, "--cmdline", "hello multiboot")
	var rs []monitor.Result
	if err := json.Unmarshal([]byte(stdout), &rs); err != nil || len(rs) != 1 {
		t.Fatalf("status %d, stdout %q, stderr %q: %v", code, stdout, stderr, err)
	}
	if r := rs[0]; code != 0 || r.Output != img+" hello multiboot\n" || r.Shutdown == "" {
		t.Errorf("status %d, output %q, shutdown %q, error %q; want the kernel's name and command line, then an ACPI power-off",
			code, r.Output, r.Shutdown, r.Error)
	}
}

// TestUnikraftQEMUFlavourPrintsUnderKVMTheLinesQEMUTCGPrinted: Unikraft's
// helloworld built with its QEMU defconfig (kvm platform, multiboot entry)
// is one stock image; scripts/test.sh boots it in qemu-system-x86_64
// under TCG outside the emulated host and keeps the serial console
// (UNIPOOL_KVM_UNIKRAFT/qemu.elf, qemu-tcg.out, qemu.append), and here
// the KVM monitor boots the same file with the same command line: both
// print the same lines.
func TestUnikraftQEMUFlavourPrintsUnderKVMTheLinesQEMUTCGPrinted(t *testing.T) {
	dir := os.Getenv("UNIPOOL_KVM_UNIKRAFT")
	if dir == "" {
		t.Skip("UNIPOOL_KVM_UNIKRAFT not set (scripts/test.sh sets it)")
	}
	needKVM(t)
	bin := cliBinary(t)
	img := filepath.Join(dir, "qemu.elf")
	want, err := os.ReadFile(filepath.Join(dir, "qemu-tcg.out"))
	if err != nil {
		t.Fatalf("QEMU's console of the same image (scripts/test.sh records it): %v", err)
	}
	appendArgs, err := os.ReadFile(filepath.Join(dir, "qemu.append"))
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := cli(t, bin, "run", "--json", "--monitor", "kvm", "--timeout", "240s", "--image", img,
		"--cmdline", strings.TrimSuffix(string(appendArgs), "\n"))
	var rs []monitor.Result
	if err := json.Unmarshal([]byte(stdout), &rs); err != nil || len(rs) != 1 {
		t.Fatalf("status %d, stdout %q, stderr %q: %v", code, stdout, stderr, err)
	}
	r := rs[0]
	if code != 0 || r.Shutdown == "" || r.Error != "" {
		t.Errorf("status %d, shutdown %q, error %q; want a clean shutdown", code, r.Shutdown, r.Error)
	}
	got, qemu := consoleLines(r.Output), consoleLines(string(want))
	if !strings.Contains(strings.Join(qemu, "\n"), "Hello world!") {
		t.Fatalf("QEMU's console has no Hello world!: %q", qemu)
	}
	if strings.Join(got, "\n") != strings.Join(qemu, "\n") {
		t.Errorf("the KVM monitor printed\n%q\nQEMU (TCG) printed\n%q", got, qemu)
	}
	if len(got) > 0 {
		t.Logf("%d lines the same under both, the last %q", len(got), got[len(got)-1])
	}
	// (This process and the CLI's run on the same CPU.)
	t.Logf("host hypervisor %q: the 32-bit entry single-stepped: %v", kvm.HostHypervisor(), stepsEntry())
}

// consoleLines splits serial output into lines, without the carriage
// returns a terminal needs, and without trailing empty lines.
func consoleLines(s string) []string {
	lines := strings.Split(strings.ReplaceAll(s, "\r", ""), "\n")
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// touchKernel is a multiboot kernel that prints "a", reads the byte at
// ADDR (given to the assembler; writes it if WRITE is defined), prints
// "b" and powers off.
const touchKernel = `
	.text
	.align 4
	.long 0x1BADB002
	.long 3
	.long -(0x1BADB002 + 3)
	.code32
	.globl _start
_start:
	movw	$0x3f8, %dx
	movb	$'a', %al
	outb	%al, %dx
	.ifdef WRITE
	movb	%al, ADDR
	.else
	movb	ADDR, %al
	.endif
	movb	$'b', %al
	outb	%al, %dx
	movw	$0x604, %dx
	movw	$0x2000, %ax
	outw	%ax, %dx
1:	hlt
	jmp	1b
`

// TestAGuestTouchingAHoleBetweenItsMappingsEndsWithAReportAndNoOtherVM:
// an identity-mapped guest's memory slots span the holes between its
// mappings (holes mapped without access in the host); a guest reading
// one, or an address in no slot, ends with a report naming it, and the VM
// started beside it in the same process runs to its end. A guest reading
// or writing the monitor's system page (the process's one copy, mapped
// copy-on-write) runs to its end: the write made the page its own.
func TestAGuestTouchingAHoleBetweenItsMappingsEndsWithAReportAndNoOtherVM(t *testing.T) {
	needKVM(t)
	testcli.NeedTools(t, "as", "ld")
	bin := cliBinary(t)
	dir := t.TempDir()
	build := func(name, addr string, write bool) string {
		src, obj, img := filepath.Join(dir, name+".S"), filepath.Join(dir, name+".o"), filepath.Join(dir, name+".elf")
		if err := os.WriteFile(src, []byte(touchKernel), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, c := range [][]string{
			append([]string{"as", "--32", "--defsym", "ADDR=" + addr, "-o", obj, src}, map[bool][]string{true: {"--defsym", "WRITE=1"}}[write]...),
			{"ld", "-m", "elf_i386", "-Ttext=0x100000", "-e", "_start", "-o", img, obj},
		} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", c, err, out)
			}
		}
		return img
	}
	for _, c := range []struct {
		addr  string
		write bool
		want  string // "": the guest runs to its end
	}{
		{"0x50000", false, "the guest touched unbacked memory (a hole between its mappings)"}, // inside the low slot
		{"0x10000000", false, "read of unbacked guest-physical address 0x10000000"},           // in no slot
		{"0x1008", true, ""},
		{"0x1008", false, ""},
	} {
		hole, fine := build("hole", c.addr, c.write), build("fine", "0x100000", false)
		stdout, stderr, code := cli(t, bin, "run", "--json", "--monitor", "kvm", "--timeout", "60s", "--image", hole, "--image", fine)
		var rs []monitor.Result
		if err := json.Unmarshal([]byte(stdout), &rs); err != nil || len(rs) != 2 {
			t.Fatalf("%s: status %d, stdout %q, stderr %q: %v", c.addr, code, stdout, stderr, err)
		}
		for _, r := range rs {
			switch r.Unikernel {
			case "hole.elf":
				if c.want == "" {
					if r.Output != "ab" || r.Error != "" || r.Shutdown == "" {
						t.Errorf("%s: printed %q, error %q, shutdown %q; want ab and a clean power-off", c.addr, r.Output, r.Error, r.Shutdown)
					}
					continue
				}
				if r.Output != "a" || !strings.Contains(r.Error, c.want) {
					t.Errorf("%s: output %q, error %q; want \"a\" and %q", c.addr, r.Output, r.Error, c.want)
				}
			default:
				if r.Output != "ab" || r.Error != "" || r.Shutdown == "" {
					t.Errorf("%s: the other VM printed %q, error %q, shutdown %q; want ab and a clean power-off", c.addr, r.Output, r.Error, r.Shutdown)
				}
			}
		}
		if want := map[bool]int{true: 1, false: 0}[c.want != ""]; code != want {
			t.Errorf("%s (write %v): status %d, want %d", c.addr, c.write, code, want)
		}
	}
}
