// Package guest embeds the guest source tree (platform layer, microlibs,
// apps, third-party library descriptions) so that an installed unipool
// binary can build a corpus from anywhere. Only what the build reads is
// embedded: lib.json, app.json, exportsyms.uk, C and assembly sources and
// headers; Go files (tests of the guest's logic) are left out.
package guest

import (
	"embed"
	"io/fs"
)

// The patterns name every kind of file the corpus build reads, at each
// depth the tree uses; embed_test.go checks that nothing on disk is
// missed. A pattern that matches nothing fails the Go build, so a kind
// that disappears from the tree must leave this list too.
//
//go:embed plat/lib.json plat/exportsyms.uk plat/*.c plat/*.h plat/*.S plat/include
//go:embed lib/*/lib.json lib/*/exportsyms.uk lib/*/*.c lib/*/*.h lib/*/*.S lib/*/include
//go:embed apps/*/app.json apps/*/*.c
//go:embed third_party/*/lib.json
//go:embed unikraft/*.h unikraft/*/app.json unikraft/*/*.c
var files embed.FS

// FS is the embedded guest tree, rooted at guest/ (paths like
// "lib/libc/lib.json").
func FS() fs.FS { return files }
