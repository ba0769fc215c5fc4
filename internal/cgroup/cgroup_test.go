package cgroup

import (
	"os"
	"strings"
	"testing"
)

// A cgroup v2 memory.stat as Linux 6.1 prints it (shortened).
const statV2 = `anon 1363968
file 8192000
kernel 2363392
kernel_stack 229376
pagetables 425984
sec_pagetables 0
percpu 0
sock 0
vmalloc 8192
shmem 0
file_mapped 0
slab_reclaimable 346080
slab_unreclaimable 1131520
slab 1477600
pgfault 41565
`

// A cgroup v1 memory.stat (shortened): no kernel lines.
const statV1 = `cache 11603968
rss 1728512
rss_huge 0
shmem 0
mapped_file 0
hierarchical_memory_limit 9223372036854771712
total_rss 1728512
`

func TestParseStatReadsEveryLineOfV1AndV2(t *testing.T) {
	v2, err := ParseStat([]byte(statV2), "memory.stat")
	if err != nil {
		t.Fatal(err)
	}
	if len(v2) != 15 || v2["anon"] != 1363968 || v2["kernel"] != 2363392 || v2["slab"] != 1477600 || v2["pgfault"] != 41565 {
		t.Fatalf("v2: %v", v2)
	}
	v1, err := ParseStat([]byte(statV1), "memory.stat")
	if err != nil {
		t.Fatal(err)
	}
	if len(v1) != 7 || v1["rss"] != 1728512 || v1["hierarchical_memory_limit"] != 9223372036854771712 {
		t.Fatalf("v1: %v", v1)
	}
}

func TestParseStatRefusesWhatIsNotNameValueNamingTheFileAndLine(t *testing.T) {
	for _, bad := range []string{
		"anon 1\nfile\n",              // no value
		"anon 1\nfile 2 3\n",          // three fields
		"anon -1\n",                   // negative
		"anon 1\nanon 2\n",            // twice
		"anon 18446744073709551616\n", // overflows
		"\n\n",                        // empty
	} {
		_, err := ParseStat([]byte(bad), "/x/memory.stat")
		if err == nil || !strings.Contains(err.Error(), "/x/memory.stat") {
			t.Errorf("%q: %v, want an error naming the file", bad, err)
		}
	}
	_, err := ParseStat([]byte("anon 1\nfile\n"), "/x/memory.stat")
	if !strings.Contains(err.Error(), "line 2") {
		t.Errorf("%v does not name line 2", err)
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte(statV2))
	f.Add([]byte(statV1))
	f.Add([]byte("a 1\n\nb 2"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseStat(data, "memory.stat")
		if err != nil {
			return
		}
		// Every name parsed is a first field of the input.
		for k := range m {
			if !strings.Contains(string(data), k) || strings.ContainsAny(k, " \t\n") {
				t.Fatalf("name %q not from the input", k)
			}
		}
	})
}

func TestProcCgroupLineIsFoundForEachHierarchy(t *testing.T) {
	data := []byte("9:name=systemd:/\n4:memory:/process_api/abc\n3:cpu,cpuacct:/x\n0::/user.slice/s.scope\n")
	if p, err := parseProcCgroup(data, false); err != nil || p != "/process_api/abc" {
		t.Errorf("v1: %q, %v", p, err)
	}
	if p, err := parseProcCgroup(data, true); err != nil || p != "/user.slice/s.scope" {
		t.Errorf("v2: %q, %v", p, err)
	}
	if _, err := parseProcCgroup([]byte("3:cpu:/x\n"), false); err == nil {
		t.Error("no memory line: no error")
	}
}

func TestMemoryHierarchyIsFoundOnThisHost(t *testing.T) {
	h, err := FindHierarchy()
	if err != nil {
		t.Skipf("no cgroup memory controller here: %v", err)
	}
	t.Logf("memory controller at %s (root %s, v2: %v)", h.Mount, h.Root, h.V2)
	if _, err := os.Stat(h.Mount); err != nil {
		t.Error(err)
	}
	own, err := h.Own(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(own); err != nil {
		t.Errorf("this process's group: %v", err)
	}
}
