package link

import (
	"bufio"
	"strconv"
	"strings"
)

// InputSection is one input section as ld placed it (from its -Map).
type InputSection struct {
	Object  string `json:"object"`  // the object's path
	Library string `json:"library"` // its library name
	Name    string `json:"name"`    // the input section
	Output  string `json:"output"`  // the output section it went to
	Addr    uint64 `json:"addr"`
	Size    uint64 `json:"size"`
}

// parseLDMap reads the input sections of the link's staged objects from
// a GNU ld link map (parseMapSections).
func (l *linker) parseLDMap(text string) []InputSection {
	var out []InputSection
	for _, s := range parseMapSections(text) {
		m := stagedName.FindStringSubmatch(s.file)
		if m == nil || m[0] != s.file {
			continue
		}
		i, _ := strconv.Atoi(m[1])
		if i < 1 || i > len(l.objs) {
			continue
		}
		o := l.objs[i-1]
		out = append(out, InputSection{Object: o.Path, Library: o.Name, Name: s.name, Output: s.output, Addr: s.addr, Size: s.size})
	}
	return out
}

// parseMapSections reads the input-section lines of a GNU ld link map. ld
// writes "NAME ADDR SIZE FILE" on one line, or NAME alone on one line and
// "ADDR SIZE FILE" on the next when NAME is long; output sections start
// in column 0. Lines of other shapes (symbols, fill, assignments) are
// skipped, and so are empty input sections. FILE may hold spaces
// ("linker stubs").
func parseMapSections(text string) []mapSection {
	var out []mapSection
	started := false
	output, pending := "", ""
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !started {
			started = strings.HasPrefix(line, "Linker script and memory map")
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			pending = ""
			continue
		}
		if line[0] != ' ' {
			output, pending = f[0], ""
			continue
		}
		if pending != "" && len(f) >= 3 && strings.HasPrefix(f[0], "0x") {
			f = append([]string{pending}, f...)
		}
		pending = ""
		if len(f) == 1 && !strings.HasPrefix(f[0], "0x") {
			pending = f[0]
			continue
		}
		if len(f) < 4 || !strings.HasPrefix(f[1], "0x") || !strings.HasPrefix(f[2], "0x") {
			continue
		}
		addr, err1 := strconv.ParseUint(f[1][2:], 16, 64)
		size, err2 := strconv.ParseUint(f[2][2:], 16, 64)
		if err1 != nil || err2 != nil || size == 0 || mapStatements[f[0]] {
			continue
		}
		out = append(out, mapSection{file: strings.Join(f[3:], " "), name: f[0], output: output, addr: addr, size: size})
	}
	return out
}

// mapStatements are the map's lines for the script's data statements and
// padding, which are no input section.
var mapStatements = map[string]bool{"*fill*": true, "BYTE": true, "SHORT": true, "LONG": true, "QUAD": true, "SQUAD": true, "FILL": true}
