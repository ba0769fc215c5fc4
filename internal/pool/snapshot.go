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

// SnapshotItem is one unikernel's snapshot for SetSnapshots: its name,
// the snapshot (pages filled in by SetSnapshots) and its non-zero pages'
// contents by address.
type SnapshotItem struct {
	Name     string
	Snapshot *desc.Snapshot
	Pages    map[uint64][]byte
}

// SetSnapshot stores a snapshot of the pooled unikernel name (pages
// lists its non-zero pages' contents by address): SetSnapshots of one.
func (p *Pool) SetSnapshot(name string, s *desc.Snapshot, pages map[uint64][]byte) (*AddResult, error) {
	res, err := p.SetSnapshots([]SnapshotItem{{Name: name, Snapshot: s, Pages: pages}})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// SetSnapshots stores the snapshots of several pooled unikernels at once:
// the pages the pool holds nowhere yet, of every snapshot of the batch, as
// one page pack (each snapshot's in address order, the batch's snapshots in
// their order), every other page referenced where the pool holds it
// (another snapshot's pack, or an old snapshot's page blob); a page two
// snapshots of the batch have is stored once, where the first put it. Then
// for each a new description carrying its snapshot, whose pages it fills
// in, and a new manifest naming the blobs they lie in as layers. One pack
// for a batch, not one per snapshot: a run of the batch's unikernels maps
// their pages from one file (one open file in the monitor, one inode and
// dentry) where it held one per unikernel. The unikernels' other blobs
// stay as they are; a snapshot one had before is replaced (its blobs stay
// until GC, and while another snapshot references a page in them). Like
// Add, blobs come first and index.json last (once, for the batch); the
// snapshot page index (SnapPagesFile) follows it. A name given twice is
// refused.
func (p *Pool) SetSnapshots(items []SnapshotItem) ([]*AddResult, error) {
	if len(items) == 0 {
		return nil, nil
	}
	l, err := p.lock(true)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	idx, err := p.readIndex()
	if err != nil {
		return nil, err
	}
	idxDigest, err := p.indexDigest()
	if err != nil {
		return nil, err
	}
	sp, err := p.snapshotPages(idx, idxDigest)
	if err != nil {
		return nil, err
	}
	type state struct {
		at     int // index.json entry
		m      *ocispec.Manifest
		c      *desc.Config
		snap   desc.Snapshot
		layers []ocispec.Descriptor
		seen   map[string]bool // blobs named as layers
		packed []int           // indexes into snap.Pages of pages in the batch's pack
		res    *AddResult
	}
	sts := make([]*state, len(items))
	given := map[string]bool{}
	var pack []byte
	inPack := map[string]uint64{} // digest -> offset in pack
	for i, it := range items {
		name, s := it.Name, it.Snapshot
		if given[name] {
			return nil, fmt.Errorf("pool %s: snapshots: %q given twice", p.dir, name)
		}
		given[name] = true
		at := -1
		for j, md := range idx.Manifests {
			if md.Annotations[ocispec.AnnotationRefName] == name {
				at = j
			}
		}
		if at < 0 {
			return nil, fmt.Errorf("pool %s: %w %q", p.dir, ErrNotFound, name)
		}
		m, c, err := p.loadDescription(idx.Manifests[at])
		if err != nil {
			return nil, fmt.Errorf("pool %s: unikernel %q: %w", p.dir, name, err)
		}
		st := &state{at: at, m: m, c: c, snap: *s, seen: map[string]bool{},
			res: &AddResult{Name: name, Replaced: c.Snapshot != nil}}
		sts[i] = st
		st.snap.Pages = nil
		for _, l := range m.Layers {
			switch l.MediaType {
			case desc.MediaTypeSnapshotPage, desc.MediaTypeSnapshotPack, desc.MediaTypeSnapshotZero:
			default:
				st.layers = append(st.layers, l)
			}
		}
		addrs := make([]uint64, 0, len(it.Pages))
		for a := range it.Pages {
			addrs = append(addrs, a)
		}
		sort.Slice(addrs, func(i, j int) bool { return addrs[i] < addrs[j] })
		// Each page: where the pool holds it, else in the pack (where
		// this batch put it already, or as its next page).
		for _, a := range addrs {
			data := it.Pages[a]
			if len(data) != desc.SnapshotPageSize {
				return nil, fmt.Errorf("snapshot of %q: page at %#x is %d bytes, want %d", name, a, len(data), desc.SnapshotPageSize)
			}
			d := string(digest.SHA256.FromBytes(data))
			if off, ok := inPack[d]; ok {
				st.packed = append(st.packed, len(st.snap.Pages))
				st.snap.Pages = append(st.snap.Pages, desc.Page{Addr: a, Digest: d, Offset: off})
				continue
			}
			if where, ok := p.reusable(sp, d, data); ok {
				pg := desc.Page{Addr: a, Digest: d}
				mt := desc.MediaTypeSnapshotPage
				if where.Pack {
					pg.Blob, pg.Offset, mt = where.Blob, where.Offset, desc.MediaTypeSnapshotPack
				}
				st.snap.Pages = append(st.snap.Pages, pg)
				if !st.seen[where.Blob] {
					st.seen[where.Blob] = true
					st.layers = append(st.layers, ocispec.Descriptor{MediaType: mt, Digest: digest.Digest(where.Blob), Size: sp.Sizes[where.Blob]})
				}
				continue
			}
			inPack[d] = uint64(len(pack))
			st.packed = append(st.packed, len(st.snap.Pages))
			st.snap.Pages = append(st.snap.Pages, desc.Page{Addr: a, Digest: d, Offset: uint64(len(pack))})
			pack = append(pack, data...)
			st.res.NewPages++
		}
	}
	if len(pack) > 0 {
		if len(pack) > desc.MaxSnapshotPackSize {
			return nil, fmt.Errorf("snapshots of %d unikernels: %d bytes of new pages, more than a pack holds", len(items), len(pack))
		}
		var packRes AddResult // counted per snapshot below
		counted := false
		d, err := p.storeBlob(pack, &packRes)
		if err != nil {
			return nil, err
		}
		for _, st := range sts {
			if len(st.packed) == 0 {
				continue
			}
			for _, i := range st.packed {
				st.snap.Pages[i].Blob = string(d)
			}
			if !st.seen[string(d)] {
				st.seen[string(d)] = true
				st.layers = append(st.layers, ocispec.Descriptor{MediaType: desc.MediaTypeSnapshotPack, Digest: d, Size: int64(len(pack))})
			}
			if packRes.NewBlobs > 0 && st.res.NewPages > 0 {
				// The pack's bytes, by the pages each snapshot added; the
				// file, by the first that added one.
				st.res.NewBytes += int64(st.res.NewPages) * desc.SnapshotPageSize
				if !counted {
					st.res.NewBlobs, counted = 1, true
				}
			}
		}
	}
	var nms []*ocispec.Manifest
	var ncs []*desc.Config
	for i, st := range sts {
		name, res := items[i].Name, st.res
		if s := items[i].Snapshot; s.Zero != "" {
			d, err := p.storeBlob(make([]byte, desc.SnapshotZeroSize), res)
			if err != nil {
				return nil, err
			}
			if string(d) != s.Zero {
				return nil, fmt.Errorf("snapshot of %q: zero blob %s, but %d zero bytes are %s", name, s.Zero, desc.SnapshotZeroSize, d)
			}
			st.layers = append(st.layers, ocispec.Descriptor{MediaType: desc.MediaTypeSnapshotZero, Digest: d, Size: desc.SnapshotZeroSize})
		}
		nc := *st.c
		snap := st.snap
		nc.Snapshot = &snap
		cfgData, cd, err := p.storeConfig(&nc, fmt.Sprintf("snapshot of %q", name), "", res)
		if err != nil {
			return nil, err
		}
		nm := *st.m
		nm.Config = ocispec.Descriptor{MediaType: desc.MediaTypeConfig, Digest: cd, Size: int64(len(cfgData))}
		nm.Layers = st.layers
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
		res.Manifest, res.Blobs = md, len(st.layers)+2
		ent := idx.Manifests[st.at]
		ent.Digest, ent.Size = md, int64(len(mData))
		idx.Manifests[st.at] = ent
		nms, ncs = append(nms, &nm), append(ncs, &nc)
	}
	if err := p.writeIndex(idx); err != nil {
		return nil, err
	}
	// The page index follows: these snapshots' pages added. Were
	// index.json changed without it (a crash here), the next snapshot
	// rebuilds it.
	for i := range nms {
		sp.add(nms[i], ncs[i])
	}
	cachePages(p.dir, nil)
	if newDigest, err := p.indexDigest(); err == nil {
		if err := sp.write(p.path(SnapPagesFile), newDigest); err != nil {
			os.Remove(p.path(SnapPagesFile))
		} else {
			cachePages(p.dir, sp)
		}
	}
	out := make([]*AddResult, len(sts))
	for i, st := range sts {
		out[i] = st.res
	}
	return out, nil
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
