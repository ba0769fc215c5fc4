package pool

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/unipool/unipool/internal/desc"
)

// SetSnapshot stores a snapshot of the pooled unikernel name: every page
// as a blob of its own (pages lists their contents by address; a page the
// pool already holds, from this or any other unikernel, is stored once),
// then a new description carrying s, whose page digests it fills in, and
// a new manifest naming the pages as layers. The unikernel's other blobs
// stay as they are; a snapshot it had before is replaced (its pages stay
// until GC). Like Add, blobs come first and index.json last.
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
		if l.MediaType != desc.MediaTypeSnapshotPage && l.MediaType != desc.MediaTypeSnapshotZero {
			layers = append(layers, l)
		}
	}
	seen := map[digest.Digest]bool{}
	for _, a := range addrs {
		data := pages[a]
		if len(data) != desc.SnapshotPageSize {
			return nil, fmt.Errorf("snapshot of %q: page at %#x is %d bytes, want %d", name, a, len(data), desc.SnapshotPageSize)
		}
		before := res.NewBlobs
		d, err := p.storeBlob(data, res)
		if err != nil {
			return nil, err
		}
		res.NewPages += res.NewBlobs - before
		snap.Pages = append(snap.Pages, desc.Page{Addr: a, Digest: string(d)})
		if !seen[d] {
			seen[d] = true
			layers = append(layers, ocispec.Descriptor{MediaType: desc.MediaTypeSnapshotPage, Digest: d, Size: desc.SnapshotPageSize})
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
	return res, nil
}

// SnapshotStats says how much snapshots take and how much their pages are
// shared between unikernels.
type SnapshotStats struct {
	Unikernels int `json:"unikernels"` // with a snapshot
	PageUses   int `json:"page_uses"`  // (unikernel, page) pairs
	PageBlobs  int `json:"page_blobs"` // distinct pages stored
	// SharedBy[k] is how many distinct pages k unikernels use (k >= 1).
	SharedBy map[int]int `json:"shared_by"`
	users    map[string]int
}

func (st *SnapshotStats) add(c *desc.Config) {
	if c.Snapshot == nil {
		return
	}
	if st.users == nil {
		st.users, st.SharedBy = map[string]int{}, map[int]int{}
	}
	st.Unikernels++
	mine := map[string]bool{}
	for _, pg := range c.Snapshot.Pages {
		st.PageUses++
		if !mine[pg.Digest] {
			mine[pg.Digest] = true
			st.users[pg.Digest]++
		}
	}
}

func (st *SnapshotStats) finish() {
	st.PageBlobs = len(st.users)
	for _, n := range st.users {
		st.SharedBy[n]++
	}
}
