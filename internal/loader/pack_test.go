package loader

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/monitor"
)

// packUnikernel: members a and b share one pack page (their code at
// sub-page addresses), c has a page of its own.
func packUnikernel(t *testing.T) monitor.Unikernel {
	t.Helper()
	dir := t.TempDir()
	page := make([]byte, abi.PageSize)
	page[0x40], page[0x80] = 0xc3, 0xc3
	private := make([]byte, 64)
	os.WriteFile(filepath.Join(dir, "page"), page, 0o644)
	os.WriteFile(filepath.Join(dir, "private"), private, 0o644)
	pack := uint64(abi.MapBase)
	member := func(name string, start, priv uint64) desc.Library {
		return desc.Library{Name: name, Pack: pack,
			Region:  desc.Region{Start: start, SharedSize: 0x40, PrivateStart: priv, PrivateSize: 16},
			Shared:  desc.Shared{Size: 0x40},
			Private: desc.Part{MemSize: 16}}
	}
	a := member("a", pack+0x40, abi.DataArenaBase)
	b := member("b", pack+0x80, abi.DataArenaBase+16)
	b.Relocs = []desc.Reloc{{Off: 0, Target: desc.Addr{Lib: 0, Off: 0}}} // a's code
	b.Private.FileSize = 8
	c := desc.Library{Name: "c", Region: desc.Region{Start: pack + 16*abi.PageSize, SharedSize: abi.PageSize, PrivateStart: abi.DataArenaBase + 32, PrivateSize: 16},
		Shared: desc.Shared{Size: abi.PageSize, Digest: "sha256:pg"}, Private: desc.Part{MemSize: 16}}
	pg := desc.Library{Name: desc.PackPageName(pack), Pack: pack, PackPage: true, Region: desc.Region{Start: pack, SharedSize: abi.PageSize},
		Shared: desc.Shared{Size: abi.PageSize, Digest: "sha256:pg", Segments: []desc.Segment{{Off: 0, Size: abi.PageSize, Prot: desc.ProtRX}}}}
	cfg := &desc.Config{SchemaVersion: desc.SchemaVersionPack, Layout: "aligned", Entry: desc.Addr{Lib: 0},
		Libraries: []desc.Library{a, b, c, pg}, Private: &desc.BlobRef{Digest: "sha256:p", Size: int64(len(private))}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{"sha256:pg": filepath.Join(dir, "page"), "sha256:p": filepath.Join(dir, "private")}
	return monitor.Unikernel{Name: "pack", Config: cfg, BlobPath: func(d string) string { return paths[d] }}
}

// A pack page is mapped once, from its blob; its members map nothing of
// their own. --aslr-per-library moves a pack and its members by one base
// (their code stays where it lies in the page), and the other libraries
// on their own.
func TestAPackAndItsMembersMoveAsOneUnderPerLibraryASLR(t *testing.T) {
	uk := packUnikernel(t)
	lay, err := Plan(uk, Options{Load: monitor.LoadShared})
	if err != nil {
		t.Fatal(err)
	}
	shared := map[string]Mapping{}
	for _, m := range lay.Mappings {
		if m.Part == PartShared {
			shared[m.Library] = m
		}
	}
	if p, ok := shared[desc.PackPageName(abi.MapBase)]; len(shared) != 2 || !ok || p.Addr != abi.MapBase || shared["c"].Size != abi.PageSize {
		t.Fatalf("shared mappings %+v, want c's page and the pack page, members nothing", shared)
	}
	apart := 0
	for seed := uint64(1); seed <= 20; seed++ {
		lay, err := Plan(uk, Options{Load: monitor.LoadShared, ASLR: true, ASLRPerLibrary: true, MemSize: 1 << 20, Rand: rand.New(rand.NewPCG(seed, 3))})
		if err != nil {
			t.Fatal(err)
		}
		pg, a, b, c := lay.Bases[desc.PackPageName(abi.MapBase)], lay.Bases["a"], lay.Bases["b"], lay.Bases["c"]
		if pg == abi.MapBase || a != pg+0x40 || b != pg+0x80 {
			t.Fatalf("seed %d: pack page at %#x, a at %#x, b at %#x: want them moved together", seed, pg, a, b)
		}
		if c-pg != 16*abi.PageSize {
			apart++
		}
	}
	if apart == 0 {
		t.Error("c never moved apart from the pack under --aslr-per-library")
	}
}
