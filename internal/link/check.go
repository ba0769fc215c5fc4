package link

import (
	"fmt"
	"sort"
	"strings"
)

// linkerDefined are the symbols every layout's script defines (ld's
// default script and the aligned script alike), so objects may reference
// them without defining them.
var linkerDefined = map[string]bool{
	"__preinit_array_start": true, "__preinit_array_end": true,
	"__init_array_start": true, "__init_array_end": true,
	"__fini_array_start": true, "__fini_array_end": true,
	"_GLOBAL_OFFSET_TABLE_": true, "__executable_start": true,
	"_etext": true, "etext": true, "__etext": true,
	"_edata": true, "edata": true, "__bss_start": true, "_end": true, "end": true,
}

// checkSymbols fails, naming the symbol and the objects, on what ld would
// report less clearly: a global symbol defined by two objects, and a
// strong reference that no object and no linker script defines.
func checkSymbols(objs []*object, scriptDefined map[string]bool) error {
	definedBy := map[string][]string{}
	common := map[string]bool{} // COMMON or weak definitions: satisfy, never clash
	collections := map[string]bool{}
	for _, o := range objs {
		for s := range o.defined {
			definedBy[s] = append(definedBy[s], o.Path)
		}
		for s := range o.common {
			common[s] = true
		}
		for s := range o.weakDefined {
			common[s] = true
		}
		for _, g := range o.globals {
			collections["__start_"+g] = true
			collections["__stop_"+g] = true
		}
	}
	var problems []string
	for _, s := range sortedKeys(definedBy) {
		if by := definedBy[s]; len(by) > 1 {
			problems = append(problems, fmt.Sprintf("duplicate symbol %q: defined in %s", s, strings.Join(by, " and ")))
		}
	}
	refs := map[string][]string{}
	for _, o := range objs {
		for s := range o.undefined {
			if len(definedBy[s]) == 0 && !common[s] && !linkerDefined[s] && !collections[s] && !scriptDefined[s] {
				refs[s] = append(refs[s], o.Path)
			}
		}
	}
	for _, s := range sortedKeys(refs) {
		problems = append(problems, fmt.Sprintf("undefined symbol %q: referenced by %s, defined by no object", s, strings.Join(refs[s], ", ")))
	}
	if len(problems) > 10 {
		problems = append(problems[:10], fmt.Sprintf("... and %d more", len(problems)-10))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "\n"))
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// weakZeros lists the weak references no object and no script defines.
// They are defined as 0 (--defsym), which is what an undefined weak
// symbol is in a static link anyway, because a position-independent
// link would otherwise route calls to them through a PLT (the symbol
// might be found at run time) that an aligned image cannot have; as an
// absolute 0, ld resolves calls and GOT loads to it directly.
func weakZeros(objs []*object, scriptDefined map[string]bool) []string {
	provided := map[string]bool{}
	for _, o := range objs {
		for s := range o.defined {
			provided[s] = true
		}
		for s := range o.common {
			provided[s] = true
		}
		for s := range o.weakDefined {
			provided[s] = true
		}
		for _, g := range o.globals {
			provided["__start_"+g] = true
			provided["__stop_"+g] = true
		}
	}
	for _, o := range objs {
		for s := range o.undefined {
			provided[s] = true // a strong reference: checkSymbols decides
		}
	}
	zeros := map[string]bool{}
	for _, o := range objs {
		for s := range o.weak {
			if !provided[s] && !linkerDefined[s] && !scriptDefined[s] && !weakDefinedByScript(s) {
				zeros[s] = true
			}
		}
	}
	return sortedKeys(zeros)
}

// weakDefinedByScript: symbols ld's scripts define on demand.
func weakDefinedByScript(s string) bool {
	return s == "__ehdr_start" || s == "__dso_handle" || s == "_DYNAMIC" || s == "__tls_get_addr"
}
