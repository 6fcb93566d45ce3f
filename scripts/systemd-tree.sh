#!/usr/bin/env bash
# The Debian bookworm tree that scripts/systemd-test.py boots with systemd-nspawn (a real systemd 252 as PID 1,
# containerd 1.6, runc, dbus, and cloud-init's units for the ordering checks of scripts/verify-units.py).
#
#   scripts/systemd-tree.sh            build ${NODEBOOT_TREE_CACHE:-/var/cache/nodeboot}/bookworm-systemd if it is absent
#                                      or was built from another recipe; print its path on the last line of stdout
#   scripts/systemd-tree.sh --force    rebuild even if it is current
#
# The tree is read-only input: the test mounts an overlay on it, so one build serves every run. It is built in a
# temporary directory beside its final place and renamed into place only when complete, so an interrupted build leaves
# no half tree (the next run removes the leftover and starts again). The recipe hash (this file's text) is stored in the
# tree; a changed recipe means a rebuild. Needs root, debootstrap and the Debian mirror. Exit status 0: built or current;
# 1: the build failed; 2: cannot build here (not root, no debootstrap).
set -euo pipefail

CACHE=${NODEBOOT_TREE_CACHE:-/var/cache/nodeboot}
TREE=$CACHE/bookworm-systemd
MIRROR=${NODEBOOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
STAMP=etc/nodeboot-test-tree.recipe   # inside the tree, so the tree and its stamp are renamed into place together

# The packages: systemd as init and D-Bus (systemctl and nodeboot's sd-bus calls need the system bus), containerd and
# runc (the real runtime the agent configures and starts), iptables (kubelet.service's ExecStartPre), iproute2, procps,
# ca-certificates, libsystemd0 (nodeboot links it). cloud-init is installed for its units only (cloud-final.service's
# ordering against multi-user.target is what nodeboot.service's [Install] has to respect) and disabled, so it does not
# run at boot; python3-cffi-backend is there because debootstrap does not resolve the virtual package that cloud-init's
# python3-cryptography needs (test-environment.md 4.2).
PACKAGES=systemd-sysv,dbus,containerd,runc,iptables,iproute2,ca-certificates,procps,libsystemd0,cloud-init,python3-cffi-backend

# Units that slow the boot down or fail in a container, and that no test needs.
MASK="apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service e2scrub_all.timer
e2scrub_reap.service fstrim.timer dpkg-db-backup.timer systemd-timesyncd.service console-getty.service
getty@tty1.service systemd-networkd-wait-online.service"

force=0
if [[ ${1:-} == --force ]]; then force=1; fi

if [[ $(id -u) != 0 ]]; then echo "systemd-tree: needs root" >&2; exit 2; fi

recipe=$(sha256sum "$0" | cut -d' ' -f1)
current() { [[ $force == 0 && -f $TREE/$STAMP && $(cat "$TREE/$STAMP") == "$recipe" ]]; }
mkdir -p "$CACHE"
# The lock: shared to look at the tree (and held shared by scripts/systemd-test.py while it has an overlay on it),
# exclusive to build and swap it. So one build at a time, and no swap under a running test.
exec 9>"$CACHE/.bookworm-systemd.lock"
flock -s 9
if current; then echo "$TREE"; exit 0; fi
flock -x 9
if current; then echo "$TREE"; exit 0; fi   # built by another caller while this one waited
if ! command -v debootstrap >/dev/null; then echo "systemd-tree: debootstrap is not installed" >&2; exit 2; fi

# Leftovers of interrupted builds (we hold the lock, so none of them is in progress).
for old in "$CACHE"/.bookworm-systemd.tmp.* "$CACHE"/.bookworm-systemd.old.*; do
    [[ -e $old ]] || continue
    umount -R "$old/proc" "$old/sys" "$old/dev" 2>/dev/null || true
    rm -rf --one-file-system "$old"
done

tmp=$CACHE/.bookworm-systemd.tmp.$$
cleanup() {
    umount -R "$tmp/proc" "$tmp/sys" "$tmp/dev" 2>/dev/null || true
    rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$SECONDS
echo "systemd-tree: building $TREE (debootstrap bookworm, minbase + $PACKAGES)" >&2
mkdir -p "$tmp"
if ! debootstrap --variant=minbase --include="$PACKAGES" bookworm "$tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
    echo "systemd-tree: the end of $CACHE/debootstrap.log:" >&2
    tail -n 20 "$CACHE/debootstrap.log" | sed 's/^/  /' >&2
    if [[ -f $tmp/debootstrap/debootstrap.log ]]; then tail -n 20 "$tmp/debootstrap/debootstrap.log" | sed 's/^/  /' >&2; fi
    why=$(grep -m1 '^E: ' "$CACHE/debootstrap.log" || tail -n 1 "$CACHE/debootstrap.log")
    echo "systemd-tree: debootstrap failed after $((SECONDS - start)) s: ${why#E: }" >&2   # last line: the reason
    exit 1
fi
boot=$SECONDS

echo nodeboot-test >"$tmp/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 nodeboot-test\n' >"$tmp/etc/hosts"
: >"$tmp/etc/machine-id"   # empty: systemd-nspawn hands the container a fresh id on every boot
# cloud-init stays installed (its units are the ordering reference) but does not run: its generator leaves
# cloud-init.target out of the boot and every cloud-* unit has ConditionPathExists=!/etc/cloud/cloud-init.disabled.
touch "$tmp/etc/cloud/cloud-init.disabled"
# The package enables containerd; here nothing starts it until the test has installed nodeboot's units (enabled
# kubelet.service Wants= it, as on a node image), and verify-units.py sees the tree as the package left it otherwise.
chroot "$tmp" systemctl disable containerd.service 2>&1 | sed "s/^/  /" >&2
# shellcheck disable=SC2086
chroot "$tmp" systemctl mask $MASK 2>&1 | sed "s/^/  /" >&2
chroot "$tmp" apt-get clean
rm -rf "$tmp"/var/lib/apt/lists/* "$tmp"/var/cache/debconf/*-old "$tmp"/var/log/*.log "$tmp"/var/log/apt/*
echo "$recipe" >"$tmp/$STAMP"

# Swap in the new tree: the old one (another recipe) is renamed away first, then removed.
if [[ -e $TREE ]]; then
    mv "$TREE" "$CACHE/.bookworm-systemd.old.$$"
fi
mv "$tmp" "$TREE"
rm -rf --one-file-system "$CACHE/.bookworm-systemd.old.$$"
trap - EXIT

size=$(du -sh --one-file-system "$TREE" | cut -f1)
echo "systemd-tree: built in $((SECONDS - start)) s (debootstrap $((boot - start)) s), $size" >&2
echo "$TREE"
