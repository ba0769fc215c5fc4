// Package libmap is the global library map: the one place that decides
// where each library lives in every aligned unikernel. Each library name
// owns a region [tramp table][shared: code + rodata][private: data + bss],
// every part page-aligned, handed out upwards from abi.MapBase with slack
// for growth. The map only appends: a region, once handed out, never moves
// or shrinks, so an image linked against an old map stays valid forever.
// Every version of a library goes into that library's region; a version
// too large for it gets a new region (recorded; the old one stays for the
// images that use it).
//
// The app of an image has no region here: its code is in no other image,
// so a global address would buy no sharing and only consume address space
// (thousands of apps × their slack). Every image puts its app at
// abi.AppRegionBase instead, with the same [tramp][shared][private] layout.
//
// The map is a JSON file (map.json in the pool; the pack regions' use
// counts, a placement hint, beside it in map.json.uses); Update is the
// only writer:
// it takes an flock on "<file>.lock", re-reads the file under the lock and
// replaces it atomically (temporary file, fsync, rename, fsync of the
// directory), so concurrent writers serialize and a reader never sees half
// a map.
package libmap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
)

// SchemaVersion is the map file's format version: 1 until the map holds
// a dense region (desc.Region.PrivateStart), 2 from then on, so that a
// reader that knows only 1 refuses the map instead of misplacing private
// parts. A map of version 1 reads as before.
const (
	SchemaVersion      = 1
	SchemaVersionDense = 2
	// SchemaVersionPack is a map with packs (Map.Packs): a reader that
	// knows only 2 would take a pack member's region for a page-aligned
	// one.
	SchemaVersionPack = 3
	// SchemaVersionNearArena is a map with a private part in the near
	// arena (abi.NearArenaBase): a reader that knows only 3 would refuse
	// it as outside its data arena; this says why.
	SchemaVersionNearArena = 4
)

// Default slack policy: a part gets half its size again, and at least
// 16 KiB, before a new version must move to a new region. Slack costs
// address space only: no file bytes and no memory.
const (
	DefaultSlackPercent = 50
	DefaultMinSlack     = 16 << 10
)

// Map is the decoded map file.
type Map struct {
	SchemaVersion int    `json:"schema_version"`
	Policy        Policy `json:"policy"`
	// Libraries in the order they first got a region.
	Libraries []Library `json:"libraries"`
	// Packs are pages shared by the code of small libraries (Pack).
	Packs []Pack `json:"packs,omitempty"`
	// open is 1 + the index of the pack this map is filling (not yet
	// sealed: a link in progress), 0 for none.
	open int
}

// Pack is a run of pages that holds the shared parts (code, read-only
// data, trampoline stubs) of small library versions side by side, so
// that an image using several of them maps one page where each would
// round up to its own. The link that places a pack's members seals it:
// Content is then the pack's bytes from Start (the rest of its pages
// zero), and no member is ever added. An image that uses one member maps
// the pack pages that member touches with their whole content, the
// other members' bytes included, so every image maps the same pages.
type Pack struct {
	Start uint64 `json:"start"`
	// Size is the address room the pack owns (a page multiple).
	Size uint64 `json:"size"`
	// Content is the pack's sealed bytes from Start (base64 in JSON).
	Content []byte `json:"content"`
}

// PackLimit is the largest shared part (code + read-only data + stubs,
// estimated) a library version may have to go into a pack; PackRoom is
// the address room a pack takes; PackAlign aligns members in it.
// (8 KiB: measured on three 20-unikernel corpora, `unipool link bench`,
// against 3 and 16 KiB.)
const (
	PackLimit = 8 << 10
	PackRoom  = 16 * abi.PageSize
	PackAlign = 64
)

// Policy is how much room a new region leaves each part to grow:
// used + max(used*SlackPercent/100, MinSlack), rounded up to a page. The
// tramp part gets the percentage only: an image carries its tramp area's
// whole capacity as file bytes for the trampoline pass to fill, whereas
// slack in the other parts costs address space only.
type Policy struct {
	SlackPercent uint64 `json:"slack_percent"`
	MinSlack     uint64 `json:"min_slack"`
}

