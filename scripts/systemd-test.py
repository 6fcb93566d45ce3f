#!/usr/bin/env python3
"""nodeboot against a real systemd 252, containerd 1.6 and D-Bus: a Debian bookworm tree booted with systemd-nspawn.

    scripts/systemd-test.py --bin-dir DIR [--bench] [--keep] [--units DIR]

The tree (scripts/systemd-tree.sh, cached under /var/cache/nodeboot) is never written: the container runs on an overlay
of it whose upper layer is in a temporary directory. The container shares the host's network namespace (no
--private-network), so it reaches the testbed (`nodeboot-testbed serve`, started here on 127.0.0.1) as an instance
reaches IMDS and AWS. Installed as a node image would have them: DIR/nodeboot as /usr/bin/nodeboot, units/ and
cloud-init/'s units in /etc/systemd/system (kubelet.service, nodeboot-config.service and nodeboot-run.service enabled;
cloud-init itself is disabled in the tree, so the pair does not run at boot), the kubelet version file and the ECR credential
provider, plus two stand-ins that the output names: a kubelet (there is no kubelet binary for this machine) and
iptables (the container has no CAP_NET_ADMIN in the host's network namespace, and must not change the host's firewall).

First (not with --bench) the host-side unit checks of scripts/verify-units.py (systemd-analyze verify --root on an
overlay of the tree); in the booted container `systemd-analyze verify` again, with the real nodeboot binary.

The scenario, with one `nodeboot init` that does both boot phases at once: cloud-init/nodeboot-run.service's ExecStart
without `--skip config` and without its --daemon list (so containerd and the kubelet, init's default; nodeboot's IPAM
daemon is scenario g's), plus --register-node:
  a. first `nodeboot init`: exit 0; containerd running with the written config (ctr version, CRI plugin ok, the
     sandbox image of /etc/containerd/config.toml in `containerd config dump` and in the CRI plugin's start line);
     kubelet.service active with its flags (the stand-in's argv), both in runtime.slice; the Node in the testbed's API
     (providerID, hostname/instance-type/zone labels); /run/nodeboot/status.json.
  b. second `nodeboot init`: exit 0, no node file changed (inode, mtime, size), containerd and the kubelet not
     restarted (MainPID, InvocationID, start time), status.json says so.
  e. the kubelet stopped, then the shipped nodeboot-run.service started by systemd (testbed endpoints in a test
     drop-in, and for both units their ExecStart without `--daemon nodeboot-ipamd`, which g covers): it pulls in
     nodeboot-config.service (Requires=), which runs first and writes nothing (same inputs as a and b); both active
     (exited), the run unit's sd_notify STATUS= seen, the kubelet started again from inside the run unit's start job
     (a unit ordered after it would deadlock here), containerd and the files untouched.
  f. a kubelet that exits a second after it started: init --wait-ready fails at once (not after its timeout), naming
     kubelet.service and quoting its journal.
  c. a containerd config that containerd refuses (a NodeConfig drop-in in /etc/eks/nodeadm.d/ whose containerd TOML
     has `sandbox_image = 5`): exit 1, stderr names containerd.service and quotes its journal. (Then the drop-in is
     removed again.)
  g. nodeboot's IPAM daemon: init with --daemon containerd --daemon nodeboot-ipamd --daemon kubelet and the testbed's
     endpoints in spec.instance.environment.nodeboot-ipamd (a NodeConfig drop-in): exit 0; the unit's environment
     drop-in; the order containerd → nodeboot-ipamd → kubelet in status.json and in PID 1's journal (the kubelet's
     start job begins after ipamd's READY=1); nodeboot-ipamd.service active (running) with a STATUS= text;
     /run/nodeboot/ipamd.sock with mode 0660 answering a status request (python3 in the container, else from the
     host) with the testbed's instance; the conflist there only if an address is free; `systemctl stop`: exit 0,
     Result=success, the socket removed.
  h. a setting ipamd refuses (WARM_IP_TARGET=lots): init fails naming nodeboot-ipamd.service and quoting the
     daemon's "ipamd: refused setting: ..." line; the daemon exited 2 and systemd does not restart it (NRestarts=0
     after two RestartSec periods). Then the NodeConfig drop-in and the unit's drop-in are removed, the unit stopped.
  i. `nodeboot reset --delete-node`: the daemons stopped, the Node deleted, every file and link init wrote removed (a
     replaced one restored) so the tree is as before a; the same init then writes what a wrote, starting containerd
     and the kubelet as on a first boot, and registers the Node again.
  j. EBS data volumes (spec.instance.storage.volumes) on two loop devices bound into the container: one at
     /srv/images, one backing /var/lib/kubelet and /var/log/pods (mountTargets). lsblk is a stand-in that
     calls those two devices "Amazon Elastic Block Store" (the model check nodeboot makes) and passes everything else
     to the real one; the container has no udev, so a transient unit plays it for /dev/disk/by-uuid. (The single
     volume is at /srv/images, not /var/lib/containerd: that is already nspawn's bind mount here, which nodeboot
     refuses to mount over.) init: exit 0; both volumes formatted ext4; the three .mount units active and enabled;
     the data moved (the kubelet's kubeconfig, a file under /srv/images); the kubelet stopped for the move and
     running again. A second init: exit 0, no mount unit, containerd or kubelet restarted. Skipped when no loop
     device can be made.
  k. EBS data volumes next to localStorage RAID0 (nodeadm's ebs-storage-coexist) on four more loop devices: two play
     EBS volumes (lsblk MODEL "Amazon Elastic Block Store"), two play instance store NVMe disks. nodeboot runs the
     image's /usr/bin/setup-local-disks for localStorage; that script (amazon-eks-ami's) takes as instance store disks
     what /dev/disk/by-id/*NVMe_Instance_Storage_* links to, the links udev makes for NVMe disks whose model is "Amazon
     EC2 NVMe Instance Storage". Here a udev stand-in makes exactly those links for the two disks (and
     nvme-Amazon_Elastic_Block_Store_* ones for the EBS pair), lsblk calls them by that model, and setup-local-disks is
     a stand-in that keeps to the script's contract for raid0 (SETUP_LOCAL_DISKS_STAND_IN says how). j's volumes are
     unmounted first. Refused before any disk is touched (no filesystem on any of the four, no mount unit, the script
     not run): volumes inside /var/lib/kubelet (which the array bind-mounts) and inside /mnt/k8s-disks (exit 2, both
     named); an instance store disk listed as a volume (exit 1, its model named); a volume at /var/log/pods that an
     earlier boot's array already binds (exit 1, named by the second volume, so the first is not formatted either).
     Then, with md: RAID0 of the two disks and an EBS volume at /var/lib/kubelet: exit 0; findmnt: /var/lib/kubelet is
     the EBS volume (nodeboot's unit, which the script left alone because it was active), /mnt/k8s-disks/0 the md
     array, /var/log/pods and /var/lib/soci-snapshotter-grpc binds of it, /var/lib/containerd as before (nspawn's bind:
     an active unit too); the kubelet's kubeconfig on the volume and not on the array, a file of /var/log/pods on the
     array; a second init restarts no mount unit, containerd or kubelet and changes no mount, array or data. Those
     checks are skipped, with the reason, when the host kernel has no md driver (no /proc/mdstat), the host no mdadm
     (the tree has none: the host's is copied in; /dev/md127 is made on the host and bound into the container), or
     mdadm cannot make an array in the container (a probe before nodeboot runs: create, stop, zero the superblocks).
--bench: boot and scenario a only, then one line: time to the Node, the agent's CPU time, the time spent waiting on
systemd (the run phase).
--units DIR: install other units instead of units/ (e.g. a kubelet.service ordered After=nodeboot-run.service, to see e
time out); cloud-init/'s boot units are installed beside them.

One line per check, then `N passed, N failed, N skipped`; exit 1 if one failed, 2 on a usage error. Not root, no
systemd-nspawn/overlayfs, or no tree (no debootstrap, no mirror): `systemd: skipped (<reason>)`, exit 0.
"""
import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import resource
import shlex
import shutil
import signal
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testkit import Report, overlay, popen, run_agent, start_testbed, stop_process, systemd_tree, write  # noqa: E402
from testkit import setup_local_disks_stand_in  # noqa: E402

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNITS = os.path.join(PROJECT, "units")
BOOT_UNITS = os.path.join(PROJECT, "cloud-init")  # nodeboot-config.service, nodeboot-run.service
CONFIG_UNIT, RUN_UNIT = "nodeboot-config.service", "nodeboot-run.service"
AEMM = os.path.join(PROJECT, "Sources", "Testbed", "Resources", "aemm-default-config.json")
CACHE = os.environ.get("NODEBOOT_TREE_CACHE", "/var/cache/nodeboot")

NODE_NAME = "ip-172-16-34-43.us-west-2.compute.internal"  # the testbed's DescribeInstances PrivateDnsName (set below)
CLUSTER = "my-cluster"  # the testbed's default cluster, whose tokens its API server accepts
KUBELET_VERSION = "v1.31.2-eks-standin"
BOOT_TIMEOUT = 30
INIT_TIMEOUT = 150
UNIT_TIMEOUT = 60
UNIT_START_TIMEOUT = 90  # systemctl start nodeboot-run.service (TimeoutStartSec=15min would be the unit's own bound)
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NODE_DIRS = ("/etc/kubernetes", "/etc/eks", "/etc/containerd", "/var/lib/kubelet")
KUBELET_LOG = "/var/log/kubelet-stand-in.log"
IPTABLES_LOG = "/var/log/iptables-stand-in.log"
STATUS = "/run/nodeboot/status.json"
BAD_DROPIN = "/etc/eks/nodeadm.d/90-bad-containerd.yaml"
# A containerd TOML that parses (nodeboot merges it) but has the wrong type for sandbox_image: containerd 1.6 refuses
# to start with "Can't convert 5(int64) to string" (test-environment.md 1.3). If nodeboot learns to reject it up
# front (exit 2, nothing written), the fallback is a config only starting containerd can fault: a root directory
# under /dev/null (mkdir fails: "not a directory").
BAD_CONFIGS = [("[plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_image = 5\n", "Can't convert 5(int64) to string"),
               ("root = \"/dev/null/containerd\"\n", "not a directory")]

