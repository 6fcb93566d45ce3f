#!/usr/bin/env bash
# The one set-up step of the project: installs what `make demo` (demo) or `make test` (test) needs on a fresh
# Debian 12 machine with Swift at /opt/swift, and only what is missing, so a second call costs a few milliseconds.
#
#   scripts/setup.sh demo    build and run the agent and the testbed: Debian libsystemd-dev (the agent links
#                            libsystemd), zlib1g-dev (gzip user data), pkg-config (SwiftPM finds both with it),
#                            ca-certificates; curl and python3 (scripts/demo.sh drives the testbed with them)
#   scripts/setup.sh test    the above, plus what the test runners drive: systemd-container (systemd-nspawn,
#                            systemd-analyze) and debootstrap for the real-systemd scenario, iproute2 for the scripts,
#                            nftables (nft: ipamd's SNAT table, applied in scratch network namespaces by the tests),
#                            Debian's Go 1.19 with go-cni and libcni (golang-1.19-go,
#                            golang-github-containerd-go-cni-dev, golang-github-appc-cni-dev: scripts/cni-harness.py
#                            builds its containerd-like CNI client from them offline), the CNI reference plugins
#                            (containernetworking-plugins: bridge, host-local, portmap, loopback) and iptables
#                            (portmap's rules), containerd, runc and busybox-static (scripts/ctr-cni.py: a private
#                            containerd runs busybox containers with `ctr run --cni`), qemu-system-x86, qemu-utils,
#                            socat, fdisk and e2fsprogs (scripts/vm-test.py boots the node image under qemu and reads
#                            files back from its disk), and the Python packages
#                            moto[server] (EC2/EKS mock), awscli, botocore and boto3 (real AWS clients against the
#                            testbed); python3-pip when python3 has no pip
#
# As root it installs (apt-get, pip). As another user it prints the exact command to run as root and exits 2.
# pip installs into the python3 on PATH; when that is Debian's own (PEP 668 "externally managed"), with
# PIP_BREAK_SYSTEM_PACKAGES=1: moto 5 is not packaged by Debian 12, and this is a build and test machine.
# Exit status 0: everything is there; 1: an install failed; 2: not root and something is missing, or a usage error.
# Used by the Makefile (`make deps`, `make deps-test`, which `make demo` and `make test` depend on) and by .ci/run.
set -euo pipefail

usage() { echo "usage: scripts/setup.sh demo|test" >&2; exit 2; }
[[ $# == 1 ]] || usage
case $1 in
demo) want_test=0 ;;
test) want_test=1 ;;
*) usage ;;
esac

debs=(libsystemd-dev zlib1g-dev pkg-config ca-certificates curl)
pips=()
if [[ $want_test == 1 ]]; then
    debs+=(systemd-container debootstrap iproute2 nftables)
    # scripts/cni-harness.py: Go 1.19, go-cni and libcni (the harness), the reference plugins, portmap's iptables.
    debs+=(golang-1.19-go golang-github-containerd-go-cni-dev golang-github-appc-cni-dev)
    # iputils-ping: the pods' and the node's pings (a fresh machine of this kind has no ping).
    debs+=(containernetworking-plugins iptables iputils-ping)
    # scripts/ctr-cni.py: Debian's containerd 1.6 and runc run containers with `ctr run --cni`; busybox-static is the
    # container image's only binary.
    debs+=(containerd runc busybox-static)
    # GNU time (%M): the CNI bench's per-plugin peak RSS (scripts/cni-harness.py --bench).
    debs+=(time)
    # The node image (image/build.py, scripts/image-test.py): mmdebstrap builds the Debian 13 tree, mkfs.ext4
    # (e2fsprogs) the root file system, systemd-repart (systemd) the GPT disk, sfdisk (fdisk) reads it back; packer
    # validates image/packer/nodeboot.pkr.hcl offline.
    debs+=(mmdebstrap e2fsprogs fdisk packer)   # (e2fsprogs, fdisk: also the VM test's, below)
    # scripts/vm-test.py: boots the node image under qemu (software emulation) with the testbed behind guestfwd
    # (socat per guest connection); qemu-img makes the copy-on-write disk, sfdisk and debugfs read files back from it.
    debs+=(qemu-system-x86 qemu-utils socat fdisk e2fsprogs)
    # module name=pip requirement; moto's server extra brings flask for moto_server.
    pips=("moto=moto[server]" "flask=flask" "awscli=awscli" "botocore=botocore" "boto3=boto3")
