package kvm

import (
	"os"
	"strings"
	"testing"
)

// The host's hypervisor signature is there exactly when the kernel saw the
// hypervisor bit (the "hypervisor" flag of /proc/cpuinfo).
func TestHostHypervisorIsSetExactlyWhenTheKernelSeesAHypervisor(t *testing.T) {
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
	if flagged != (sig != "") {
		t.Errorf("signature %q, but /proc/cpuinfo's hypervisor flag is %v", sig, flagged)
	}
	if strings.ContainsAny(sig, "\x00") {
		t.Errorf("signature %q keeps NULs", sig)
	}
}
