#!/bin/bash
# The test command (make test, .ci/run): installs what is missing, vets, runs
# every Go test (unit and end-to-end), then the KVM tests inside the emulated
# KVM host when this machine has no usable /dev/kvm.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
echo "test: go vet"
go vet ./...
echo "test: go test ./..."
go test -count=1 -timeout 40m ./... 2>&1 | tee /tmp/unipool-test.log

# --- KVM tests in the emulated KVM host (owner: the kvm monitor) -----------
# go test ./... above ran the KVM tests if this machine's KVM runs guests;
# otherwise they skipped, and here they run inside scripts/kvmhost, with
# UNIPOOL_REQUIRE_KVM=1 so that they fail there instead of skipping.
kvm_tmp=$(mktemp -d)
trap 'rm -rf "$kvm_tmp"' EXIT
go test -c -o "$kvm_tmp/monitor-kvm.test" ./internal/monitor/kvm
go test -c -o "$kvm_tmp/kvm.test" ./internal/kvm
# A sample of the corpus, pooled here (compiling in the emulated host is
# slow), that the KVM tests run under both monitors.
go build -o "$kvm_tmp/unipool" ./cmd/unipool
"$kvm_tmp/unipool" corpus build --count 6 --seed 7 --out "$kvm_tmp/sample/corpus" >/dev/null
for kvm_uk in $(cd "$kvm_tmp/sample/corpus" && ls -d */ | tr -d /); do
	"$kvm_tmp/unipool" link --layout aligned --pool "$kvm_tmp/sample/pool" --corpus "$kvm_tmp/sample/corpus" \
		--unikernel "$kvm_uk" -o "$kvm_tmp/sample/$kvm_uk.elf" >/dev/null
	"$kvm_tmp/unipool" pool add --pool "$kvm_tmp/sample/pool" --name "$kvm_uk" "$kvm_tmp/sample/$kvm_uk.elf" >/dev/null
done
export UNIPOOL_KVM_SAMPLE="$kvm_tmp/sample"
if UNIPOOL_REQUIRE_KVM=1 "$kvm_tmp/monitor-kvm.test" -test.run '^TestThisHostRunsKVMGuests$' >/dev/null 2>&1; then
	echo "test: this machine's KVM runs guests: the corpus sample under both monitors"
	(cd internal/monitor/kvm && "$kvm_tmp/monitor-kvm.test" -test.run 'TestCorpusSample' -test.v) | grep -E '^(--- |ok|PASS|FAIL|panic)'
else
	echo "test: no usable KVM here: running the KVM tests inside scripts/kvmhost"
	# Nested SVM under TCG emulation now and then wedges the emulated
	# host's kernel ("soft lockup" on its console) or runs past the
	# deadline; that is the emulator, not the code under test, so such a
	# run (and only such a run) is tried again, at most twice more. A run
	# that completes keeps its verdict.
	for kvm_try in 1 2 3; do
		set +e
		./scripts/kvmhost --timeout 900 -- sh -c "
			export UNIPOOL_REQUIRE_KVM=1 UNIPOOL_KVM_SAMPLE='$kvm_tmp/sample'
			cd '$PWD/internal/kvm' && '$kvm_tmp/kvm.test' -test.v -test.timeout 10m || exit 1
			cd '$PWD/internal/monitor/kvm' && '$kvm_tmp/monitor-kvm.test' -test.v -test.timeout 10m" 2>&1 |
			tee /tmp/unipool-test-kvm.log | grep -E '^(--- |ok|PASS|FAIL|panic)'
		kvm_status=${PIPESTATUS[0]}
		set -e
		if [ "$kvm_status" = 0 ]; then
			break
		fi
		if [ "$kvm_try" -lt 3 ] && { [ "$kvm_status" = 124 ] || grep -qE 'soft lockup|test timed out' /tmp/unipool-test-kvm.log; }; then
			echo "test: the emulated KVM host wedged (status $kvm_status, attempt $kvm_try); trying again"
			continue
		fi
		echo "test: KVM tests FAILED in the emulated KVM host (status $kvm_status); the end of /tmp/unipool-test-kvm.log:"
		tail -n 40 /tmp/unipool-test-kvm.log
		exit 1
	done
	echo "test: KVM tests passed in the emulated KVM host (log: /tmp/unipool-test-kvm.log)"
fi
