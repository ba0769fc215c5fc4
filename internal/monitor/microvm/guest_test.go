package microvm

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/monitor"
)

// Hand-assembled guests, built with the system's gcc and objcopy. Each is
// position-independent code run as the shared part of one library; it may
// only refer to local labels (objcopy applies no relocations).
var guests = map[string]string{
	// Checks the boot info, SSE, the FS base, prints and exits with 7.
	"hello": `
	movabs $0x314c4f4f50494e55, %rax
	cmp %rax, (%rdi)
	jne bad
	pxor %xmm0, %xmm0
	movdqu %xmm0, -32(%rsp)
	mov %rsp, %rax
	sub $64, %rax
	mov %rax, %rdx
	shr $32, %rdx
	mov $0xc0000100, %ecx
	wrmsr
	movq $42, %fs:0
	cmpq $42, -64(%rsp)
	jne bad
	lea msg(%rip), %rsi
	mov $msglen, %ecx
	mov $0x3f8, %dx
	rep outsb
	mov $7, %eax
	mov $0x501, %dx
	out %eax, %dx
	hlt
bad:
	mov $99, %eax
	mov $0x501, %dx
	out %eax, %dx
	hlt
msg:	.ascii "hello from kvm\n"
	msglen = . - msg
`,
	// Writes into its own (shared, read-only) code.
	"writer": `
	mov $'w', %al
	mov $0x3f8, %dx
	out %al, (%dx)
	lea target(%rip), %rax
	movb $0x90, (%rax)
target:	nop
	mov $0, %eax
	mov $0x501, %dx
	out %eax, %dx
	hlt
`,
	"spin": `
1:	jmp 1b
`,
	"ud2": `
	ud2
`,
	"null": `
	mov 8, %rax
	hlt
`,
	"halt": `
	hlt
`,
	// Read the library's initialised data (the page after the code):
	// exit 0 if it holds the init blob's word, 1 if not.
	"initread": `
here:	lea here(%rip), %rbx
	add $0x1000, %rbx
	movabs $0x1122334455667788, %rax
	xor %ecx, %ecx
	cmp %rax, (%rbx)
	setne %cl
	mov %ecx, %eax
	mov $0x501, %dx
	out %eax, %dx
	hlt
`,
	// Free-page reporting: writes three heap pages and its boot info,
	// reports [heap+8, heap+0x2ffc) (the middle page only is whole) and
	// the boot info page, then exits 0 if the middle page reads zero and
	// the rest kept their bytes; else 91..95, the check that failed.
	"discard": `
	mov 32(%rdi), %rbx
	mov %rdi, %rcx
	movq $0x1234, (%rbx)
	movq $0x1234, 0x1000(%rbx)
	movq $0x1234, 0x2ff8(%rbx)
	movq $0x55, 0x98(%rcx)
	lea 8(%rbx), %rdi
	mov $0x2ff4, %rsi
	mov $0x503, %dx
	xor %eax, %eax
	out %eax, %dx
	mov $91, %r15d
	cmp $0x2ff4, %rsi
	jne 1f
	mov %rcx, %rdi
	mov $0x1000, %rsi
	out %eax, %dx
	mov $92, %r15d
	cmpq $0x1234, (%rbx)
	jne 1f
	mov $93, %r15d
	cmpq $0, 0x1000(%rbx)
	jne 1f
	mov $94, %r15d
	cmpq $0x1234, 0x2ff8(%rbx)
	jne 1f
	mov $95, %r15d
	cmpq $0x55, 0x98(%rcx)
	jne 1f
	xor %r15d, %r15d
1:	mov %r15d, %eax
	mov $0x501, %dx
	out %eax, %dx
	hlt
`,
	// The same, then write the data and read the write back.
	"initwrite": `
here:	lea here(%rip), %rbx
	add $0x1000, %rbx
	movabs $0x1122334455667788, %rax
	cmp %rax, (%rbx)
	jne 1f
	movq $5, (%rbx)
	cmpq $5, (%rbx)
	jne 1f
	xor %eax, %eax
	mov $0x501, %dx
	out %eax, %dx
	hlt
1:	mov $1, %eax
	mov $0x501, %dx
	out %eax, %dx
	hlt
`,
}