KUBELET_STAND_IN = f"""#!/bin/sh
# kubelet stand-in installed by scripts/systemd-test.py: there is no kubelet binary for this machine (Debian has no
# Kubernetes node packages and the test downloads none). It logs its arguments, one line per start, and sleeps.
if [ "$1" = "--version" ]; then echo "Kubernetes {KUBELET_VERSION}"; exit 0; fi
echo "pid=$$ argc=$# argv=$*" >> {KUBELET_LOG}
exec sleep infinity
"""
KUBELET_CRASHING = f"""#!/bin/sh
# kubelet stand-in for scenario f (scripts/systemd-test.py): exits a second after it started (so systemd has called it
# started and nodeboot is already waiting for the Node), as a kubelet that fails during its start-up does.
if [ "$1" = "--version" ]; then echo "Kubernetes {KUBELET_VERSION}"; exit 0; fi
sleep 1
echo "kubelet stand-in: failed to parse kubelet flag: unknown flag: --bogus (scenario f)" >&2
exit 1
"""
# Scenarios g and h: nodeboot's IPAM daemon (units/nodeboot-ipamd.service), selected with --daemon.
IPAMD = "nodeboot-ipamd.service"
IPAMD_DAEMONS = ["--daemon", "containerd", "--daemon", "nodeboot-ipamd", "--daemon", "kubelet"]
IPAMD_ORDER = ["containerd.service", IPAMD, "kubelet.service"]
IPAMD_SOCKET = "/run/nodeboot/ipamd.sock"
IPAMD_CONFLIST = "/etc/cni/net.d/10-nodeboot.conflist"
IPAMD_NODECONFIG = "/etc/eks/nodeadm.d/80-ipamd.yaml"  # spec.instance.environment.nodeboot-ipamd
IPAMD_ENVIRONMENT = "/etc/systemd/system/nodeboot-ipamd.service.d/environment.conf"  # what init makes of it
IPAMD_REFUSED = ("WARM_IP_TARGET", "lots")
# systemd's catalog message ids (PID 1's journal lines): a start job began ("Starting …"), a start finished
# ("Started …"; for Type=notify at READY=1).
JOB_STARTING = "7d4958e842da4a758f6c1cdc7b36dcc5"
JOB_STARTED = "39f53479d3a045ac8e11786248231fbf"
# A status request on ipamd's socket (docs/ipamd.md §7): one JSON line in, one out. argv[1]: the socket's path.
IPAMD_STATUS_CLIENT = """
import socket, sys
client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
client.settimeout(10)
client.connect(sys.argv[1])
client.sendall(b'{"v":"1.0","op":"status"}\\n')
reply = b""
while not reply.endswith(b"\\n"):
    chunk = client.recv(65536)
    if not chunk:
        break
    reply += chunk
sys.stdout.write(reply.decode(errors="replace"))
"""
IPTABLES_STAND_IN = f"""#!/bin/sh
# iptables stand-in installed by scripts/systemd-test.py: the container shares the host's network namespace without
# CAP_NET_ADMIN, and the test must not change the host's firewall. It logs its arguments (kubelet.service's
# ExecStartPre) and succeeds.
echo "$*" >> {IPTABLES_LOG}
"""


class Fatal(Exception):
    """A usage or environment error (exit 2)."""


def tail(path, lines=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as error:
        return f"({path}: {error})"


def excerpt(result, lines=30):
    """A command result's status, stdout and stderr tails, for a failure's detail."""
    status, out, err = result[:3]
    text = [f"exit status: {'timed out' if status is None else status}"]
    for label, stream in (("stdout", out), ("stderr", err)):
        rows = stream.rstrip("\n").split("\n")[-lines:] if stream.strip() else []
        text += [f"{label}: {row}" for row in rows] or [f"{label}: (empty)"]
    return "\n".join(text)


class Container:
    """The booted tree: overlay mounted, systemd-nspawn running, systemd's PID known. close() always tears down."""

    def __init__(self, tree, scratch):
        self.tree, self.scratch = tree, scratch
        self.stack = contextlib.ExitStack()
        self.proc = self.pid = None
        self.log = os.path.join(scratch, "nspawn.log")
        self.root = None  # the merged directory (before boot: the image being prepared)
        self.name = f"nbtest{os.getpid()}"
        self.boot_seconds = None
        self.devices = []  # loop devices bound into the container (j)
        self.local_devices = []  # k's: two EBS volumes, two instance store disks
        self.md = None  # k: (md device node bound into the container, why not) from md_support()

    def mount(self):
        # Shared lock: scripts/systemd-tree.sh does not swap the tree while it is a lower layer here.
        lock = self.stack.enter_context(open(os.path.join(CACHE, ".bookworm-systemd.lock"), "a"))
        fcntl.flock(lock, fcntl.LOCK_SH)
        self.root = self.stack.enter_context(overlay(self.tree, os.path.join(self.scratch, "overlay")))
        return self.root

    def boot(self):
        """systemd-nspawn -b; then wait (bounded) for systemd to finish booting. Raises Fatal with the log's tail."""
        # containerd's state on the host's filesystem, as on a node: the kernel refuses an overlayfs upper directory on
        # overlayfs ("filesystem on ... not supported as upperdir"), so on the container's root the overlayfs snapshotter
        # would load but could not mount a container's rootfs.
        containerd_dir = os.path.join(self.scratch, "containerd")
        os.makedirs(containerd_dir, exist_ok=True)
        argv = ["systemd-nspawn", "-D", self.root, "-b", "--register=no", "--keep-unit", "-M", self.name,
                f"--bind={containerd_dir}:/var/lib/containerd"]
        if os.path.isdir("/opt/swift"):
            argv.append("--bind-ro=/opt/swift")  # the debug build links the Swift runtime from there
        argv += [f"--bind={device}" for device in self.devices + self.local_devices]
        if self.md and self.md.get("node"):
            argv.append(f"--bind={self.md['node']}")
        start = time.monotonic()
        with open(self.log, "wb") as log:
            self.proc = popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd="/")
        self.stack.callback(self.stop)
        deadline = start + BOOT_TIMEOUT
        while self.pid is None:
            if self.proc.poll() is not None:
                raise Fatal(f"systemd-nspawn exited with status {self.proc.returncode}; its log ends:\n{tail(self.log)}")
            if time.monotonic() > deadline:
                raise Fatal(f"no systemd in the container after {BOOT_TIMEOUT} s; the log ends:\n{tail(self.log)}")
            self.pid = self.find_init()
            time.sleep(0.05)
        state = ""
        while time.monotonic() < deadline:
            result = self.run(["systemctl", "is-system-running"], timeout=10)
            state = result[1].strip()
            if state in ("running", "degraded"):
                self.boot_seconds = time.monotonic() - start
                return state
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise Fatal(f"systemd did not finish booting within {BOOT_TIMEOUT} s (is-system-running: {state or '?'});"
                    f" the nspawn log ends:\n{tail(self.log)}")

    def find_init(self):
        """The container's systemd: a descendant of our systemd-nspawn in another PID namespace."""
        host_ns = os.readlink("/proc/self/ns/pid")
        parents = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        stat = f.read()
                    parents[int(entry)] = (int(stat.rsplit(")", 1)[1].split()[1]), stat[stat.index("(") + 1:stat.rindex(")")])
                except (OSError, ValueError, IndexError):
                    continue
        for pid, (_, comm) in parents.items():
            if comm != "systemd":
                continue
            ancestor = pid
            while ancestor in parents and ancestor not in (0, 1, self.proc.pid):
                ancestor = parents[ancestor][0]
            if ancestor == self.proc.pid:
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/ns/pid") != host_ns:
                        return pid
        return None

    def run(self, argv, env=None, timeout=60):
        """(status or None on timeout, stdout, stderr, wall seconds, CPU seconds of the command and nsenter) of ARGV
        in the container's namespaces (nsenter -a), with exactly ENV (a minimal one by default)."""
        environment = env or {"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/root"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        status, out, err = run_agent(["nsenter", "-t", str(self.pid), "-a", *argv], "/", environment, timeout)
        wall = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime)
        return status, out, err, wall, cpu

    def path(self, node_path):
        """A node path as the host sees it (also /run, the container's tmpfs)."""
        return f"/proc/{self.pid}/root{node_path}"

    def show(self, unit, *properties):
        result = self.run(["systemctl", "show", unit, *[f"-p{p}" for p in properties]], timeout=30)
        return dict(line.split("=", 1) for line in result[1].splitlines() if "=" in line)

    def journal(self, unit, lines=200):
        return self.run(["journalctl", "-u", unit, "-o", "cat", "--no-pager", "-n", str(lines)], timeout=30)[1]

    def stop(self):
        """SIGTERM to systemd-nspawn (a clean poweroff of the container), bounded; then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            stop_process(self.proc, timeout=1)

    def close(self):
        self.stack.close()


# ---------------------------------------------------------------------------------------------------------------------
# Preparation: the image (before boot) and the testbed.

def settled_copy(source, destination, timeout=60):
    """Copy a binary that may be in the middle of a rebuild: wait until it is 2 s old, copy, check the size."""
    deadline = time.monotonic() + timeout
    while True:
        stat = os.stat(source)
        if time.time() - stat.st_mtime >= 2 or time.monotonic() > deadline:
            shutil.copyfile(source, destination)
            os.chmod(destination, 0o755)
            if os.path.getsize(destination) == os.stat(source).st_size or time.monotonic() > deadline:
                return
        time.sleep(0.5)


def exec_start(unit_path):
    """The argv of a unit's ExecStart= line."""
    with open(unit_path) as f:
        for line in f:
            if line.startswith("ExecStart="):
                return shlex.split(line[len("ExecStart="):])
    raise Fatal(f"{unit_path} has no ExecStart=")