// Library is one library name and its regions, oldest first.
type Library struct {
	Name    string   `json:"name"`
	Regions []Region `json:"regions"`
}

// Region is an address range owned by one library and the versions
// placed in it.
type Region struct {
	desc.Region
	// Pack, set for a region in a pack, is the pack's Start: the
	// region's shared part lies there at a sub-page address (no tramp
	// part, exactly the version's room), and it holds that one version.
	Pack     uint64    `json:"pack,omitempty"`
	Versions []Version `json:"versions"`
	// Uses counts the links that used this pack region, up to
	// CopyMinUses (Map.Use): a placement hint for PlaceCopy, no part of
	// any image's layout. It is kept in the file beside the map
	// (UsesSuffix), not in the map file (MarshalLayout): a link that
	// places nothing new may raise it and leaves the map file as it was.
	Uses uint64 `json:"uses,omitempty"`
}

// Version is one build of a library (one object), identified by its
// object's sha256 when known, else by its version label.
type Version struct {
	Version      string `json:"version"`
	ObjectSHA256 string `json:"object_sha256,omitempty"`
	Origin       string `json:"origin,omitempty"`
	Need         Need   `json:"need"`
}

// Need is the room a version needs in each part (bytes, not rounded).
type Need struct {
	Tramp   uint64 `json:"tramp"`
	Shared  uint64 `json:"shared"`
	Private uint64 `json:"private"`
}

// New returns an empty map with the default policy.
func New() *Map {
	return &Map{SchemaVersion: SchemaVersion, Policy: Policy{SlackPercent: DefaultSlackPercent, MinSlack: DefaultMinSlack}}
}

// nameRE is what a library name may be: it ends up in linker scripts and
// section names.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_+-]{0,127}$`)

