#!/usr/bin/env python3
"""The node image booted under qemu (software emulation), joining the testbed's cluster and networking a pod.

    scripts/vm-test.py --bin-dir DIR [--bench] [--image DIR] [--keep] [--boot-timeout S]

The image is `make image`'s (image/build.py --bin-dir DIR, cached in /var/cache/nodeboot/image/<hash>/, `current`
pointing at the last one; --image DIR takes a built one as it is): disk.raw, vmlinuz, initrd.img, cmdline. Each boot
runs on a copy-on-write overlay of disk.raw (qemu-img create -f qcow2 -b disk.raw -F raw); the image is never written.

The guest and the testbed. `nodeboot-testbed serve` (from --bin-dir) listens on host loopback. The guest has qemu's
user-mode network with restrict=on (nothing but the forwards below reaches the host; test-environment.md §4.5), and
each guest connection to a forwarded address is carried by a socat to the testbed:
    169.254.169.254:80  -> IMDS       (the address every EC2 agent uses; cloud-init's Ec2 datasource, IMDSv2 because
                                       the DMI uuid and serial start with ec2)
    169.254.1.20:80     -> AWS        (EC2, EKS, STS): the agent is told with the kernel command line
                                       `systemd.setenv=AWS_ENDPOINT_URL=http://169.254.1.20:80`, which PID 1 puts in
                                       every unit's environment (nodeboot-config, nodeboot-run, nodeboot-ipamd). A
                                       test-only seam: on EC2 nothing sets it and the regional endpoints are used.
    169.254.1.30:443    -> kube API   (the testbed advertises https://169.254.1.30:443 in DescribeCluster and its
                                       certificate names 169.254.1.30: kubeAPI.advertiseEndpoint)
The VM's NIC has the MAC the testbed's IMDS reports for the primary ENI, so cloud-init's network configuration and
ipamd find it. The instance's primary address is the one qemu's DHCP gives the guest (169.254.0.15, in a /24 subnet of
a 169.254.0.0/16 VPC), as EC2's DHCP hands out the primary address; the pods get the ENI's secondaries. docs/boot.md.

User data (the testbed's IMDS serves it): MIME multipart with a NodeConfig naming only the cluster (DescribeCluster
gives the endpoint, the CA and the service CIDR) and a shell script (cloud-init's scripts-user, once per instance,
between nodeboot-config.service and nodeboot-run.service) that prints markers on /dev/ttyS0, appends a line to the
generated /etc/containerd/config.toml, drops a NodeConfig with a kubelet label into /etc/eks/nodeadm.d/, and installs
what the test needs inside the guest: vmtest-report.service (enabled, after
nodeboot-run.service, every boot) which prints the units' states and times, status.json, `nodeboot status`, runs a pod
sandbox with `ctr run --cni` (the image's pinned pause image) and checks its address reaches the node, then waits for
the boot to finish, writes `systemd-analyze plot` to the disk, and powers off. Serial lines are captured with the
host's seconds since qemu started.

Boots: (1) first boot of a fresh disk; (2) the same disk again, same testbed: no node file rewritten, the Node
confirmed again, cloud-init's per-instance work not repeated; (3) a fresh disk with a NodeConfig that is refused
(spec.kubelet.flags as a string): the error on the serial console and in `nodeboot status`, no node file written;
(5, 6) storage: a fresh disk plus three disks with EC2's models (an EBS volume, two instance store disks) and a
NodeConfig with localStorage RAID0 and the volume at /var/lib/kubelet (nodeadm's ebs-storage-coexist) on the guest's
own md driver, udev, lsblk and mdadm (setup-local-disks is testkit's stand-in: the image has none), then a reboot that
formats nothing and finds the same mounts;
(4) a fresh disk with AL2-style user data, a shell script calling /etc/eks/bootstrap.sh with the CA and the endpoint:
the config unit has nothing to do, the run unit skips (bootstrap.sh's NodeConfig in nodeadm.d), bootstrap.sh's init
configures containerd and the kubelet (no ipamd), the Node registers with the --kubelet-extra-args label.
ENIs: the main NodeConfig sets ipamd's WARM_IP_TARGET above the primary ENI's 14 addresses, so ipamd creates and
attaches a second ENI at once; the Hypervisor (qemu's QMP) hot-plugs a virtio NIC with its MAC into the running guest
(and boot 2 starts with it, as a rebooted instance keeps its ENIs), and the checks find the ENI in ipamd's pool and
wired in the guest (link up, its rule at 32765, its table). Pods land on the primary ENI (ipamd packs the busiest ENI
first); pods on secondary ENIs are cni-harness's (network namespaces).
--reboots N boots the first disk N times after boot 1 (default 1; more to look for rare failures).
After each power-off, files are read back from the overlay's root partition with debugfs (no mount).

--bench: boot 1 only, then the boot timeline (kernel → cloud-init → nodeboot config done → run done → Node registered
→ first pod address) and the agent's wall and CPU share of boot-to-registered; the `systemd-analyze plot` picture is
saved next to the test log (.build/test-logs/vm-boot.svg, with the serial logs and vm-timeline.json).

One line per check, then `N passed, N failed, N skipped`; exit 1 if one failed. Not root, no qemu, or no image
(no image/build.py, or it cannot build here): `vm: skipped (<reason>)`, exit 0.
"""
import argparse
import base64
import contextlib
import errno
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testkit import Report, make_ca, popen, run_agent, setup_local_disks_stand_in, start_testbed, stop_process, write  # noqa: E402

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AEMM = os.path.join(PROJECT, "Sources", "Testbed", "Resources", "aemm-default-config.json")
IMAGE_CACHE = os.environ.get("NODEBOOT_IMAGE_CACHE", "/var/cache/nodeboot/image")
LOG_DIR = os.path.join(PROJECT, ".build", "test-logs")

# The instance as the guest sees itself: its primary ENI's address is the one qemu's DHCP gives the guest (as on EC2,
# where DHCP hands out the primary private IP), in a /24 subnet of a 169.254.0.0/16 "VPC" (qemu's user network). So the
# node's own traffic is never translated by ipamd's SNAT (to the primary address, for destinations outside the VPC),
# and the pods' addresses (the subnet's lowest free: .4 upwards) do not meet qemu's host (.2), DNS (.3) or the forwards
# (169.254.1.x, outside the subnet).
GUEST_IP = "169.254.0.15"
NODE_NAME = "ip-169-254-0-15.us-west-2.compute.internal"  # the testbed's DescribeInstances PrivateDnsName
INSTANCE_VALUES = {"local-ipv4": GUEST_IP, "mac-local-ipv4s": GUEST_IP, "mac-subnet-ipv4-cidr-block": "169.254.0.0/24",
                   "mac-vpc-ipv4-cidr-block": "169.254.0.0/16", "mac-vpc-ipv4-cidr-blocks": "169.254.0.0/16",
                   "local-hostname": "ip-169-254-0-15.us-west-2.compute.internal",
                   "hostname": "ip-169-254-0-15.us-west-2.compute.internal",
                   "mac-local-hostname": "ip-169-254-0-15.us-west-2.compute.internal"}
CLUSTER = "my-cluster"
# Guest-visible addresses inside qemu's user network 169.254.0.0/16 (host .2, DNS .3, DHCP from .15).
GUEST_NET = dict(net="169.254.0.0/16", host="169.254.0.2", dns="169.254.0.3", dhcpstart=GUEST_IP)
IMDS_ADDR = ("169.254.169.254", 80)
AWS_ADDR = ("169.254.1.20", 80)
KUBE_ADDR = ("169.254.1.30", 443)
# DMI: cloud-init (and ds-identify) call it AWS when the product uuid starts with ec2 and equals the serial.
DMI_UUID = "ec2d1e5a-7b3c-4f10-9a2e-6c0b8f4d2a71"
NODE_DIRS = ("/etc/kubernetes", "/etc/eks", "/etc/containerd", "/var/lib/kubelet", "/etc/nodeboot", "/etc/cni/net.d")
UNITS = ("nodeboot-config", "nodeboot-run", "containerd", "nodeboot-ipamd", "kubelet", "cloud-init-local",
         "cloud-init-main", "cloud-init-network", "cloud-config", "cloud-final", "vmtest-report")
SHOW = ("ActiveState", "SubState", "Result", "ExecMainStartTimestampMonotonic", "ExecMainExitTimestampMonotonic",
        "ActiveEnterTimestampMonotonic", "InactiveExitTimestampMonotonic", "CPUUsageNSec", "InvocationID",
        "NRestarts", "ExecMainStatus", "ConditionResult", "UnitFileState")
EDIT_LINE = "# vmtest: edited by the user data script between the two nodeboot phases"
DROPIN_LABEL = "vmtest.nodeboot/dropin=yes"
AL2_LABEL = "vmtest.nodeboot/al2=yes"
WARM_IP_TARGET = 20  # the main boots' ipamd: more than the primary ENI's 14, so a second ENI is attached
# The storage boots' disks carry EC2's model strings, which is what nodeboot (lsblk's MODEL) and setup-local-disks (the
# /dev/disk/by-id names udev makes from model and serial) look at: one EBS volume (nodeboot's storage.volumes) and two
# instance store disks (localStorage RAID0). ATA disks on an AHCI controller: qemu 7.2's NVMe device has no model
# property (always "QEMU NVMe Ctrl"); ide-hd has one. So the guest sees /dev/sdX and by-id names ata-<model>_<serial>.
EBS_MODEL, INSTANCE_STORE_MODEL = "Amazon Elastic Block Store", "Amazon EC2 NVMe Instance Storage"
EBS_SERIAL = "vol0a1b2c3d4e5f60789"
EBS_DEVICE = "/dev/disk/by-id/ata-" + EBS_MODEL.replace(" ", "_") + "_" + EBS_SERIAL
INSTANCE_STORE_SERIALS = ("AWS1A2B3C4D5E6F7A8B9", "AWS9B8A7F6E5D4C3B2A1")
EBS_TARGET = "/var/lib/kubelet"  # the volume: the array binds the kubelet's directory unless its mount unit is active
ARRAY_DIR = "/mnt/k8s-disks/0"
LOCAL_DISKS_LOG = "/var/log/setup-local-disks-stand-in.log"  # the AL2-style boot's --kubelet-extra-args label
BROKEN_FIELD = ("spec.kubelet.flags", "expected a list of strings")
AGENT_TARGET = 0.02
EXTRA_CMDLINE = []  # --append (debugging)
SILENCE = 180  # seconds without a serial line after which a booting guest counts as hung
SOURCE_BIN_DIR = []  # --bin-dir as given (the staged copies are refreshed from it)

# ---------------------------------------------------------------------------------------------------------------------
# What runs inside the guest.

