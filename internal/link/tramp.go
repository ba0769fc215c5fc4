package link

import (
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/trampoline"
)

// Trampoliner is the trampoline pass as the linker uses it: the linker
// sizes each library's slot and stub areas with Estimate before the link
// and lets Rewrite fill the tables after it.
type Trampoliner interface {
	// Estimate bounds the tramp table a library object can need (pie:
	// the image is linked position-independent; elsewhere: the object's
	// sections the link places outside its region, image-wide tables).
	Estimate(objPath string, pie bool, elsewhere []string) (trampoline.Need, error)
	// Rewrite patches the aligned image in place and fills cfg's Tramp,
	// Relocs and NoASLR.
	Rewrite(imagePath string, cfg *desc.Config) error
}

// DefaultTrampoliner is internal/trampoline.
var DefaultTrampoliner Trampoliner = trampolinePass{}

type trampolinePass struct{}

func (trampolinePass) Estimate(obj string, pie bool, elsewhere []string) (trampoline.Need, error) {
	return trampoline.EstimateParts(obj, pie, elsewhere)
}
func (trampolinePass) Rewrite(img string, cfg *desc.Config) error {
	return trampoline.Rewrite(img, cfg)
}

// NoRewrite sizes tramp areas like the real pass but leaves them unfilled
// and the code untouched: an image exactly as ld laid it out, whose
// libraries cannot move (NoASLR). Measurements use it to tell what
// alignment alone achieves from what the trampolines add.
type NoRewrite struct{ Trampoliner }

// Rewrite marks every library as pinned.
func (NoRewrite) Rewrite(_ string, cfg *desc.Config) error {
	for i := range cfg.Libraries {
		l := &cfg.Libraries[i]
		l.NoASLR = "linked without the trampoline pass"
		l.Tramp = desc.Tramp{Split: l.Tramp.Split} // the tables stay empty
	}
	return nil
}
