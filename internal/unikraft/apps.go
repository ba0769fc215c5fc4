package unikraft

import (
	"fmt"
	"hash/fnv"
)

// appWork is, per fleet app, the Go reference of what its main.c computes
// (guest/unikraft/<app>/main.c): the same loops over the same numbers.
var appWork = map[string]func() uint32{
	"apphello": func() uint32 { // strlen of snprintf("unikraft %d", i)
		var n uint32
		for i := 0; i < 10; i++ {
			n += uint32(len(fmt.Sprintf("unikraft %d", i)))
		}
		return n
	},
	"appalloc": func() uint32 { // last byte of each memset(malloc(i*24), i)
		var n uint32
		for i := 1; i <= 64; i++ {
			n += uint32(i & 0xff)
		}
		return n
	},
	"appthreads": func() uint32 { return 1000 * (1 + 2 + 3 + 4) }, // 4 threads add k 1000 times
	"appring": func() uint32 { // 1..50 through the ring
		var n uint32
		for i := uint32(1); i <= 50; i++ {
			n += i
		}
		return n
	},
	"appsglist": func() uint32 { return 100 + 200 + 300 + 3 }, // length + segments
	"apptime": func() uint32 { // monotonic clock, then leap years 1900..2100
		n := uint32(1000)
		for y := 1900; y <= 2100; y++ {
			if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
				n++
			}
		}
		return n
	},
}

// Expect is the line a fleet app prints for input (its argv[1]):
// "<app> <input> <hex8>", hex8 = FNV-1a-32(input) XOR the app's work.
func (a FleetApp) Expect(input string) string {
	h := fnv.New32a()
	h.Write([]byte(input))
	return fmt.Sprintf("%s %s %08x", a.Name, input, h.Sum32()^appWork[a.Name]())
}

// Feature is a choice a fleet configuration may make over the defconfig:
// an in-tree library (or a few) to add, or an option of one.
type Feature struct {
	Name string
	Set  map[string]string
	// What says, for the note and --help, what the feature changes.
	What string
}

// Features are the choices fleet configurations draw from. Adding a leaf
// library changes little else; the allocator and scheduler choices change
// ukboot; the message level changes the code of every library that logs.
var Features = []Feature{
	{"ukring", map[string]string{"CONFIG_LIBUKRING": "y"}, "adds ukring (and uklock)"},
	{"uksglist", map[string]string{"CONFIG_LIBUKSGLIST": "y"}, "adds uksglist"},
	{"posix-time", map[string]string{"CONFIG_LIBPOSIX_TIME": "y"}, "adds posix-time"},
	{"ukmpi", map[string]string{"CONFIG_LIBUKMPI": "y"}, "adds ukmpi (mailboxes)"},
	{"ukstreambuf", map[string]string{"CONFIG_LIBUKSTREAMBUF": "y"}, "adds ukstreambuf"},
	{"posix-sysinfo", map[string]string{"CONFIG_LIBPOSIX_SYSINFO": "y"}, "adds posix-sysinfo"},
	{"ukfalloc", map[string]string{"CONFIG_LIBUKFALLOC": "y"}, "adds ukfalloc"},
	{"ukallocpool", map[string]string{"CONFIG_LIBUKALLOCPOOL": "y"}, "adds ukallocpool"},
	{"allocregion", map[string]string{"CONFIG_LIBUKALLOCREGION": "y", "CONFIG_LIBUKBOOT_INITREGION": "y", "CONFIG_LIBUKBOOT_INITBBUDDY": "n"},
		"boots with the region allocator instead of the binary buddy (changes ukboot)"},
	{"nosched", map[string]string{"CONFIG_LIBUKBOOT_INITNOSCHED": "y", "CONFIG_LIBUKBOOT_INITSCHEDCOOP": "n"},
		"no scheduler at boot (drops uksched, ukschedcoop; changes ukboot)"},
	{"printk-warn", map[string]string{"CONFIG_LIBUKDEBUG_PRINTK_WARN": "y", "CONFIG_LIBUKDEBUG_PRINTK_ERR": "n"},
		"kernel messages down to warnings (changes every library that logs warnings)"},
}
