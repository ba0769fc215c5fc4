package pool

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/unipool/unipool/internal/desc"
)

// SetSnapshot stores a snapshot of the pooled unikernel name (pages
// lists its non-zero pages' contents by address): the pages the pool
// holds nowhere yet as one page pack (in address order), every other page
// referenced where the pool holds it (another snapshot's pack, or an old
// snapshot's page blob), then a new description carrying s, whose pages
// it fills in, and a new manifest naming the blobs they lie in as layers.
// The unikernel's other blobs stay as they are; a snapshot it had before
// is replaced (its blobs stay until GC, and while another snapshot
// references a page in them). Like Add, blobs come first and index.json
// last; the snapshot page index (SnapPagesFile) follows it.
func (p *Pool) SetSnapshot(name string, s *desc.Snapshot, pages map[uint64][]byte) (*AddResult, error) {
	l, err := p.lock(true)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	idx, err := p.readIndex()
	if err != nil {
		return nil, err
	}
	at := -1
	for i, md := range idx.Manifests {
		if md.Annotations[ocispec.AnnotationRefName] == name {
			at = i
		}
	}
	if at < 0 {
		return nil, fmt.Errorf("pool %s: %w %q", p.dir, ErrNotFound, name)
	}
	m, c, err := p.loadDescription(idx.Manifests[at])
	if err != nil {
		return nil, fmt.Errorf("pool %s: unikernel %q: %w", p.dir, name, err)
	}
	idxDigest, err := p.indexDigest()
	if err != nil {
		return nil, err
	}
	sp, err := p.snapshotPages(idx, idxDigest)
	if err != nil {
		return nil, err
	}
	res := &AddResult{Name: name, Replaced: c.Snapshot != nil}
	addrs := make([]uint64, 0, len(pages))
	for a := range pages {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i] < addrs[j] })
	snap := *s
	snap.Pages = nil
	var layers []ocispec.Descriptor
	for _, l := range m.Layers {
		switch l.MediaType {
		case desc.MediaTypeSnapshotPage, desc.MediaTypeSnapshotPack, desc.MediaTypeSnapshotZero:
		default:
			layers = append(layers, l)
		}
	}
	// Each page: where the pool holds it, else the next page of the pack.
	var pack []byte
	inPack := map[string]uint64{} // digest -> offset in pack
	var packed []int              // indexes into snap.Pages of pages in pack
	seen := map[string]bool{}     // blobs named as layers
	for _, a := range addrs {
		data := pages[a]
		if len(data) != desc.SnapshotPageSize {
			return nil, fmt.Errorf("snapshot of %q: page at %#x is %d bytes, want %d", name, a, len(data), desc.SnapshotPageSize)
		}
		d := string(digest.SHA256.FromBytes(data))
		if off, ok := inPack[d]; ok {
			packed = append(packed, len(snap.Pages))
			snap.Pages = append(snap.Pages, desc.Page{Addr: a, Digest: d, Offset: off})
			continue
		}
		if where, ok := p.reusable(sp, d, data); ok {
			pg := desc.Page{Addr: a, Digest: d}
			mt := desc.MediaTypeSnapshotPage
			if where.Pack {
				pg.Blob, pg.Offset, mt = where.Blob, where.Offset, desc.MediaTypeSnapshotPack
			}
			snap.Pages = append(snap.Pages, pg)
			if !seen[where.Blob] {
				seen[where.Blob] = true
				layers = append(layers, ocispec.Descriptor{MediaType: mt, Digest: digest.Digest(where.Blob), Size: sp.Sizes[where.Blob]})
			}
			continue
		}
		inPack[d] = uint64(len(pack))
		packed = append(packed, len(snap.Pages))
		snap.Pages = append(snap.Pages, desc.Page{Addr: a, Digest: d, Offset: uint64(len(pack))})
		pack = append(pack, data...)
	}
	if len(pack) > 0 {
		if len(pack) > desc.MaxSnapshotPackSize {
			return nil, fmt.Errorf("snapshot of %q: %d bytes of new pages, more than a pack holds", name, len(pack))
		}
		d, err := p.storeBlob(pack, res)
		if err != nil {
			return nil, err
		}
		for _, i := range packed {
			snap.Pages[i].Blob = string(d)
		}
		res.NewPages = len(inPack)
		if !seen[string(d)] {
			layers = append(layers, ocispec.Descriptor{MediaType: desc.MediaTypeSnapshotPack, Digest: d, Size: int64(len(pack))})
		}
	}
	if s.Zero != "" {
		d, err := p.storeBlob(make([]byte, desc.SnapshotZeroSize), res)
		if err != nil {
			return nil, err
		}
		if string(d) != s.Zero {
			return nil, fmt.Errorf("snapshot of %q: zero blob %s, but %d zero bytes are %s", name, s.Zero, desc.SnapshotZeroSize, d)
		}
		layers = append(layers, ocispec.Descriptor{MediaType: desc.MediaTypeSnapshotZero, Digest: d, Size: desc.SnapshotZeroSize})
	}
	nc := *c
	nc.Snapshot = &snap
	cfgData, cd, err := p.storeConfig(&nc, fmt.Sprintf("snapshot of %q", name), "", res)
	if err != nil {
		return nil, err
	}
	nm := *m
	nm.Config = ocispec.Descriptor{MediaType: desc.MediaTypeConfig, Digest: cd, Size: int64(len(cfgData))}
	nm.Layers = layers
	if err := checkDescription(&nm, &nc); err != nil {
		return nil, fmt.Errorf("snapshot of %q: the description is inconsistent: %w", name, err)
	}
	mData, err := json.Marshal(nm)
	if err != nil {
		return nil, fmt.Errorf("snapshot of %q: manifest: %w", name, err)
	}
	md, err := p.storeBlob(mData, res)
	if err != nil {
		return nil, err
	}
	res.Manifest, res.Blobs = md, len(layers)+2
	ent := idx.Manifests[at]
	ent.Digest, ent.Size = md, int64(len(mData))
	idx.Manifests[at] = ent
	if err := p.writeIndex(idx); err != nil {
		return nil, err
	}
	// The page index follows: this snapshot's pages added. Were index.json
	// changed without it (a crash here), the next snapshot rebuilds it.
	sp.add(&nm, &nc)
	cachePages(p.dir, nil)
	if newDigest, err := p.indexDigest(); err == nil {
		if err := sp.write(p.path(SnapPagesFile), newDigest); err != nil {
			os.Remove(p.path(SnapPagesFile))
		} else {
			cachePages(p.dir, sp)
		}
	}
	return res, nil
}