REPORT_SCRIPT = r"""#!/bin/bash
# vmtest-report (scripts/vm-test.py): the node's state on the serial console once nodeboot-run.service is done, a pod
# sandbox through `ctr run --cni`, then (in vmtest-finish) systemd-analyze plot on the disk and power-off.
say() { echo "VMTEST $* uptime=$(cut -d' ' -f1 /proc/uptime)" > /dev/ttyS0; }
blob() { echo "VMTEST-B64 $1 $(base64 -w0 < "$2")" > /dev/ttyS0; }
ipamd_status() {  # ipamd's status over its socket (docs/ipamd.md, section 7): `counts` (the pool's totals) or `enis`
  python3 -c 'import socket, json, sys
c = socket.socket(socket.AF_UNIX); c.settimeout(10); c.connect("/run/nodeboot/ipamd.sock")
c.sendall(b"{\"v\":\"1.0\",\"op\":\"status\"}\n"); d = b""
while not d.endswith(b"\n"):
    x = c.recv(65536)
    if not x: break
    d += x
s = json.loads(d).get("status", {})
if sys.argv[1] == "enis":
    print(" ".join("%s:device=%s:addresses=%s:assigned=%s" % (e.get("id"), e.get("device"), e.get("addresses"),
                   e.get("assigned")) for e in s.get("enis", [])))
else:
    print("assigned=%s cooling=%s free=%s" % (s.get("assigned"), s.get("cooling"), s.get("free")))' "$1" 2>&1 | tail -1
}
mkdir -p /var/lib/vmtest
echo "$(cat /proc/sys/kernel/random/boot_id)" >> /var/lib/vmtest/boots
n=$(wc -l < /var/lib/vmtest/boots)
say "REPORT-START boot=$n"
for u in UNITS; do
  say "UNIT $u $(systemctl show SHOWARGS "$u.service" | tr '\n' ' ')"
done
[ -f /run/nodeboot/status.json ] && blob status.json /run/nodeboot/status.json
nodeboot status > /run/vmtest-status.txt 2>&1; echo "exit=$?" >> /run/vmtest-status.txt
blob nodeboot-status /run/vmtest-status.txt
if [ "$(systemctl is-active nodeboot-ipamd.service)" = active ] \
    && grep -qs WARM_IP_TARGET /etc/systemd/system/nodeboot-ipamd.service.d/environment.conf; then
  # ipamd's second ENI (WARM_IP_TARGET above one ENI's addresses): attached by EC2, plugged by the hypervisor, wired
  # by ipamd; bounded (ipamd itself waits at most 60 s for an attached ENI to show in IMDS and as a link).
  for i in $(seq 1 120); do
    enis=$(ipamd_status enis)
    case "$enis" in *device=1*addresses=[1-9]*) break ;; esac
    sleep 1
  done
  say "ENIS $enis"
  say "ENI-LINKS $(ip -br link | awk '{print $1"="$3"/"$2}' | tr '\n' ' ')"
  say "ENI-RULES $(ip rule | grep -E '^(32765|1536):' | tr -s ' \t' ' ' | tr '\n' ';')"
  for t in $(ip rule | sed -n 's/^32765:.* lookup \([0-9]*\).*/\1/p' | sort -u); do
    say "ENI-TABLE $t $(ip route show table $t | tr '\n' ';')"
  done
fi
if [ -e /usr/bin/setup-local-disks ]; then  # the storage boots (the script installed the stand-in)
  say "STORAGE-MOUNTS $(for t in /var/lib/kubelet /var/lib/containerd /var/log/pods /var/lib/soci-snapshotter-grpc \
    /mnt/k8s-disks/0; do echo "$t=$(findmnt -n -o SOURCE,FSTYPE --mountpoint "$t" | tr -s ' ' ',')"; done | tr '\n' ' ')"
  say "STORAGE-MDSTAT $(grep -E '^md' /proc/mdstat | tr '\n' ' ')"
  say "STORAGE-UUIDS $(for d in /dev/disk/by-id/ata-Amazon_Elastic_Block_Store_* /dev/md127; do \
    echo "$(basename "$d")=$(blkid -o value -s UUID "$d" 2>/dev/null)"; done | tr '\n' ' ')"
  say "STORAGE-ACTIVE $(for u in var-lib-kubelet.mount mnt-k8s\\x2ddisks-0.mount var-lib-containerd.mount var-log-pods.mount; do \
    echo "$u=$(systemctl is-active "$u")/$(systemctl is-enabled "$u" 2>/dev/null)"; done | tr '\n' ' ')"
  say "STORAGE-LOG $(tr '\n' ';' < /var/log/setup-local-disks-stand-in.log 2>/dev/null)"
fi
journalctl -b -o short-monotonic --no-pager -u nodeboot-config -u nodeboot-run -u nodeboot-ipamd -u containerd \
  -u kubelet -u cloud-final > /var/lib/vmtest/journal-$n.txt 2>&1
ls /etc/cni/net.d > /run/vmtest-cni.txt 2>&1; say "CNI $(tr '\n' ' ' < /run/vmtest-cni.txt)"

if [ "$(systemctl is-active nodeboot-run.service)" = active ] && [ -n "$(ls /etc/cni/net.d 2>/dev/null)" ]; then
  img=$(ctr -n k8s.io images ls -q 2>/dev/null | grep -m1 pause)
  nodeip=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.connect(("169.254.169.254",80)); print(s.getsockname()[0])')
  say "POD-IMAGE $img node=$nodeip"
  python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 18099)); s.listen(4)
s.settimeout(60)
while True:
    c, a = s.accept(); c.sendall(("node-answers " + a[0] + "\n").encode()); c.close()
' & listener=$!
  ( timeout 120 ctr -n k8s.io run --cni --rm "$img" vmtest-pod-$n > /run/vmtest-ctr.log 2>&1; echo "ctr-exit=$?" >> /run/vmtest-ctr.log ) &
  runner=$!
  pid=""
  for i in $(seq 1 120); do
    pid=$(ctr -n k8s.io task ls 2>/dev/null | awk -v id="vmtest-pod-$n" '$1==id && $3=="RUNNING" {print $2}')
    [ -n "$pid" ] && break
    kill -0 $runner 2>/dev/null || break
    sleep 0.5
  done
  if [ -n "$pid" ]; then
    addr=$(nsenter -t "$pid" -n python3 -c 'import socket,fcntl,struct; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); print(socket.inet_ntoa(fcntl.ioctl(s.fileno(),0x8915,struct.pack("256s",b"eth0"))[20:24]))' 2>&1)
    say "POD-ADDR $addr pid=$pid"
    veth=$(ip -o route get "$addr" 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p')
    say "POD-GATEWAY neigh=$(nsenter -t "$pid" -n ip neigh show 169.254.1.1 | awk '{print $5}') veth=$veth mac=$(cat /sys/class/net/$veth/address 2>/dev/null) assign=$(cat /sys/class/net/$veth/addr_assign_type 2>/dev/null)"
    reach=$(nsenter -t "$pid" -n python3 -c "import socket; s=socket.create_connection(('$nodeip',18099),10); print(s.recv(200).decode().strip())" 2>&1 | tail -1)
    say "POD-REACH $reach"
    say "POD-IPAMD-DURING $(ipamd_status counts)"
    say "POD-ROUTES $(nsenter -t "$pid" -n ip -4 route 2>&1 | tr '\n' ';')"
    { echo "== pod $pid"; nsenter -t "$pid" -n sh -c 'ip addr; ip route; ip neigh; ip -s link'
      echo "== node"; ip addr; ip route; ip rule; ip neigh; nft list ruleset; ss -ltnp; sysctl -a 2>/dev/null | grep -E 'rp_filter|ip_forward|accept_local|route_localnet'
    } > /var/lib/vmtest/net-$n.txt 2>&1
    ctr -n k8s.io task kill -s SIGKILL "vmtest-pod-$n" > /dev/null 2>&1
  else
    say "POD-NONE $(tr '\n' ' ' < /run/vmtest-ctr.log | cut -c1-600)"
  fi
  wait $runner
  say "POD-DONE $(tr '\n' ' ' < /run/vmtest-ctr.log | cut -c1-300)"
  say "POD-IPAMD-AFTER $(ipamd_status counts)"
  kill $listener 2>/dev/null
fi
if [ "$n" = 1 ]; then
  # The cost model of the agent's CPU under TCG (docs/boot.md): the same commands again after the boot's own units
  # ran them, and on a byte-identical copy of the binary (other physical pages). qemu keys its translated code by
  # physical and virtual address: a PIE binary mapped at another random address is translated again in every
  # process, so the repeats cost what the first runs cost; with randomisation off (setarch -R) the repeat reuses
  # the first run's translations and shows what execution alone costs.
  cpu() { ( TIMEFORMAT='%3U+%3S'; { time "$@" > /dev/null 2>&1; } 2>&1 ) | tail -1; }
  dry() { "$@" init --skip run --dry-run --config-source imds://user-data --config-source file:///etc/eks/nodeadm.d/; }
  cp /usr/bin/nodeboot /var/tmp/nodeboot-copy
  say "PROBE true $(cpu /usr/bin/true)"
  say "PROBE version $(cpu nodeboot --version)"
  say "PROBE copy-version-1 $(cpu /var/tmp/nodeboot-copy --version)"
  say "PROBE copy-version-2 $(cpu /var/tmp/nodeboot-copy --version)"
  say "PROBE config-dry-run $(cpu dry /usr/bin/nodeboot)"
  say "PROBE copy-config-dry-run-1 $(cpu dry /var/tmp/nodeboot-copy)"
  say "PROBE copy-config-dry-run-2 $(cpu dry /var/tmp/nodeboot-copy)"
  # The same without address-space randomisation (setarch -R): the binary at the same addresses each time.
  say "PROBE norand-version-1 $(cpu setarch x86_64 -R nodeboot --version)"
  say "PROBE norand-version-2 $(cpu setarch x86_64 -R nodeboot --version)"
  for i in 1 2 3; do say "PROBE norand-dry-$i $(cpu dry setarch x86_64 -R /usr/bin/nodeboot)"; done
  rm -f /var/tmp/nodeboot-copy
fi
systemd-run --no-block --unit=vmtest-finish-$n /usr/local/sbin/vmtest-finish "$n" > /dev/null 2>&1 || /usr/local/sbin/vmtest-finish "$n" &
say "REPORT-END"
"""

FINISH_SCRIPT = r"""#!/bin/bash
# vmtest-finish (scripts/vm-test.py): once the boot is over, systemd-analyze plot to the disk, then power-off.
say() { echo "VMTEST $* uptime=$(cut -d' ' -f1 /proc/uptime)" > /dev/ttyS0; }
n=$1
for i in $(seq 1 240); do
  state=$(systemctl is-system-running 2>/dev/null)
  case "$state" in initializing|starting) sleep 0.5 ;; *) break ;; esac
done
say "SYSTEM $state"
say "ANALYZE $(systemd-analyze 2>&1 | head -1)"
say "FAILED-UNITS $(systemctl list-units --failed --plain --no-legend 2>&1 | awk '{print $1}' | tr '\n' ' ')"
systemd-analyze plot > /var/lib/vmtest/boot-$n.svg 2> /var/lib/vmtest/plot-$n.err
systemd-analyze blame --no-pager > /var/lib/vmtest/blame-$n.txt 2>&1
sync
say "POWEROFF"
systemctl poweroff --no-block
"""

REPORT_UNIT = """[Unit]
Description=vm-test report (scripts/vm-test.py): node state to the serial console after nodeboot-run
After=nodeboot-run.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/vmtest-report
TimeoutStartSec=300

[Install]
WantedBy=cloud-init.target
"""