// ValidName reports whether name can be a library name.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// Parse decodes and validates a map file's bytes. Errors say what is
// wrong; callers add the file name.
func Parse(data []byte) (*Map, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Map
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("corrupted library map: %w", err)
	}
	if dec.More() {
		return nil, errors.New("corrupted library map: trailing data after the JSON object")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the invariants everyone relies on: known schema, valid
// unique names, page-aligned regions inside [abi.MapBase, abi.MapLimit)
// that overlap no other, versions that fit their region.
func (m *Map) Validate() error {
	if m.SchemaVersion < SchemaVersion || m.SchemaVersion > SchemaVersionNearArena {
		return fmt.Errorf("library map: schema_version %d, want %d to %d", m.SchemaVersion, SchemaVersion, SchemaVersionNearArena)
	}
	if len(m.Packs) > 0 && m.SchemaVersion < SchemaVersionPack {
		return fmt.Errorf("library map: packs in a schema_version %d map", m.SchemaVersion)
	}
	if m.Policy.SlackPercent > 10000 || m.Policy.MinSlack > abi.MapLimit-abi.MapBase {
		return fmt.Errorf("library map: policy %+v out of range", m.Policy)
	}
	type span struct {
		start, end uint64
		name       string
	}
	var spans, members []span
	packs := map[uint64]Pack{}
	for i, p := range m.Packs {
		if p.Start%abi.PageSize != 0 || p.Size%abi.PageSize != 0 || p.Size == 0 || p.Size > PackRoom ||
			p.Start < abi.MapBase || p.Start >= abi.MapLimit || p.Size > abi.MapLimit-p.Start {
			return fmt.Errorf("library map: pack %d at %#x (%#x bytes) is not whole pages inside [%#x,%#x)", i, p.Start, p.Size, uint64(abi.MapBase), uint64(abi.MapLimit))
		}
		if uint64(len(p.Content)) > p.Size || (len(p.Content) == 0 && m.open != i+1) {
			return fmt.Errorf("library map: pack %d at %#x: %d bytes of content for its %#x bytes (a pack is sealed with its content)", i, p.Start, len(p.Content), p.Size)
		}
		if _, dup := packs[p.Start]; dup {
			return fmt.Errorf("library map: pack at %#x listed twice", p.Start)
		}
		packs[p.Start] = p
		spans = append(spans, span{p.Start, p.Start + p.Size, fmt.Sprintf("pack@%#x", p.Start)})
	}
	seen := map[string]bool{}
	for _, l := range m.Libraries {
		if !ValidName(l.Name) {
			return fmt.Errorf("library map: invalid library name %q", l.Name)
		}
		if seen[l.Name] {
			return fmt.Errorf("library map: library %q listed twice", l.Name)
		}
		seen[l.Name] = true
		if len(l.Regions) == 0 {
			return fmt.Errorf("library map: library %q has no region", l.Name)
		}
		for _, r := range l.Regions {
			d := r.Region
			if r.Pack != 0 {
				p, ok := packs[r.Pack]
				if !ok {
					return fmt.Errorf("library map: library %q: region at %#x names no pack at %#x", l.Name, d.Start, r.Pack)
				}
				end := p.Start + uint64(len(p.Content))
				if m.open > 0 && m.Packs[m.open-1].Start == p.Start {
					end = p.Start + p.Size
				}
				if d.Start%16 != 0 || d.SharedSize%16 != 0 || d.TrampSize != 0 || !d.Dense() || d.Start < p.Start || d.End() > end || d.End() <= d.Start || len(r.Versions) != 1 {
					return fmt.Errorf("library map: library %q: region at %#x is not one version's 16-byte aligned code inside the sealed bytes of its pack at %#x", l.Name, d.Start, p.Start)
				}
				members = append(members, span{d.Start, d.End(), l.Name})
			} else if d.Start%abi.PageSize != 0 || d.TrampSize%abi.PageSize != 0 || d.SharedSize%abi.PageSize != 0 || (!d.Dense() && d.PrivateSize%abi.PageSize != 0) {
				return fmt.Errorf("library map: library %q: region at %#x is not page-aligned", l.Name, d.Start)
			}
			size := d.TrampSize + d.SharedSize
			if r.Pack != 0 {
				size = abi.PageSize // checked against its pack above
			}
			if !d.Dense() {
				size += d.PrivateSize
			}
			if size == 0 || size < d.TrampSize || d.Start < abi.MapBase || d.Start >= abi.MapLimit || size > abi.MapLimit-d.Start {
				return fmt.Errorf("library map: library %q: region [%#x,+%#x) outside [%#x,%#x)", l.Name, d.Start, size, uint64(abi.MapBase), uint64(abi.MapLimit))
			}
			if d.Dense() && m.SchemaVersion < SchemaVersionDense {
				return fmt.Errorf("library map: library %q: region at %#x has a dense private part, which schema_version %d maps cannot have", l.Name, d.Start, m.SchemaVersion)
			}
			if d.Dense() && (d.PrivateStart%16 != 0 || d.PrivateSize%16 != 0 || !abi.InArena(d.PrivateStart, d.PrivateSize)) {
				return fmt.Errorf("library map: library %q: private part [%#x,+%#x) not 16-byte aligned inside the data arena [%#x,%#x) or [%#x,%#x)",
					l.Name, d.PrivateStart, d.PrivateSize, uint64(abi.NearArenaBase), uint64(abi.NearArenaLimit), uint64(abi.DataArenaBase), uint64(abi.DataArenaLimit))
			}
			if d.Dense() && d.PrivateStart < abi.DataArenaBase && m.SchemaVersion < SchemaVersionNearArena {
				return fmt.Errorf("library map: library %q: private part at %#x is in the near arena, which schema_version %d maps cannot have", l.Name, d.PrivateStart, m.SchemaVersion)
			}
			for _, v := range r.Versions {
				if !v.Need.fits(d) {
					return fmt.Errorf("library map: library %q version %q needs %+v, more than its region at %#x holds", l.Name, v.Version, v.Need, d.Start)
				}
			}
			if r.Pack == 0 {
				spans = append(spans, span{d.Start, d.End(), l.Name})
			}
			if d.Dense() {
				spans = append(spans, span{d.PrivateStart, d.PrivateEnd(), l.Name})
			}
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			return fmt.Errorf("library map: regions of %q at %#x and %q at %#x overlap", spans[i-1].name, spans[i-1].start, spans[i].name, spans[i].start)
		}
	}
	sort.Slice(members, func(i, j int) bool { return members[i].start < members[j].start })
	for i := 1; i < len(members); i++ {
		if members[i].start < members[i-1].end {
			return fmt.Errorf("library map: the code of %q at %#x and %q at %#x overlap in a pack", members[i-1].name, members[i-1].start, members[i].name, members[i].start)
		}
	}
	return nil
}

func (n Need) fits(r desc.Region) bool {
	return n.Tramp <= r.TrampSize && n.Shared <= r.SharedSize && n.Private <= r.PrivateSize
}

// MarshalLayout encodes the map's layout the way the map file stores it
// and a push sends it: Marshal without the use counts (UsesSuffix).
func (m *Map) MarshalLayout() ([]byte, error) { return m.WithoutUses().Marshal() }

// usesFile is the form of the use counts beside the map (UsesSuffix): the
// pack regions that links used, by start address.
type usesFile struct {
	PackRegions []regionUses `json:"pack_regions"`
}

type regionUses struct {
	Start uint64 `json:"start"`
	Uses  uint64 `json:"uses"`
}

// marshalUses encodes the map's nonzero use counts (usesFile), sorted by
// address; nil if there are none.
func (m *Map) marshalUses() []byte {
	var f usesFile
	for _, l := range m.Libraries {
		for _, r := range l.Regions {
			if r.Pack != 0 && r.Uses > 0 {
				f.PackRegions = append(f.PackRegions, regionUses{r.Start, r.Uses})
			}
		}
	}
	if len(f.PackRegions) == 0 {
		return nil
	}
	sort.Slice(f.PackRegions, func(i, j int) bool { return f.PackRegions[i].Start < f.PackRegions[j].Start })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		panic(err) // two integers per entry
	}
	return append(b, '\n')
}

