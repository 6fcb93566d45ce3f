#!/usr/bin/env python3
"""nodeboot against a real systemd 252, containerd 1.6 and D-Bus: a Debian bookworm tree booted with systemd-nspawn.

    scripts/systemd-test.py --bin-dir DIR [--bench] [--keep] [--units DIR]

The tree (scripts/systemd-tree.sh, cached under /var/cache/nodeboot) is never written: the container runs on an overlay
of it whose upper layer is in a temporary directory. The container shares the host's network namespace (no
--private-network), so it reaches the testbed (`nodeboot-testbed serve`, started here on 127.0.0.1) as an instance
reaches IMDS and AWS. Installed as a node image would have them: DIR/nodeboot as /usr/bin/nodeboot, units/ in
/etc/systemd/system (kubelet.service and nodeboot.service enabled), the kubelet version file and the ECR credential
provider, plus two stand-ins that the output names: a kubelet (there is no kubelet binary for this machine) and
iptables (the container has no CAP_NET_ADMIN in the host's network namespace, and must not change the host's firewall).

First (not with --bench) the host-side unit checks of scripts/verify-units.py (systemd-analyze verify --root on an
overlay of the tree); in the booted container `systemd-analyze verify` again, with the real nodeboot binary.

The scenario, with the command line of units/nodeboot.service's ExecStart plus --register-node:
  a. first `nodeboot init`: exit 0; containerd running with the written config (ctr version, CRI plugin ok, the
     sandbox image of /etc/containerd/config.toml in `containerd config dump` and in the CRI plugin's start line);
     kubelet.service active with its flags (the stand-in's argv), both in runtime.slice; the Node in the testbed's API
     (providerID, hostname/instance-type/zone labels); /run/nodeboot/status.json.
  b. second `nodeboot init`: exit 0, no node file changed (inode, mtime, size), containerd and the kubelet not
     restarted (MainPID, InvocationID, start time), status.json says so.
  e. the kubelet stopped, then the shipped nodeboot.service started by systemd (testbed endpoints in a test drop-in):
     active (exited), its sd_notify STATUS= seen, the kubelet started again from inside nodeboot.service's start job
     (a unit ordered after nodeboot.service would deadlock here), containerd and the files untouched.
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
--bench: boot and scenario a only, then one line: time to the Node, the agent's CPU time, the time spent waiting on
systemd (the run phase).
--units DIR: install other units (e.g. a kubelet.service ordered After=nodeboot.service, to see e time out).

One line per check, then `N passed, N failed, N skipped`; exit 1 if one failed, 2 on a usage error. Not root, no
systemd-nspawn/overlayfs, or no tree (no debootstrap, no mirror): `systemd: skipped (<reason>)`, exit 0.
"""
import argparse
import base64
import contextlib
import fcntl
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

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNITS = os.path.join(PROJECT, "units")
AEMM = os.path.join(PROJECT, "Sources", "Testbed", "Resources", "aemm-default-config.json")
CACHE = os.environ.get("NODEBOOT_TREE_CACHE", "/var/cache/nodeboot")

NODE_NAME = "ip-172-16-34-43.us-west-2.compute.internal"  # the testbed's DescribeInstances PrivateDnsName (set below)
CLUSTER = "my-cluster"  # the testbed's default cluster, whose tokens its API server accepts
KUBELET_VERSION = "v1.31.2-eks-standin"
BOOT_TIMEOUT = 30
INIT_TIMEOUT = 150
UNIT_TIMEOUT = 60
UNIT_START_TIMEOUT = 90  # systemctl start nodeboot.service (TimeoutStartSec=15min would be the unit's own bound)
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
    names = verify_units.install_units(root, UNITS)
    services = [n for n in verify_units.unit_files(UNITS)[0] if n.endswith(".service")]
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
    report.check("neither kubelet.service nor containerd.service is ordered after nodeboot.service (as loaded,"
                 " with nodeboot's drop-ins)", "nodeboot.service" not in after, f"After= {after}")


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
    ok, result = first_init(container, cloud, args, report)
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


def scenario_unit(container, cloud, report, files, units):
    """e: systemd runs the shipped nodeboot.service (testbed endpoints from a test drop-in). The kubelet is stopped
    first, so nodeboot has to start it from inside nodeboot.service's own start job: with kubelet.service ordered after
    nodeboot.service that start would wait for the job that waits for it (a deadlock until a timeout). Its ExecStart
    has no --register-node: nodeboot waits for the kubelet's Node, which the first init created."""
    dropin = "/etc/systemd/system/nodeboot.service.d/90-testbed.conf"
    write(container.path(dropin), "# scripts/systemd-test.py: the testbed stands in for IMDS and the AWS endpoints\n"
          "[Service]\n" + "".join(f"Environment={k}={v}\n" for k, v in sorted(cloud.env.items())))
    container.run(["systemctl", "daemon-reload"], timeout=60)
    if cloud.kube(f"/api/v1/nodes/{NODE_NAME}")[0] == 404:
        cloud.create_node(NODE_NAME)
    if units is not None:
        stopped = container.run(["systemctl", "stop", "kubelet.service"], timeout=UNIT_TIMEOUT)
        report.check("e: systemctl stop kubelet.service (so that nodeboot.service has to start it)", stopped[0] == 0,
                     excerpt(stopped))
    result = container.run(["systemctl", "start", "nodeboot.service"], timeout=UNIT_START_TIMEOUT)
    state = container.show("nodeboot.service", "ActiveState", "SubState", "Result", "ExecMainStatus", "StatusText")
    detail = excerpt(result) + f"\nnodeboot.service: {state}\njournal:\n{container.journal('nodeboot.service', 40)}"
    if result[0] is None:
        jobs = container.run(["systemctl", "list-jobs", "--no-pager"], timeout=30)[1]
        detail += f"\nthe start job did not finish within {UNIT_START_TIMEOUT} s (an ordering deadlock?); jobs:\n{jobs}"
    report.check("e: systemctl start nodeboot.service (the shipped unit) finishes: active (exited), Result=success",
                 result[0] == 0 and state.get("ActiveState") == "active" and state.get("SubState") == "exited"
                 and state.get("Result") == "success", detail, info=f"{result[3] * 1000:.0f} ms")
    report.check("e: nodeboot's sd_notify STATUS= reached systemd (Type=oneshot, NotifyAccess=main)",
                 bool(state.get("StatusText")), f"nodeboot.service: {state}", info=state.get("StatusText"))
    if units is None:
        return
    after = identities(container)
    kubelet = after["kubelet.service"]
    report.check("e: nodeboot.service started the kubelet again from inside its own start job",
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
        print(f"systemd: skipped ({reason})")
        report.counts["skipped"] += 1
        return report.summary()

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
                load_verify_units().run_checks(verify_root, UNITS, report)
        root = container.mount()
        units = prepare_image(root, bin_dir, report)
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
        args = exec_start(os.path.join(UNITS, "nodeboot.service"))
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