def user_script(kind, ca_b64=None):
    """The user data's shell script (cloud-init scripts-user: once per instance, in the final stage). KIND: `main`
    (edits a generated file, drops a NodeConfig into nodeadm.d), `broken` (nothing but the report), `al2` (AL2-style:
    the whole user data; it runs /etc/eks/bootstrap.sh with the cluster's CA and endpoint, as AL2 launch templates do)."""
    show = " ".join(f"-p {p}" for p in SHOW)
    report = REPORT_SCRIPT.replace("UNITS", " ".join(UNITS)).replace("SHOWARGS", show)
    bootstrap = f"""
/etc/eks/bootstrap.sh {CLUSTER} --b64-cluster-ca {ca_b64} --apiserver-endpoint https://{KUBE_ADDR[0]}:{KUBE_ADDR[1]} \\
  --kubelet-extra-args '--node-labels={AL2_LABEL}' > /var/lib/vmtest/bootstrap.log 2>&1
say "BOOTSTRAP-EXIT $? $(tail -c 300 /var/lib/vmtest/bootstrap.log | tr '\\n' ' ')"
""" if kind == "al2" else ""
    if kind == "storage":  # the image has no setup-local-disks (amazon-eks-ami's script): the test's stand-in
        bootstrap = (f"\ncat > /usr/bin/setup-local-disks <<'LOCALDISKS'\n"
                     f"{setup_local_disks_stand_in('/dev/md127', LOCAL_DISKS_LOG)}LOCALDISKS\n"
                     f"chmod 755 /usr/bin/setup-local-disks\n")
    edits = "" if kind != "main" else f"""
F=/etc/containerd/config.toml
if [ -f "$F" ]; then echo '{EDIT_LINE}' >> "$F"; say "SCRIPT-EDIT $F"; else say "SCRIPT-EDIT-MISSING $F"; fi
mkdir -p /etc/eks/nodeadm.d
cat > /etc/eks/nodeadm.d/50-vmtest.yaml <<'YAML'
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  kubelet:
    flags:
      - --node-labels={DROPIN_LABEL}
YAML
say "SCRIPT-DROPIN /etc/eks/nodeadm.d/50-vmtest.yaml"
"""
    return f"""#!/bin/bash
# scripts/vm-test.py's user data script: between nodeboot-config.service and nodeboot-run.service.
say() {{ echo "VMTEST $* uptime=$(cut -d' ' -f1 /proc/uptime)" > /dev/ttyS0; }}
mkdir -p /var/lib/vmtest
cat /proc/sys/kernel/random/boot_id >> /var/lib/vmtest/script-runs
say "SCRIPT-START config=$(systemctl show -P ActiveState nodeboot-config.service)/$(systemctl show -P Result nodeboot-config.service) configExit=$(systemctl show -P ExecMainExitTimestampMonotonic nodeboot-config.service) run=$(systemctl show -P ActiveState nodeboot-run.service) runStart=$(systemctl show -P ExecMainStartTimestampMonotonic nodeboot-run.service) generated=$(ls /etc/kubernetes/kubelet 2>/dev/null | tr '\\n' ,)"
{edits}{bootstrap}
cat > /usr/local/sbin/vmtest-report <<'REPORT'
{report}REPORT
cat > /usr/local/sbin/vmtest-finish <<'FINISH'
{FINISH_SCRIPT}FINISH
chmod 755 /usr/local/sbin/vmtest-report /usr/local/sbin/vmtest-finish
cat > /etc/systemd/system/vmtest-report.service <<'UNIT'
{REPORT_UNIT}UNIT
systemctl daemon-reload
systemctl enable vmtest-report.service > /dev/null 2>&1
systemctl start --no-block vmtest-report.service
say "SCRIPT-END"
"""


def user_data(kind="main", ca_b64=None):
    if kind == "al2":  # AL2-style: only a shell script, no NodeConfig, no MIME
        text = user_script(kind, ca_b64)
        assert text.isascii(), [c for c in text if not c.isascii()]
        return text
    if kind == "storage":
        nodeconfig = (f"apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: {CLUSTER}\n"
                      f"  instance:\n    localStorage:\n      strategy: RAID0\n    storage:\n      volumes:\n"
                      f"        - device: {EBS_DEVICE}\n          mountTarget: {EBS_TARGET}\n          fsType: ext4\n")
    elif kind == "broken":
        nodeconfig = (f"apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: {CLUSTER}\n"
                      f"  kubelet:\n    flags: --node-labels=broken=yes\n")
    else:
        # WARM_IP_TARGET above one ENI's 14 secondary addresses: ipamd attaches a second ENI at once, which the
        # hypervisor plugs into the guest (Hypervisor).
        nodeconfig = (f"apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: {CLUSTER}\n"
                      f"  instance:\n    environment:\n      nodeboot-ipamd:\n        WARM_IP_TARGET: \"{WARM_IP_TARGET}\"\n")
    boundary = "VMTEST-BOUNDARY"
    text = (f'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="{boundary}"\n\n'
            f"--{boundary}\nContent-Type: application/node.eks.aws\n\n{nodeconfig}\n"
            f'--{boundary}\nContent-Type: text/x-shellscript; charset="us-ascii"\n\n{user_script(kind)}\n'
            f"--{boundary}--\n")
    # The script part says us-ascii: cloud-init's shell script handler fails on any other byte (measured: a '§' in a
    # comment and the script never ran).
    assert text.isascii(), [c for c in text if not c.isascii()]
    return text


# ---------------------------------------------------------------------------------------------------------------------
# Host side: the testbed, the image, qemu, the disk.

class Fatal(Exception):
    pass


def testbed_config(directory, kind):
    with open(AEMM) as f:
        instance = json.load(f)
    kube = {"advertiseEndpoint": f"https://{KUBE_ADDR[0]}:{KUBE_ADDR[1]}"}
    ca_b64 = None
    if kind == "al2":  # the user data carries the CA, so the testbed's cluster CA is made first
        cert, key = make_ca(directory, "vmtest-al2-ca")
        kube.update(caCertificateFile=cert, caKeyFile=key)
        with open(cert, "rb") as f:
            ca_b64 = base64.b64encode(f.read()).decode()
    instance.setdefault("userdata", {}).setdefault("values", {})["userdata"] = user_data(kind, ca_b64)
    instance.setdefault("metadata", {}).setdefault("values", {}).update(INSTANCE_VALUES)
    path = os.path.join(directory, f"testbed-{kind}.json")
    write(path, json.dumps({"instance": instance, "privateDnsName": NODE_NAME, "kubeAPI": kube}, indent=2))
    return path


