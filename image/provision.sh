#!/usr/bin/env bash
# Provisions a Debian 13 system into a nodeboot node image: run as root on the system being built, with the staging
# directory image/build.py (local: in a chroot of the mmdebstrap tree) or the Packer template (on the build instance)
# filled. Both builds share this script, so the local disk image and the AMI hold the same files.
#
#   provision.sh STAGE [--install-packages]
#
# STAGE holds: rootfs/ (image/rootfs/, copied onto /), bin/nodeboot, bin/nodeboot-cni (static-runtime release builds), units/ (the repository's units/ and
# cloud-init/'s *.service), cloud.cfg.d/, kubelet-stand-in.py, packages.txt, pause.py and pause.tar (built here
# from the system's catatonit when absent: the Packer build), and bootstrap.sh when the repository has
# compat/bootstrap.sh. --install-packages: apt-get install packages.txt first (the
# Packer instance; the local build's mmdebstrap has installed them).
#
# Steps: binaries, units (enabled: the boot pair, containerd, systemd-networkd; the kubelet and ipamd not: init starts them),
# cloud-init's configuration, the kubelet stand-in, the version files nodeboot reads, /etc/eks/nodeadm.d/, the pause
# image imported into containerd's k8s.io namespace and pinned (a private containerd started here for the import),
# then the cleanup amazon-eks-ami's cleanup does (machine-id, host keys, cloud-init state, logs, apt lists).
set -euo pipefail

STAGE=${1:?usage: provision.sh STAGE [--install-packages]}
INSTALL=${2:-}
PAUSE_IMAGE=localhost/kubernetes/pause:latest   # nodeboot's default sandbox image (NodeRender's ContainerdConfig)
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
step() { echo "provision: $*"; }

if [[ $INSTALL == --install-packages ]]; then
    step "apt-get install $(grep -cv '^\s*\(#\|$\)' "$STAGE/packages.txt") packages"
    apt-get update -qq
    grep -v '^\s*\(#\|$\)' "$STAGE/packages.txt" | xargs apt-get install -y -qq --no-install-recommends
fi

step "binaries: /usr/bin/nodeboot, /usr/bin/nodeboot-cni (ipamd's conflist plugin; init links it into /opt/cni/bin)"
install -m 0755 "$STAGE/bin/nodeboot" /usr/bin/nodeboot
install -m 0755 "$STAGE/bin/nodeboot-cni" /usr/bin/nodeboot-cni
step "kubelet stand-in: /usr/bin/kubelet (no kubelet binary exists for this image: image/README.md)"
install -m 0755 "$STAGE/kubelet-stand-in.py" /usr/bin/kubelet
if [[ -f $STAGE/bootstrap.sh ]]; then
    step "legacy entry point: /etc/eks/bootstrap.sh (compat/bootstrap.sh)"
    install -D -m 0755 "$STAGE/bootstrap.sh" /etc/eks/bootstrap.sh
fi

if [[ -d $STAGE/rootfs ]]; then
    step "files of image/rootfs/ (systemd-udevd's .link for pod veths)"
    cp -r --no-preserve=ownership "$STAGE"/rootfs/. /
fi

