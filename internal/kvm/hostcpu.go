package kvm

import (
	"encoding/binary"
	"strings"
)

// cpuid executes CPUID on the host's CPU (hostcpu_amd64.s).
func cpuid(leaf, sub uint32) (a, b, c, d uint32)

// HostHypervisor is the signature of the hypervisor the host itself runs
// under, as CPUID leaf 0x40000000 gives it ("KVMKVMKVM", "Microsoft Hv",
// "bhyve bhyve", HypervisorTCG, ...; trailing NULs and blanks dropped),
// or "" on bare metal (CPUID.1:ECX bit 31 clear).
func HostHypervisor() string {
	if _, _, c, _ := cpuid(1, 0); c&(1<<31) == 0 {
		return ""
	}
	_, b, c, d := cpuid(0x4000_0000, 0)
	sig := make([]byte, 12)
	binary.LittleEndian.PutUint32(sig[0:], b)
	binary.LittleEndian.PutUint32(sig[4:], c)
	binary.LittleEndian.PutUint32(sig[8:], d)
	return strings.TrimRight(string(sig), "\x00 ")
}

// HypervisorTCG is QEMU's signature when it emulates the CPU in software
// (TCG), as scripts/kvmhost's emulated KVM host does.
const HypervisorTCG = "TCGTCGTCGTCG"