def prepare_image(root, bin_dir, report):
    """What the node image holds: nodeboot, the units (enabled), the version file, the credential provider, the
    config drop-in directory; and the stand-ins."""
    settled_copy(os.path.join(bin_dir, "nodeboot"), root + "/usr/bin/nodeboot")
    verify_units = load_verify_units()
    names, files = verify_units.install_units(root, [UNITS, BOOT_UNITS])
    services = [n for n in files if n.endswith(".service")]
    result = subprocess.run(["systemctl", f"--root={root}", "enable", *services], capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise Fatal(f"systemctl --root enable {' '.join(services)}: {result.stderr.strip()}")
    write(root + "/etc/eks/kubelet-version.txt", f"Kubernetes {KUBELET_VERSION}\n")
    write(root + "/etc/eks/image-credential-provider/ecr-credential-provider", "#!/bin/sh\nexit 1\n", 0o755)
    os.makedirs(root + "/etc/eks/nodeadm.d", exist_ok=True)
    write(root + "/usr/bin/kubelet", KUBELET_STAND_IN, 0o755)
    iptables = root + "/usr/sbin/iptables"
    if os.path.lexists(iptables):
        os.unlink(iptables)  # Debian's alternatives link; replaced in this run's overlay only
    write(iptables, IPTABLES_STAND_IN, 0o755)
    report.note("no kubelet binary exists for this machine: /usr/bin/kubelet is a stand-in that logs its argv and"
                " sleeps; /usr/sbin/iptables is a stand-in too (no CAP_NET_ADMIN in the shared network namespace)")
    report.note("containerd is Debian's 1.6 (real); its version comes from `containerd --version` (no version file)")
    return names


def load_verify_units():
    import importlib.util
    spec = importlib.util.spec_from_file_location("verify_units", os.path.join(PROJECT, "scripts", "verify-units.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def testbed_config(directory):
    """The testbed's instance (nodeadm's aemm default) serving a NodeConfig that names only the cluster: endpoint, CA
    and service CIDR come from DescribeCluster, which reports the testbed's API server."""
    with open(AEMM) as f:
        instance = json.load(f)
    user_data = f"apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: {CLUSTER}\n"
    instance.setdefault("userdata", {}).setdefault("values", {})["userdata"] = \
        base64.b64encode(user_data.encode()).decode()
    path = os.path.join(directory, "testbed.json")
    write(path, json.dumps({"instance": instance, "privateDnsName": NODE_NAME}, indent=2))
    return path


class Cloud:
    """The running testbed, seen from the host: IMDS facts and the Kubernetes API with the static admin keys."""

    def __init__(self, printed, bin_dir):
        self.printed, self.bin_dir = printed, bin_dir
        self.env = printed["env"]
        self.ca = ssl.create_default_context(cafile=printed["kube-ca"])
        self._token = None

    def imds(self, path):
        base = self.printed["imds"]
        request = urllib.request.Request(base + "/latest/api/token", method="PUT",
                                         headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        token = urllib.request.urlopen(request, timeout=10).read().decode()
        request = urllib.request.Request(base + path, headers={"X-aws-ec2-metadata-token": token})
        return urllib.request.urlopen(request, timeout=10).read().decode()

    def token(self):
        """An admin bearer token: `nodeboot token` on the host with the testbed's static keys (kubernetes-admin)."""
        if self._token is None:
            env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": self.env["AWS_ENDPOINT_URL"]}
            status, out, err = run_agent([os.path.join(self.bin_dir, "nodeboot"), "token", "--cluster-name", CLUSTER,
                                          "--region", "us-west-2"], "/", env, 30)
            if status != 0:
                raise Fatal(f"nodeboot token (admin, static keys) failed:\n{excerpt((status, out, err))}")
            self._token = json.loads(out)["status"]["token"]
        return self._token

    def create_node(self, name):
        """POST a bare Node, as a kubelet registering would (for runs where nothing else creates it)."""
        body = json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}).encode()
        request = urllib.request.Request(self.printed["kube"] + "/api/v1/nodes", data=body, method="POST",
                                         headers={"Authorization": f"Bearer {self.token()}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, context=self.ca, timeout=10) as response:
            return response.status

    def kube(self, path):
        """(HTTP status, JSON body) of a GET on the testbed's API server."""
        request = urllib.request.Request(self.printed["kube"] + path,
                                         headers={"Authorization": f"Bearer {self.token()}"})
        try:
            with urllib.request.urlopen(request, context=self.ca, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")


# ---------------------------------------------------------------------------------------------------------------------
# Checks shared by the scenarios.

def init_env(cloud):
    return {"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/root", **cloud.env}


def snapshot(container):
    """inode, mtime and size of every file under the node directories nodeboot writes."""
    files = {}
    for top in NODE_DIRS:
        base = container.path(top)
        for directory, _, names in os.walk(base):
            for name in names:
                path = os.path.join(directory, name)
                stat = os.lstat(path)
                files[path[len(container.path("")):]] = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    return files


def identities(container):
    """What changes when a unit is (re)started: MainPID, InvocationID, the main process's start time."""
    return {unit: container.show(unit, "MainPID", "InvocationID", "ExecMainStartTimestampMonotonic", "ActiveState")
            for unit in ("containerd.service", "kubelet.service")}


def read_status(container):
    try:
        with open(container.path(STATUS)) as f:
            return json.load(f), None
    except (OSError, ValueError) as error:
        return None, f"{STATUS}: {error}"


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def check_containerd(container, report):
    state = container.show("containerd.service", "ActiveState", "SubState", "ControlGroup")
    report.check("containerd.service is active", state.get("ActiveState") == "active",
                 f"containerd.service: {state}\njournal:\n{container.journal('containerd.service', 30)}",
                 info=f"{state.get('ActiveState')}/{state.get('SubState')}")
    version = container.run(["ctr", "version"], timeout=30)
    report.check("ctr version: the containerd server answers", version[0] == 0 and "Server:" in version[1],
                 excerpt(version), info=re.sub(r"\s+", " ", version[1].split("Server:")[-1]).strip()[:60])
    plugins = container.run(["ctr", "plugins", "ls"], timeout=30)
    cri = [line for line in plugins[1].splitlines() if re.match(r"io\.containerd\.grpc\.v1\s+cri\s", line)]
    report.check("ctr plugins ls: io.containerd.grpc.v1 cri ok", bool(cri) and cri[0].split()[-1] == "ok",
                 excerpt(plugins))
    try:
        with open(container.path("/etc/containerd/config.toml"), "rb") as f:
            written = tomllib.load(f)["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as error:
        report.check("sandbox image of /etc/containerd/config.toml", False, f"cannot read it: {error}")
        return
    dump = container.run(["containerd", "config", "dump"], timeout=30)
    try:
        dumped = tomllib.loads(dump[1])["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"]
    except (KeyError, tomllib.TOMLDecodeError) as error:
        dumped = f"(unreadable: {error})"
    report.check("containerd config dump has the written sandbox image", dumped == written,
                 f"config.toml: {written!r}, dump: {dumped!r}\n{excerpt(dump, 10)}", info=written)
    started = [line for line in container.journal("containerd.service", 400).splitlines()
               if "Start cri plugin with config" in line]
    running = re.search(r"SandboxImage:(\S*)", started[-1]).group(1) if started and "SandboxImage:" in started[-1] \
        else None
    report.check("the running CRI plugin uses it (journal: Start cri plugin with config {… SandboxImage:…})",
                 running == written,
                 f"config.toml and config dump: {written!r}; the running CRI plugin: {running!r}\n"
                 + (started[-1][:1500] if started else "no 'Start cri plugin' line in containerd's journal"))
    report.check("containerd.service runs in runtime.slice (the kubelet's --runtime-cgroups)",
                 state.get("ControlGroup") == "/runtime.slice/containerd.service", f"ControlGroup: {state}",
                 info=state.get("ControlGroup"))


def check_kubelet(container, report):
    state = container.show("kubelet.service", "ActiveState", "SubState", "Slice", "ExecMainPID")
    report.check("kubelet.service is active", state.get("ActiveState") == "active",
                 f"kubelet.service: {state}\njournal:\n{container.journal('kubelet.service', 30)}",
                 info=f"{state.get('ActiveState')}/{state.get('SubState')}, {state.get('Slice')}")
    line = wait_for(lambda: (open(container.path(KUBELET_LOG)).read().strip().splitlines() or [None])[-1]
                    if os.path.exists(container.path(KUBELET_LOG)) else None, 5)
    argc = re.search(r"argc=(\d+)", line or "")
    argv_ok = bool(argc) and int(argc.group(1)) > 1 and "--kubeconfig=/var/lib/kubelet/kubeconfig" in line and \
        "--config=/etc/kubernetes/kubelet/config.json" in line
    report.check("the kubelet got its flags from /etc/eks/kubelet/environment, word-split"
                 " (--kubeconfig, --config)", argv_ok, f"stand-in log {KUBELET_LOG}: {line or '(none)'}",
                 info=(argc.group(0) if argc else ""))
    try:
        with open(container.path(IPTABLES_LOG)) as f:
            iptables = f.read()
    except OSError:
        iptables = ""
    report.check("kubelet.service's ExecStartPre ran iptables -P FORWARD ACCEPT -w 5",
                 "-P FORWARD ACCEPT -w 5" in iptables, f"iptables stand-in log: {iptables or '(none)'}")
    after = container.show("kubelet.service", "After")["After"].split() + \
        container.show("containerd.service", "After")["After"].split()
    report.check(f"neither kubelet.service nor containerd.service is ordered after {CONFIG_UNIT} or {RUN_UNIT} (as"
                 " loaded, with nodeboot's drop-ins)", CONFIG_UNIT not in after and RUN_UNIT not in after,
                 f"After= {after}")


def check_node(container, cloud, report):
    # The identity document, as nodeboot (and nodeadm) read it. (The testbed's aemm defaults serve another zone under
    # meta-data/placement/availability-zone; on EC2 both agree.)
    document = json.loads(cloud.imds("/latest/dynamic/instance-identity/document"))
    iid, zone, itype = document["instanceId"], document["availabilityZone"], document["instanceType"]
    status, node = cloud.kube(f"/api/v1/nodes/{NODE_NAME}")
    if not report.check(f"the Node {NODE_NAME} exists in the API server", status == 200,
                        f"GET /api/v1/nodes/{NODE_NAME}: {status} {json.dumps(node)[:400]}"):
        return
    provider = node.get("spec", {}).get("providerID")
    report.check("its spec.providerID is aws:///<zone>/<instance id>", provider == f"aws:///{zone}/{iid}",
                 f"providerID {provider!r}, expected aws:///{zone}/{iid}", info=provider)
    labels = node.get("metadata", {}).get("labels", {})
    expected = {"kubernetes.io/hostname": NODE_NAME, "node.kubernetes.io/instance-type": itype,
                "topology.kubernetes.io/zone": zone}
    wrong = {k: labels.get(k) for k, v in expected.items() if labels.get(k) != v}
    report.check("its labels: kubernetes.io/hostname, node.kubernetes.io/instance-type, topology.kubernetes.io/zone",
                 not wrong, f"expected {expected}\nwrong or missing: {wrong}\nall labels: {labels}")


PHASES = ["source", "validate", "discover", "render", "apply", "run", "register"]


def check_status_first(container, report):
    status, problem = read_status(container)
    if not report.check(f"{STATUS} exists", status is not None, problem or ""):
        return None
    # `error` is null or absent after a successful run (nodeboot omits it); scenario c checks it when set.
    missing = [k for k in ("phases", "files", "units", "node") if k not in status]
    report.check("status.json has phases, files, units, node (and no error)", not missing and not status.get("error"),
                 f"missing keys {missing}; it has {sorted(status)}; error: {status.get('error')}")
    phases = {p.get("name"): p for p in status.get("phases", [])}
    bad = [name for name in PHASES if phases.get(name, {}).get("result") != "ok"]
    report.check("status.json phases source…register, each ok", not bad and status.get("error") is None,
                 f"not ok or absent: {bad}\nphases: {json.dumps(status.get('phases'))[:600]}\n"
                 f"error: {status.get('error')}",
                 info=", ".join(f"{p['name']} {p.get('milliseconds', 0):.0f} ms" for p in status.get("phases", [])))
    paths = {f.get("path") for f in status.get("files", [])}
    units = {a.get("unit"): a for a in status.get("units", {}).get("actions", [])}
    report.check("status.json files and units: config.toml written, containerd and kubelet started ok",
                 "/etc/containerd/config.toml" in paths and
                 all(units.get(u, {}).get("result") == "ok" and units.get(u, {}).get("action") in ("start", "restart")
                     for u in ("containerd.service", "kubelet.service")),
                 f"files: {sorted(p for p in paths if p)}\nunits: {json.dumps(status.get('units'))[:600]}")
    node = status.get("node", {})
    report.check("status.json node: name and registration",
                 node.get("name") == NODE_NAME and node.get("registration") in ("created", "reconciled", "unchanged",
                                                                               "found"),
                 f"node: {node}", info=f"{node.get('name')}: {node.get('registration')}")
    return status


def check_nothing_changed(container, report, before_files, before_units, label):
    after_files = snapshot(container)
    changed = sorted(p for p in set(before_files) | set(after_files) if before_files.get(p) != after_files.get(p))
    report.check(f"{label}: no file under {', '.join(NODE_DIRS)} changed (inode, mtime, size)", not changed,
                 "changed: " + ", ".join(changed), info=f"{len(after_files)} files")
    after_units = identities(container)
    moved = {u: (before_units[u], after_units[u]) for u in before_units if before_units[u] != after_units[u]}
    report.check(f"{label}: containerd and the kubelet were not restarted (MainPID, InvocationID, start time)",
                 not moved, "\n".join(f"{u}: before {b}\n  after {a}" for u, (b, a) in moved.items()),
                 info=", ".join(f"{u.split('.')[0]} pid {after_units[u].get('MainPID')}" for u in after_units))


def check_status_quiet(container, report, label):
    status, problem = read_status(container)
    if status is None:
        report.check(f"{label}: status.json", False, problem)
        return
    written = [f for f in status.get("files", []) if f.get("action") != "unchanged"]
    acted = [a for a in status.get("units", {}).get("actions", []) if a.get("action") != "none"]
    report.check(f"{label}: status.json says no file written and no unit started or restarted",
                 not written and not acted and status.get("error") is None,
                 f"files written: {written}\nunit actions: {acted}\nerror: {status.get('error')}")


# ---------------------------------------------------------------------------------------------------------------------
# Scenarios.

def first_init(container, cloud, args, report):
    result = container.run(args, env=init_env(cloud), timeout=INIT_TIMEOUT)
    status, out, err, wall, cpu = result
    ok = report.check(f"a: {' '.join(shlex.quote(a) for a in args)} exits 0", status == 0, excerpt(result),
                      info=f"{wall * 1000:.0f} ms")
    return ok, result


def scenario_full(container, cloud, args, report, bench):
    args = args + ["--register-node"]
    pristine = contents(container)  # i: what reset must give back
    ok, result = first_init(container, cloud, args, report)
    fresh = contents(container)  # i: what an init after reset must write again
    check_containerd(container, report)
    check_kubelet(container, report)
    check_node(container, cloud, report)
    status = check_status_first(container, report)
    if bench:
        print_bench(result, status)
        return
    if not ok:
        report.skip("b, e, f, c, g, h", "the first init failed")
        return

    # b: the second run changes nothing.
    files, units = snapshot(container), identities(container)
    result = container.run(args, env=init_env(cloud), timeout=INIT_TIMEOUT)
    report.check("b: the second init exits 0", result[0] == 0, excerpt(result), info=f"{result[3] * 1000:.0f} ms")
    check_nothing_changed(container, report, files, units, "b")
    check_status_quiet(container, report, "b")

    scenario_unit(container, cloud, report, files, units)
    scenario_crashing_kubelet(container, cloud, args, report)
    scenario_failing(container, cloud, args, report)
    scenario_ipamd(container, cloud, args, report)
    scenario_ipamd_refused(container, cloud, args, report)
    scenario_reset(container, cloud, args, report, pristine, fresh)
    scenario_volumes(container, cloud, args, report)
    scenario_local_disks(container, cloud, args, report)


VOLUMES_DROPIN = "/etc/eks/nodeadm.d/70-volumes.yaml"
VOLUME_UNITS = ("srv-images.mount", "var-lib-kubelet.mount", "var-log-pods.mount")


def loop_devices(scratch, count, stack, prefix="volume"):
    """COUNT 256 MiB loop devices on sparse files in SCRATCH, detached when STACK closes; [] unless all were made."""
    devices = []
    for index in range(count):
        image = os.path.join(scratch, f"{prefix}{index}.img")
        with open(image, "wb") as f:
            f.truncate(256 << 20)
        made = subprocess.run(["losetup", "--find", "--show", image], capture_output=True, text=True)
        if made.returncode != 0:
            break
        device = made.stdout.strip()
        devices.append(device)
        stack.callback(subprocess.run, ["losetup", "-d", device], capture_output=True)
    return devices if len(devices) == count else []


def scenario_volumes(container, cloud, args, report):
    """j: EBS data volumes on loop devices (see the module docstring)."""
    if len(container.devices) < 2:
        report.skip("j: EBS data volumes", "no loop devices (losetup failed)")
        return
    data_volume, shared_volume = container.devices
    ebs = " | ".join(container.devices)
    write(container.path("/usr/local/sbin/lsblk"),
          "#!/bin/sh\n# systemd-test j: these loop devices play EBS volumes (nodeboot checks lsblk's MODEL).\n"
          f'for last; do :; done\ncase "$last" in {ebs}) echo "Amazon Elastic Block Store" ;;\n'
          '*) exec /usr/bin/lsblk "$@" ;;\nesac\n')
    os.chmod(container.path("/usr/local/sbin/lsblk"), 0o755)
    # No udev in a container: a stand-in makes /dev/disk/by-uuid/ for the loop devices, as udev would.
    # (A script file: systemd would expand the $ of an inline command line itself.)
    write(container.path("/usr/local/sbin/udev-standin"),
          "#!/bin/sh\nmkdir -p /dev/disk/by-uuid\nwhile :; do\n  for d in " + " ".join(container.devices) + "; do\n"
          '    u=$(blkid -o value -s UUID "$d") && ln -sfn "../../${d#/dev/}" "/dev/disk/by-uuid/$u"\n'
          "  done\n  sleep 0.2\ndone\n")
    os.chmod(container.path("/usr/local/sbin/udev-standin"), 0o755)
    started = container.run(["systemd-run", "--unit=udev-standin", "--collect", "/usr/local/sbin/udev-standin"],
                            timeout=30)
    report.check("j: a udev stand-in for /dev/disk/by-uuid runs (systemd-run)", started[0] == 0, excerpt(started))
    # /var/lib/containerd is already a mount here (nspawn binds it from the host: an overlayfs upper directory cannot
    # be on overlayfs), so the single volume takes a directory of its own with data to move.
    os.makedirs(container.path("/srv/images/blobs"), exist_ok=True)
    write(container.path("/srv/images/blobs/one"), "data that must move onto the volume\n")
    write(container.path(VOLUMES_DROPIN),
          "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  instance:\n    storage:\n      volumes:\n"
          f"        - device: {data_volume}\n          mountTarget: /srv/images\n          fsType: ext4\n"
          f"        - device: {shared_volume}\n          mountTargets: [/var/lib/kubelet, /var/log/pods]\n"
          "          fsType: ext4\n")
    try:
        before = {unit: container.show(unit, "MainPID").get("MainPID") for unit in ("containerd.service",
                                                                                     "kubelet.service")}
        result = container.run(args, env=init_env(cloud), timeout=INIT_TIMEOUT)
        base = "mnt-nodeboot-volumes-" + os.path.basename(shared_volume) + ".mount"
        journals = "\n".join(f"{unit}:\n{container.journal(unit, 15)}" for unit in (base,) + VOLUME_UNITS[:2])
        report.check("j: init with two data volumes exits 0", result[0] == 0,
                     excerpt(result) + "\n" + journals + "\nudev-standin:\n" + container.journal("udev-standin", 5),
                     info=f"{result[3] * 1000:.0f} ms")
        types = [container.run(["blkid", "-o", "value", "-s", "TYPE", d], timeout=30)[1].strip()
                 for d in container.devices]
        report.check("j: both volumes were formatted ext4", types == ["ext4", "ext4"], f"blkid TYPE: {types}")
        states = {unit: container.show(unit, "ActiveState", "UnitFileState") for unit in VOLUME_UNITS}
        report.check("j: the three mount units are active and enabled",
                     all(v.get("ActiveState") == "active" and v.get("UnitFileState") == "enabled"
                         for v in states.values()), f"{states}")
        mounts = container.run(["findmnt", "-n", "-o", "TARGET,SOURCE", "--list"], timeout=30)[1]
        on_volumes = [target for target in ("/srv/images", "/var/lib/kubelet", "/var/log/pods")
                      if any(line.split()[:1] == [target] for line in mounts.splitlines())]
        report.check("j: /srv/images, /var/lib/kubelet and /var/log/pods are mounted", len(on_volumes) == 3,
                     mounts[-2000:])
        moved = container.run(["sh", "-c", "test -s /var/lib/kubelet/kubeconfig && test -s /srv/images/blobs/one"],
                              timeout=30)
        report.check("j: the data moved onto the volumes (the kubelet's kubeconfig, /srv/images' file)",
                     moved[0] == 0, excerpt(moved))
        after = {unit: container.show(unit, "ActiveState", "MainPID") for unit in ("containerd.service",
                                                                                  "kubelet.service")}
        report.check("j: the kubelet was stopped for the move and runs again; containerd was left alone",
                     after["kubelet.service"].get("ActiveState") == "active"
                     and after["kubelet.service"].get("MainPID") != before["kubelet.service"]
                     and after["containerd.service"].get("ActiveState") == "active", f"before {before}, after {after}")

        identity = {unit: container.show(unit, "InvocationID").get("InvocationID")
                    for unit in VOLUME_UNITS + ("containerd.service", "kubelet.service")}
        result = container.run(args, env=init_env(cloud), timeout=INIT_TIMEOUT)
        report.check("j: a second init exits 0", result[0] == 0, excerpt(result), info=f"{result[3] * 1000:.0f} ms")
        again = {unit: container.show(unit, "InvocationID").get("InvocationID") for unit in identity}
        report.check("j: it restarts no mount unit, containerd or kubelet", again == identity,
                     f"before {identity}\nafter {again}")
    finally:
        os.unlink(container.path(VOLUMES_DROPIN))
        container.run(["systemctl", "stop", "udev-standin.service"], timeout=30)


# ---------------------------------------------------------------------------------------------------------------------
# k: EBS data volumes next to RAID0 local storage (nodeadm's ebs-storage-coexist).

LOCAL_DROPIN = "/etc/eks/nodeadm.d/75-local-disks.yaml"
LOCAL_LOG = "/var/log/setup-local-disks-stand-in.log"
MD_NODE = "/dev/md127"
ARRAY_DIR = "/mnt/k8s-disks/0"  # setup-local-disks' mount point of the array (no localStorage.mountPath)
EBS_MODEL, INSTANCE_STORE_MODEL = "Amazon Elastic Block Store", "Amazon EC2 NVMe Instance Storage"

# nodeboot runs the image's /usr/bin/setup-local-disks for localStorage; testkit.setup_local_disks_stand_in says what
# stands in for it here (and in scripts/vm-test.py's storage boot).
SETUP_LOCAL_DISKS_STAND_IN = setup_local_disks_stand_in(MD_NODE, LOCAL_LOG)

K_RAID_CHECKS = [
    "k: init with RAID0 local storage and an EBS volume at /var/lib/kubelet exits 0",
    f"k: {ARRAY_DIR} is an md RAID0 array of the two instance store disks (not the EBS volumes)",
    "k: /var/lib/kubelet is the EBS volume through nodeboot's var-lib-kubelet.mount (the array left it alone)",
    "k: /var/log/pods and /var/lib/soci-snapshotter-grpc are bind mounts of the array; /var/lib/containerd as it was",
    "k: the kubelet's kubeconfig is on the EBS volume and not on the array; /var/log/pods' file moved onto the array",
    "k: containerd and the kubelet run",
    "k: a second init exits 0",
    "k: it restarts no mount unit, containerd or kubelet; the mounts, the array and the data are as they were",
]


def md_support(devices, stack):
    """What k's RAID0 needs of the host: its kernel's md driver and mdadm (the container runs the host's mdadm; the tree
    has none), and MD_NODE made before boot so that nspawn lets the container open it. {"node", "mdadm", "why"}; "why"
    says why not. The arrays made on DEVICES are stopped when STACK closes (after the container, before the loops)."""
    if len(devices) < 4:
        return {"why": "no loop devices (losetup failed)"}
    if not os.path.exists("/proc/mdstat"):
        return {"why": "this kernel has no md (software RAID) driver: /proc/mdstat is missing"}
    mdadm = shutil.which("mdadm") or next((p for p in ("/usr/sbin/mdadm", "/sbin/mdadm") if os.access(p, os.X_OK)),
                                          None)
    if not mdadm:
        return {"why": "mdadm is not installed on the host (apt-get install mdadm)"}
    with open("/proc/mdstat") as f:
        if re.search(r"^md127\s*:", f.read(), re.M):
            return {"why": "md127 is in use on the host"}
    if not os.path.exists(MD_NODE):
        os.mknod(MD_NODE, 0o600 | stat.S_IFBLK, os.makedev(9, 127))
        stack.callback(lambda: os.path.exists(MD_NODE) and os.unlink(MD_NODE))
    names = {os.path.basename(d) for d in devices}

    def stop_arrays():
        with open("/proc/mdstat") as f:
            for line in f:
                members = {m.split("[")[0] for m in line.split()[4:]} if " : " in line else set()
                if members & names:
                    subprocess.run([mdadm, "--stop", "/dev/" + line.split()[0]], capture_output=True, timeout=60)

    stack.callback(stop_arrays)
    return {"node": MD_NODE, "mdadm": mdadm, "why": None}


def local_dropin(container, volumes, local_storage="      strategy: RAID0\n"):
    """A NodeConfig drop-in with localStorage and VOLUMES [(device, [targets])], ext4."""
    text = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  instance:\n    localStorage:\n" + \
        local_storage + "    storage:\n      volumes:\n"
    for device, targets in volumes:
        text += f"        - device: {device}\n          mountTargets: [{', '.join(targets)}]\n          fsType: ext4\n"
    write(container.path(LOCAL_DROPIN), text)


def written(devices):
    """The devices blkid finds anything on (a filesystem, a RAID member, a partition table), seen from the host."""
    return [d for d in devices if subprocess.run(["blkid", "-p", d], capture_output=True).returncode == 0]


def source(container, path):
    """findmnt's SOURCE of the mount at PATH (the top one), '' when PATH is no mount point."""
    lines = container.run(["findmnt", "-n", "-o", "SOURCE", "--mountpoint", path], timeout=30)[1].split()
    return lines[-1] if lines else ""


def stop_mount_units(container, units):
    """Stops and disables UNITS, removes their files (a scenario's mounts, so the next starts from the root fs)."""
    container.run(["systemctl", "disable", "--now", *units], timeout=60)
    for unit in units:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(container.path("/etc/systemd/system/" + unit))
    container.run(["systemctl", "daemon-reload"], timeout=60)


def refused_untouched(container, report, label, result, devices, units):
    """The checks after a refused init: no device written, no mount unit file, setup-local-disks not run."""
    touched = written(devices)
    files = [u for u in units if os.path.exists(container.path("/etc/systemd/system/" + u))]
    ran = os.path.exists(container.path(LOCAL_LOG))
    report.check(f"k: {label}: no disk formatted, no mount unit written, setup-local-disks not run",
                 not touched and not files and not ran,
                 f"written devices: {touched}\nunit files: {files}\nsetup-local-disks ran: {ran}\n{excerpt(result)}")


def scenario_local_disks(container, cloud, args, report):
    """k: EBS data volumes next to RAID0 local storage (see the module docstring)."""
    if len(container.local_devices) < 4:
        report.skip("k: EBS volumes next to RAID0 local storage", "no loop devices (losetup failed)")
        return
    ebs_a, ebs_b, store_a, store_b = container.local_devices
    ebs, stores = [ebs_a, ebs_b], [store_a, store_b]
    # j's volumes go, so that /var/lib/kubelet and /var/log/pods are the root filesystem's again.
    shared = "mnt-nodeboot-volumes-" + os.path.basename(container.devices[1]) + ".mount" if container.devices else None
    stop_mount_units(container, [u for u in (*VOLUME_UNITS, shared) if u])
    left = [p for p in ("/srv/images", "/var/lib/kubelet", "/var/log/pods") if source(container, p)]
    report.check("k: j's volumes unmounted and their units removed", not left, f"still mounts: {left}")

    # The models nodeboot checks (lsblk MODEL) and the links udev makes on EC2 (setup-local-disks finds the instance
    # store disks by them): each loop device plays the disk its model names. No udev in a container: a stand-in
    # makes /dev/disk/by-id/ once and /dev/disk/by-uuid/ for every filesystem that appears (the array's too).
    models = {**{d: EBS_MODEL for d in container.devices + ebs}, **{d: INSTANCE_STORE_MODEL for d in stores}}
    write(container.path("/usr/local/sbin/lsblk"),
          "#!/bin/sh\n# systemd-test j, k: loop devices playing EBS volumes and instance store disks (lsblk MODEL).\n"
          'for last; do :; done\ncase "$last" in\n'
          + "".join(f'{d}) echo "{m}" ;;\n' for d, m in models.items())
          + '*) exec /usr/bin/lsblk "$@" ;;\nesac\n', 0o755)
    links = [f"ln -sfn ../../{os.path.basename(d)} /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0000000000000k{i}"
             for i, d in enumerate(ebs)]
    links += [f"ln -sfn ../../{os.path.basename(d)} /dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_AWS0000k{i}"
              for i, d in enumerate(stores)]
    write(container.path("/usr/local/sbin/udev-standin-k"),
          "#!/bin/sh\nmkdir -p /dev/disk/by-uuid /dev/disk/by-id\n" + "\n".join(links) + "\nwhile :; do\n"
          f"  for d in {' '.join(ebs + stores)} $(grep -q '^md127 :' /proc/mdstat 2>/dev/null && echo {MD_NODE}); do\n"
          '    u=$(blkid -o value -s UUID "$d") && [ -n "$u" ] && ln -sfn "../../${d#/dev/}" "/dev/disk/by-uuid/$u"\n'
          "  done\n  sleep 0.2\ndone\n", 0o755)
    started = container.run(["systemd-run", "--unit=udev-standin-k", "--collect", "/usr/local/sbin/udev-standin-k"],
                            timeout=30)
    report.check("k: a udev stand-in for /dev/disk/by-id and by-uuid runs (systemd-run)", started[0] == 0,
                 excerpt(started))
    write(container.path("/usr/bin/setup-local-disks"), SETUP_LOCAL_DISKS_STAND_IN, 0o755)
    report.note("k: /usr/bin/setup-local-disks is a stand-in that keeps to amazon-eks-ami's script's contract (raid0)")
    try:
        # 1. Refused by validation, every problem at once: a volume inside a directory the array bind-mounts, and one
        # inside the array's mount path.
        local_dropin(container, [(ebs_a, ["/var/lib/kubelet/pods"]), (ebs_b, [f"{ARRAY_DIR}/images"])])
        result = container.run(args, env=init_env(cloud), timeout=INIT_TIMEOUT)
        err = result[2]
        report.check("k: volumes inside /var/lib/kubelet (bound by the array) and inside /mnt/k8s-disks: init exits 2"
                     " naming both", result[0] == 2 and "volumes[0].mountTargets[0]" in err and
                     "which localStorage's RAID0 array bind-mounts" in err and "volumes[1].mountTargets[0]" in err and
                     "where localStorage (RAID0) mounts the instance store disks" in err, excerpt(result))
        refused_untouched(container, report, "validation", result, ebs + stores,
                          ["var-lib-kubelet-pods.mount", "mnt-k8s\\x2ddisks-0-images.mount"])

        # 2. An instance store disk listed as a volume (RAID0 takes every one): refused by the model check while
        # every volume is checked, before the first is formatted.
        local_dropin(container, [(ebs_a, ["/var/lib/kubelet"]), (store_a, ["/srv/scratch"])])
        result = container.run(args, env=init_env(cloud), timeout=INIT_TIMEOUT)
        report.check("k: an instance store disk listed as an EBS volume: init exits 1 naming it and its model",
                     result[0] == 1 and f"volumes[1].device: {store_a} is not an EBS volume (lsblk MODEL "
                     f"'{INSTANCE_STORE_MODEL}')" in result[2], excerpt(result))
        refused_untouched(container, report, "instance store disk", result, ebs + stores,
                          ["var-lib-kubelet.mount", "srv-scratch.mount"])

        # 3. A directory an earlier boot's array already binds (the unit setup-local-disks writes, var-log-pods.mount,
        # here of a directory on the root filesystem: what is refused is the mount, whatever backs it) named by the
        # second volume: refused while every volume is checked, so the first is not formatted either.
        os.makedirs(container.path(f"{ARRAY_DIR}/pods"), exist_ok=True)
        write(container.path("/etc/systemd/system/var-log-pods.mount"),
              f"[Unit]\nDescription=/var/log/pods on the array (k: an earlier boot's)\n[Mount]\nWhat={ARRAY_DIR}/pods\n"
              "Where=/var/log/pods\nType=none\nOptions=bind\n")
        container.run(["systemctl", "daemon-reload"], timeout=60)
        bound = container.run(["systemctl", "start", "var-log-pods.mount"], timeout=60)
        mounted = container.run(["findmnt", "-n", "--mountpoint", "/var/log/pods"], timeout=30)[1].strip()
        local_dropin(container, [(ebs_a, ["/srv/data"]), (ebs_b, ["/var/log/pods"])])
        result = container.run(args, env=init_env(cloud), timeout=INIT_TIMEOUT)
        report.check("k: a volume at /var/log/pods, which an earlier boot's array binds: init exits 1 naming the mount",
                     bound[0] == 0 and result[0] == 1
                     and "volumes[1]: /var/log/pods is already a mount of" in result[2],
                     f"systemctl start var-log-pods.mount: {excerpt(bound, 5)}\nfindmnt /var/log/pods: {mounted}\n"
                     + excerpt(result))
        refused_untouched(container, report, "earlier bind", result, ebs + stores, ["srv-data.mount"])
        stop_mount_units(container, ["var-log-pods.mount"])
        shutil.rmtree(container.path("/mnt/k8s-disks"), ignore_errors=True)

        # 4. They coexist: the EBS volume at /var/lib/kubelet first, then the RAID0 array for what is left.
        why = (container.md or {}).get("why") or ("" if container.md else "md support was not probed")
        if why:
            for name in K_RAID_CHECKS:
                report.skip(name, why)
            return
        scenario_raid0(container, cloud, args, report, ebs_a, stores)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(container.path(LOCAL_DROPIN))
        container.run(["systemctl", "stop", "udev-standin-k.service"], timeout=30)


def scenario_raid0(container, cloud, args, report, ebs_a, stores):
    """k, part 4: RAID0 over the two instance store disks and the EBS volume at /var/lib/kubelet (needs md)."""
    if not any(os.access(container.path(p), os.X_OK) for p in ("/usr/sbin/mdadm", "/sbin/mdadm")):
        shutil.copy2(container.md["mdadm"], container.path("/usr/sbin/mdadm"))
        report.note(f"k: the tree has no mdadm: the host's ({container.md['mdadm']}) is copied into the container")
    # Whether md RAID can be done in this container at all (nspawn mounts /sys read-only, and the device policy allows
    # only the nodes bound in): an array made and taken apart again, before nodeboot runs.
    for argv in (["mdadm", "--create", MD_NODE, "--run", "--force", "--level=0", f"--raid-devices={len(stores)}",
                  *stores], ["mdadm", "--stop", MD_NODE], ["mdadm", "--zero-superblock", *stores]):
        probe = container.run(argv, timeout=60)
        if probe[0] != 0:
            last = (probe[2].strip() or probe[1].strip() or "no output").splitlines()[-1]
            for name in K_RAID_CHECKS:
                report.skip(name, f"md RAID cannot be done in this container: {' '.join(argv[:2])} exited {probe[0]}:"
                                  f" {last}")
            return
    write(container.path("/var/log/pods/k-marker"), "a pod's log that must move onto the array\n")
    containerd_before = source(container, "/var/lib/containerd")
    local_dropin(container, [(ebs_a, ["/var/lib/kubelet"])])
    result = container.run(args, env=init_env(cloud), timeout=INIT_TIMEOUT)
    names = K_RAID_CHECKS
    report.check(names[0], result[0] == 0,
                 excerpt(result) + f"\nsetup-local-disks stand-in log: {tail(container.path(LOCAL_LOG), 5)}",
                 info=f"{result[3] * 1000:.0f} ms")
    paths = (ARRAY_DIR, "/var/lib/kubelet", "/var/log/pods", "/var/lib/soci-snapshotter-grpc", "/var/lib/containerd")

    def state():
        with open("/proc/mdstat") as f:
            array = next((line.strip() for line in f if line.startswith(os.path.basename(MD_NODE) + " ")), "")
        uuid = container.run(["blkid", "-o", "value", "-s", "UUID", MD_NODE], timeout=30)[1].strip()
        return {p: source(container, p) for p in paths}, array, uuid

    sources, array, _ = state()
    report.check(names[1], sources[ARRAY_DIR] == MD_NODE and "raid0" in array and
                 all(os.path.basename(d) in array for d in stores) and os.path.basename(ebs_a) not in array,
                 f"{ARRAY_DIR}: {sources[ARRAY_DIR]!r}; /proc/mdstat: {array!r}")
    unit = container.path("/etc/systemd/system/var-lib-kubelet.mount")
    ours = os.path.exists(unit) and "Written by nodeboot init" in open(unit).read()
    report.check(names[2], sources["/var/lib/kubelet"] == ebs_a and ours,
                 f"/var/lib/kubelet: {sources['/var/lib/kubelet']!r}, expected {ebs_a}; nodeboot's unit: {ours}")
    report.check(names[3], sources["/var/log/pods"] == f"{MD_NODE}[/pods]" and
                 sources["/var/lib/soci-snapshotter-grpc"] == f"{MD_NODE}[/soci-snapshotter-grpc]" and
                 sources["/var/lib/containerd"] == containerd_before, f"{sources}\n/var/lib/containerd before: "
                 f"{containerd_before!r}")
    data = container.run(["sh", "-c", f"test -s /var/lib/kubelet/kubeconfig && test ! -e {ARRAY_DIR}/kubelet && "
                          f"test -s /var/log/pods/k-marker && test -s {ARRAY_DIR}/pods/k-marker"], timeout=30)
    report.check(names[4], data[0] == 0, excerpt(data) + "\n" + container.run(
        ["ls", "-la", ARRAY_DIR, "/var/lib/kubelet"], timeout=30)[1])
    services = {u: container.show(u, "ActiveState").get("ActiveState")
                for u in ("containerd.service", "kubelet.service")}
    report.check(names[5], all(v == "active" for v in services.values()), f"{services}")

    units = [container.run(["systemd-escape", "--path", "--suffix=mount", p], timeout=30)[1].strip() for p in paths[:4]]
    identity = {u: container.show(u, "InvocationID").get("InvocationID")
                for u in units + ["containerd.service", "kubelet.service"]}
    before = state()
    result = container.run(args, env=init_env(cloud), timeout=INIT_TIMEOUT)
    report.check(names[6], result[0] == 0, excerpt(result), info=f"{result[3] * 1000:.0f} ms")
    again = {u: container.show(u, "InvocationID").get("InvocationID") for u in identity}
    after = state()
    data = container.run(["sh", "-c", "test -s /var/lib/kubelet/kubeconfig && test -s /var/log/pods/k-marker"],
                         timeout=30)
    report.check(names[7], again == identity and after == before and data[0] == 0,
                 f"units before {identity}\nafter {again}\nmounts, array, uuid before {before}\nafter {after}\n"
                 + excerpt(data, 5))


RESET_DIRS = NODE_DIRS + ("/var/lib/nodeboot", "/usr/local/bin", "/etc/nodeboot", "/etc/cni/net.d", "/opt/cni/bin",
                          "/run/nodeadm")


def contents(container):
    """Every file and link under RESET_DIRS: its SHA-256 (a link: its target) and mode."""
    found = {}
    for top in RESET_DIRS:
        for directory, _, names in os.walk(container.path(top)):
            for name in names:
                path = os.path.join(directory, name)
                stat = os.lstat(path)
                if os.path.islink(path):
                    found[path[len(container.path("")):]] = "-> " + os.readlink(path)
                else:
                    with open(path, "rb") as f:
                        digest = hashlib.sha256(f.read()).hexdigest()[:16]
                    found[path[len(container.path("")):]] = f"{stat.st_mode & 0o7777:o} {digest}"
    return found


def differences(expected, actual):
    return "\n".join(f"{path}: expected {expected.get(path)}, found {actual.get(path)}"
                     for path in sorted(set(expected) | set(actual)) if expected.get(path) != actual.get(path))


def scenario_reset(container, cloud, args, report, pristine, fresh):
    """i: `nodeboot reset --delete-node` after everything above (ipamd's run of g included): exit 0; kubelet,
    nodeboot-ipamd and containerd stopped; the Node gone from the API server; every file and link under RESET_DIRS as
    before the first init (Debian's /etc/containerd/config.toml restored); /run/nodeboot gone. Then the same init as a:
    exit 0, the same files and links as a's first init wrote (bytes and modes), containerd and the kubelet started
    as on a first boot, the Node registered again."""
    result = container.run(["/usr/bin/nodeboot", "reset", "--delete-node"], env=init_env(cloud), timeout=INIT_TIMEOUT)
    report.check("i: nodeboot reset --delete-node exits 0", result[0] == 0, excerpt(result),
                 info=f"{result[3] * 1000:.0f} ms, {len(result[1].splitlines())} steps")
    states = {unit: container.show(unit, "ActiveState").get("ActiveState")
              for unit in ("kubelet.service", IPAMD, "containerd.service")}
    report.check("i: kubelet, nodeboot-ipamd and containerd are stopped", all(s == "inactive" for s in states.values()),
                 f"{states}")
    status, _ = cloud.kube(f"/api/v1/nodes/{NODE_NAME}")
    report.check("i: the Node is gone from the API server (deleted with the node's own credentials)", status == 404,
                 f"GET the Node: {status}")
    after = contents(container)
    report.check(f"i: every file and link under {', '.join(RESET_DIRS)} is as before the first init",
                 after == pristine, differences(pristine, after), info=f"{len(pristine)} files")
    report.check("i: /run/nodeboot is gone (status, unit record, ipamd's state)",
                 not os.path.exists(container.path("/run/nodeboot")), "still there")

    result = container.run(args, env=init_env(cloud), timeout=INIT_TIMEOUT)
    report.check("i: init after reset exits 0", result[0] == 0, excerpt(result), info=f"{result[3] * 1000:.0f} ms")
    again = contents(container)
    report.check("i: it writes the same files and links as the first init of a fresh node", again == fresh,
                 differences(fresh, again), info=f"{len(again)} files")
    status, problem = read_status(container)
    actions = {a.get("unit"): a.get("action") for a in (status or {}).get("units", {}).get("actions", [])}
    report.check("i: containerd and the kubelet started as on a first boot",
                 actions.get("containerd.service") == "start" and actions.get("kubelet.service") == "start",
                 problem or f"units: {actions}")
    status, _ = cloud.kube(f"/api/v1/nodes/{NODE_NAME}")
    report.check("i: the Node is registered again", status == 200, f"GET the Node: {status}")


def without(argv, flag, value):
    """ARGV without each `FLAG VALUE` pair."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == flag and i + 1 < len(argv) and argv[i + 1] == value:
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def without_ipamd(argv):
    """A boot unit's ExecStart argv without `--daemon nodeboot-ipamd` (scenarios a-f configure containerd and the
    kubelet only; ipamd needs its endpoints in a NodeConfig drop-in, scenario g's)."""
    return without(argv, "--daemon", "nodeboot-ipamd")


def scenario_unit(container, cloud, report, files, units):
    """e: systemd runs the shipped nodeboot-run.service (testbed endpoints from a test drop-in, and the ExecStart of
    both boot units without --daemon nodeboot-ipamd). Starting it pulls in nodeboot-config.service (Requires=), which
    runs first with the inputs of a and b, so it writes nothing. The kubelet is stopped first, so nodeboot has to start
    it from inside the run unit's own start job: with kubelet.service ordered after nodeboot-run.service that start
    would wait for the job that waits for it (a deadlock until a timeout). Its ExecStart has no --register-node:
    nodeboot waits for the kubelet's Node, which the first init created."""
    environment = "".join(f"Environment={k}={v}\n" for k, v in sorted(cloud.env.items()))
    for unit in (CONFIG_UNIT, RUN_UNIT):
        argv = without_ipamd(exec_start(os.path.join(BOOT_UNITS, unit)))
        write(container.path(f"/etc/systemd/system/{unit}.d/90-testbed.conf"),
              "# scripts/systemd-test.py: the testbed stands in for IMDS and the AWS endpoints; ipamd is scenario g's\n"
              "[Service]\n" + environment + "ExecStart=\nExecStart=" + shlex.join(argv) + "\n")
    container.run(["systemctl", "daemon-reload"], timeout=60)
    if cloud.kube(f"/api/v1/nodes/{NODE_NAME}")[0] == 404:
        cloud.create_node(NODE_NAME)
    if units is not None:
        stopped = container.run(["systemctl", "stop", "kubelet.service"], timeout=UNIT_TIMEOUT)
        report.check(f"e: systemctl stop kubelet.service (so that {RUN_UNIT} has to start it)", stopped[0] == 0,
                     excerpt(stopped))
    result = container.run(["systemctl", "start", RUN_UNIT], timeout=UNIT_START_TIMEOUT)
    fields = ("ActiveState", "SubState", "Result", "ExecMainStatus", "StatusText", "ExecMainExitTimestampMonotonic",
              "ExecMainStartTimestampMonotonic")
    state = container.show(RUN_UNIT, *fields)
    config = container.show(CONFIG_UNIT, *fields)
    detail = (excerpt(result) + f"\n{RUN_UNIT}: {state}\njournal:\n{container.journal(RUN_UNIT, 40)}"
              f"\n{CONFIG_UNIT}: {config}\njournal:\n{container.journal(CONFIG_UNIT, 20)}")
    if result[0] is None:
        jobs = container.run(["systemctl", "list-jobs", "--no-pager"], timeout=30)[1]
        detail += f"\nthe start job did not finish within {UNIT_START_TIMEOUT} s (an ordering deadlock?); jobs:\n{jobs}"
    report.check(f"e: systemctl start {RUN_UNIT} (the shipped unit) finishes: active (exited), Result=success",
                 result[0] == 0 and state.get("ActiveState") == "active" and state.get("SubState") == "exited"
                 and state.get("Result") == "success", detail, info=f"{result[3] * 1000:.0f} ms")
    config_done = int(config.get("ExecMainExitTimestampMonotonic") or 0)
    run_started = int(state.get("ExecMainStartTimestampMonotonic") or 0)
    report.check(f"e: it pulled in {CONFIG_UNIT} (Requires=), which finished before the run phase started",
                 config.get("ActiveState") == "active" and config.get("Result") == "success"
                 and 0 < config_done <= run_started, detail)
    report.check("e: nodeboot's sd_notify STATUS= reached systemd (Type=oneshot, NotifyAccess=main)",
                 bool(state.get("StatusText")), f"{RUN_UNIT}: {state}", info=state.get("StatusText"))
    if units is None:
        return
    after = identities(container)
    kubelet = after["kubelet.service"]
    report.check(f"e: {RUN_UNIT} started the kubelet again from inside its own start job",
                 kubelet.get("ActiveState") == "active"
                 and kubelet.get("InvocationID") != units["kubelet.service"].get("InvocationID"),
                 f"kubelet.service before: {units['kubelet.service']}\nafter: {kubelet}", info=f"pid {kubelet.get('MainPID')}")
    report.check("e: containerd was not restarted", after["containerd.service"] == units["containerd.service"],
                 f"before: {units['containerd.service']}\nafter: {after['containerd.service']}")
    changed = sorted(p for p, v in snapshot(container).items() if files.get(p) != v)
    report.check(f"e: no file under {', '.join(NODE_DIRS)} changed", not changed, "changed: " + ", ".join(changed))
    status, problem = read_status(container)
    actions = {a.get("unit"): a for a in (status or {}).get("units", {}).get("actions", [])}
    written = [f for f in (status or {}).get("files", []) if f.get("action") != "unchanged"]
    report.check("e: status.json: no file written, containerd left alone, the kubelet started (not running)",
                 bool(status) and not written and actions.get("containerd.service", {}).get("action") == "none"
                 and actions.get("kubelet.service", {}).get("action") == "start"
                 and actions.get("kubelet.service", {}).get("result") == "ok",
                 problem or f"files written: {written}\nunits: {json.dumps(status.get('units'))[:800]}")


def scenario_crashing_kubelet(container, cloud, args, report):
    """f: a kubelet that exits a second after systemd started it (Type=simple: systemd calls it active once forked).
    init --wait-ready must not wait out its timeout: the register phase watches kubelet.service and fails at once,
    naming it and quoting its journal."""
    standin = container.path("/usr/bin/kubelet")
    with open(standin) as f:
        good = f.read()
    write(standin, KUBELET_CRASHING, 0o755)
    container.run(["systemctl", "stop", "kubelet.service"], timeout=UNIT_TIMEOUT)
    result = container.run(args + ["--wait-ready", "--register-timeout", "120"], env=init_env(cloud),
                           timeout=INIT_TIMEOUT)
    status, _, err, seconds = result[:4]
    report.check("f: init --wait-ready with a kubelet that exits after 1 s fails (exit 1) well before its 120 s timeout",
                 status == 1 and seconds < 30, excerpt(result), info=f"{seconds:.1f} s")
    report.check("f: its stderr names kubelet.service and quotes the kubelet's journal",
                 "kubelet.service" in err and "unknown flag: --bogus" in err, excerpt(result),
                 info=next((line.strip()[:160] for line in err.splitlines() if "error:" in line), ""))
    write(standin, good, 0o755)
    container.run(["systemctl", "reset-failed", "kubelet.service"], timeout=UNIT_TIMEOUT)


def write_bad_dropin(container, toml):
    body = "\n".join("      " + line for line in toml.splitlines())
    write(container.path(BAD_DROPIN), "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  containerd:\n"
          f"    config: |\n{body}\n")


def scenario_failing(container, cloud, args, report):
    """c: a containerd config containerd refuses: init exits 1 naming containerd.service, quoting its journal."""
    for index, (toml, expected) in enumerate(BAD_CONFIGS):
        write_bad_dropin(container, toml)
        result = container.run(args, env=init_env(cloud), timeout=INIT_TIMEOUT)
        if result[0] == 2 and index + 1 < len(BAD_CONFIGS):
            report.check(f"c: nodeboot refuses the containerd TOML {toml.strip()!r} before writing anything (exit 2)",
                         True)
            continue
        break
    status, out, err = result[:3]
    report.check(f"c: init with a bad containerd config ({toml.strip()!r} in {BAD_DROPIN}) exits 1", status == 1,
                 excerpt(result))
    report.check("c: its stderr names containerd.service", "containerd.service" in err, excerpt(result))
    journal = container.journal("containerd.service", 100)
    quoted = [line.strip() for line in err.splitlines()
              if expected in line and any(line.strip() and line.strip() in j or j.strip() and j.strip() in line
                                          for j in journal.splitlines())]
    report.check(f"c: its stderr quotes containerd's journal ({expected!r})", bool(quoted),
                 excerpt(result) + f"\ncontainerd's journal:\n{journal[-2000:]}",
                 info=(quoted[0][:120] if quoted else ""))
    state, problem = read_status(container)
    error = (state or {}).get("error") or {}
    report.check("c: status.json records the failure", bool(state) and state.get("result") == "failed"
                 and "containerd" in json.dumps(error), problem or f"error: {error}")
    # The next scenarios start without the bad config, and with containerd stopped rather than restarting every 5 s
    # (Debian's unit: Restart=always) on the bad config.toml, which the next init replaces.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(container.path(BAD_DROPIN))
    container.run(["systemctl", "stop", "containerd.service"], timeout=UNIT_TIMEOUT)
    container.run(["systemctl", "reset-failed", "containerd.service"], timeout=UNIT_TIMEOUT)


def write_ipamd_nodeconfig(container, variables):
    """The NodeConfig drop-in whose spec.instance.environment.nodeboot-ipamd init turns into the unit's drop-in."""
    # The container shares this host's network: the daemon must not touch its links, routes or rules.
    variables = dict(variables, NODEBOOT_IPAMD_HOST_NETWORK="skip")
    body = "".join(f"        {name}: {json.dumps(value)}\n" for name, value in sorted(variables.items()))
    write(container.path(IPAMD_NODECONFIG), "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n"
          f"  instance:\n    environment:\n      nodeboot-ipamd:\n{body}")


def journal_cursor(container):
    out = container.run(["journalctl", "-n", "0", "--show-cursor", "--no-pager"], timeout=30)[1]
    return next((line.split("cursor: ", 1)[1].strip() for line in out.splitlines() if "cursor: " in line), None)


def unit_jobs(container, cursor, units):
    """PID 1's job lines since CURSOR for UNITS, in journal order: [(unit, "starting" or "started")]."""
    argv = ["journalctl", "_PID=1", "-o", "json", "--no-pager"] + ([f"--after-cursor={cursor}"] if cursor else [])
    events = []
    for line in container.run(argv, timeout=30)[1].splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            kind = {JOB_STARTING: "starting", JOB_STARTED: "started"}.get(entry.get("MESSAGE_ID"))
            if kind and entry.get("UNIT") in units:
                events.append((entry["UNIT"], kind))
    return events


def ipamd_status_request(container):
    """(how it was asked, status, stdout, stderr) of one status request: python3 in the container when the tree has
    it, else this Python on the host through the container's root."""
    if os.access(container.path("/usr/bin/python3"), os.X_OK):
        result = container.run(["python3", "-c", IPAMD_STATUS_CLIENT, IPAMD_SOCKET], timeout=30)
        return "python3 in the container", *result[:3]
    status, out, err = run_agent([sys.executable, "-c", IPAMD_STATUS_CLIENT, container.path(IPAMD_SOCKET)], "/",
                                 {"PATH": PATH, "LANG": "C.UTF-8"}, 30)
    return "from the host through the container's root", status, out, err


def scenario_ipamd(container, cloud, args, report):
    """g: init with --daemon containerd --daemon nodeboot-ipamd --daemon kubelet and the testbed's IMDS endpoint in
    spec.instance.environment.nodeboot-ipamd: the daemon is started between containerd and the kubelet (the kubelet's
    start job only after ipamd's READY=1), serves its socket (0660) and answers a status request; stopped, it exits 0
    and removes the socket."""
    # From stopped units, so that each start in the journal is init's: the kubelet may be in auto-restart after f and
    # c; nodeboot-ipamd.service is not enabled (only init starts it), stopping it is for a repeated run.
    for unit in ("kubelet.service", IPAMD):
        container.run(["systemctl", "stop", unit], timeout=UNIT_TIMEOUT)
        container.run(["systemctl", "reset-failed", unit], timeout=UNIT_TIMEOUT)
    write_ipamd_nodeconfig(container, cloud.env)
    cursor = journal_cursor(container)
    result = container.run(args + IPAMD_DAEMONS, env=init_env(cloud), timeout=INIT_TIMEOUT)
    state = container.show(IPAMD, "ActiveState", "SubState", "Result", "StatusText", "MainPID", "Environment")
    ok = report.check(f"g: init {' '.join(IPAMD_DAEMONS)} with {IPAMD_NODECONFIG} exits 0", result[0] == 0,
                      excerpt(result) + f"\n{IPAMD}: {state}\njournal:\n{container.journal(IPAMD, 40)}",
                      info=f"{result[3] * 1000:.0f} ms")
    try:
        with open(container.path(IPAMD_ENVIRONMENT)) as f:
            dropin = f.read()
    except OSError as error:
        dropin = f"({error})"
    loaded = state.get("Environment", "")
    report.check(f"g: spec.instance.environment.nodeboot-ipamd became {IPAMD_ENVIRONMENT}, loaded by systemd",
                 all(f'Environment="{k}={v}"' in dropin and f"{k}={v}" in loaded for k, v in cloud.env.items()),
                 f"{IPAMD_ENVIRONMENT}:\n{dropin}\nsystemctl show -p Environment: {loaded}")
    if not ok:
        report.skip("g: the daemon's checks", "init failed")
        return

    status, problem = read_status(container)
    actions = [a for a in (status or {}).get("units", {}).get("actions", []) if a.get("unit") in IPAMD_ORDER]
    report.check("g: status.json: containerd → nodeboot-ipamd → kubelet, each started ok",
                 [a.get("unit") for a in actions] == IPAMD_ORDER
                 and all(a.get("action") == "start" and a.get("result") == "ok" for a in actions),
                 problem or f"units: {json.dumps(status.get('units'))[:800]}",
                 info=", ".join(f"{a['unit'].split('.')[0]} {a.get('action')} {a.get('milliseconds', 0):.0f} ms"
                                for a in actions))
    expected = [(unit, kind) for unit in IPAMD_ORDER for kind in ("starting", "started")]

    def journaled():  # PID 1's lines reach the journal a moment after the state changes
        found = unit_jobs(container, cursor, IPAMD_ORDER)
        return found if len(found) >= len(expected) else None
    events = wait_for(journaled, 5) or unit_jobs(container, cursor, IPAMD_ORDER)
    report.check("g: the journal (PID 1): each start job begins only after the unit before it started"
                 " (ipamd's Started = its READY=1)", events == expected,
                 f"expected: {expected}\nPID 1's job lines since the run: {events}\n"
                 f"units: {json.dumps((status or {}).get('units'))[:800]}",
                 info=" → ".join(unit for unit, kind in events if kind == "started"))

    state = container.show(IPAMD, "ActiveState", "SubState", "StatusText", "MainPID", "Slice")
    report.check(f"g: {IPAMD} is active (running) with a STATUS= text",
                 state.get("ActiveState") == "active" and state.get("SubState") == "running"
                 and bool(state.get("StatusText")),
                 f"{IPAMD}: {state}\njournal:\n{container.journal(IPAMD, 40)}", info=state.get("StatusText"))
    try:
        mode = stat.filemode(os.lstat(container.path(IPAMD_SOCKET)).st_mode)
    except OSError as error:
        mode = f"({error.strerror})"
    report.check(f"g: {IPAMD_SOCKET} is a socket with mode 0660", mode == "srw-rw----", f"{IPAMD_SOCKET}: {mode}",
                 info=mode)

    how, code, out, err = ipamd_status_request(container)
    try:
        reply = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        reply = {}
    body = reply.get("status") or {}
    report.check(f"g: a status request on the socket answers ok ({how})",
                 code == 0 and reply.get("ok") is True and isinstance(body, dict),
                 excerpt((code, out, err)), info=f"{body.get('free')} free of {body.get('total')},"
                                                 f" {len(body.get('enis') or [])} ENIs")
    document = json.loads(cloud.imds("/latest/dynamic/instance-identity/document"))
    report.check("g: the daemon read the instance from the testbed's IMDS (the drop-in's endpoint)",
                 body.get("instance") == document["instanceId"] and bool(body.get("enis")),
                 f"status reply: {json.dumps(reply)[:800]}\nIMDS instance: {document['instanceId']}",
                 info=body.get("instance"))
    written = os.path.exists(container.path(IPAMD_CONFLIST))
    report.check(f"g: {IPAMD_CONFLIST} is there only if an address is free",
                 isinstance(body.get("free"), int) and written == (body.get("free") > 0),
                 f"conflist present: {written}; free addresses: {body.get('free')}\n"
                 f"journal:\n{container.journal(IPAMD, 20)}",
                 info=f"{'written' if written else 'not written'}, {body.get('free')} free")

    stopped = container.run(["systemctl", "stop", IPAMD], timeout=UNIT_TIMEOUT)
    state = container.show(IPAMD, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    report.check(f"g: systemctl stop {IPAMD}: Result=success, the daemon exited 0 (SIGTERM)",
                 stopped[0] == 0 and state.get("ActiveState") == "inactive" and state.get("Result") == "success"
                 and state.get("ExecMainCode") == "1" and state.get("ExecMainStatus") == "0",
                 excerpt(stopped) + f"\n{IPAMD}: {state}\njournal:\n{container.journal(IPAMD, 20)}",
                 info=f"{stopped[3] * 1000:.0f} ms")
    report.check(f"g: {IPAMD_SOCKET} is gone", not os.path.lexists(container.path(IPAMD_SOCKET)),
                 f"{IPAMD_SOCKET} still exists after the stop")


def scenario_ipamd_refused(container, cloud, args, report):
    """h: a setting the daemon refuses in the NodeConfig's environment for nodeboot-ipamd: it exits 2 printing the
    refusal; init fails naming the unit and quoting that line; RestartPreventExitStatus=2 keeps systemd from
    restarting it every RestartSec."""
    name, value = IPAMD_REFUSED
    refusal = f"ipamd: refused setting: {name}={value}"
    write_ipamd_nodeconfig(container, {**cloud.env, name: value})
    result = container.run(args + IPAMD_DAEMONS, env=init_env(cloud), timeout=INIT_TIMEOUT)
    status, _, err, seconds = result[:4]
    journal = container.journal(IPAMD, 40)
    report.check(f"h: init with {name}={value} for nodeboot-ipamd fails (non-zero exit)",
                 status not in (0, None), excerpt(result), info=f"exit {status}, {seconds * 1000:.0f} ms")
    quoted = next((line.strip() for line in err.splitlines() if refusal in line), "")
    report.check(f"h: its stderr names {IPAMD} and quotes the daemon's journal line ('{refusal} …')",
                 IPAMD in err and bool(quoted) and any(refusal in line for line in journal.splitlines()),
                 excerpt(result) + f"\n{IPAMD}'s journal:\n{journal}", info=quoted[:160])
    state = container.show(IPAMD, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus", "NRestarts")
    report.check(f"h: {IPAMD} failed with exit status 2 (a refused setting)",
                 state.get("ActiveState") == "failed" and state.get("ExecMainCode") == "1"
                 and state.get("ExecMainStatus") == "2", f"{IPAMD}: {state}\njournal:\n{journal}",
                 info=f"Result={state.get('Result')}")
    time.sleep(2 * 2 + 0.5)  # two RestartSec=2 periods
    state = container.show(IPAMD, "ActiveState", "SubState", "NRestarts")
    report.check(f"h: {IPAMD} is not restarted (RestartPreventExitStatus=2): NRestarts=0 after 4.5 s",
                 state.get("NRestarts") == "0" and state.get("ActiveState") == "failed",
                 f"{IPAMD}: {state}\njournal:\n{container.journal(IPAMD, 40)}",
                 info=f"{state.get('ActiveState')}/{state.get('SubState')}")
    report_state, problem = read_status(container)
    error = (report_state or {}).get("error") or {}
    report.check("h: status.json records the failure of nodeboot-ipamd", bool(report_state)
                 and report_state.get("result") == "failed" and IPAMD in error.get("message", ""),
                 problem or f"error: {error}")

    # No trace of g and h for what runs next: no NodeConfig environment, no unit drop-in, the unit stopped, not failed.
    for path in (IPAMD_NODECONFIG, IPAMD_ENVIRONMENT):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(container.path(path))
    with contextlib.suppress(OSError):
        os.rmdir(container.path(os.path.dirname(IPAMD_ENVIRONMENT)))
    container.run(["systemctl", "daemon-reload"], timeout=60)
    container.run(["systemctl", "stop", IPAMD], timeout=UNIT_TIMEOUT)
    container.run(["systemctl", "reset-failed", IPAMD], timeout=UNIT_TIMEOUT)


def print_bench(result, status):
    status_code, _, _, wall, (user, system) = result
    phases = {p["name"]: p for p in (status or {}).get("phases", [])}
    line = f"bench: init wall {wall * 1000:.0f} ms (exit {status_code})"
    if "register" in phases and "start" in phases["register"]:
        register = phases["register"]
        line += f", Node created at {register['start'] + register['milliseconds']:.0f} ms"
    line += f", agent CPU {(user + system) * 1000:.0f} ms (user {user * 1000:.0f} + sys {system * 1000:.0f})"
    if "run" in phases:
        run_ms = phases["run"]["milliseconds"]
        line += f", waiting on systemd (run phase) {run_ms:.0f} ms = {run_ms / (wall * 1000) * 100:.0f}% of the wall time"
    print(line)
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description="nodeboot against a real systemd (systemd-nspawn container).")
    parser.add_argument("--bin-dir", required=True, help="directory holding nodeboot and nodeboot-testbed")
    parser.add_argument("--bench", action="store_true", help="boot and the first init only, then one timing line")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs) and print it")
    parser.add_argument("--units", help="the units to install (default: units/)")
    opts = parser.parse_args()
    if opts.units:
        global UNITS
        UNITS = os.path.abspath(opts.units)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through the teardown below
    bin_dir = os.path.abspath(opts.bin_dir)
    report = Report(detail_lines=60, note_prefix="note: ")

    def skip(reason):
        return report.skip_runner("systemd", reason)

    for binary in ("nodeboot", "nodeboot-testbed"):
        if not os.access(os.path.join(bin_dir, binary), os.X_OK):
            print(f"systemd-test: {os.path.join(bin_dir, binary)} is missing (build first: swift build)",
                  file=sys.stderr)
            return 2
    if os.geteuid() != 0:
        return skip("needs root: overlayfs, systemd-nspawn")
    for tool in ("systemd-nspawn", "nsenter", "systemctl"):
        if not shutil.which(tool):
            return skip(f"{tool} is not installed (apt-get install systemd-container util-linux)")
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read():
            return skip("no overlayfs in this kernel")
    tree_start = time.monotonic()
    tree, why = systemd_tree(PROJECT)
    if not tree:
        return skip(why)
    tree_seconds = time.monotonic() - tree_start

    scratch = tempfile.mkdtemp(prefix="nodeboot-systemd-test-")
    container, testbed = Container(tree, scratch), None
    started = time.monotonic()
    try:
        if not opts.bench:  # the units on the host: systemd-analyze verify --root (scripts/verify-units.py)
            with overlay(tree, os.path.join(scratch, "verify")) as verify_root:
                load_verify_units().run_checks(verify_root, [UNITS, BOOT_UNITS], report, "bookworm cloud-init 22.4",
                                               "cloud-init.service")
        root = container.mount()
        units = prepare_image(root, bin_dir, report)
        if not opts.bench:
            container.devices = loop_devices(scratch, 2, container.stack)
            container.local_devices = loop_devices(scratch, 4, container.stack, prefix="local")
            container.md = md_support(container.local_devices, container.stack)
        state = container.boot()
        failed = container.run(["systemctl", "--failed", "--no-legend", "--plain"], timeout=30)[1].strip()
        report.check(f"boot: systemd 252 in {container.name} reached {state}", True,
                     info=f"{container.boot_seconds:.1f} s; tree {tree_seconds:.1f} s"
                     + (f"; failed units: {failed}" if failed else ""))
        skipped = container.show("kubelet.service", "ActiveState", "ConditionResult")
        report.check("boot: kubelet.service (enabled) was skipped: the node is not configured yet",
                     skipped.get("ActiveState") == "inactive" and skipped.get("ConditionResult") == "no",
                     f"kubelet.service: {skipped}\njournal:\n{container.journal('kubelet.service', 20)}")
        ipamd = container.show(IPAMD, "ActiveState", "UnitFileState", "NRestarts")
        report.check(f"boot: {IPAMD} is not started by systemd (not enabled: only init starts it, when asked to)",
                     ipamd.get("ActiveState") == "inactive" and ipamd.get("UnitFileState") != "enabled",
                     f"{IPAMD}: {ipamd}\njournal:\n{container.journal(IPAMD, 12)}")
        helped = container.run(["/usr/bin/nodeboot", "--help"], timeout=30)
        report.check("nodeboot runs in the container", helped[0] == 0, excerpt(helped))

        for name in units:
            result = container.run(["systemd-analyze", "verify", name], timeout=60)
            report.check(f"verify in the container: {name}", result[0] == 0 and not (result[1] + result[2]).strip(),
                         excerpt(result))

        testbed, printed = start_testbed(os.path.join(bin_dir, "nodeboot-testbed"), testbed_config(scratch), scratch)
        cloud = Cloud(printed, bin_dir)
        report.check("testbed serving (IMDS, AWS, Kubernetes API) on the host's loopback", True,
                     info=f"kube {printed['kube']}")
        # Both phases in one run: the run unit's command line without --skip config (and without ipamd, g's).
        args = without(without_ipamd(exec_start(os.path.join(BOOT_UNITS, RUN_UNIT))), "--skip", "config")
        args[0] = "/usr/bin/nodeboot"
        scenario_full(container, cloud, args, report, opts.bench)
    except Fatal as error:
        report.check("setup", False, str(error))
    except (OSError, RuntimeError, ValueError, KeyError, subprocess.SubprocessError) as error:
        report.check("setup", False, f"{type(error).__name__}: {error}\nnspawn log:\n{tail(container.log)}")
    except KeyboardInterrupt:
        print("systemd-test: interrupted", file=sys.stderr)
        return 130
    finally:
        if testbed:
            stop_process(testbed)
        container.close()
        if opts.keep:
            print(f"systemd-test: kept {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"systemd: {time.monotonic() - started:.1f} s")
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