class Cloud:
    """The running testbed seen from the host."""

    def __init__(self, proc, printed, bin_dir, directory):
        self.proc, self.printed, self.bin_dir, self.directory = proc, printed, bin_dir, directory
        self.ca = ssl.create_default_context(cafile=printed["kube-ca"])
        self._token = None

    def port(self, name):
        return int(self.printed[name].rsplit(":", 1)[1])

    def imds(self, path):
        base = self.printed["imds"]
        request = urllib.request.Request(base + "/latest/api/token", method="PUT",
                                         headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        token = urllib.request.urlopen(request, timeout=10).read().decode()
        request = urllib.request.Request(base + path, headers={"X-aws-ec2-metadata-token": token})
        return urllib.request.urlopen(request, timeout=10).read().decode()

    def control(self, path, method="GET"):
        request = urllib.request.Request(self.printed["aws"] + path, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body.strip() else None

    def token(self):
        if self._token is None:
            env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": self.printed["aws"]}
            binary = os.path.join(self.bin_dir, "nodeboot")
            for attempt in range(60):
                try:
                    status, out, err = run_agent([binary, "token", "--cluster-name", CLUSTER, "--region", "us-west-2"],
                                                 "/", env, 30)
                    break
                except OSError as error:  # a copy taken while the shared debug tree was being relinked
                    if error.errno not in (errno.ENOEXEC, errno.ETXTBSY) or attempt == 59:
                        raise
                    time.sleep(2)
                    with contextlib.suppress(OSError):
                        shutil.copyfile(os.path.join(SOURCE_BIN_DIR[0], "nodeboot"), binary)
            if status != 0:
                raise Fatal(f"nodeboot token (admin, static keys) failed: {status} {err[-500:]}")
            self._token = json.loads(out)["status"]["token"]
        return self._token

    def node(self, name=NODE_NAME):
        request = urllib.request.Request(self.printed["kube"] + "/api/v1/nodes/" + name,
                                         headers={"Authorization": f"Bearer {self.token()}"})
        try:
            with urllib.request.urlopen(request, context=self.ca, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, None


def start_cloud(bin_dir, directory, kind="main"):
    sub = os.path.join(directory, f"testbed-{kind}")
    os.makedirs(sub, exist_ok=True)
    proc, printed = start_testbed(os.path.join(bin_dir, "nodeboot-testbed"), testbed_config(sub, kind), sub)
    return Cloud(proc, printed, bin_dir, sub)


def build_image(bin_dir, image_opt, timeout):
    """(image directory, None, None), (None, why it cannot be built here, None) or (None, None, why the build
    failed). BIN_DIR holds the release binaries the image carries."""
    if image_opt:
        return (os.path.realpath(image_opt), None, None) if os.path.isdir(image_opt) else \
            (None, f"no directory {image_opt}", None)
    script = os.path.join(PROJECT, "image", "build.py")
    if not os.path.exists(script):
        current = os.path.join(IMAGE_CACHE, "current")
        if os.path.isdir(current):
            return os.path.realpath(current), None, None
        return None, "no image/build.py in this tree and no built image in " + current, None
    start = time.monotonic()
    proc = popen([sys.executable, script, "--bin-dir", bin_dir], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGTERM))
    timer.start()
    last = []
    try:
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            print(f"      {line if line.startswith('image:') else 'image: ' + line}", flush=True)
            last = (last + [line])[-5:]
        status = proc.wait()
    except BaseException:
        stop_process(proc)
        raise
    finally:
        timer.cancel()
    why = f"image/build.py exited {status} after {time.monotonic() - start:.0f} s: " + \
        (" | ".join(line for line in last if line.strip())[-300:] or "no output")
    if status == 2:  # it cannot run here (not root, a tool or the release binaries missing)
        return None, why, None
    if status != 0:
        return None, None, why
    output = last[-1].strip() if last else ""
    output = output if os.path.isdir(output) else os.path.join(IMAGE_CACHE, "current")
    if not os.path.isdir(output):
        return None, None, f"image/build.py succeeded but {output} is missing"
    return os.path.realpath(output), None, None


def root_partition_offset(disk):
    """Byte offset of the root (ext4) partition in a raw GPT disk: the partition typed Linux root x86-64, else the
    largest."""
    out = subprocess.run(["sfdisk", "--json", disk], capture_output=True, text=True, timeout=30, check=True).stdout
    table = json.loads(out)["partitiontable"]
    sector = table.get("sectorsize", 512)
    parts = table["partitions"]
    root = [p for p in parts if p.get("type", "").upper() == "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"] or \
        sorted(parts, key=lambda p: p["size"], reverse=True)
    return root[0]["start"] * sector


class Boot:
    """One qemu run: the serial lines with host seconds since qemu started."""

    def __init__(self, name, log_path):
        self.name, self.log_path = name, log_path
        self.lines = []  # (seconds, text)
        self.status = None
        self.seconds = None
        self.wall_start = None
        self.stalled = None  # why the boot was stopped before its deadline
        self.hypervisor = None  # the ENIs plugged into this boot (Hypervisor)

    def markers(self, kind):
        """VMTEST lines of a kind: [(host seconds, fields text, uptime)]."""
        found = []
        for t, text in self.lines:
            m = re.search(r"VMTEST " + re.escape(kind) + r"(?: (.*?))? uptime=([\d.]+)\s*$", text)
            if m:
                found.append((t, m.group(1) or "", float(m.group(2))))
        return found

    def marker(self, kind):
        found = self.markers(kind)
        return found[-1] if found else None

    def blob(self, name):
        for _, text in self.lines:
            m = re.search(r"VMTEST-B64 " + re.escape(name) + r" (\S*)\s*$", text)
            if m:
                try:
                    return base64.b64decode(m.group(1)).decode(errors="replace")
                except ValueError:
                    return None
        return None

    def units(self):
        """UNIT lines: {unit: {property: value}} (the last report of the boot)."""
        units = {}
        for _, fields, _ in self.markers("UNIT"):
            name, _, rest = fields.partition(" ")
            units[name] = dict(item.split("=", 1) for item in rest.split() if "=" in item)
        return units

    def first(self, pattern):
        for t, text in self.lines:
            if re.search(pattern, text):
                return t
        return None

    def guest_offset(self):
        """host seconds - guest uptime, from the markers (the smallest: the least delayed line)."""
        deltas = [t - uptime for t, _, uptime in self.all_markers()]
        return min(deltas) if deltas else None

    def all_markers(self):
        found = []
        for t, text in self.lines:
            m = re.search(r"VMTEST \S+.*? uptime=([\d.]+)\s*$", text)
            if m:
                found.append((t, text, float(m.group(1))))
        return found

    def text(self):
        return "\n".join(text for _, text in self.lines)

    def tail(self, n=40):
        return "\n".join(f"[{t:7.2f}] {text}" for t, text in self.lines[-n:])

    def kernel_trouble(self, n=45):
        """The guest kernel's first oops, warning, lockup, stall or panic report (its headline and what follows), or
        None. A failed boot's last lines are often the middle of such a report; its headline says what it was."""
        for index, (_, text) in enumerate(self.lines):
            if KERNEL_TROUBLE.search(text):
                return "\n".join(f"[{t:7.2f}] {line}" for t, line in self.lines[index:index + n])
        return None


# A kernel report's first line: BUG/WARNING/Oops, the soft and hard lockup watchdogs, RCU stalls, hung tasks, panics.
KERNEL_TROUBLE = re.compile(r"\] (?:------------\[ cut here \]|BUG:|WARNING:|Oops|watchdog: |rcu: INFO:|"
                            r"INFO: rcu_|INFO: task .* blocked|Kernel panic|general protection fault|NMI backtrace)")


# How often the hypervisor thread reads qemu's `info jit` (its TB flush count) during a boot.
JIT_SECONDS = 3.0


class Hypervisor:
    """EC2's part in attaching ENIs, played through qemu's QMP socket: each ENI the testbed's EC2 has attached to the
    instance at a device index above 0 becomes a virtio NIC with the ENI's MAC, hot-plugged into the running guest
    (`device_add`, as an EC2 attach appears to the instance) or, when it was attached before the boot, present from
    the start (an instance that reboots keeps its ENIs); a detached one is unplugged (`device_del`). Each NIC has its
    own user-mode network whose DHCP hands out the ENI's primary address, as EC2's DHCP does on a secondary ENI
    (restricted: the guest reaches nothing through it; pods on the ENI talk to the node, which is local)."""

    def __init__(self, cloud, socket_path):
        self.cloud, self.socket_path = cloud, socket_path
        self.instance = cloud.imds("/latest/meta-data/instance-id").strip()
        self.plugged = {}  # device index -> (mac, primary address)
        self.events = []  # (host seconds, text)
        self.stop = threading.Event()
        self.qmp = None
        self.flush_count, self.flushes = None, []  # qemu's TB flush count; host seconds at which it was seen to rise

    def attached(self):
        try:
            enis = self.cloud.control("/_testbed/ec2/network-interfaces") or []
        except (OSError, ValueError):
            return None
        enis = enis.get("networkInterfaces", []) if isinstance(enis, dict) else enis
        found = {}
        for eni in enis:
            attachment = eni.get("attachment") or {}
            if attachment.get("instanceId") == self.instance and eni.get("status") == "in-use" \
                    and attachment.get("deviceIndex", 0) > 0 and eni.get("privateIpAddresses"):
                found[attachment["deviceIndex"]] = (eni["macAddress"], eni["privateIpAddresses"][0])
        return found

    @staticmethod
    def netdev(device, address):
        return dict(GUEST_NET, dhcpstart=address, id=f"eni{device}", restrict="on")

    def boot_arguments(self):
        """-netdev/-device pairs for the ENIs attached before the boot."""
        argv = []
        for device, (mac, address) in sorted((self.attached() or {}).items()):
            options = ",".join(f"{k}={v}" for k, v in self.netdev(device, address).items())
            argv += ["-netdev", "user," + options,
                     "-device", f"virtio-net-pci,netdev=eni{device},mac={mac},id=nic{device}"]
            self.plugged[device] = (mac, address)
            self.events.append((0.0, f"present at boot: device {device} {mac} ({address})"))
        return argv

    def command(self, execute, arguments):
        self.qmp.sendall(json.dumps({"execute": execute, "arguments": arguments}).encode() + b"\n")
        while True:
            line = self.reader.readline()
            if not line:
                raise OSError("QMP closed")
            reply = json.loads(line)
            if "return" in reply or "error" in reply:
                return reply

    def read_jit(self, start):
        """qemu's `info jit` (every JIT_SECONDS): when its TB flush count rose, the translation buffer (1 GiB) had
        filled and every process translates its code again from then on (docs/boot.md)."""
        try:
            reply = self.command("human-monitor-command", {"command-line": "info jit"})
        except (OSError, ValueError):
            return
        found = re.search(r"TB flush count\s+(\d+)", reply.get("return", ""))
        if found:
            count = int(found.group(1))
            if self.flush_count is not None and count > self.flush_count:
                self.flushes.append(time.monotonic() - start)
            self.flush_count = count

    def run(self, start):
        """Until stopped: connect to QMP (qemu creates the socket as it starts), then follow EC2's attachments."""
        while not self.stop.is_set() and self.qmp is None:
            try:
                client = socket.socket(socket.AF_UNIX)
                client.connect(self.socket_path)
                self.qmp, self.reader = client, client.makefile("r")
                self.reader.readline()  # the greeting
                self.command("qmp_capabilities", {})
            except OSError:
                self.qmp = None
                self.stop.wait(0.2)
        next_jit = time.monotonic() + JIT_SECONDS
        while not self.stop.wait(0.5):
            if time.monotonic() >= next_jit:
                self.read_jit(start)
                next_jit += JIT_SECONDS
            want = self.attached()
            if want is None:
                continue
            try:
                for device, (mac, address) in sorted(want.items()):
                    if device in self.plugged:
                        continue
                    options = self.netdev(device, address)
                    reply = self.command("netdev_add", dict(options, type="user", restrict=True))
                    if "error" not in reply:
                        reply = self.command("device_add", {"driver": "virtio-net-pci", "netdev": f"eni{device}",
                                                            "mac": mac, "id": f"nic{device}"})
                    self.plugged[device] = (mac, address)
                    self.events.append((time.monotonic() - start, f"hot-plugged device {device} {mac} ({address}):"
                                        f" {reply.get('error', 'ok')}"))
                for device in [d for d in self.plugged if d not in want]:
                    reply = self.command("device_del", {"id": f"nic{device}"})
                    self.command("netdev_del", {"id": f"eni{device}"})
                    del self.plugged[device]
                    self.events.append((time.monotonic() - start, f"unplugged device {device}: {reply.get('error', 'ok')}"))
            except (OSError, ValueError) as error:
                self.events.append((time.monotonic() - start, f"QMP: {error}"))
                return


def run_qemu(boot, image, disk, mac, cloud, timeout, extra_argv=()):
    cmdline = open(os.path.join(image, "cmdline")).read().strip()
    extra = []
    if "console=ttyS0" not in cmdline:
        extra.append("console=ttyS0")
    extra += ["modprobe.blacklist=floppy", f"systemd.setenv=AWS_ENDPOINT_URL=http://{AWS_ADDR[0]}:{AWS_ADDR[1]}"]
    extra += EXTRA_CMDLINE
    forwards = [(IMDS_ADDR, cloud.port("imds")), (AWS_ADDR, cloud.port("aws")), (KUBE_ADDR, cloud.port("kube"))]
    netdev = "user,id=n0,restrict=on," + ",".join(f"{k}={v}" for k, v in GUEST_NET.items())
    for (address, port), host_port in forwards:
        netdev += f",guestfwd=tcp:{address}:{port}-cmd:socat - TCP:127.0.0.1:{host_port}"
    argv = ["qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", "2048",
            "-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot",
            "-kernel", os.path.join(image, "vmlinuz"), "-initrd", os.path.join(image, "initrd.img"),
            "-append", " ".join([cmdline] + extra),
            "-drive", f"file={disk},format=qcow2,if=virtio,cache=unsafe",
            "-netdev", netdev, "-device", f"virtio-net-pci,netdev=n0,mac={mac}",
            "-smbios", f"type=1,manufacturer=Amazon EC2,product=m4.xlarge,uuid={DMI_UUID},serial={DMI_UUID}",
            "-object", "rng-random,filename=/dev/urandom,id=rng0", "-device", "virtio-rng-pci,rng=rng0"]
    qmp = os.path.join(os.path.dirname(disk), f"qmp-{os.getpid()}.sock")
    if os.path.exists(qmp):
        os.unlink(qmp)
    hypervisor = Hypervisor(cloud, qmp)
    argv += ["-qmp", f"unix:{qmp},server=on,wait=off"] + hypervisor.boot_arguments() + list(extra_argv)
    boot.hypervisor = hypervisor
    boot.argv = argv
    boot.wall_start = time.time()
    start = time.monotonic()
    proc = popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with open(boot.log_path, "w") as log:
        log.write("# " + " ".join(shlex.quote(a) for a in argv) + "\n")

        def reader():
            buffer = b""
            while chunk := os.read(proc.stdout.fileno(), 65536):
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                now = time.monotonic() - start
                for raw in complete:
                    text = raw.decode(errors="replace").rstrip("\r")
                    boot.lines.append((now, text))
                    log.write(f"[{now:8.3f}] {text}\n")
                log.flush()
            if buffer:
                boot.lines.append((time.monotonic() - start, buffer.decode(errors="replace")))
        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        plugger = threading.Thread(target=hypervisor.run, args=(start,), daemon=True)
        plugger.start()
        try:
            # Bounded three times: the whole boot; 240 s after cloud-init's last stage without any VMTEST line (user
            # data whose script never ran: nothing would power the guest off); SILENCE s without a serial line once
            # the kernel has printed (a hung guest: the kernel and systemd print at least every few seconds).
            deadline = time.monotonic() + timeout
            while proc.poll() is None:
                now = time.monotonic()
                finished = boot.first(r"Cloud-init v\. \S+ finished at")
                last = boot.lines[-1][0] if boot.lines else None
                if finished is not None and not boot.all_markers() and now - start > finished + 240:
                    boot.stalled = ("no VMTEST line 240 s after cloud-init finished: neither the user data's script"
                                    " nor vmtest-report.service printed")
                elif last is not None and now - start > last + SILENCE:
                    boot.stalled = f"no serial output for {SILENCE} s: the guest hung"
                if boot.stalled or now > deadline:
                    raise subprocess.TimeoutExpired(argv, timeout)
                time.sleep(1)
            boot.status = proc.returncode
        except subprocess.TimeoutExpired:
            stop_process(proc, timeout=5)
            boot.status = None
        except BaseException:
            stop_process(proc, timeout=5)
            raise
        thread.join(10)
        hypervisor.stop.set()
        plugger.join(10)
    boot.seconds = time.monotonic() - start
    return boot


def boot_vm(report, name, log_name, image, disk, mac, cloud, timeout, extra_argv=()):
    """One boot of DISK (run_qemu), booted once more when the guest hung right after its kernel reported trouble (an
    oops, a lockup, an RCU stall: seen once in CI under TCG, a hang mid-trace in the receive path of virtio-net, never
    in 30 local boots). The second boot of the same disk is what a node does after such a crash, and every check then
    applies to it; the first one's kernel report is printed as a note, so it stays visible."""
    boot = run_qemu(Boot(name, os.path.join(LOG_DIR, log_name + ".log")), image, disk, mac, cloud, timeout, extra_argv)
    trouble = boot.kernel_trouble()
    if boot.status == 0 or not boot.stalled or not trouble:
        return boot
    report.note(f"{name}: the guest hung ({boot.stalled}) after its kernel reported trouble; booting the same disk"
                f" again (serial log {boot.log_path}). The kernel's report:\n{trouble}")
    cloud.control("/_testbed/requests", method="DELETE")
    return run_qemu(Boot(name, os.path.join(LOG_DIR, log_name + "-retry.log")), image, disk, mac, cloud, timeout,
                    extra_argv)


class Disk:
    """Files read back from a boot's overlay: converted to raw (sparse), then debugfs on the root partition."""

    def __init__(self, overlay, offset, scratch):
        self.raw = overlay + ".raw"
        subprocess.run(["qemu-img", "convert", "-O", "raw", overlay, self.raw], check=True, timeout=300,
                       capture_output=True)
        self.device = f"{self.raw}?offset={offset}"
        self.scratch = tempfile.mkdtemp(dir=scratch, prefix="readback-")

    def debugfs(self, commands):
        script = os.path.join(self.scratch, "commands")
        with open(script, "w") as f:
            f.write("\n".join(commands) + "\n")
        result = subprocess.run(["debugfs", "-f", script, self.device], capture_output=True, text=True, timeout=120)
        return result.stdout

    def read(self, path):
        """The file's bytes, or None."""
        out = os.path.join(self.scratch, hashlib.sha256(path.encode()).hexdigest()[:16])
        with contextlib.suppress(FileNotFoundError):
            os.unlink(out)
        self.debugfs([f'dump "{path}" "{out}"'])
        try:
            with open(out, "rb") as f:
                return f.read()
        except OSError:
            return None

    def text(self, path):
        data = self.read(path)
        return None if data is None else data.decode(errors="replace")

    def listing(self, directory):
        """[(inode, mode, name)] of a directory (debugfs ls -p), without . and .."""
        entries = []
        for line in self.debugfs([f'ls -p "{directory}"']).splitlines():
            parts = line.split("/")
            if len(parts) >= 7 and parts[1].isdigit() and parts[5] not in (".", ".."):
                entries.append((int(parts[1]), int(parts[2], 8), parts[5]))
        return entries

    def files(self, tops):
        """{path: (inode, mtime, size, sha256)} of every regular file or symlink under tops."""
        found, queue = {}, list(tops)
        while queue:
            directory = queue.pop()
            for inode, mode, name in self.listing(directory):
                path = directory.rstrip("/") + "/" + name
                if mode & 0o170000 == 0o040000:
                    queue.append(path)
                else:
                    found[path] = [inode]
        if not found:
            return {}
        paths = sorted(found)
        stats = self.debugfs([f'stat "{p}"' for p in paths])
        blocks = re.split(r"^Inode: ", stats, flags=re.M)[1:]
        for path, block in zip(paths, blocks):
            mtime = re.search(r"mtime: (0x[0-9a-f]+(?::[0-9a-f]+)?)", block)
            size = re.search(r"Size: (\d+)", block)
            found[path] += [mtime.group(1) if mtime else "?", int(size.group(1)) if size else -1]
        for path in paths:
            data = self.read(path) if found[path][2] >= 0 else None
            found[path].append(hashlib.sha256(data).hexdigest()[:16] if data is not None else "-")
            found[path] = tuple(found[path])
        return found

    def mtime(self, path):
        m = re.search(r"mtime: (0x[0-9a-f]+(?::[0-9a-f]+)?)", self.debugfs([f'stat "{path}"']))
        return m.group(1) if m else None

    def close(self):
        with contextlib.suppress(OSError):
            os.unlink(self.raw)


def stage_binaries(bin_dir, scratch):
    """nodeboot-testbed and nodeboot (the admin token) copied into the scratch directory once settled (2 s old): a
    rebuild of --bin-dir during the run (a shared tree) then cannot hand us a half-written binary."""
    staged = os.path.join(scratch, "bin")
    os.makedirs(staged)
    for name in ("nodeboot-testbed", "nodeboot"):
        source = os.path.join(bin_dir, name)
        deadline = time.monotonic() + 120
        while time.time() - os.stat(source).st_mtime < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        shutil.copyfile(source, os.path.join(staged, name))
        os.chmod(os.path.join(staged, name), 0o755)
    return staged


def stage_image(image, scratch):
    """The image's files linked (else copied) into the scratch directory: a rebuild that replaces the cache entry
    (build.py keeps two) cannot pull the backing file from under a running test."""
    staged = os.path.join(scratch, "image")
    os.makedirs(staged)
    for name in ("disk.raw", "vmlinuz", "initrd.img", "cmdline", "manifest.json"):
        source, target = os.path.join(image, name), os.path.join(staged, name)
        if not os.path.exists(source):
            continue
        try:
            os.link(source, target)
        except OSError:
            subprocess.run(["cp", "--sparse=always", source, target], check=True, timeout=300)
    return staged


def save_artifacts(disk, boot_number, label):
    """The guest's journal of the node units and its network state, from the disk to the test log directory."""
    for name in (f"journal-{boot_number}.txt", f"net-{boot_number}.txt", f"blame-{boot_number}.txt"):
        data = disk.read(f"/var/lib/vmtest/{name}")
        if data:
            write(os.path.join(LOG_DIR, f"vm-{label}-{name.split('-')[0]}.txt"), data)


def overlay_disk(image, path):
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", os.path.join(image, "disk.raw"), "-F", "raw",
                    path], check=True, timeout=60, capture_output=True)
    return path


