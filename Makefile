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

.PHONY: deps deps-test build test check release bench demo conformance bad-input verify-units systemd fuzz fault-matrix image fleet clean

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
#   /var/cache/nodeboot); both need root and are skipped with a reason when they cannot run;
# - nodeboot-cni through go-cni against a real ipamd (scripts/cni-harness.py: its checks, then 4 x 1,000 ADD/DEL
#   cycles, one and 16 at a time, with and without ipamd SIGKILLed in the middle: about 3 min) and containerd's
#   `ctr run --cni` (scripts/ctr-cni.py); root.
# - the node image booted under qemu (scripts/vm-test.py, docs/boot.md): image/build.py with the release binaries
#   (hence `release` here; the build is cached), three TCG boots (join and a pod, reboot, broken user data): about
#   6-8 min; root.
test: deps-test check build release
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
# host-local through go-cni, scripts/cni-harness.py) need root (skipped with a reason otherwise); the last line boots
# the node image under qemu (scripts/vm-test.py --bench: the boot timeline, the agent's share, vm-boot.svg).
bench: deps-test release
	python3 scripts/bench.py --bin-dir $(BIN_DIR)
	python3 scripts/systemd-test.py --bin-dir $(BIN_DIR) --bench
	python3 scripts/cni-harness.py --bin-dir $(BIN_DIR) --bench
	python3 scripts/vm-test.py --bin-dir $(BIN_DIR) --image-bin-dir $(BIN_DIR) --bench

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

# One fault at a time against the testbed (scripts/fault-matrix.py): exit status, time within its bound, error and
# hint, status.json, nothing half-written; FAULT_MATRIX_ARGS=--write-doc regenerates docs/reliability.md's table (root).
fault-matrix: build
	python3 scripts/fault-matrix.py --bin-dir $(DEBUG_BIN_DIR) $(FAULT_MATRIX_ARGS)

# libFuzzer targets for the decoders of untrusted input (Fuzz/, scripts/fuzz.py): the seed and regression inputs
# replayed, then FUZZ_SECONDS of fuzzing each (make test runs 5 s each). Prints executions and coverage per target.
FUZZ_SECONDS ?= 600
fuzz: deps
	python3 scripts/fuzz.py --seconds $(FUZZ_SECONDS)

# The node image (issue 14, image/README.md): the release binaries, then image/build.py: Debian 13 with mmdebstrap,
# provisioned, validated, a raw GPT disk; cached in /var/cache/nodeboot/image/<hash of the inputs>/ (disk.raw, vmlinuz,
# initrd.img, cmdline, manifest.json), /var/cache/nodeboot/image/current points at it, rebuilt only when an input
# changed. The last line printed is the output directory. Root.
image: deps-test release
	python3 image/build.py --bin-dir $(BIN_DIR)

# N agents (500 by default; make test runs 200) booting at once, each with its own node root and instance identity,
# against one testbed that throttles EC2/EKS/STS like AWS: with the CA in the user data, then without (DescribeCluster
# per node), then a repair run. Figures in docs/reliability.md ("Fleet"). 500 debug agents at once outrun 2 cores (their
# own IMDS timeouts): FLEET_FLAGS="--start-window 20" starts them over 20 s, as an auto scaling group would.
N ?= 500
FLEET_FLAGS ?=
fleet: build
	python3 scripts/fleet.py --bin-dir $(DEBUG_BIN_DIR) -n $(N) $(FLEET_FLAGS)

clean:
	rm -rf .build Fuzz/.build