// applyUses raises the map's pack regions' use counts to those in data (a
// usesFile); a count for an address that is no pack region of the map is
// ignored (a hint, kept beside a map that may have been replaced).
func (m *Map) applyUses(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f usesFile
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("corrupted use counts: %w", err)
	}
	at := map[uint64]uint64{}
	for _, e := range f.PackRegions {
		at[e.Start] = max(at[e.Start], min(e.Uses, CopyMinUses))
	}
	for i := range m.Libraries {
		for j := range m.Libraries[i].Regions {
			if r := &m.Libraries[i].Regions[j]; r.Pack != 0 {
				r.Uses = max(r.Uses, at[r.Start])
			}
		}
	}
	return nil
}

// Marshal encodes the whole map, use counts included (indented, stable
// order); the map file holds MarshalLayout, the counts lie beside it.
func (m *Map) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Library returns the named library's entry, or nil.
func (m *Map) Library(name string) *Library {
	for i := range m.Libraries {
		if m.Libraries[i].Name == name {
			return &m.Libraries[i]
		}
	}
	return nil
}

// End is the first address no region uses yet (abi.MapBase for an empty
// map), not counting private parts in the data arena.
func (m *Map) End() uint64 {
	end := uint64(abi.MapBase)
	for _, l := range m.Libraries {
		for _, r := range l.Regions {
			end = max(end, r.End())
		}
	}
	for _, p := range m.Packs {
		end = max(end, p.Start+p.Size)
	}
	return end
}

// ArenaEnd is the first address of the (far) data arena no private part
// uses yet.
func (m *Map) ArenaEnd() uint64 { return m.arenaEnd(abi.Arenas[1]) }