# ---------------------------------------------------------------------------------------------------------------------
# Checks.

def mono(units, unit, prop):
    """A unit's monotonic timestamp property in seconds, or None."""
    value = units.get(unit, {}).get(prop, "")
    return int(value) / 1e6 if value.isdigit() and int(value) > 0 else None


def check_boot_basics(report, boot, label):
    ok = boot.status == 0 and boot.marker("POWEROFF") is not None
    trouble = boot.kernel_trouble()
    report.check(f"{label}: the VM booted, reported and powered off", ok,
                 f"qemu exit {boot.status} after {boot.seconds:.0f} s"
                 + (f" (stopped: {boot.stalled})" if boot.stalled else "") + f"; serial log {boot.log_path}"
                 + (f"; the guest kernel reported trouble, its first report:\n{trouble}\nthe log's end:\n"
                    if trouble else "; its end:\n") + boot.tail(15 if trouble else 40), info=f"{boot.seconds:.1f} s")
    if ok and trouble:
        report.note(f"{label}: the guest kernel reported trouble (the boot still passed):\n{trouble}")
    return ok


def secrets_absent(report, label, cloud, texts):
    creds = json.loads(cloud.imds("/latest/meta-data/iam/security-credentials/"
                                  + cloud.imds("/latest/meta-data/iam/security-credentials/").strip()))
    secrets = [creds["SecretAccessKey"], creds["Token"][:40], "k8s-aws-v1."]
    leaks = [(name, s[:8] + "…") for name, text in texts.items() for s in secrets if text and s in text]
    report.check(f"{label}: no secret in the serial log or status.json (role secret, session token, bearer token)",
                 not leaks, f"found: {leaks}")


def check_first_boot(report, boot, disk, cloud):
    units = boot.units()
    # cloud-init and the phases
    script = boot.markers("SCRIPT-START")
    report.check("boot 1: cloud-init ran the user data's script once", len(script) == 1,
                 f"SCRIPT-START markers: {script}\n{boot.tail()}")
    runs = (disk.text("/var/lib/vmtest/script-runs") or "").split()
    report.check("boot 1: the script's own record (/var/lib/vmtest/script-runs read back from the disk) has one run",
                 len(runs) == 1, f"script-runs: {runs}")
    fields = dict(item.split("=", 1) for item in (script[0][1] if script else "").split() if "=" in item)
    config_exit = mono(units, "nodeboot-config", "ExecMainExitTimestampMonotonic")
    run_start = mono(units, "nodeboot-run", "ExecMainStartTimestampMonotonic")
    script_uptime = script[0][2] if script else None
    ordered = (fields.get("config") == "active/success" and fields.get("run") in ("inactive", "activating")
               and config_exit is not None and run_start is not None and script_uptime is not None
               and config_exit < script_uptime < run_start)
    report.check("boot 1: nodeboot-config finished before the user script, nodeboot-run started after it", ordered,
                 f"at the script: {fields}; config exit {config_exit}, script at {script_uptime}, run start {run_start}",
                 info=f"config done {config_exit:.1f} s < script {script_uptime:.1f} s < run {run_start:.1f} s"
                 if ordered else "")
    report.check("boot 1: the script saw the generated files (kubelet config written by the config phase)",
                 "config.json" in fields.get("generated", ""), f"generated: {fields.get('generated')}")
    config = disk.text("/etc/containerd/config.toml") or ""
    report.check("boot 1: the script's edit of /etc/containerd/config.toml survives the run phase (read back)",
                 EDIT_LINE in config, f"SCRIPT-EDIT: {boot.marker('SCRIPT-EDIT')}; config.toml ends:\n{config[-600:]}")
    environment = disk.text("/etc/eks/kubelet/environment") or ""
    report.check("boot 1: the script's NodeConfig drop-in in /etc/eks/nodeadm.d/ reached the kubelet's flags",
                 DROPIN_LABEL in environment, f"/etc/eks/kubelet/environment:\n{environment[-800:]}")
    # the units
    for unit in ("nodeboot-config", "nodeboot-run", "containerd", "nodeboot-ipamd", "kubelet"):
        state = units.get(unit, {})
        report.check(f"boot 1: {unit}.service is active", state.get("ActiveState") == "active",
                     f"{unit}: {state}\njournal: see /var/lib/vmtest/journal-1.txt\n{boot.tail(25)}",
                     info=f"{state.get('ActiveState')}/{state.get('SubState')}")
    kubelet_file = units.get("kubelet", {}).get("UnitFileState")
    report.check("boot 1: kubelet.service is not enabled (the run unit started it, after the script's drop-in: the"
                 " kubelet registers with --node-labels once)", kubelet_file == "disabled",
                 f"kubelet UnitFileState: {kubelet_file}")
    failed = boot.marker("FAILED-UNITS")
    report.check("boot 1: no failed unit", failed is not None and not failed[1].strip(),
                 f"failed units: {failed}")
    # the node
    status, node = cloud.node()
    labels = (node or {}).get("metadata", {}).get("labels", {})
    report.check("boot 1: the Node exists in the testbed's API server (registered by the image's kubelet stand-in)",
                 status == 200, f"GET node: {status}", info=NODE_NAME)
    requests = cloud.control("/_testbed/requests") or []
    created = [r for r in requests if r.get("endpoint") == "kube" and r.get("action") == "create"
               and r.get("status") == 201]
    report.check("boot 1: the testbed's request log has the Node's create (201) by system:node:…",
                 bool(created) and (created[0].get("username") or "").startswith("system:node:"),
                 f"kube requests: {[ (r.get('method'), r.get('path'), r.get('status'), r.get('username')) for r in requests if r.get('endpoint') == 'kube'][:20]}")
    key, _, value = DROPIN_LABEL.partition("=")
    report.check("boot 1: the Node carries the kubelet's labels (its hostname, and the script's drop-in label from"
                 " --node-labels)", labels.get("kubernetes.io/hostname") == NODE_NAME and labels.get(key) == value,
                 f"labels: {labels}")
    served = [r for r in requests if r.get("endpoint") in ("imds", "eks", "ec2")]
    report.check("boot 1: the guest reached IMDS, EC2 and EKS through the forwards",
                 {r.get("endpoint") for r in served} >= {"imds", "ec2", "eks"},
                 f"endpoints seen: {sorted({r.get('endpoint') for r in requests})}")
    # status.json
    status_text = boot.blob("status.json")
    try:
        status_json = json.loads(status_text or "")
    except ValueError:
        status_json = None
    complete = bool(status_json) and status_json.get("result") == "ok" and status_json.get("finishedAt") and \
        status_json.get("phases") and status_json.get("node", {}).get("registration") == "found" \
        and not status_json.get("error")
    report.check("boot 1: /run/nodeboot/status.json is complete (ok, finished, phases, files, units, the Node)",
                 complete, f"status.json: {(status_text or '(none)')[:1500]}",
                 info=f"registration {status_json.get('node', {}).get('registration')}" if complete else "")
    # the pod
    pod = boot.marker("POD-ADDR")
    address = pod[1].split()[0] if pod else ""
    enis = cloud.control("/_testbed/ec2/network-interfaces") or []
    eni_addresses = set()
    for eni in enis if isinstance(enis, list) else enis.get("networkInterfaces", []):
        for item in eni.get("privateIpAddresses", []) or []:
            eni_addresses.add(item.get("privateIpAddress") if isinstance(item, dict) else item)
        for key in ("secondaryPrivateIpAddresses", "secondaries"):
            for item in eni.get(key, []) or []:
                eni_addresses.add(item if isinstance(item, str) else item.get("privateIpAddress"))
    report.check("boot 1: a pod sandbox (ctr run --cni, the pause image) got an address of the instance's ENI",
                 bool(address) and address in eni_addresses,
                 f"POD-ADDR: {pod}; POD-NONE: {boot.marker('POD-NONE')}; POD-IMAGE: {boot.marker('POD-IMAGE')};"
                 f" CNI: {boot.marker('CNI')}; the ENIs' addresses: {sorted(a for a in eni_addresses if a)}",
                 info=address)
    reach = boot.marker("POD-REACH")
    gateway = dict(item.split("=", 1) for item in (boot.marker("POD-GATEWAY") or (0, ""))[1].split() if "=" in item)
    why = ""
    if gateway.get("neigh") and gateway.get("mac") and gateway["neigh"] != gateway["mac"]:
        why = (f"\nthe pod's neighbour entry for its gateway 169.254.1.1 names {gateway['neigh']}, but the host veth"
               f" {gateway.get('veth')} now has {gateway['mac']} (addr_assign_type {gateway.get('assign')}): its MAC"
               " changed after nodeboot-cni wrote the neighbour (systemd-udevd's MACAddressPolicy=persistent gives"
               " new veths a MAC of its own when the kernel chose a random one), so the pod's frames to the"
               " gateway are dropped")
    report.check("boot 1: the pod reaches the node (TCP from the pod's namespace to the node's address)",
                 bool(reach) and "node-answers" in reach[1] and (not address or address in reach[1]),
                 f"POD-REACH: {reach}; POD-ROUTES: {boot.marker('POD-ROUTES')}; POD-GATEWAY: {gateway}{why};"
                 " the pod's and the node's addresses, routes, rules and nft rules: /var/lib/vmtest/net-1.txt")
    done = boot.marker("POD-DONE")
    report.check("boot 1: ctr run --rm ended once the pod was killed (its CNI DEL ran)",
                 bool(done) and "ctr-exit=" in done[1] and " DEL " in done[1], f"POD-DONE: {done}")
    during, after = boot.marker("POD-IPAMD-DURING"), boot.marker("POD-IPAMD-AFTER")
    counts = [dict(i.split("=", 1) for i in (m[1] if m else "").split() if "=" in i) for m in (during, after)]
    report.check("boot 1: ipamd held the pod's address while it ran and released it at the DEL (status over its"
                 " socket: assigned 1, then 0)", counts[0].get("assigned") == "1" and counts[1].get("assigned") == "0",
                 f"ipamd during the pod: {during}; after the DEL: {after}; the DEL: {done}",
                 info=f"after: {after[1] if after else '-'}")
    check_second_eni(report, boot, "boot 1", hotplug=True)
    secrets_absent(report, "boot 1", cloud, {"serial": boot.text(), "status.json": status_text})
    return status_json


