package unikraft

import (
	"context"
	"os"
	"testing"
)

// HelloWorld is for tests: app-helloworld built for the Firecracker
// flavour of the kvm platform (defconfig fc-x86_64, nolibc), with set
// applied. It skips the test, saying why, when no Unikraft tree is found
// (or the build tools are missing), unless $UNIPOOL_REQUIRE_UNIKRAFT is
// set: then it fails.
func HelloWorld(t testing.TB, set map[string]string) *Build {
	t.Helper()
	wd, _ := os.Getwd()
	tree, err := Find(context.Background(), "", wd)
	if err != nil {
		unavailable(t, err)
	}
	b, err := tree.Build(context.Background(), BuildOptions{App: "helloworld", Defconfig: "fc-x86_64", Set: set})
	if err != nil {
		t.Fatalf("unikraft (%s): %v", tree.How, err)
	}
	return b
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("UNIPOOL_REQUIRE_UNIKRAFT") != "" {
		t.Fatalf("UNIPOOL_REQUIRE_UNIKRAFT is set, but: %v", err)
	}
	t.Skipf("needs Unikraft: %v", err)
}