// SnapshotStats says how much snapshots take and how much their pages are
// shared between unikernels.
type SnapshotStats struct {
	Unikernels int `json:"unikernels"` // with a snapshot
	PageUses   int `json:"page_uses"`  // (unikernel, page) pairs
	PageBlobs  int `json:"page_blobs"` // distinct pages stored
	// Files are the blobs the pages lie in (page packs and, from
	// snapshots taken before packs, page blobs of their own); Packs the
	// page packs among them.
	Files int `json:"files"`
	Packs int `json:"packs"`
	// FileUses are (unikernel, file) pairs: the distinct files the
	// unikernels' instances map their snapshot pages from, summed.
	FileUses int `json:"file_uses"`
	// SharedBy[k] is how many distinct pages k unikernels use (k >= 1).
	SharedBy map[int]int `json:"shared_by"`
	users    map[string]int
	files    map[string]bool // blob -> is a pack
}

func (st *SnapshotStats) add(c *desc.Config) {
	if c.Snapshot == nil {
		return
	}
	if st.users == nil {
		st.users, st.SharedBy, st.files = map[string]int{}, map[int]int{}, map[string]bool{}
	}
	st.Unikernels++
	mine := map[string]bool{}
	myFiles := map[string]bool{}
	for _, pg := range c.Snapshot.Pages {
		st.PageUses++
		if !mine[pg.Digest] {
			mine[pg.Digest] = true
			st.users[pg.Digest]++
		}
		if b := pg.BlobDigest(); !myFiles[b] {
			myFiles[b] = true
			st.FileUses++
			st.files[b] = st.files[b] || pg.Blob != ""
		}
	}
}

func (st *SnapshotStats) finish() {
	st.PageBlobs = len(st.users)
	for _, n := range st.users {
		st.SharedBy[n]++
	}
	st.Files = len(st.files)
	for _, pack := range st.files {
		if pack {
			st.Packs++
		}
	}
}