def check_second_boot(report, boot, disk, before, after, cloud, first_sem, second_sem):
    units = boot.units()
    check_second_eni(report, boot, "boot 2", hotplug=False)
    report.check("boot 2: the user script did not run again (no SCRIPT-START; script-runs has one line)",
                 not boot.markers("SCRIPT-START") and len((disk.text("/var/lib/vmtest/script-runs") or "").split()) == 1,
                 f"SCRIPT-START: {boot.markers('SCRIPT-START')}")
    report.check("boot 2: cloud-init's per-instance semaphore unchanged (config_scripts_user not re-run)",
                 first_sem is not None and first_sem == second_sem, f"mtime boot 1 {first_sem}, boot 2 {second_sem}")
    changed = {p: (before.get(p), after.get(p)) for p in set(before) | set(after) if before.get(p) != after.get(p)}
    # The one file boot 1's script edited is rendered again by the config unit (as nodeadm-config does at every boot:
    # cloud-init/README.md); the script, per instance, does not run again to redo its edit. Every other file stays.
    edited = {p: v for p, v in changed.items() if p.endswith("etc/containerd/config.toml")}
    others = {p: v for p, v in changed.items() if p not in edited}
    report.check("boot 2: no node file rewritten (inode, mtime, size, content of every file under the node dirs) but "
                 "the one the script edited", bool(before) and not others,
                 "\n".join(f"{p}: {a} -> {b}" for p, (a, b) in sorted(others.items())), info=f"{len(after)} files")
    config = disk.text("/etc/containerd/config.toml") or ""
    report.check("boot 2: the script-edited config.toml is nodeboot's rendering again (the edit lasts one boot, as"
                 " with nodeadm)", EDIT_LINE not in config and "version =" in config, config[-600:])
    for unit in ("nodeboot-config", "nodeboot-run", "containerd", "nodeboot-ipamd", "kubelet"):
        state = units.get(unit, {})
        report.check(f"boot 2: {unit}.service is active", state.get("ActiveState") == "active",
                     f"{unit}: {state}\n{boot.tail(20)}")
    status_text = boot.blob("status.json")
    try:
        status_json = json.loads(status_text or "")
    except ValueError:
        status_json = {}
    registration = status_json.get("node", {}).get("registration")
    report.check("boot 2: the Node confirmed again (status.json: found, the kubelet's), result ok",
                 status_json.get("result") == "ok" and registration == "found",
                 f"status.json: {(status_text or '(none)')[:1200]}", info=registration or "")
    requests = cloud.control("/_testbed/requests") or []
    kube = [(r.get("action"), r.get("status")) for r in requests if r.get("endpoint") == "kube"]
    report.check("boot 2: the testbed saw the node read its Node (get 200), and no new Node (the kubelet's create"
                 " answered 409 at most)", ("get", 200) in kube and not any(a == "create" and c != 409 for a, c in kube),
                 f"kube requests in boot 2: {kube}")
    actions = {f.get("path"): f.get("action") for f in status_json.get("files", [])}
    written = {p: a for p, a in actions.items() if a not in ("unchanged",)}
    # The run unit's report: with the config as cached it may list no file at all (nothing applied); the disk
    # comparison above covers the config unit's writes, which its report no longer shows.
    report.check("boot 2: status.json (the run unit's) reports no file written", not written,
                 f"files not unchanged: {written}", info=f"{len(actions)} files listed")
    restarted = [f"{a.get('unit')}: {a.get('action')} ({a.get('reason')})"
                 for a in status_json.get("units", {}).get("actions", []) if a.get("action") in ("restart", "reload")]
    crashed = [u for u in ("containerd", "nodeboot-ipamd", "kubelet") if units.get(u, {}).get("NRestarts") not in ("0", None)]
    # containerd read the script-edited config.toml at boot; the config unit rendered it again (above), so containerd
    # must restart to run with it. Anything else restarted would be for nothing.
    needless = [r for r in restarted if r != "containerd.service: restart (configuration changed)"]
    report.check("boot 2: nothing restarted that need not be (the daemons systemd started at boot with unchanged"
                 " files are not restarted by nodeboot-run, containerd only for its re-rendered config.toml; no"
                 " NRestarts)", not needless and not crashed, f"status.json units.actions: {restarted}; NRestarts: {crashed}")
    status, _ = cloud.node()
    report.check("boot 2: the Node still exists", status == 200, f"GET node: {status}")


def check_broken_boot(report, boot, disk, pristine, cloud):
    text = boot.text()
    field, message = BROKEN_FIELD
    console = [line for _, line in boot.lines if field in line and message in line]
    report.check("broken user data: the refusal is on the serial console, naming the field", bool(console),
                 f"no serial line with '{field}' and '{message}'; the log ends:\n{boot.tail(40)}",
                 info=console[0].strip()[:120] if console else "")
    status = boot.blob("nodeboot-status") or ""
    report.check("broken user data: `nodeboot status` shows the failure with the same message",
                 field in status and message in status, f"nodeboot status:\n{status[:1500]}")
    units = boot.units()
    report.check("broken user data: nodeboot-run did not run a node (not active), containerd and kubelet not started",
                 units.get("nodeboot-run", {}).get("ActiveState") != "active"
                 and units.get("kubelet", {}).get("ActiveState") != "active",
                 f"{ {u: units.get(u, {}).get('ActiveState') for u in ('nodeboot-config', 'nodeboot-run', 'containerd', 'kubelet')} }")
    after = disk.files(NODE_DIRS)
    changed = {p: (pristine.get(p), after.get(p)) for p in set(pristine) | set(after) if pristine.get(p) != after.get(p)}
    report.check("broken user data: nothing half-written (the node dirs are as the image shipped them)", not changed,
                 "\n".join(f"{p}: {a} -> {b}" for p, (a, b) in sorted(changed.items())))
    status_code, _ = cloud.node()
    report.check("broken user data: no Node in the API server", status_code == 404, f"GET node: {status_code}")
    secrets_absent(report, "broken user data", cloud, {"serial": text, "status": status})


# ---------------------------------------------------------------------------------------------------------------------
# The benchmark.

def check_second_eni(report, boot, label, hotplug):
    """ipamd's second ENI (WARM_IP_TARGET): plugged by the hypervisor (hot, or present from the boot), in ipamd's pool,
    wired in the guest (its link up, its rule at 32765, its table's default route)."""
    events = boot.hypervisor.events if boot.hypervisor else []
    plugged = [text for _, text in events if text.startswith("hot-plugged device 1" if hotplug else "present at boot")]
    how = "hot-plugged into the running VM (QMP device_add)" if hotplug else "present from the boot (still attached)"
    report.check(f"{label}: ipamd's second ENI, attached by EC2, {how}",
                 bool(plugged) and (not hotplug or plugged[0].endswith(": ok")), f"hypervisor: {events}",
                 info=plugged[0] if plugged else "")
    mac, address = (boot.hypervisor.plugged.get(1) if boot.hypervisor else None) or ("", "")
    enis = boot.marker("ENIS")
    pooled = enis is not None and re.search(r"device=1:addresses=([1-9]\d*)", enis[1]) is not None
    report.check(f"{label}: ipamd took the ENI's addresses into its pool (status over its socket)", pooled,
                 f"ENIS: {enis}", info=enis[1] if enis else "")
    links, rules = boot.marker("ENI-LINKS"), boot.marker("ENI-RULES")
    link = next((item for item in (links[1] if links else "").split() if mac and mac in item), "")
    tables = [fields for _, fields, _ in boot.markers("ENI-TABLE")]
    rule = re.search(rf"from {re.escape(address)} lookup (\d+)", rules[1] if rules else "") if address else None
    table = next((t for t in tables if rule and t.split()[0] == rule.group(1)), "")
    report.check(f"{label}: ipamd wired the ENI in the guest: its link ({mac}) up, the rule 'from {address} lookup"
                 " <table>' at 32765, the table's default route", "UP" in link and rule is not None
                 and "default via" in table, f"link: {link!r}; rules: {rules}; tables: {tables}",
                 info=f"{link}; table {rule.group(1) if rule else '?'}")


