package pool

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
)

// Annotations the pool puts on its manifests and layers.
const (
	// AnnotationLibrary names the library a shared layer holds.
	AnnotationLibrary = "org.unipool.library"
	// AnnotationImage is the base name of the image file a unikernel came from.
	AnnotationImage = "org.unipool.image"
)

// AddOptions are the choices of Add.
type AddOptions struct {
	Name    string // the unikernel's name; "" means the image file's base name less ".elf"
	Cmdline string // default command line; "" keeps the image's
	MemSize uint64 // default guest memory; 0 keeps the image's
	// InitBlobs also stores each library's tramp table and initialised
	// data as a blob of its own (desc.Library.Init), which a loader maps
	// copy-on-write, so instances share those pages until they write
	// them. The CLI turns it on by default.
	InitBlobs bool
}

// AddResult says what Add stored.
type AddResult struct {
	Name     string        `json:"name"`
	Manifest digest.Digest `json:"manifest"`
	Replaced bool          `json:"replaced"`  // the name named another unikernel before
	Blobs    int           `json:"blobs"`     // blobs the unikernel references
	NewBlobs int           `json:"new_blobs"` // of those, not in the pool before
	NewBytes int64         `json:"new_bytes"`
	NewPages int           `json:"new_pages,omitempty"` // snapshot pages among the new blobs (SetSnapshot)
}

// Add takes an aligned image apart and stores it under a name (creating
// the pool if needed). A name already in the pool is replaced; the blobs it
// alone used stay until GC.
func Add(dir, imagePath string, opt AddOptions) (*AddResult, error) {
	name := opt.Name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(imagePath), ".elf")
	}
	if err := checkName(name); err != nil {
		if opt.Name == "" {
			return nil, fmt.Errorf("image %s: %w; give one with --name", imagePath, err)
		}
		return nil, err
	}
	im, err := openImage(imagePath)
	if err != nil {
		return nil, err
	}

	p, err := Init(dir)
	if err != nil {
		return nil, err
	}
	l, err := p.lock(true)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	// Read the index before writing anything: a corrupt one stops add
	// before it stores blobs nothing will reference.
	idx, err := p.readIndex()
	if err != nil {
		return nil, err
	}
	if err := p.checkMap(im); err != nil {
		return nil, err
	}

	res := &AddResult{Name: name}
	c := im.config
	// Each pack as one blob, mapped whole (wholePacks).
	packs, err := p.wholePacks(im, c)
	if err != nil {
		return nil, err
	}
	c.Name = name
	if opt.Cmdline != "" {
		c.Cmdline = opt.Cmdline
	}
	if opt.MemSize != 0 {
		c.MemSize = opt.MemSize
	}
	c.Image = &desc.BlobRef{Digest: string(im.digest), Size: im.size}

	// Blobs first: the shared parts, the init blobs, the private blob, the
	// config, then the manifest; index.json last.
	var layers []ocispec.Descriptor
	seen := map[digest.Digest]bool{}
	for i := range c.Libraries {
		lib := &c.Libraries[i]
		lib.Shared.Digest = ""
		if lib.InPack() {
			continue // mapped by its pack's pages
		}
		lib.Shared.Size = pageUp(lib.Shared.Size)
		if lib.Shared.Size == 0 {
			continue
		}
		data, ok := packs[lib.Region.Start]
		if !lib.PackPage || !ok {
			if data, err = im.read(lib.Region.SharedAddr(), lib.Shared.Size, false); err != nil {
				return nil, fmt.Errorf("library %q: shared part: %w", lib.Name, err)
			}
		}
		d, err := p.storeBlob(data, res)
		if err != nil {
			return nil, err
		}
		lib.Shared.Digest = string(d)
		if !seen[d] {
			// Two libraries of one image with identical shared parts (rare)
			// are one layer: a manifest names each blob once.
			seen[d] = true
			layers = append(layers, ocispec.Descriptor{
				MediaType:   desc.MediaTypeShared,
				Digest:      d,
				Size:        int64(lib.Shared.Size),
				Annotations: map[string]string{AnnotationLibrary: lib.Name},
			})
		}
	}

	seenInit := map[digest.Digest]bool{}
	for i := range c.Libraries {
		lib := &c.Libraries[i]
		lib.Init = nil
		if !opt.InitBlobs {
			continue
		}
		data, err := initBlob(im, lib)
		if err != nil {
			return nil, err
		}
		if data == nil {
			continue
		}
		d, err := p.storeBlob(data, res)
		if err != nil {
			return nil, err
		}
		lib.Init = &desc.BlobRef{Digest: string(d), Size: int64(len(data))}
		if !seenInit[d] {
			seenInit[d] = true
			layers = append(layers, ocispec.Descriptor{
				MediaType:   desc.MediaTypeInit,
				Digest:      d,
				Size:        int64(len(data)),
				Annotations: map[string]string{AnnotationLibrary: lib.Name},
			})
		}
	}

	priv, err := privateBlob(im, c, opt.InitBlobs)
	if err != nil {
		return nil, err
	}
	pd, err := p.storeBlob(priv, res)
	if err != nil {
		return nil, err
	}
	c.Private = &desc.BlobRef{Digest: string(pd), Size: int64(len(priv))}
	layers = append(layers, ocispec.Descriptor{MediaType: desc.MediaTypePrivate, Digest: pd, Size: int64(len(priv))})

	cfgData, cd, err := p.storeConfig(c, "image "+imagePath, "pooled ", res)
	if err != nil {
		return nil, err
	}
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: desc.ArtifactType,
		Config:       ocispec.Descriptor{MediaType: desc.MediaTypeConfig, Digest: cd, Size: int64(len(cfgData))},
		Layers:       layers,
		Annotations: map[string]string{
			ocispec.AnnotationTitle: name,
			AnnotationImage:         filepath.Base(imagePath),
		},
	}
	m.SchemaVersion = 2
	if err := checkDescription(&m, c); err != nil {
		return nil, fmt.Errorf("image %s: the pooled description is inconsistent: %w", imagePath, err)
	}
	mData, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", imagePath, err)
	}
	md, err := p.storeBlob(mData, res)
	if err != nil {
		return nil, err
	}
	res.Manifest = md
	res.Blobs = len(layers) + 2

	ent := ocispec.Descriptor{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: desc.ArtifactType,
		Digest:       md,
		Size:         int64(len(mData)),
		Annotations:  map[string]string{ocispec.AnnotationRefName: name},
	}
	replaced := false
	for i, e := range idx.Manifests {
		if e.Annotations[ocispec.AnnotationRefName] == name {
			idx.Manifests[i] = ent
			replaced = true
		}
	}
	if !replaced {
		idx.Manifests = append(idx.Manifests, ent)
	}
	res.Replaced = replaced
	if err := p.writeIndex(idx); err != nil {
		return nil, err
	}
	return res, nil
}