// assemble builds a guest's flat code with gcc and objcopy.
func assemble(t testing.TB, name string) []byte {
	t.Helper()
	src, ok := guests[name]
	if !ok {
		t.Fatalf("no guest %q", name)
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not found (scripts/deps.sh installs it)")
	}
	dir := t.TempDir()
	s := filepath.Join(dir, name+".S")
	if err := os.WriteFile(s, []byte(".text\n.globl _start\n_start:\n"+src), 0o644); err != nil {
		t.Fatal(err)
	}
	o, bin := filepath.Join(dir, name+".o"), filepath.Join(dir, name+".bin")
	for _, cmd := range [][]string{{"gcc", "-c", "-o", o, s}, {"objcopy", "-O", "binary", "-j", ".text", o, bin}} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, out)
		}
	}
	code, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// pooled makes a one-library unikernel whose shared part is the guest's
// code, stored as a content-addressed blob file in dir.
func pooled(t testing.TB, dir, name string) monitor.Unikernel {
	t.Helper()
	code := assemble(t, name)
	digest := writeBlob(t, dir, code)
	size := pageUp(uint64(len(code)))
	cfg := &desc.Config{
		SchemaVersion: desc.SchemaVersion,
		Name:          name,
		Layout:        "aligned",
		MemSize:       1 << 20,
		Entry:         desc.Addr{Lib: 0, Off: 0},
		Libraries: []desc.Library{{
			Name:    "uk" + name,
			Region:  desc.Region{Start: abi.MapBase, SharedSize: size, PrivateSize: pageSize},
			Shared:  desc.Shared{Size: size, Digest: digest},
			Private: desc.Part{MemSize: pageSize},
		}},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return monitor.Unikernel{Name: name, Config: cfg, BlobPath: func(d string) string {
		return filepath.Join(dir, strings.TrimPrefix(d, "sha256:"))
	}}
}

// withInit gives uk's library initialised private data from an init blob
// (the pool's copy-on-write form of a library's private part).
func withInit(t testing.TB, dir string, uk monitor.Unikernel, data []byte) monitor.Unikernel {
	t.Helper()
	l := &uk.Config.Libraries[0]
	l.Private.FileSize = uint64(len(data))
	l.Init = &desc.BlobRef{Digest: writeBlob(t, dir, data), Size: int64(pageUp(uint64(len(data))))}
	// The private blob holds the same bytes, for loaders that copy.
	uk.Config.Private = &desc.BlobRef{Digest: l.Init.Digest, Size: l.Init.Size}
	return uk
}

// writeBlob stores data, padded to whole pages as pool blobs are, under
// its digest in dir.
func writeBlob(t testing.TB, dir string, data []byte) string {
	t.Helper()
	data = append(data, make([]byte, pageUp(uint64(len(data)))-uint64(len(data)))...)
	digest := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
	path := filepath.Join(dir, strings.TrimPrefix(digest, "sha256:"))
	if err := os.WriteFile(path, data, 0o444); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	return digest
}

// needKVM skips t where KVM cannot run guests, unless
// UNIPOOL_REQUIRE_KVM=1 (scripts/test.sh sets it inside scripts/kvmhost, so
// a broken KVM there fails instead of skipping).
func needKVM(t testing.TB) {
	t.Helper()
	if err := Usable(); err != nil {
		if os.Getenv("UNIPOOL_REQUIRE_KVM") == "1" {
			t.Fatalf("UNIPOOL_REQUIRE_KVM=1 but %v", err)
		}
		t.Skipf("no usable KVM (%v); scripts/test.sh runs this inside scripts/kvmhost", err)
	}
}

// TestThisHostRunsKVMGuests is how scripts/test.sh decides where the KVM
// tests run: with UNIPOOL_REQUIRE_KVM=1 it fails unless KVM runs guests here.
func TestThisHostRunsKVMGuests(t *testing.T) {
	needKVM(t)
}