def storage_drives(scratch):
    """qemu arguments for the storage boots' three disks (sparse files in SCRATCH, made once: the reboot sees the same
    disks) on an AHCI controller: the EBS volume and two instance store disks, each with EC2's model and a serial."""
    argv = ["-device", "ahci,id=ahci0"]
    for port, (name, model, serial, mib) in enumerate([("ebs", EBS_MODEL, EBS_SERIAL, 256)] + [
            (f"store{i}", INSTANCE_STORE_MODEL, s, 128) for i, s in enumerate(INSTANCE_STORE_SERIALS)]):
        path = os.path.join(scratch, f"{name}.raw")
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.truncate(mib << 20)
        argv += ["-drive", f"file={path},format=raw,if=none,id={name},cache=unsafe",
                 "-device", f"ide-hd,bus=ahci0.{port},drive={name},serial={serial},model={model}"]
    return argv


def check_storage_boot(report, boot, label, earlier=None):
    """localStorage RAID0 next to an EBS volume at /var/lib/kubelet (nodeadm's ebs-storage-coexist) with the guest's
    own kernel md driver, udev, lsblk and mdadm; EARLIER: the first boot's filesystem UUIDs (a reboot formats nothing).
    Returns the UUIDs."""
    def fields(kind):
        found = boot.marker(kind)
        return dict(item.split("=", 1) for item in (found[1] if found else "").split() if "=" in item)
    mounts, uuids, active = fields("STORAGE-MOUNTS"), fields("STORAGE-UUIDS"), fields("STORAGE-ACTIVE")
    mdstat = (boot.marker("STORAGE-MDSTAT") or (0, "", 0))[1]
    ebs_link = os.path.basename(EBS_DEVICE)
    detail = f"mounts: {mounts}\nuuids: {uuids}\nunits: {active}\nmdstat: {mdstat}\n" \
             f"setup-local-disks: {(boot.marker('STORAGE-LOG') or (0, '', 0))[1][:600]}"
    kubelet = mounts.get(EBS_TARGET, "")
    report.check(f"{label}: the EBS volume (lsblk: {EBS_MODEL}) is ext4 at {EBS_TARGET}, mounted by nodeboot's"
                 " var-lib-kubelet.mount (enabled)", kubelet.startswith("/dev/sd") and kubelet.endswith(",ext4")
                 and active.get("var-lib-kubelet.mount") == "active/enabled" and bool(uuids.get(ebs_link)), detail,
                 info=kubelet)
    members = re.findall(r"(sd[a-z]+)\[\d\]", mdstat)
    array = mounts.get(ARRAY_DIR, "")
    report.check(f"{label}: {ARRAY_DIR} is an md RAID0 of the two instance store disks (the guest's md driver, mdadm)",
                 "raid0" in mdstat and len(members) == 2 and array.startswith("/dev/md"), detail,
                 info=f"{mdstat.split(':')[0].strip()} raid0 of {' '.join(members)}")
    binds = {t: mounts.get(t, "") for t in ("/var/lib/containerd", "/var/log/pods")}
    report.check(f"{label}: /var/lib/containerd and /var/log/pods are bound from the array; {EBS_TARGET} left to the"
                 " volume (its mount unit was active: setup-local-disks' contract)",
                 all(v.startswith("/dev/md") and "[" in v for v in binds.values()) and not kubelet.startswith("/dev/md"),
                 detail, info=str(binds))
    if earlier is not None:
        report.check(f"{label}: nothing formatted again (the volume's and the array's filesystem UUIDs as in the first"
                     " boot)", bool(uuids) and uuids == earlier, f"first boot: {earlier}\nthis boot: {uuids}")
    return uuids


def check_al2_boot(report, boot, disk, cloud):
    """AL2-style user data: a shell script calling /etc/eks/bootstrap.sh, no NodeConfig (cloud-init/README.md)."""
    units = boot.units()
    config, run = units.get("nodeboot-config", {}), units.get("nodeboot-run", {})
    text = boot.text()
    report.check("AL2-style user data: nodeboot-config.service succeeded with nothing to do (--defer-to-script: the"
                 " user data is a shell script)", config.get("Result") == "success"
                 and config.get("ExecMainStatus") == "0" and "the user data is a shell script" in text,
                 f"nodeboot-config: {config}\n{boot.tail(20)}")
    report.check("AL2-style user data: nodeboot-run.service skipped by its condition (bootstrap.sh's NodeConfig in"
                 " nodeadm.d), not failed", run.get("ConditionResult") == "no" and run.get("Result") == "success"
                 and run.get("ActiveState") == "inactive", f"nodeboot-run: {run}")
    exit_line = boot.marker("BOOTSTRAP-EXIT")
    report.check("AL2-style user data: /etc/eks/bootstrap.sh exited 0 (it ran nodeboot init)",
                 exit_line is not None and exit_line[1].split()[:1] == ["0"], f"BOOTSTRAP-EXIT: {exit_line}")
    dropin = disk.text("/etc/eks/nodeadm.d/10-bootstrap-sh.yaml") or ""
    report.check("AL2-style user data: bootstrap.sh's NodeConfig (/etc/eks/nodeadm.d/10-bootstrap-sh.yaml) names the"
                 " cluster, its endpoint and the --kubelet-extra-args label",
                 re.search(rf'name: "?{re.escape(CLUSTER)}"?\s*$', dropin, re.M) is not None
                 and KUBE_ADDR[0] in dropin and AL2_LABEL in dropin, f"10-bootstrap-sh.yaml:\n{dropin[:1500]}")
    kubelet_file = units.get("kubelet", {}).get("UnitFileState")
    report.check("AL2-style user data: bootstrap.sh enabled kubelet.service (as AL2's did: a reboot starts it; the"
                 " boot units skip this node)", kubelet_file == "enabled", f"kubelet UnitFileState: {kubelet_file}")
    for unit, expected in (("containerd", "active"), ("kubelet", "active"), ("nodeboot-ipamd", "inactive")):
        state = units.get(unit, {})
        report.check(f"AL2-style user data: {unit}.service is {expected}"
                     + (" (AL2 clusters run aws-node: bootstrap.sh's init starts no IPAM)" if expected == "inactive"
                        else ""), state.get("ActiveState") == expected, f"{unit}: {state}")
    system, failed = boot.marker("SYSTEM"), boot.marker("FAILED-UNITS")
    report.check("AL2-style user data: no failed unit, the system is running (not degraded)",
                 failed is not None and not failed[1].strip() and system is not None and system[1] == "running",
                 f"system: {system}; failed units: {failed}")
    status, node = cloud.node()
    labels = (node or {}).get("metadata", {}).get("labels", {})
    key, _, value = AL2_LABEL.partition("=")
    report.check("AL2-style user data: the Node is registered (by the kubelet stand-in) with the --kubelet-extra-args"
                 " label", status == 200 and labels.get(key) == value, f"GET node: {status}; labels: {labels}")
    status_text = boot.blob("status.json")
    try:
        status_json = json.loads(status_text or "")
    except ValueError:
        status_json = {}
    report.check("AL2-style user data: status.json (bootstrap.sh's init): ok, the Node found",
                 status_json.get("result") == "ok" and status_json.get("node", {}).get("registration") == "found",
                 f"status.json: {(status_text or '(none)')[:1200]}")
    secrets_absent(report, "AL2-style user data", cloud, {"serial": text, "status": status_text})


def timeline(boot, cloud, status_json):
    """[(event, host seconds since qemu start)] of the first boot."""
    offset = boot.guest_offset()
    units = boot.units()

    def guest(unit, prop):
        value = mono(units, unit, prop)
        return value + offset if value is not None and offset is not None else None
    events = [("kernel start", boot.first(r"Linux version")),
              ("cloud-init start", boot.first(r"Cloud-init v\. .* running 'init-local'")
               or guest("cloud-init-local", "ExecMainStartTimestampMonotonic")),
              ("nodeboot config start", guest("nodeboot-config", "ExecMainStartTimestampMonotonic")),
              ("nodeboot config done", guest("nodeboot-config", "ExecMainExitTimestampMonotonic")),
              ("user script", boot.marker("SCRIPT-START")[0] if boot.marker("SCRIPT-START") else None),
              ("nodeboot run start", guest("nodeboot-run", "ExecMainStartTimestampMonotonic")),
              ("nodeboot run done", guest("nodeboot-run", "ExecMainExitTimestampMonotonic"))]
    requests = cloud.control("/_testbed/requests") or []
    created = [r for r in requests if r.get("endpoint") == "kube" and r.get("action") == "create" and r.get("status") == 201]
    registered = None
    if created:
        stamp = created[0]["time"]
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        registered = when - boot.wall_start
    events.append(("Node registered", registered))
    pod = boot.marker("POD-ADDR")
    events.append(("first pod address", pod[0] if pod else None))
    events.append(("boot finished (power-off begins)", boot.marker("POWEROFF")[0] if boot.marker("POWEROFF") else None))
    return events, units, offset


def agent_share(units, events):
    named = dict(events)
    kernel, registered = named.get("kernel start"), named.get("Node registered")
    wall = cpu = 0.0
    parts = []
    for unit in ("nodeboot-config", "nodeboot-run"):
        start, end = mono(units, unit, "ExecMainStartTimestampMonotonic"), mono(units, unit, "ExecMainExitTimestampMonotonic")
        nsec = units.get(unit, {}).get("CPUUsageNSec", "")
        used = int(nsec) / 1e9 if nsec.isdigit() else None
        if start is not None and end is not None:
            wall += end - start
        if used is not None:
            cpu += used
        parts.append((unit, (end - start) if start is not None and end is not None else None, used))
    ipamd = units.get("nodeboot-ipamd", {}).get("CPUUsageNSec", "")
    span = (registered - kernel) if kernel is not None and registered is not None else None
    return dict(parts=parts, wall=wall, cpu=cpu, span=span, ipamd_cpu=int(ipamd) / 1e9 if ipamd.isdigit() else None)