// initBlob is a library's initial private memory as its own blob, for a
// loader to map copy-on-write: the tramp table (pre-filled for the map's
// addresses) from offset 0, the initialised data from InitDataOff(), each
// padded to whole pages so every page mapped lies inside the file. Images
// that link the same library version at its map region have the same init
// blob, so the pool stores it once and instances share its pages until
// they write them. nil when the library has neither table nor data (or
// its data is in the map's data arena).
func initBlob(im *image, lib *desc.Library) ([]byte, error) {
	if lib.Tramp.Size == 0 && (lib.Private.FileSize == 0 || lib.Region.Dense()) {
		// A dense private part shares its pages with other libraries':
		// loaders copy it, so no blob of its own would be mapped.
		return nil, nil
	}
	tramp, err := im.read(lib.Region.TrampAddr(), lib.Tramp.Size, true)
	if err != nil {
		return nil, fmt.Errorf("library %q: tramp table: %w", lib.Name, err)
	}
	data, err := im.read(lib.Region.PrivateAddr(), lib.Private.FileSize, true)
	if err != nil {
		return nil, fmt.Errorf("library %q: private data: %w", lib.Name, err)
	}
	buf := make([]byte, lib.InitDataOff()+pageUp(lib.Private.FileSize))
	copy(buf, tramp)
	copy(buf[lib.InitDataOff():], data)
	return buf, nil
}

