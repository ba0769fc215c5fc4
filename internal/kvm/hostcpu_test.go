package kvm

import (
	"os"
	"strings"
	"testing"
)

// On bare metal (no "hypervisor" flag in /proc/cpuinfo) there is no
// hypervisor signature; under one there is, unless its leaf is empty.
func TestHostHypervisorIsEmptyWhereTheKernelSeesNoHypervisor(t *testing.T) {
	info, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skip(err)
	}
	flagged := false
	for _, line := range strings.Split(string(info), "\n") {
		if strings.HasPrefix(line, "flags") {
			flagged = strings.Contains(" "+line+" ", " hypervisor ")
			break
		}
	}
	sig := HostHypervisor()
	t.Logf("host hypervisor: %q (cpuinfo flag: %v)", sig, flagged)
	if !flagged && sig != "" {
		t.Errorf("signature %q, but /proc/cpuinfo has no hypervisor flag", sig)
	}
	if strings.ContainsAny(sig, "\x00") {
		t.Errorf("signature %q keeps NULs", sig)
	}
}
