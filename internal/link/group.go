package link

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/unipool/unipool/internal/libmap"
)

// A group is a set of libraries that an aligned link links as one unit:
// one object (ld -r of the members, in the group's order), so one map
// region, one code stream, one trampoline table (calls between members
// are direct) and one private part. The page that holds the end of one member's code and the
// start of the next one's then has the same bytes in every image with the
// same members, instead of each member rounding its code up to whole pages
// of its own.
//
// The unit's library name is its members' names joined by "+"
// ("ukplat+ukboot+libc"), its version their versions joined by "+", its
// object the ld -r output (which is the same bytes for the same member
// objects, wherever they lie): so the map gives every combination of
// member versions a version (and, when it does not fit, a region) of its
// own, like any other library, and adding a library moves nothing.
// Each combination holds its members' code once: a fleet with V versions
// of one member pays that many copies of the others' code (a few pages
// per combination), once per host, not per instance.
//
// Groups are tried in order: a group applies to an image that has all of
// its members, none of them taken by an earlier group. Packed and dce
// links never group.

// GroupSep joins member names (and versions) into a group unit's name.
const GroupSep = "+"

// DefaultGroups are the groups of a unipool-platform aligned link unless
// Options.Groups says otherwise: the core every unikernel links (platform,
// boot, libc) with the argument parser and string buffers every app of the
// corpus uses; where an image lacks one of those, the core with what it
// has. The allocator is left out: it has as many variants as libc (six
// against four), so grouping it would multiply the combinations, and its
// code rounds to about the same pages whether grouped or not (measured,
// docs/notes/issue-19.md).
var DefaultGroups = [][]string{
	{"ukplat", "ukboot", "libc", "ukargs", "ukstrbuf"},
	{"ukplat", "ukboot", "libc", "ukargs"},
	{"ukplat", "ukboot", "libc"},
}

// ParseGroup reads a group as the command line gives it: member names
// joined by "+" ("ukplat+ukboot+libc"), at least two, none twice.
func ParseGroup(s string) ([]string, error) {
	members := strings.Split(s, GroupSep)
	if len(members) < 2 {
		return nil, fmt.Errorf("group %q: want two or more library names joined by %q", s, GroupSep)
	}
	seen := map[string]bool{}
	for _, m := range members {
		if !libmap.ValidName(m) || strings.Contains(m, GroupSep) {
			return nil, fmt.Errorf("group %q: invalid library name %q", s, m)
		}
		if seen[m] {
			return nil, fmt.Errorf("group %q: library %q twice", s, m)
		}
		seen[m] = true
	}
	if len(s) > 128 {
		return nil, fmt.Errorf("group %q: the joined name is longer than a library name may be (128)", s)
	}
	return members, nil
}

// groupsFor are the groups a link uses.
func groupsFor(opt Options) [][]string {
	if opt.Layout != LayoutAligned || opt.Platform == PlatformUnikraft {
		return nil
	}
	if opt.Groups == nil {
		return DefaultGroups
	}
	return opt.Groups
}

// member is one library of a group unit.
type member struct {
	name, version, origin, sha256, path string
}

// groupObjects replaces, in objs, the members of every group that applies
// by one object: their ld -r, written into work. The unit takes the place
// of its first member in the link order.
func groupObjects(ctx context.Context, opt Options, objs []*object, work string, tablePatterns []string) ([]*object, error) {
	groups := groupsFor(opt)
	if len(groups) == 0 {
		return objs, nil
	}
	byName := map[string]int{}
	for i, o := range objs {
		if !o.App {
			byName[o.Name] = i
		}
	}
	taken := map[int]bool{}
	unitAt := map[int]*object{}
	for gi, g := range groups {
		var idx []int
		for _, m := range g {
			i, ok := byName[m]
			if !ok || taken[i] {
				idx = nil
				break
			}
			idx = append(idx, i)
		}
		if idx == nil {
			continue
		}
		u, err := linkGroup(ctx, opt, objs, idx, filepath.Join(work, fmt.Sprintf("group%d.o", gi+1)), tablePatterns)
		if err != nil {
			return nil, err
		}
		first := idx[0]
		for _, i := range idx {
			taken[i] = true
			first = min(first, i)
		}
		unitAt[first] = u
	}
	if len(unitAt) == 0 {
		return objs, nil
	}
	var out []*object
	for i, o := range objs {
		if u := unitAt[i]; u != nil {
			out = append(out, u)
		}
		if !taken[i] {
			out = append(out, o)
		}
	}
	return out, nil
}

// linkGroup links objs[idx...] (in that order) into one relocatable object
// at path and reads it as the unit's object.
func linkGroup(ctx context.Context, opt Options, objs []*object, idx []int, path string, tablePatterns []string) (*object, error) {
	var names, versions, origins []string
	var members []member
	args := []string{"-r", "-o", path}
	for _, i := range idx {
		o := objs[i]
		abs, err := filepath.Abs(o.Path)
		if err != nil {
			return nil, fmt.Errorf("object %s: %w", o.Path, err)
		}
		args = append(args, abs)
		names = append(names, o.Name)
		versions = append(versions, o.Version)
		if len(origins) == 0 || origins[0] != o.Origin {
			origins = append(origins, o.Origin)
		}
		members = append(members, member{name: o.Name, version: o.Version, origin: o.Origin, sha256: o.sha256, path: o.Path})
	}
	name := strings.Join(names, GroupSep)
	cmd := exec.CommandContext(ctx, opt.LD, args...)
	cmd.Env = append(cmd.Environ(), "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("link %s: group %s: ld -r failed: %v\n%s", opt.Output, name, err, strings.TrimSpace(out.String()))
	}
	if !libmap.ValidName(name) {
		return nil, fmt.Errorf("link %s: group %s: not a valid library name (too long?)", opt.Output, name)
	}
	in := Object{Path: path, Name: name, Version: strings.Join(versions, GroupSep), Origin: strings.Join(origins, GroupSep)}
	u, err := readObject(in, tablePatterns)
	if err != nil {
		return nil, fmt.Errorf("link %s: group %s: %w", opt.Output, name, err)
	}
	u.members = members
	return u, nil
}