// NearArenaEnd is the first address of the near arena no private part uses yet.
func (m *Map) NearArenaEnd() uint64 { return m.arenaEnd(abi.Arenas[0]) }

func (m *Map) arenaEnd(a [2]uint64) uint64 {
	end := a[0]
	for _, l := range m.Libraries {
		for _, r := range l.Regions {
			if r.Dense() && r.PrivateStart >= a[0] && r.PrivateStart < a[1] {
				end = max(end, r.PrivateEnd())
			}
		}
	}
	return end
}

// Placement is where Place put a version.
type Placement struct {
	Region desc.Region
	// New says the region was handed out by this call (a new library, or
	// a version that outgrew the library's previous regions).
	New bool
	// Added says the version was not in the map before.
	Added bool
	// Pack is the start of the pack the region lies in (PlacePacked), or 0.
	Pack uint64
}

// Place returns the region for version v of library name, recording it:
//   - a version already placed goes where it went before (the newest such
//     region it still fits);
//   - else the library's newest region that has room for it;
//   - else a new region at the end of the map, sized by the map's policy.
//
// Existing regions are never moved or resized.
func (m *Map) Place(name string, v Version) (Placement, error) {
	return m.PlaceDense(name, v, false)
}

// PlaceDense is Place; a new region it hands out is dense if dense is set:
// its private part goes to the end of the data arena, exactly as large as
// the version needs (no slack: slack would keep the next library's private
// part off this one's pages), so the libraries placed one after another
// share private pages. A later version needing more private room gets a
// new region. Existing regions, dense or not, take versions that fit them.
func (m *Map) PlaceDense(name string, v Version, dense bool) (Placement, error) {
	if !ValidName(name) {
		return Placement{}, fmt.Errorf("library map: invalid library name %q", name)
	}
	lib := m.Library(name)
	if lib != nil {
		for i := len(lib.Regions) - 1; i >= 0; i-- {
			r := &lib.Regions[i]
			if r.has(v) && v.Need.fits(r.Region) {
				return Placement{Region: r.Region, Pack: r.Pack}, nil
			}
		}
		for i := len(lib.Regions) - 1; i >= 0; i-- {
			r := &lib.Regions[i]
			if r.Pack == 0 && v.Need.fits(r.Region) {
				r.Versions = append(r.Versions, v)
				return Placement{Region: r.Region, Added: true}, nil
			}
		}
	}
	reg, err := m.newRegion(v.Need, dense)
	if err != nil {
		return Placement{}, fmt.Errorf("library map: library %q: %w", name, err)
	}
	if lib == nil {
		m.Libraries = append(m.Libraries, Library{Name: name})
		lib = &m.Libraries[len(m.Libraries)-1]
	}
	lib.Regions = append(lib.Regions, Region{Region: reg, Versions: []Version{v}})
	if reg.Dense() {
		m.SchemaVersion = max(m.SchemaVersion, SchemaVersionDense)
	}
	return Placement{Region: reg, New: true, Added: true}, nil
}

func (r *Region) has(v Version) bool {
	for _, o := range r.Versions {
		if v.ObjectSHA256 != "" && o.ObjectSHA256 == v.ObjectSHA256 {
			return true
		}
		if v.ObjectSHA256 == "" && o.ObjectSHA256 == "" && o.Version == v.Version {
			return true
		}
	}
	return false
}

// Capacity is the room the policy gives a part that needs used bytes.
func (p Policy) Capacity(used uint64) uint64 {
	slack := uint64(math.Ceil(float64(used) * float64(p.SlackPercent) / 100))
	return pageUp(used + max(slack, p.MinSlack))
}

// TrampCapacity is the room the policy gives a tramp table of used bytes.
func (p Policy) TrampCapacity(used uint64) uint64 {
	return pageUp(used + uint64(math.Ceil(float64(used)*float64(p.SlackPercent)/100)))
}

