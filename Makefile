# nodeboot — see README.md. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
# Swift from PATH, else the toolchain at /opt/swift (a fresh machine's login shell may not have it on PATH).
# Exported, so scripts/demo.sh and the test runners find the same swift.
ifeq ($(shell command -v swift 2>/dev/null),)
export PATH := $(PATH):/opt/swift/usr/bin
endif
SWIFT ?= swift
RELEASE_FLAGS = -c release --static-swift-stdlib -Xswiftc -gline-tables-only
BIN_DIR = $(shell $(SWIFT) build $(RELEASE_FLAGS) --show-bin-path 2>/dev/null)
DEBUG_BIN_DIR = $$($(SWIFT) build --show-bin-path)

.PHONY: deps deps-test build test check release bench demo conformance bad-input verify-units systemd clean

# What the targets need on a fresh Debian 12 machine, installed when missing (as root; otherwise the exact command is
# printed and make stops). deps: building and `make demo`; deps-test: that plus the test runners' packages.
deps:
	@scripts/setup.sh demo

deps-test:
	@scripts/setup.sh test

build: deps
	$(SWIFT) build

# Every test, then one summary (scripts/test-all.py: every runner runs even when one before it failed, its output is
# shown and saved in .build/test-logs/, a table of all runners, a last line `N passed, N failed, N skipped`; the exit
# status is 1 when any runner failed):
# - swift test: unit, loopback (testbed, moto, botocore/awscli), system tests that skip with a reason. Serial: the
#   fault tests bound timings loosely, and 2 shared cores running 80 tests at once are not idle;
# - nodeadm's e2e suite (scripts/conformance.py) and the bad-input corpus (scripts/bad-input.py) against the binaries;
# - the shipped units through systemd-analyze verify (scripts/verify-units.py) and the real-systemd scenario
#   (scripts/systemd-test.py: a debootstrapped bookworm tree booted with systemd-nspawn, cached in
#   /var/cache/nodeboot); both need root and are skipped with a reason when they cannot run.
test: deps-test check build
	python3 scripts/test-all.py --self-test >/dev/null || python3 scripts/test-all.py --self-test
	python3 scripts/test-all.py --swift $(SWIFT) --bin-dir $(DEBUG_BIN_DIR)

check:
	$(SWIFT) format lint --strict --recursive --configuration .swift-format Sources Tests Package.swift

# Static Swift runtime, stripped; then the agent's ldd against the libraries docs/architecture.md allows.
release: deps
	$(SWIFT) build $(RELEASE_FLAGS)
	strip $(BIN_DIR)/nodeboot $(BIN_DIR)/nodeboot-cni $(BIN_DIR)/nodeboot-testbed
	@echo "release binaries in $(BIN_DIR):"; ls -l $(BIN_DIR)/nodeboot $(BIN_DIR)/nodeboot-cni $(BIN_DIR)/nodeboot-testbed
	python3 scripts/check-links.py $(BIN_DIR)/nodeboot
	python3 scripts/check-links.py $(BIN_DIR)/nodeboot-cni

# The peer's side needs curl and the AWS CLI; the systemd part and the CNI plugins' (nodeboot-cni against bridge +
# host-local through go-cni, scripts/cni-harness.py) need root (skipped with a reason otherwise).
bench: deps-test release
	python3 scripts/bench.py --bin-dir $(BIN_DIR)
	python3 scripts/systemd-test.py --bin-dir $(BIN_DIR) --bench
	python3 scripts/cni-harness.py --bin-dir $(BIN_DIR) --bench

demo: deps build
	scripts/demo.sh

# nodeadm's end-to-end suite (../shared/conformance/nodeadm/cases.json) played with the debug binaries.
conformance: build
	python3 scripts/conformance.py --bin-dir $(DEBUG_BIN_DIR)

# Malformed inputs (Tests/BadInput/cases.json): each must be refused with exit status 2, a message
# naming the place and the fix, no secret echoed and nothing written under the node root.
bad-input: build
	python3 scripts/bad-input.py --bin-dir $(DEBUG_BIN_DIR)

# The shipped units through systemd-analyze verify, on an overlay of the test tree (root).
verify-units: deps-test
	python3 scripts/verify-units.py

# The real-systemd scenario alone (containerd and the kubelet started by nodeboot under systemd 252; root).
systemd: deps-test build
	python3 scripts/systemd-test.py --bin-dir $(DEBUG_BIN_DIR)

clean:
	rm -rf .build
