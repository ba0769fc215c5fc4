package unikraft

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/unipool/unipool/guest"
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

// TestFleetCache is the corpus cache tests share for fleet builds (the
// Unikraft configurations under it, in unikraft/), so that the Go tests
// and the CLI tests of one machine build each configuration once:
// $UNIPOOL_UNIKRAFT_CACHE/fleet-tests, else the user cache's.
func TestFleetCache(t testing.TB) string {
	t.Helper()
	d, err := cacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(d, "fleet-tests")
}

// FleetBuild is for tests: the configuration (the fleet's base plus set)
// built with the named apps of the guest tree, in TestFleetCache. It skips
// like HelloWorld when there is no Unikraft tree.
func FleetBuild(t testing.TB, set map[string]string, apps ...string) *ConfigBuild {
	t.Helper()
	wd, _ := os.Getwd()
	tree, err := Find(context.Background(), "", wd)
	if err != nil {
		unavailable(t, err)
	}
	all, err := FleetApps(guest.FS())
	if err != nil {
		t.Fatal(err)
	}
	var use []FleetApp
	for _, name := range apps {
		for _, a := range all {
			if a.Name == name {
				use = append(use, a)
			}
		}
	}
	if len(use) != len(apps) {
		t.Fatalf("fleet apps %v: not all in guest/unikraft", apps)
	}
	b, err := tree.BuildConfig(context.Background(), FleetConfig{Set: set}, use, FleetBuildOptions{Cache: filepath.Join(TestFleetCache(t), "unikraft")})
	if err != nil {
		t.Fatalf("unikraft (%s): %v", tree.How, err)
	}
	return b
}
