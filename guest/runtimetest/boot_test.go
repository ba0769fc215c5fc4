package runtimetest

import (
	"strings"
	"testing"
)

func TestBootRunsConstructorsPassesArgumentsAndExitsWithMainsCode(t *testing.T) {
	forEachSet(t, func(t *testing.T, i int, exe string) {
		out := runDriver(t, exe, "boot", "1", `first "second arg" 'third "q"'`, "0")
		for _, want := range []string{
			"exit 42\n",
			"ctors 2:1,2 argc-seen-by-ctor 4\n",
			"argc 4\n",
			"argv[0] <unikernel>\n", "argv[1] <first>\n", "argv[2] <second arg>\n",
			"argv[3] <third \"q\">\n",
			"console <<main: 4 args, float 0.667, hex 0xff\n>>",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("boot output lacks %q:\n%s", want, out)
			}
		}
	})
}

func TestBootCopiesTheTLSTemplateBelowTheThreadPointer(t *testing.T) {
	forEachSet(t, func(t *testing.T, i int, exe string) {
		// 1: a small template in the static reserve; 2: a large,
		// 128-aligned one that the platform moves to the heap.
		for kind, moved := range map[string]string{"1": "tls-moved 0", "2": "tls-moved 1", "3": "tls-moved 1"} {
			out := runDriver(t, exe, "boot", "1", "x", kind)
			if !strings.Contains(out, moved) || !strings.Contains(out, "exit 42") {
				t.Errorf("TLS kind %s: want %q and exit 42:\n%s", kind, moved, out)
			}
		}
	})
}

func TestInitPhaseRunsOnceBeforeTheReadyPointAndConstructors(t *testing.T) {
	forEachSet(t, func(t *testing.T, i int, exe string) {
		for _, restore := range [][]string{nil, {"restored"}} {
			out := runDriver(t, exe, append([]string{"boot", "1", "a b", "0"}, restore...)...)
			if !strings.Contains(out, "init-phase 1 ready-before 0 ctors-before 0\n") || !strings.Contains(out, "exit 42\n") {
				t.Errorf("restore %v:\n%s", restore, out)
			}
		}
	})
}

func TestScratchMemoryIsGivenBackAsWholePagesWhenTheRequestIsDone(t *testing.T) {
	forEachSet(t, func(t *testing.T, i int, exe string) {
		for _, restore := range [][]string{nil, {"restored"}} {
			out := runDriver(t, exe, append([]string{"boot", "1", "a b", "0"}, restore...)...)
			if !strings.Contains(out, "scratch pages given back 3\n") || !strings.Contains(out, "exit 42\n") {
				t.Errorf("restore %v: want the scratch range's 3 whole pages given back once:\n%s", restore, out)
			}
		}
	})
}

func TestRandomNumbersBeforeTheReadyPointStopTheGuest(t *testing.T) {
	exe := driverFor(t, runtimeSets(t)[0])
	out := runDriver(t, exe, "boot-init-draws", "1")
	if !strings.Contains(out, "exit 134\n") || !strings.Contains(out, "ukrand: random numbers asked for before the ready point") ||
		!strings.Contains(out, "ready 0 ") {
		t.Fatalf("a draw in the init phase:\n%s", out)
	}
}

func TestBadBootInfoStopsWithExitCode125AndAMessage(t *testing.T) {
	exe := driverFor(t, runtimeSets(t)[0])
	out := runDriver(t, exe, "badboot")
	if !strings.Contains(out, "exit 125") || !strings.Contains(out, "bad boot info") {
		t.Fatalf("bad boot info:\n%s", out)
	}
}

func TestCommandLineSplitsLikeAShell(t *testing.T) {
	exe := driverFor(t, runtimeSets(t)[0])
	out := runDriver(t, exe, "split")
	want := `0:0
1:0
2:1 <a>
3:3 <a> <b> <c>
4:2 <quoted arg> <plain>
5:2 <single "kept"> <x>
6:1 <a b>
7:1 <esc " and \ and \n>
8:1 <joinedtogetheragain>
9:1 <>
10:1 <unterminated>
11:3 <{json:> <[1,> <2]}>
12:1 <{"json": [1, 2]}>
`
	if out != want {
		t.Fatalf("split:\n%s\nwant\n%s", out, want)
	}
}

func TestReadyPointComesBeforeTheCommandLineAndTakesTheRestoredCanary(t *testing.T) {
	forEachSet(t, func(t *testing.T, i int, exe string) {
		for _, tls := range []string{"0", "2", "3"} {
			// Cold: the ready port is written once; the canary is still
			// the boot one, and no copy of it stays in the boot info or
			// in a static TCB no longer used.
			cold := runDriver(t, exe, "boot", "1", "a b", tls)
			if !strings.Contains(cold, "ready 1 canary 0x123400 bootinfo-canary 0 static-tcb-canary 0\n") || !strings.Contains(cold, "argv[2] <b>\n") {
				t.Errorf("TLS kind %s, cold boot:\n%s", tls, cold)
			}
			// A restore rewrites the boot info at the ready point: the
			// guest then reads that command line, and its canary is
			// the restored instance's own, taken out of the boot info.
			warm := runDriver(t, exe, "boot", "1", "a b", tls, "restored 'own request'")
			for _, want := range []string{"ready 1 canary 0x567800 bootinfo-canary 0 static-tcb-canary 0\n", "argc 3\n", "argv[1] <restored>\n",
				"argv[2] <own request>\n", "ctors 2:1,2 argc-seen-by-ctor 3\n", "exit 42\n"} {
				if !strings.Contains(warm, want) {
					t.Errorf("TLS kind %s, restored at the ready point: lacks %q:\n%s", tls, want, warm)
				}
			}
		}
	})
}
