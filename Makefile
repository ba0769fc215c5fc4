# The two entry points of the README. Both install what they need.
GO ?= go

.PHONY: all build test demo deps vet

all: build

build:
	$(GO) build -o bin/ ./cmd/unipool ./cmd/unipool-vmm

deps:
	./scripts/deps.sh

# Everything: go vet, unit + end-to-end tests, fuzz seeds, KVM tests in the
# emulated KVM host when the machine has no /dev/kvm.
test:
	./scripts/test.sh

demo: deps build
	./bin/unipool demo
