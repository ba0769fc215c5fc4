#!/bin/bash
# The test command (make test, .ci/run): installs what is missing, vets, runs
# every Go test (unit and end-to-end), then the KVM tests inside the emulated
# KVM host when this machine has no usable /dev/kvm. `scripts/test.sh kvm`
# runs only the KVM tests.
#
# Every run writes its logs to a directory of its own (printed first and
# last; UNIPOOL_TEST_LOGS=DIR picks it). Nothing is retried: a KVM test run
# that fails, hangs, or whose emulated host's kernel reports a stall fails
# the suite, with the emulated host's console log kept.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

# KVM test packages: compiled here, run inside the emulated KVM host (or on
# this machine when its KVM runs guests), in this order, each binary under
# its own -test.timeout. Add a package here to run its KVM tests there.
KVM_TESTS="internal/kvm internal/monitor/microvm"
KVM_TEST_TIMEOUT=10m   # per test binary, inside the emulated host
KVMHOST_TIMEOUT=1500   # seconds, the whole emulated-host run (boot included; healthy: ~2-5 min)

LOGS=${UNIPOOL_TEST_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/unipool-test.XXXXXX")}
mkdir -p "$LOGS"
LOGS=$(cd "$LOGS" && pwd)
T0=$(date +%s)
say() { printf 'test: [%s] %s\n' "$(elapsed $T0)" "$*"; }
elapsed() { local s=$(($(date +%s) - $1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }
say "logs in $LOGS"

# beat WHAT LOG: a progress line every minute while WHAT runs (stopped with
# nobeat), naming the test LOG says is running, if any.
heartbeat=""
beat() {
	local what=$1 log=$2 t0
	t0=$(date +%s)
	(
		while sleep 60 >/dev/null 2>&1 </dev/null; do
			cur=$(grep -a -E '^(=== RUN|@@ )' "$log" 2>/dev/null | tail -n 1 | sed 's/^=== RUN *//; s/^@@ //' || true)
			say "  ... $what: $(elapsed $t0) so far${cur:+; now: $cur}"
		done
	) &
	heartbeat=$!
}
nobeat() {
	[ -z "$heartbeat" ] || kill "$heartbeat" 2>/dev/null || true
	heartbeat=""
}
kvm_tmp=""
trap 'nobeat; [ -z "$kvm_tmp" ] || rm -rf "$kvm_tmp"' EXIT

./scripts/deps.sh 2>&1 | tee "$LOGS/deps.log"
if [ "${1:-}" = kvm ]; then
	say "scripts/test.sh kvm: only the KVM tests"
else
	say "go vet ./... (a fresh machine first downloads the modules and builds everything)"
	beat "go vet ./..." /dev/null
	go vet ./... 2>&1 | tee "$LOGS/vet.log"
	nobeat
	say "go test ./... (every package; each line is a package that finished; log: $LOGS/go-test.log)"
	beat "go test ./..." /dev/null
	go test -count=1 -timeout 40m ./... 2>&1 | tee "$LOGS/go-test.log"
	nobeat
	say "go test ./... passed"
fi

# --- KVM tests --------------------------------------------------------------
# go test ./... above ran the KVM tests if this machine's KVM runs guests;
# otherwise they skipped, and here they run inside scripts/kvmhost, with
# UNIPOOL_REQUIRE_KVM=1 so that they fail there instead of skipping.
kvm_tmp=$(mktemp -d)
say "building the KVM test binaries ($KVM_TESTS) and pooling a corpus sample"
kvm_bins=""
for pkg in $KVM_TESTS; do
	bin="$kvm_tmp/$(echo "$pkg" | tr / -).test"
	go test -c -o "$bin" "./$pkg"
	kvm_bins="$kvm_bins $pkg:$bin"
done
# A sample of the corpus, pooled here (compiling in the emulated host is
# slow), that the KVM tests run under both monitors.
go build -o "$kvm_tmp/unipool" ./cmd/unipool
"$kvm_tmp/unipool" corpus build --count 6 --seed 7 --out "$kvm_tmp/sample/corpus" >"$LOGS/kvm-sample.log" 2>&1
for kvm_uk in $(cd "$kvm_tmp/sample/corpus" && ls -d */ | tr -d /); do
	"$kvm_tmp/unipool" link --layout aligned --pool "$kvm_tmp/sample/pool" --corpus "$kvm_tmp/sample/corpus" \
		--unikernel "$kvm_uk" -o "$kvm_tmp/sample/$kvm_uk.elf" >>"$LOGS/kvm-sample.log" 2>&1
	"$kvm_tmp/unipool" pool add --pool "$kvm_tmp/sample/pool" --name "$kvm_uk" "$kvm_tmp/sample/$kvm_uk.elf" >>"$LOGS/kvm-sample.log" 2>&1
done

# Unikraft's helloworld (the shared tarball, or $UNIKRAFT_SRC), built with
# Unikraft's own make, linked aligned and pooled here; the KVM tests boot
# it pooled (20 VMs in one process, and naive) and stock.
kvm_ukraft="$kvm_tmp/unikraft"
mkdir -p "$kvm_ukraft"
say "building Unikraft's helloworld for the KVM tests (log: $LOGS/kvm-unikraft.log)"
if "$kvm_tmp/unipool" unikraft build --set CONFIG_LIBUKRANDOM=n --copy-image "$kvm_ukraft/stock.elf" --link-args \
	>"$kvm_ukraft/link.args" 2>"$LOGS/kvm-unikraft.log"; then
	mapfile -t kvm_uk_args <"$kvm_ukraft/link.args"
	"$kvm_tmp/unipool" link --layout aligned --pool "$kvm_ukraft/pool" -o "$kvm_ukraft/helloworld.elf" "${kvm_uk_args[@]}" >>"$LOGS/kvm-unikraft.log" 2>&1
	"$kvm_tmp/unipool" pool add --pool "$kvm_ukraft/pool" --name helloworld "$kvm_ukraft/helloworld.elf" >>"$LOGS/kvm-unikraft.log" 2>&1
elif grep -q 'no Unikraft source tree' "$LOGS/kvm-unikraft.log"; then
	# No tree at all (no $UNIKRAFT_SRC, no network, no shared/unikraft
	# tarball above this clone): the Unikraft KVM test skips, saying why.
	say "NOT testing Unikraft under KVM: $(grep -m1 'no Unikraft source tree' "$LOGS/kvm-unikraft.log" | sed 's/^unipool: //')"
	kvm_ukraft=""
else
	say "building Unikraft's helloworld FAILED; the end of $LOGS/kvm-unikraft.log:"
	tail -n 30 "$LOGS/kvm-unikraft.log"
	exit 1
fi

# The same app with Unikraft's QEMU defconfig (kvm platform, multiboot
# entry): a stock image QEMU boots with -kernel. It boots here in
# qemu-system-x86_64 under TCG, its serial console kept; the KVM tests
# boot the same file in the KVM monitor and compare the lines.
if [ -n "$kvm_ukraft" ]; then
	say "building Unikraft's helloworld for QEMU and booting it in qemu-system-x86_64 (TCG)"
	"$kvm_tmp/unipool" unikraft build --defconfig qemu-x86_64 --set CONFIG_LIBUKRANDOM=n --copy-image "$kvm_ukraft/qemu.elf" \
		>>"$LOGS/kvm-unikraft.log" 2>&1 || { say "building Unikraft's helloworld for QEMU FAILED; see $LOGS/kvm-unikraft.log"; exit 1; }
	echo "unipool qemu-tcg" >"$kvm_ukraft/qemu.append"
	if ! timeout 300 qemu-system-x86_64 -accel tcg -nodefaults -display none -no-reboot -m 128 \
		-serial "file:$kvm_ukraft/qemu-tcg.out" -kernel "$kvm_ukraft/qemu.elf" -append "$(cat "$kvm_ukraft/qemu.append")" \
		>>"$LOGS/kvm-unikraft.log" 2>&1; then
		say "Unikraft's QEMU image did not power off under qemu-system-x86_64 (TCG) within 300s; see $LOGS/kvm-unikraft.log"
		exit 1
	fi
fi

# The script that runs every KVM test binary, each in its package
# directory; it runs them all and exits 1 if any failed.
{
	echo "export UNIPOOL_REQUIRE_KVM=1 UNIPOOL_KVM_SAMPLE='$kvm_tmp/sample' UNIPOOL_KVM_UNIKRAFT='$kvm_ukraft'"
	echo "failed=0"
	for pb in $kvm_bins; do
		echo "echo '@@ $(basename "${pb#*:}")'"
		echo "(cd '$REPO/${pb%%:*}' && '${pb#*:}' -test.v -test.timeout $KVM_TEST_TIMEOUT) || failed=1"
	done
	echo 'exit $failed'
} >"$kvm_tmp/run-kvm-tests.sh"

# What the KVM test output shows on the terminal: test verdicts and
# kvmhost's own lines (the full output is in the log).
show() { grep --line-buffered -E '^(--- |ok|PASS|FAIL|panic|kvmhost:|@@ )' | sed -u 's/^@@ /test: running /'; }

if UNIPOOL_REQUIRE_KVM=1 "$kvm_tmp/internal-monitor-kvm.test" -test.run '^TestThisHostRunsKVMGuests$' >/dev/null 2>&1; then
	say "this machine's KVM runs guests: the corpus sample under both monitors"
	if ! (cd internal/monitor/microvm && UNIPOOL_KVM_UNIKRAFT="$kvm_ukraft" "$kvm_tmp/internal-monitor-kvm.test" -test.run 'TestCorpusSample|TestUnikraft' -test.v \
		-test.timeout "$KVM_TEST_TIMEOUT") 2>&1 | tee "$LOGS/kvm-tests.log" | show; then
		say "KVM tests FAILED; log: $LOGS/kvm-tests.log"
		exit 1
	fi
	say "KVM tests passed"
	say "done; logs in $LOGS"
	exit 0
fi

say "no usable KVM here: running the KVM tests inside the emulated KVM host (scripts/kvmhost; first run: fetches and unpacks Debian's kernel package)"
say "  its output: $LOGS/kvm-tests.log; its kernel console: $LOGS/kvmhost-console.log"
: >"$LOGS/kvm-tests.log"
beat "in the emulated KVM host" "$LOGS/kvm-tests.log"
kvm_t0=$(date +%s)
set +e
./scripts/kvmhost --timeout "$KVMHOST_TIMEOUT" --console "$LOGS/kvmhost-console.log" -- bash "$kvm_tmp/run-kvm-tests.sh" 2>&1 |
	tee "$LOGS/kvm-tests.log" | show
kvm_status=${PIPESTATUS[0]}
set -e
nobeat
kvm_time=$(elapsed $kvm_t0)
if [ "$kvm_status" != 0 ]; then
	case "$kvm_status" in
	124) why="the emulated KVM host did not finish within ${KVMHOST_TIMEOUT}s" ;;
	125) why="the emulated KVM host failed ($(grep -a -m1 -E '^kvmhost: (the emulated host|no result)' "$LOGS/kvm-tests.log" | sed 's/^kvmhost: //'))" ;;
	*) why="a KVM test failed (status $kvm_status)" ;;
	esac
	say "KVM tests FAILED after $kvm_time: $why"
	say "the end of $LOGS/kvm-tests.log:"
	grep -a -v '^=== ' "$LOGS/kvm-tests.log" | tail -n 40
	say "the emulated host's kernel console: $LOGS/kvmhost-console.log"
	exit 1
fi
say "KVM tests passed in the emulated KVM host ($kvm_time in it)"
say "done; logs in $LOGS"