step "units into /etc/systemd/system"
for path in "$STAGE"/units/*; do
    name=$(basename "$path")
    if [[ -d $path ]]; then
        install -d -m 0755 "/etc/systemd/system/$name"
        install -m 0644 "$path"/* "/etc/systemd/system/$name/"
    else
        install -m 0644 "$path" "/etc/systemd/system/$name"
    fi
done
# Enabled: the two boot phases (cloud-init.target), containerd (the package enables it; said again), the network stack
# cloud-init renders for. Not the kubelet: nodeboot-run.service starts it on every boot, after the user data's scripts
# have run (enabled, it started as soon as the config phase had written its flags, before a script's NodeConfig
# drop-in, and a kubelet applies --node-labels and --register-with-taints only when it registers: found with the
# registering stand-in). A node /etc/eks/bootstrap.sh configured has it enabled by bootstrap.sh, as on AL2.
# nodeboot-ipamd.service has no [Install]: init starts it.
systemctl enable nodeboot-config.service nodeboot-run.service containerd.service \
    systemd-networkd.service systemd-networkd-wait-online.service systemd-resolved.service 2>&1 | sed 's/^/  /'
# Nothing fetched or changed behind the cluster's back at boot: apt's timers off; no scrub/trim jobs racing the boot.
systemctl mask apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service \
    dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service 2>&1 | sed 's/^/  /'

step "cloud-init configuration: /etc/cloud/cloud.cfg.d/"
install -m 0644 "$STAGE"/cloud.cfg.d/*.cfg /etc/cloud/cloud.cfg.d/

if [[ -x /usr/sbin/sshd ]]; then
    # An SSH server is installed (the Packer build: Debian's AMI has openssh-server; the local image has none).
    # 90-nodeboot.cfg leaves cloud-init's ssh modules out, and the cleanup below deletes the host keys: without cc_ssh
    # no instance would get keys and sshd would not start. The module lists again with them (a list in a later file
    # replaces the earlier one), made from 90-nodeboot.cfg so the two cannot drift.
    step "openssh-server present: cloud-init's ssh modules back (91-nodeboot-ssh.cfg)"
    python3 - <<'PY'
import yaml
config = yaml.safe_load(open("/etc/cloud/cloud.cfg.d/90-nodeboot.cfg"))
init, final = config["cloud_init_modules"], config["cloud_final_modules"]
init.append("ssh")
final[final.index("final-message"):final.index("final-message")] = ["ssh-authkey-fingerprints", "keys-to-console"]
with open("/etc/cloud/cloud.cfg.d/91-nodeboot-ssh.cfg", "w") as f:
    f.write("# Written by nodeboot's image/provision.sh: openssh-server is installed, so cloud-init makes the instance's\n"
            "# host keys and installs its key pair (90-nodeboot.cfg's lists plus the ssh modules).\n")
    yaml.safe_dump({"cloud_init_modules": init, "cloud_final_modules": final}, f, default_flow_style=False)
PY
fi

step "/etc/eks: version files, nodeadm.d/"
install -d -m 0755 /etc/eks /etc/eks/nodeadm.d
# The formats of `kubelet --version` and `containerd --version`, which nodeboot otherwise runs at every boot.
/usr/bin/kubelet --version >/etc/eks/kubelet-version.txt
containerd --version >/etc/eks/containerd-version.txt
sed 's/^/  /' /etc/eks/kubelet-version.txt /etc/eks/containerd-version.txt

step "pause image $PAUSE_IMAGE: /etc/eks/pause.tar imported into containerd's k8s.io namespace, pinned"
if [[ ! -f $STAGE/pause.tar ]]; then
    python3 "$STAGE/pause.py" /usr/bin/catatonit "$STAGE/pause.tar" | sed 's/^/  /'
fi
install -m 0644 "$STAGE/pause.tar" /etc/eks/pause.tar
# A private containerd on the image's own root (/var/lib/containerd, what nodeboot's config.toml names) with its own
# socket and state, the CRI plugin off (it would start networking); stopped again at the end. The CRI plugin of the
# booted node finds the image in the k8s.io namespace.
work=$(mktemp -d /tmp/nodeboot-containerd.XXXXXX)
cat >"$work/config.toml" <<TOML
version = 2
root = "/var/lib/containerd"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/containerd.sock"
TOML
containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
containerd_pid=$!
stop_containerd() {
    kill "$containerd_pid" 2>/dev/null && wait "$containerd_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap stop_containerd EXIT
for _ in $(seq 100); do [[ -S $work/containerd.sock ]] && break; sleep 0.1; done
if ! [[ -S $work/containerd.sock ]]; then
    echo "provision: containerd did not start; its log:" >&2; cat "$work/containerd.log" >&2; exit 1
fi
ctr() { command ctr --address "$work/containerd.sock" --namespace k8s.io "$@"; }
ctr images import /etc/eks/pause.tar | sed 's/^/  /'
# What the CRI plugin sets on images it pulls (managed: listed by crictl), and the pin: the kubelet's image GC leaves a
# pinned image alone (containerd >= 1.7.3), so the sandbox image can never be collected and then fail to pull.
ctr images label "$PAUSE_IMAGE" io.cri-containerd.image=managed io.cri-containerd.pinned=pinned | sed 's/^/  /'
ctr images ls | sed 's/^/  /'
stop_containerd
trap - EXIT

step "cleanup: machine-id, host keys, cloud-init state, logs, apt lists, /tmp"
# An empty machine-id: systemd makes a new one on the instance's first boot (and treats it as the first boot).
: >/etc/machine-id
# authorized_keys: on the Packer instance, the build's temporary key (the last step: nothing connects after it).
rm -f /var/lib/dbus/machine-id /etc/hostname /etc/ssh/ssh_host_* /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys
rm -rf /var/lib/cloud/data /var/lib/cloud/instance /var/lib/cloud/instances /var/lib/cloud/sem
rm -f /var/log/cloud-init*.log /var/log/*.log /var/log/apt/* /var/cache/debconf/*-old
apt-get clean
rm -rf /var/lib/apt/lists/* /tmp/* /var/tmp/*
step "done"
