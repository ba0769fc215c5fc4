// Package runtimetest holds the host-side tests of the guest runtime
// (guest/plat, guest/lib/{libc,ukboot,ukallocbuddy,ukalloctlsf,ukrand,uktime}).
//
// The guest's C is compiled with the guest's own flags, every global
// symbol renamed to g_<name> (objcopy --redefine-syms), and linked into a
// host program (testdata/driver.c) next to glibc, which it is compared
// against; the platform's privileged instructions (io.S) are replaced by
// driver functions that record console bytes and the exit code. Other
// tests link real guest images with ld and run one under the process
// monitor. The package has no non-test code.
package runtimetest