func (m *Map) newRegion(n Need, dense bool) (desc.Region, error) {
	r := desc.Region{
		Start:       m.End(),
		TrampSize:   m.Policy.TrampCapacity(n.Tramp),
		SharedSize:  m.Policy.Capacity(n.Shared),
		PrivateSize: m.Policy.Capacity(n.Private),
	}
	if dense {
		// The near arena (in the app's 2 MiB) while the part fits
		// there, else the far one.
		r.PrivateSize = (max(n.Private, 16) + 15) &^ 15
		for i, a := range abi.Arenas {
			r.PrivateStart = m.arenaEnd(a)
			if off := r.PrivateStart % abi.PageSize; pageUp(off+r.PrivateSize) > pageUp(r.PrivateSize) {
				// A part touches no more pages than its size needs (one
				// for a part that fits in a page): straddling one more
				// page boundary would make every image that uses it
				// touch one more page. It starts on the next page
				// instead (the skipped bytes cost address space only).
				r.PrivateStart += abi.PageSize - off
			}
			if r.PrivateStart <= a[1] && r.PrivateSize <= a[1]-r.PrivateStart {
				if i == 0 {
					m.SchemaVersion = max(m.SchemaVersion, SchemaVersionNearArena)
				}
				break
			}
			if i == len(abi.Arenas)-1 {
				return desc.Region{}, fmt.Errorf("the data arena is full: a private part of %#x bytes at %#x would pass its limit %#x",
					r.PrivateSize, r.PrivateStart, a[1])
			}
		}
	}
	size := r.End() - r.Start
	if r.Start < abi.DataArenaLimit && r.Start+size > abi.AppRegionBase {
		// No region's contiguous range enters the app region, the
		// per-instance memory or the data arena after them, and a dense
		// region's code lies below them (in rel32 reach of the arena).
		if dense {
			return desc.Region{}, fmt.Errorf("map is full: a region of %#x bytes at %#x would pass the app region at %#x", size, r.Start, uint64(abi.AppRegionBase))
		}
		r.Start = abi.DataArenaLimit
	}
	if r.Start > abi.MapLimit || size > abi.MapLimit-r.Start {
		return desc.Region{}, fmt.Errorf("map is full: a region of %#x bytes at %#x would pass its limit %#x",
			size, r.Start, uint64(abi.MapLimit))
	}
	return r, nil
}

func pageUp(n uint64) uint64 { return (n + abi.PageSize - 1) &^ (abi.PageSize - 1) }

// PlacePacked is PlaceDense for a library version whose shared part is
// small (Need.Shared at most PackLimit, no tramp part): a version already
// placed goes where it went before, and one that fits a region the
// library already has goes there (as PlaceDense); any other gets a
// region of its own in the pack this map is filling, which the first
// such call opens at the end of the map: its code 64-byte aligned after
// the members before it, touching no more pages than its size needs,
// its private part dense in the data arena. The caller seals the pack
// (Seal) with its bytes once it has linked them; no member is added
// after. A version that is not small goes to PlaceDense.
func (m *Map) PlacePacked(name string, v Version) (Placement, error) {
	if v.Need.Shared > PackLimit || v.Need.Tramp != 0 {
		return m.PlaceDense(name, v, true)
	}
	if !ValidName(name) {
		return Placement{}, fmt.Errorf("library map: invalid library name %q", name)
	}
	lib := m.Library(name)
	if lib != nil {
		for i := len(lib.Regions) - 1; i >= 0; i-- {
			if r := &lib.Regions[i]; r.has(v) && v.Need.fits(r.Region) {
				return Placement{Region: r.Region, Pack: r.Pack}, nil
			}
		}
		for i := len(lib.Regions) - 1; i >= 0; i-- {
			// A region in a pack holds its one version's bytes.
			if r := &lib.Regions[i]; r.Pack == 0 && v.Need.fits(r.Region) {
				r.Versions = append(r.Versions, v)
				return Placement{Region: r.Region, Added: true}, nil
			}
		}
	}
	size := packSize(v)
	start, ok := uint64(0), false
	if m.open > 0 {
		start, ok = m.packRoom(m.Packs[m.open-1], size)
	}
	if !ok {
		p := Pack{Start: m.End(), Size: PackRoom}
		if p.Start < abi.AppRegionBase && p.Start+p.Size > abi.AppRegionBase {
			return Placement{}, fmt.Errorf("library map: library %q: map is full: a pack at %#x would pass the app region at %#x", name, p.Start, uint64(abi.AppRegionBase))
		}
		m.Packs = append(m.Packs, p)
		m.open = len(m.Packs)
		start, _ = m.packRoom(p, size)
	}
	return m.addPackRegion(name, v, start)
}