// privateBlob lays out the image's private blob: per library its tramp
// table, then its initialised data, recorded in the description.
//
// The pieces are packed at 16-byte offsets, not page-aligned: loaders copy
// them (a tramp table gets its slots filled, private data its
// relocations), so nothing maps them from this file, and page alignment
// made the private blobs of a 1000-unikernel corpus 60 MiB for 1.5 MiB of
// content, more than half of the whole pool.
func privateBlob(im *image, c *desc.Config, arena bool) ([]byte, error) {
	var buf []byte
	put := func(data []byte) uint64 {
		off := uint64(len(buf))
		buf = append(buf, data...)
		buf = append(buf, make([]byte, alignUp(uint64(len(buf)), privateAlign)-uint64(len(buf)))...)
		return off
	}
	for i := range c.Libraries {
		lib := &c.Libraries[i]
		lib.Tramp.BlobOff, lib.Private.BlobOff = 0, 0
		if lib.Tramp.Size > 0 {
			data, err := im.read(lib.Region.TrampAddr(), lib.Tramp.Size, true)
			if err != nil {
				return nil, fmt.Errorf("library %q: tramp table: %w", lib.Name, err)
			}
			lib.Tramp.BlobOff = put(data)
		}
		if lib.Private.FileSize > 0 {
			data, err := im.read(lib.Region.PrivateAddr(), lib.Private.FileSize, true)
			if err != nil {
				return nil, fmt.Errorf("library %q: private data: %w", lib.Name, err)
			}
			lib.Private.BlobOff = put(data)
		}
	}
	// The data-arena pages as they start, whole pages after the pieces:
	// a loader maps them copy-on-write (desc.Config.Arena). Not with
	// Options.InitBlobs off: then nothing of the private part is mapped.
	c.Arena = nil
	var pages []arenaPage
	if arena {
		var err error
		if pages, err = arenaImage(im, c); err != nil {
			return nil, err
		}
	}
	for i := 0; i < len(pages); {
		j := i + 1
		for j < len(pages) && pages[j].addr == pages[j-1].addr+abi.PageSize {
			j++
		}
		buf = append(buf, make([]byte, alignUp(uint64(len(buf)), abi.PageSize)-uint64(len(buf)))...)
		run := desc.ArenaRun{Addr: pages[i].addr, Size: uint64(j-i) * abi.PageSize, BlobOff: uint64(len(buf))}
		for _, pg := range pages[i:j] {
			buf = append(buf, pg.data...)
		}
		c.Arena = append(c.Arena, run)
		i = j
	}
	if buf == nil {
		buf = []byte{}
	}
	return buf, nil
}

type arenaPage struct {
	addr uint64
	data []byte
}

// arenaImage is the image's data-arena pages at the map's addresses, in
// address order: every dense private part's initialised bytes, zeros for
// the rest (its bss, the bytes no part of this image uses).
func arenaImage(im *image, c *desc.Config) ([]arenaPage, error) {
	byAddr := map[uint64][]byte{}
	for i := range c.Libraries {
		lib := &c.Libraries[i]
		r := lib.Region
		if !r.Dense() || lib.Private.MemSize == 0 {
			continue
		}
		data, err := im.read(r.PrivateAddr(), lib.Private.FileSize, true)
		if err != nil {
			return nil, fmt.Errorf("library %q: private data: %w", lib.Name, err)
		}
		at, size := r.PrivateAddr(), lib.Private.MemSize
		for off := uint64(0); off < size; {
			page := (at + off) &^ (abi.PageSize - 1)
			pg := byAddr[page]
			if pg == nil {
				pg = make([]byte, abi.PageSize)
				byAddr[page] = pg
			}
			n := min(page+abi.PageSize-(at+off), size-off)
			if off < uint64(len(data)) {
				copy(pg[at+off-page:], data[off:min(off+n, uint64(len(data)))])
			}
			off += n
		}
	}
	out := make([]arenaPage, 0, len(byAddr))
	for a, d := range byAddr {
		out = append(out, arenaPage{a, d})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].addr < out[j].addr })
	return out, nil
}

// storeBlob writes a blob unless the pool already holds it intact. A blob
// file of that name whose content does not match (a damaged copy) is
// replaced, so adding the same library again repairs it. The blob
// directory is not fsynced here: writeIndex does it once, before the index
// can name any of the blobs.
func (p *Pool) storeBlob(data []byte, res *AddResult) (digest.Digest, error) {
	d := digest.SHA256.FromBytes(data)
	path := p.BlobPath(string(d))
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return d, nil
	}
	// Stored read-only: a pool file is immutable once written.
	if err := writeRenamed(path, data, blobPerm); err != nil {
		return "", fmt.Errorf("pool %s: blob %s: %w", p.dir, d, err)
	}
	res.NewBlobs++
	res.NewBytes += int64(len(data))
	return d, nil
}

// blobPerm is the mode of every blob file: read-only for all.
const blobPerm = 0o444

// storeConfig stores c as a description blob, compact JSON (a thousand
// indented descriptions took 30 MiB, twice their content; `pool inspect`
// is for people), after checking that it parses back as a valid one.
// what names the image in errors; adj qualifies "description" there.
func (p *Pool) storeConfig(c *desc.Config, what, adj string, res *AddResult) ([]byte, digest.Digest, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return nil, "", fmt.Errorf("%s: description: %w", what, err)
	}
	if _, err := desc.Parse(data); err != nil {
		return nil, "", fmt.Errorf("%s: the %sdescription does not validate: %w", what, adj, err)
	}
	d, err := p.storeBlob(data, res)
	if err != nil {
		return nil, "", err
	}
	return data, d, nil
}
