# nodeboot — see README.md. `make test` is what CI runs (.ci/run).
SWIFT ?= swift
SHELL := /bin/bash
RELEASE_FLAGS = -c release --static-swift-stdlib -Xswiftc -gline-tables-only
BIN_DIR = $(shell $(SWIFT) build $(RELEASE_FLAGS) --show-bin-path 2>/dev/null)

.PHONY: build test check release bench demo conformance bad-input systemd clean

build:
	$(SWIFT) build

# Every test: unit, loopback (testbed, moto, botocore/awscli), system tests that skip with a reason.
# Serial: the fault tests bound timings loosely, and 2 shared cores running 80 tests at once are not idle.
# Then nodeadm's e2e suite (scripts/conformance.py) and the bad-input corpus against the binary,
# and the real-systemd test (scripts/systemd-test.py: a debootstrapped bookworm tree booted with
# systemd-nspawn, cached in /var/cache/nodeboot; skipped with a reason when it cannot run).
test: check build
	$(SWIFT) test --no-parallel 2>&1 | tee .build/test.log; exit $${PIPESTATUS[0]}
	python3 scripts/conformance.py --bin-dir $$($(SWIFT) build --show-bin-path)
	python3 scripts/bad-input.py --bin-dir $$($(SWIFT) build --show-bin-path)
	python3 scripts/systemd-test.py --bin-dir $$($(SWIFT) build --show-bin-path)

check:
	$(SWIFT) format lint --strict --recursive --configuration .swift-format Sources Tests Package.swift

release:
	$(SWIFT) build $(RELEASE_FLAGS)
	strip $(BIN_DIR)/nodeboot $(BIN_DIR)/nodeboot-testbed
	@echo "release binaries in $(BIN_DIR):"; ls -l $(BIN_DIR)/nodeboot $(BIN_DIR)/nodeboot-testbed
	@echo "nodeboot links:"; ldd $(BIN_DIR)/nodeboot

bench: release
	python3 scripts/bench.py --bin-dir $(BIN_DIR)
	python3 scripts/systemd-test.py --bin-dir $(BIN_DIR) --bench

demo: build
	scripts/demo.sh

# nodeadm's end-to-end suite (../shared/conformance/nodeadm/cases.json) played with the debug binaries.
conformance: build
	python3 scripts/conformance.py --bin-dir $$($(SWIFT) build --show-bin-path)

# Malformed inputs (Tests/BadInput/cases.json): each must be refused with exit status 2, a message
# naming the place and the fix, no secret echoed and nothing written under the node root.
bad-input: build
	python3 scripts/bad-input.py --bin-dir $$($(SWIFT) build --show-bin-path)

# The real-systemd scenario alone (containerd and the kubelet started by nodeboot under systemd 252).
systemd: build
	python3 scripts/systemd-test.py --bin-dir $$($(SWIFT) build --show-bin-path)

clean:
	rm -rf .build