// packSize is the room version v's code takes in a pack.
func packSize(v Version) uint64 { return (max(v.Need.Shared, 16) + 15) &^ 15 }

// packRoom returns where in pack p the first gap between its members
// (or the room after them) holds size bytes without touching more pages
// than they need.
func (m *Map) packRoom(p Pack, size uint64) (uint64, bool) {
	used := m.packMembers(p)
	used = append(used, [2]uint64{p.Start + p.Size, p.Start + p.Size})
	lo := p.Start
	for _, u := range used {
		off := (lo + PackAlign - 1) &^ (PackAlign - 1)
		if pageUp(off%abi.PageSize+size) > pageUp(size) {
			off = pageUp(off)
		}
		if off+size <= u[0] {
			return off, true
		}
		lo = max(lo, u[1])
	}
	return 0, false
}

// packMembers lists the code ranges of pack p's members, sorted.
func (m *Map) packMembers(p Pack) [][2]uint64 {
	var used [][2]uint64
	for _, l := range m.Libraries {
		for _, r := range l.Regions {
			if r.Pack == p.Start {
				used = append(used, [2]uint64{r.Start, r.End()})
			}
		}
	}
	sort.Slice(used, func(i, j int) bool { return used[i][0] < used[j][0] })
	return used
}

// addPackRegion gives version v of library name a region of its own at
// start in the open pack, its private part dense in the data arena.
func (m *Map) addPackRegion(name string, v Version, start uint64) (Placement, error) {
	reg, err := m.newRegion(Need{Private: v.Need.Private}, true)
	if err != nil {
		return Placement{}, fmt.Errorf("library map: library %q: %w", name, err)
	}
	reg.Start, reg.TrampSize, reg.SharedSize = start, 0, packSize(v)
	lib := m.Library(name)
	if lib == nil {
		m.Libraries = append(m.Libraries, Library{Name: name})
		lib = &m.Libraries[len(m.Libraries)-1]
	}
	lib.Regions = append(lib.Regions, Region{Region: reg, Pack: m.Packs[m.open-1].Start, Versions: []Version{v}})
	m.SchemaVersion = max(m.SchemaVersion, SchemaVersionPack)
	return Placement{Region: reg, New: true, Added: true, Pack: m.Packs[m.open-1].Start}, nil
}

// CopyMinUses is how many links must have used a pack member's region
// before PlaceCopy copies it next to the members of another link: a
// region few images use would be left to one image, and a copy only one
// image uses shares with nobody.
const CopyMinUses = 3

// PackedRegions returns the pack regions that hold version v of library
// name, oldest first (Uses set).
func (m *Map) PackedRegions(name string, v Version) []Region {
	lib := m.Library(name)
	if lib == nil {
		return nil
	}
	var out []Region
	for _, r := range lib.Regions {
		if r.Pack != 0 && r.has(v) && v.Need.fits(r.Region) {
			out = append(out, r)
		}
	}
	return out
}

// Use records that a link used the pack region of library name at start
// (Region.Uses). The count stops at CopyMinUses, all PlaceCopy asks, so
// the links of a fleet whose regions have reached it (and relinks of
// known images then) leave the map file as it is.
func (m *Map) Use(name string, start uint64) {
	if lib := m.Library(name); lib != nil {
		for i := range lib.Regions {
			if r := &lib.Regions[i]; r.Pack != 0 && r.Start == start && r.Uses < CopyMinUses {
				r.Uses++
			}
		}
	}
}