fi

# One dpkg-query for all (it prints nothing for a package it has never heard of): missing is what is not installed.
installed=" $(dpkg-query -W -f='${db:Status-Status}=${Package} ' "${debs[@]}" 2>/dev/null || true) "
missing_debs=()
for deb in "${debs[@]}"; do
    [[ $installed == *" installed=$deb "* ]] || missing_debs+=("$deb")
done

# Any python3 will do (a pyenv one, /usr/bin/python3): Debian's only when there is none on PATH.
have_python=1
command -v python3 >/dev/null 2>&1 || { have_python=0; missing_debs+=(python3); }

missing_pips=()
if [[ ${#pips[@]} -gt 0 && $have_python == 0 ]]; then
    for entry in "${pips[@]}"; do missing_pips+=("${entry#*=}"); done
    missing_debs+=(python3-pip)
elif [[ ${#pips[@]} -gt 0 ]]; then
    modules=()
    for entry in "${pips[@]}"; do modules+=("${entry%%=*}"); done
    # find_spec looks the module up without importing it (importing moto takes a second).
    absent=$(python3 - "${modules[@]}" <<'PY'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
PY
    )
    for entry in "${pips[@]}"; do
        [[ " $absent " == *" ${entry%%=*} "* ]] && missing_pips+=("${entry#*=}")
    done
    command -v aws >/dev/null 2>&1 || [[ " ${missing_pips[*]} " == *" awscli "* ]] || missing_pips+=(awscli)
    if [[ ${#missing_pips[@]} -gt 0 ]] && ! python3 -m pip --version >/dev/null 2>&1; then
        missing_debs+=(python3-pip)
    fi
fi

if [[ ${#missing_debs[@]} == 0 && ${#missing_pips[@]} == 0 ]]; then
    exit 0
fi

apt_cmd="apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing_debs[*]}"
# PEP 668: Debian's python3 refuses pip installs outside a venv unless told; decided once python3 is there.
pip_env() {
    python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))' \
        2>/dev/null && echo "PIP_BREAK_SYSTEM_PACKAGES=1 " || true
}
pip_args="-m pip install -q --disable-pip-version-check$(printf " %q" "${missing_pips[@]}")"
pip_cmd="$( ((have_python)) && pip_env || echo "PIP_BREAK_SYSTEM_PACKAGES=1 ")python3 $pip_args"
if [[ $(id -u) != 0 ]]; then
    echo "setup: missing for 'make $1':${missing_debs[*]:+ Debian ${missing_debs[*]}}${missing_pips[*]:+ Python ${missing_pips[*]}}" >&2
    echo "setup: run as root:" >&2
    [[ ${#missing_debs[@]} -gt 0 ]] && echo "    sudo sh -c '$apt_cmd'" >&2
    [[ ${#missing_pips[@]} -gt 0 ]] && echo "    sudo env $pip_cmd" >&2
    exit 2
fi

if [[ ${#missing_debs[@]} -gt 0 ]]; then
    echo "setup: installing Debian packages: ${missing_debs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing_debs[@]}" >/dev/null
fi
if [[ ${#missing_pips[@]} -gt 0 ]]; then
    echo "setup: installing Python packages: ${missing_pips[*]}"
    hash -r  # python3 may have just been installed
    env $(pip_env) python3 -m pip install -q --disable-pip-version-check "${missing_pips[@]}"
fi