def bench_report(report, boot, cloud, status_json, disk, enforce=True):
    """The timeline and the agent's share (printed); with enforce (--bench) the 2 % target is a check."""
    events, units, offset = timeline(boot, cloud, status_json)
    print("      boot timeline (seconds since qemu started; TCG software emulation, 2 vCPUs):")
    previous = None
    for name, t in events:
        delta = f"  (+{t - previous:5.1f})" if t is not None and previous is not None else ""
        print(f"        {name:<34} {'-' if t is None else f'{t:7.1f} s'}{delta}")
        previous = t if t is not None else previous
    share = agent_share(units, events)
    for unit, wall, cpu in share["parts"]:
        print(f"        {unit:<20} wall {'-' if wall is None else f'{wall:6.2f} s'}, CPU {'-' if cpu is None else f'{cpu:6.3f} s'}")
    if share["ipamd_cpu"] is not None:
        print(f"        nodeboot-ipamd       CPU {share['ipamd_cpu']:6.3f} s (daemon, until the report)")
    svg = disk.read("/var/lib/vmtest/boot-1.svg")
    svg_path = os.path.join(LOG_DIR, "vm-boot.svg")
    if svg:
        write(svg_path, svg)
    report.check("systemd-analyze plot of boot 1 saved next to the test log", bool(svg) and b"<svg" in svg[:2000],
                 f"/var/lib/vmtest/boot-1.svg: {len(svg or b'')} bytes; {disk.text('/var/lib/vmtest/plot-1.err')}",
                 info=os.path.relpath(svg_path, PROJECT))
    probes = [fields for _, fields, _ in boot.markers("PROBE")]
    if probes:
        print("      repeated after the boot (user+sys CPU s; a repeat that costs less reuses translated code): "
              + "; ".join(probes))
    flushes = boot.hypervisor.flushes if boot.hypervisor else []
    if flushes:
        times = dict(events)
        done, run = times.get("nodeboot config done"), times.get("nodeboot run start")
        between = done is not None and run is not None and any(done < t and t - JIT_SECONDS < run for t in flushes)
        print(f"      qemu's translation buffer was full (TB flush, read every {JIT_SECONDS:.0f} s) at "
              + ", ".join(f"{t:.0f} s" for t in flushes)
              + ("; one fell between the config unit's end and the run unit's start: the run unit translated afresh"
                 if between else ""))
    analyze = boot.marker("ANALYZE")
    if analyze:
        report.note(f"systemd-analyze: {analyze[1]}")
    record = {"events": {n: t for n, t in events}, "agent": share, "serialLog": boot.log_path,
              "guestOffsetSeconds": offset, "units": units}
    write(os.path.join(LOG_DIR, "vm-timeline.json"), json.dumps(record, indent=2, default=str))
    span = share["span"]
    if span:
        cpu_share, wall_share = share["cpu"] / span, share["wall"] / span
        report.note(f"agent (nodeboot-config + nodeboot-run) of boot-to-registered {span:.1f} s: CPU {share['cpu']:.2f} s"
                    f" = {100 * cpu_share:.2f} %, wall {share['wall']:.1f} s = {100 * wall_share:.1f} %"
                    " (wall includes waiting for containerd, ipamd and the kubelet to start)")
        if enforce:
            report.check(f"bench: the agent's CPU share of boot-to-registered is at most {100 * AGENT_TARGET:.0f} %",
                         cpu_share <= AGENT_TARGET, f"CPU {share['cpu']:.2f} s of {span:.1f} s = {100 * cpu_share:.2f} %",
                         info=f"{100 * cpu_share:.2f} %")
    elif enforce:
        report.check("bench: the timeline has kernel start and Node registered", False, f"events: {events}")


# ---------------------------------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description="The node image under qemu: join, pod, reboot, broken user data.")
    parser.add_argument("--bin-dir", required=True, help="directory holding nodeboot and nodeboot-testbed")
    parser.add_argument("--bench", action="store_true", help="boot 1 only, then the boot timeline and agent share")
    parser.add_argument("--image", help="a built image directory (disk.raw, vmlinuz, initrd.img, cmdline)")
    parser.add_argument("--image-bin-dir", default=os.path.join(PROJECT, ".build", "release"),
                        help="the release nodeboot and nodeboot-cni the image carries (default .build/release:"
                             " make release); the testbed runs from --bin-dir")
    parser.add_argument("--only", default="main,broken,al2,storage", metavar="KINDS",
                        help="the boots to run, comma-separated: main (boots 1 and 2), broken, al2, storage (default all)")
    parser.add_argument("--reboots", type=int, default=1, metavar="N",
                        help="boots of the same disk after the first (default 1; more to look for rare failures)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (disks) and print it")
    parser.add_argument("--boot-timeout", type=float, default=600, help="seconds one boot may take (default 600)")
    parser.add_argument("--build-timeout", type=float, default=2400, help="seconds image/build.py may take")
    parser.add_argument("--append", action="append", default=[], metavar="ARG",
                        help="add to the kernel command line (debugging; e.g. systemd.setenv=NAME=VALUE)")
    opts = parser.parse_args()
    EXTRA_CMDLINE.extend(opts.append)
    only = set(opts.only.split(","))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bin_dir = os.path.abspath(opts.bin_dir)
    report = Report(detail_lines=60, note_prefix="note: ")

    def skip(reason):
        return report.skip_runner("vm", reason)

    for binary in ("nodeboot-testbed", "nodeboot"):
        if not os.access(os.path.join(bin_dir, binary), os.X_OK):
            print(f"vm-test: {bin_dir}/{binary} is missing (build first: swift build)", file=sys.stderr)
            return 2
    if os.geteuid() != 0:
        return skip("needs root: the image build and debugfs on its disk")
    for tool, package in (("qemu-system-x86_64", "qemu-system-x86"), ("qemu-img", "qemu-utils"), ("socat", "socat"),
                          ("debugfs", "e2fsprogs"), ("sfdisk", "fdisk")):
        if not shutil.which(tool):
            return skip(f"{tool} is not installed (scripts/setup.sh test, or apt-get install {package})")
    build_start = time.monotonic()
    image, why, failed = build_image(os.path.abspath(opts.image_bin_dir), opts.image, opts.build_timeout)
    if failed:
        report.check("the node image builds (image/build.py)", False, failed)
        return report.summary()
    if not image:
        return skip(why)
    for name in ("disk.raw", "vmlinuz", "initrd.img", "cmdline"):
        if not os.path.exists(os.path.join(image, name)):
            return skip(f"the image in {image} has no {name}")
    report.note(f"image {image} (ready after {time.monotonic() - build_start:.0f} s)")
    os.makedirs(LOG_DIR, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="nodeboot-vm-test-", dir="/var/tmp")
    clouds = []
    started = time.monotonic()
    try:
        SOURCE_BIN_DIR.append(bin_dir)
        bin_dir = stage_binaries(bin_dir, scratch)
        image = stage_image(image, scratch)
        offset = root_partition_offset(os.path.join(image, "disk.raw"))
        cloud = start_cloud(bin_dir, scratch)
        clouds.append(cloud)
        mac = cloud.imds("/latest/meta-data/mac").strip()
        report.note(f"testbed on 127.0.0.1 (imds {cloud.port('imds')}, aws {cloud.port('aws')}, kube"
                    f" {cloud.port('kube')}); the guest reaches them at {IMDS_ADDR[0]}:{IMDS_ADDR[1]},"
                    f" {AWS_ADDR[0]}:{AWS_ADDR[1]}, {KUBE_ADDR[0]}:{KUBE_ADDR[1]}; NIC MAC {mac} (the primary ENI's)")
        if "main" in only:
            disk1 = overlay_disk(image, os.path.join(scratch, "node.qcow2"))
            boot1 = boot_vm(report, "boot 1", "vm-serial-boot1", image, disk1, mac, cloud,
                             opts.boot_timeout)
            if not check_boot_basics(report, boot1, "boot 1"):
                return report.summary()
            read1 = Disk(disk1, offset, scratch)
            save_artifacts(read1, 1, "boot1")
            status_json = check_first_boot(report, boot1, read1, cloud) if not opts.bench else None
            if opts.bench:
                bench_report(report, boot1, cloud, status_json, read1)
                return report.summary()
            files1 = read1.files(NODE_DIRS)
            sem1 = read1.mtime("/var/lib/cloud/instance/sem/config_scripts_user")
            bench_report(report, boot1, cloud, status_json, read1, enforce=False)
            read1.close()

            for number in range(2, 2 + opts.reboots):
                cloud.control("/_testbed/requests", method="DELETE")
                suffix = "" if number == 2 else f"-{number}"
                boot2 = boot_vm(report, f"boot {number}", f"vm-serial-boot2{suffix}", image,
                                 disk1, mac, cloud, opts.boot_timeout)
                if not check_boot_basics(report, boot2, f"boot {number} (same disk)") or number > 2:
                    continue  # later boots (--reboots): that they boot, report and power off
                read2 = Disk(disk1, offset, scratch)
                save_artifacts(read2, 2, "boot2")
                files2 = read2.files(NODE_DIRS)
                sem2 = read2.mtime("/var/lib/cloud/instance/sem/config_scripts_user")
                check_second_boot(report, boot2, read2, files1, files2, cloud, sem1, sem2)
                read2.close()
        stop_process(cloud.proc)

        def boot_and_check(cloud, disk, label, log_name, artifacts, number, check, drives=()):
            """One boot of DISK against CLOUD; when it booted, reported and powered off, its files saved and CHECK(boot,
            disk read back) run. The boot, or None."""
            boot = boot_vm(report, label, log_name, image, disk, mac, cloud, opts.boot_timeout, drives)
            if not check_boot_basics(report, boot, label):
                return None
            read = Disk(disk, offset, scratch)
            save_artifacts(read, number, artifacts)
            check(boot, read)
            read.close()
            return boot

        if "broken" in only:
            broken = start_cloud(bin_dir, scratch, kind="broken")
            clouds.append(broken)
            disk3 = overlay_disk(image, os.path.join(scratch, "broken.qcow2"))
            pristine_disk = Disk(disk3, offset, scratch)  # before boot: the image as shipped
            pristine = pristine_disk.files(NODE_DIRS)
            pristine_disk.close()
            boot_and_check(broken, disk3, "broken user data", "vm-serial-broken", "broken", 1,
                           lambda boot, read: check_broken_boot(report, boot, read, pristine, broken))
            stop_process(broken.proc)

        if "al2" in only:
            al2 = start_cloud(bin_dir, scratch, kind="al2")
            clouds.append(al2)
            disk4 = overlay_disk(image, os.path.join(scratch, "al2.qcow2"))
            boot_and_check(al2, disk4, "AL2-style user data", "vm-serial-al2", "al2", 1,
                           lambda boot, read: check_al2_boot(report, boot, read, al2))
            stop_process(al2.proc)

        if "storage" in only:
            storage = start_cloud(bin_dir, scratch, kind="storage")
            clouds.append(storage)
            disk5 = overlay_disk(image, os.path.join(scratch, "storage.qcow2"))
            uuids = []  # the first boot's filesystem UUIDs, for the reboot's check

            def check_storage(boot, number, label):
                uuids.append(check_storage_boot(report, boot, label, earlier=uuids[0] if uuids else None))
                units, failed = boot.units(), boot.marker("FAILED-UNITS")
                report.check(f"{label}: containerd, ipamd and the kubelet active, no failed unit",
                             all(units.get(u, {}).get("ActiveState") == "active"
                                 for u in ("containerd", "nodeboot-ipamd", "kubelet"))
                             and failed is not None and not failed[1].strip(),
                             f"units: { {u: units.get(u, {}).get('ActiveState') for u in units} }; failed: {failed}")
                if number == 1:
                    pod = boot.marker("POD-ADDR")
                    report.check(f"{label}: a pod sandbox runs from the array-backed /var/lib/containerd (ctr run --cni)",
                                 pod is not None and re.match(r"\d+\.\d+\.\d+\.\d+", pod[1]) is not None,
                                 f"POD: {pod}; {boot.marker('POD-NONE')}")

            for number, label in ((1, "storage"), (2, "storage, rebooted")):
                booted = boot_and_check(storage, disk5, label, f"vm-serial-storage{number}", f"storage{number}", number,
                                        lambda boot, read: check_storage(boot, number, label),
                                        drives=storage_drives(scratch))
                if booted is None:
                    break
                storage.control("/_testbed/requests", method="DELETE")
        report.note(f"{5 + opts.reboots} boots in {time.monotonic() - started:.0f} s; serial logs in"
                    f" {os.path.relpath(LOG_DIR, PROJECT)}/vm-serial-*.log")
    except Fatal as error:
        report.check("vm test", False, str(error))
    finally:
        for cloud in clouds:
            stop_process(cloud.proc)
        if opts.keep:
            print(f"kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