// WithoutUses returns a copy of m with every Region.Uses zero: the map's
// layout alone.
func (m *Map) WithoutUses() *Map {
	c := m.clone()
	for i := range c.Libraries {
		for j := range c.Libraries[i].Regions {
			c.Libraries[i].Regions[j].Uses = 0
		}
	}
	return c
}

// PlaceCopy gives version v of library name, already in a sealed pack,
// a second region in the pack this map is filling (opened by this link
// for its new versions), if its code fits there touching fewer than
// limit pages that the open pack's members do not touch already: the
// link's image then maps the copy beside its other members instead of
// limit pages of the old pack it uses for v alone. Images linked before
// keep the old region (nothing moves); later links choose between the
// two. It returns false, changing nothing, when no pack is open or the
// copy would not save a page.
func (m *Map) PlaceCopy(name string, v Version, limit int) (Placement, bool, error) {
	if m.open == 0 || v.Need.Tramp != 0 || v.Need.Shared > PackLimit || len(m.PackedRegions(name, v)) == 0 {
		return Placement{}, false, nil
	}
	p := m.Packs[m.open-1]
	size := packSize(v)
	start, ok := m.packRoom(p, size)
	if !ok {
		return Placement{}, false, nil
	}
	touched := map[uint64]bool{}
	for _, u := range m.packMembers(p) {
		for pg := u[0] &^ (abi.PageSize - 1); pg < u[1]; pg += abi.PageSize {
			touched[pg] = true
		}
	}
	added := 0
	for pg := start &^ (abi.PageSize - 1); pg < start+size; pg += abi.PageSize {
		if !touched[pg] {
			added++
		}
	}
	if added >= limit {
		return Placement{}, false, nil
	}
	pl, err := m.addPackRegion(name, v, start)
	return pl, err == nil, err
}

// OpenPack is the pack this map is filling (the one PlacePacked opened
// and Seal has not sealed), or nil.
func (m *Map) OpenPack() *Pack {
	if m.open == 0 {
		return nil
	}
	return &m.Packs[m.open-1]
}

// Seal closes the open pack (if any) with its content: read returns the
// n linked bytes at addr, from the pack's start to its last member's end.
// A pack that nothing follows in the map keeps only the pages its members
// use as its room (a place that opens a pack after its other new regions
// gives the next link that room back).
func (m *Map) Seal(read func(addr, n uint64) ([]byte, error)) error {
	p := m.OpenPack()
	if p == nil {
		return nil
	}
	end := p.Start
	for _, l := range m.Libraries {
		for _, r := range l.Regions {
			if r.Pack == p.Start {
				end = max(end, r.End())
			}
		}
	}
	b, err := read(p.Start, end-p.Start)
	if err != nil {
		return fmt.Errorf("library map: sealing the pack at %#x: %w", p.Start, err)
	}
	if uint64(len(b)) != end-p.Start {
		return fmt.Errorf("library map: sealing the pack at %#x: %d bytes, want %d", p.Start, len(b), end-p.Start)
	}
	p.Content = append([]byte(nil), b...)
	if p.Start+p.Size == m.End() {
		// Nothing lies after the pack: its room shrinks to the pages
		// its members use, so the next region starts right after them
		// instead of after a whole PackRoom. No region or image has
		// an address in the room given up (the pack was opened by
		// this link and nothing was placed after it), so nothing
		// moves.
		p.Size = max(pageUp(end-p.Start), abi.PageSize)
	}
	m.open = 0
	return nil
}

// PackAt returns the pack at start, or nil.
func (m *Map) PackAt(start uint64) *Pack {
	for i := range m.Packs {
		if m.Packs[i].Start == start {
			return &m.Packs[i]
		}
	}
	return nil
}
