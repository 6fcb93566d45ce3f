#!/usr/bin/env python3
"""The real runtime (issue 13): Debian's containerd 1.6 runs containers with `ctr run --cni` on a CNI chain.

    scripts/ctr-cni.py [--bin-dir DIR] [--chain bridge|nodeboot|all] [--plugin PATH] [--cache-dir DIR] [--keep]

What it proves, per chain, with Debian's containerd 1.6.20, runc 1.1.5 and ctr (nothing else drives the plugins):
  * a container image is made offline from Debian's busybox-static (an OCI layout tarball: one uncompressed layer,
    /bin/busybox and a link per applet) and imported with `ctr images import`; it is cached in
    CACHE/ctr-cni/ (default /var/cache/nodeboot; NODEBOOT_CACHE overrides) and rebuilt only when busybox changes;
  * a private containerd (its own root, state, socket and opt dir under a scratch dir; the CRI plugin off) runs in
    the node's network namespace and in a mount namespace of its own, where /etc/cni/net.d, /opt/cni/bin (and for
    nodeboot, /run/nodeboot) are bind mounts of the chain's dirs. `ctr run --cni` has no flags for those paths: it
    calls go-cni with its defaults, /etc/cni/net.d and /opt/cni/bin. ctr runs in the same namespaces (nsenter), so
    the host's /etc, /opt, /run and any containerd of the host are untouched;
  * two containers started with `ctr run --rm --cni IMAGE ID sleep` each get an address from the chain on eth0
    (`ip -4 addr` inside the container, run with `ctr task exec`), one pings the other and fetches a page from the
    other's busybox httpd, and killing one (`ctr task kill`: ctr's run command then calls go-cni's Remove, i.e. the
    chain's DEL, and deletes the task and the container) releases its address while the other keeps its own.

Chains:
  bridge    Debian's bridge + host-local (+ portmap, loopback in the bin dir), in a scratch node namespace. This
            proves the runner; "released" is host-local's lease file going away.
  nodeboot  the conflist `nodeboot ipamd` writes (docs/ipamd.md §8: nodeboot-cni, then portmap), unchanged: ipamd
            runs in a node namespace against nodeboot-testbed (an m5.large; the node namespace's eth0 is the primary
            ENI, its peer in a namespace of its own where the testbed listens; WARM_IP_TARGET=3 keeps the pool on the
            primary ENI, as the testbed's process has no hook to plug in a second ENI's NIC), and its
            ROOT/etc/cni/net.d is containerd's /etc/cni/net.d (the conflist names the socket under ROOT; an ipamd
            that names /run/nodeboot/ipamd.sock gets ROOT/run/nodeboot bound there). Addresses
            are the ENI's (the testbed's VPC 192.0.2.0/24); "released" is ipamd's status over its socket (one
            JSON line `{"v":"1.0","op":"status"}` in, one out: `assigned` drops, `cooling` rises) and the address
            leaving the checkpoint's allocations.

Also per chain: the detached form (`ctr run -d --cni`, then `ctr task kill`, `ctr task rm`, `ctr container rm`): in
containerd 1.6 no DEL reaches the chain (only the foreground `ctr run` calls Remove), so the address stays held; what
the node namespace keeps of it is printed (nodeboot: the prio 512 to-rule). --missed-del-wait SECONDS then watches
ipamd for its release (its reconcile frees an address 5 min old with no host route to a veth).

Output: one line per check (`ok`, `FAIL` with the detail below it, `skip NAME (reason)`), then
`N passed, N failed, N skipped`; exit 1 when a check failed. Not root, or a Debian package missing
(scripts/setup.sh test installs them): `ctr-cni: skipped (<reason>)`, exit 0.
"""
import argparse
import contextlib
import hashlib
import io
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testkit import Report, ipamd_request, popen, stop_process  # noqa: E402

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF_DIR = "/usr/lib/cni"
BUSYBOX = "/bin/busybox"  # busybox-static's: statically linked, so the image needs nothing else
DEBS = ("containerd", "runc", "busybox-static", "containernetworking-plugins", "iptables", "iproute2", "util-linux")
IMAGE = "localhost/nodeboot/ctr-cni-busybox:1"
IMAGE_FORMAT = "1"  # bump when the image's layout below changes: the cache key includes it
BRIDGE_SUBNET = "10.252.0.0/24"
INSTANCE_ID = "i-0c7cc1ab2c3d4e5f6"
PRIMARY_MAC = "0e:49:61:0f:c3:12"
VPC = "192.0.2.0/24"


class Failed(Exception):
    """A step the rest of a chain depends on did not work: the chain stops with this as its failure."""


def run(argv, timeout=60, check=False, **kwargs):
    result = subprocess.run(argv, stdin=kwargs.pop("stdin", subprocess.DEVNULL), capture_output=True, text=True,
                            timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise Failed(f"{' '.join(argv)}: exit {result.returncode}: {(result.stderr or result.stdout).strip()[-800:]}")
    return result


def missing_prerequisites():
    if os.geteuid() != 0:
        return "needs root: network and mount namespaces, containerd"
    lacking = [tool for tool in ("containerd", "ctr", "runc", "containerd-shim-runc-v2", "ip", "nsenter", "unshare",
                                 "iptables") if shutil.which(tool) is None]
    lacking += [p for p in (BUSYBOX, *(os.path.join(REF_DIR, n) for n in ("bridge", "host-local", "portmap",
                                                                           "loopback"))) if not os.path.exists(p)]
    if lacking:
        return f"missing {', '.join(lacking)}: scripts/setup.sh test installs Debian's {' '.join(DEBS)}"
    return None


# ---------------------------------------------------------------------------------------------------------------
# The image: an OCI layout tarball made here from busybox-static, cached outside the repository.

def _tar_bytes(entries):
    """A deterministic tar (owner root, mtime 0) of (name, kind, data-or-target, mode) entries."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload, mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "root", "root", mode
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def image_tarball(cache_root):
    """(path, how): the OCI layout tarball of IMAGE for the busybox installed now; built when the cache lacks it."""
    with open(BUSYBOX, "rb") as f:
        busybox = f.read()
    key = hashlib.sha256(busybox + IMAGE_FORMAT.encode() + IMAGE.encode()).hexdigest()[:16]
    directory = os.path.join(cache_root, "ctr-cni")
    path = os.path.join(directory, f"busybox-oci-{key}.tar")
    if os.path.exists(path):
        return path, f"cached {path}"
    start = time.monotonic()
    applets = run([BUSYBOX, "--list"], check=True).stdout.split()
    entries = [(d, "dir", None, 0o755) for d in ("bin", "dev", "etc", "proc", "sys", "root", "var", "var/www")]
    entries += [("tmp", "dir", None, 0o1777), ("bin/busybox", "file", busybox, 0o755)]
    entries += [(f"bin/{a}", "symlink", "busybox", 0o777) for a in sorted(set(applets)) if a != "busybox"]
    entries += [("etc/passwd", "file", b"root:x:0:0:root:/root:/bin/sh\n", 0o644),
                ("etc/group", "file", b"root:x:0:\n", 0o644),
                ("var/www/index.html", "file", b"hello-from-ctr-cni\n", 0o644)]
    layer = _tar_bytes(entries)
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/"},
                         "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}, sort_keys=True).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": config_digest, "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                       "digest": layer_digest, "size": len(layer)}]}, sort_keys=True).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": len(manifest),
        "annotations": {"io.containerd.image.name": IMAGE, "org.opencontainers.image.ref.name": "1"}}]}).encode()
    blobs = [(f"blobs/sha256/{d.split(':')[1]}", "file", data, 0o644)
             for d, data in ((layer_digest, layer), (config_digest, config), (manifest_digest, manifest))]
    tarball = _tar_bytes([("oci-layout", "file", b'{"imageLayoutVersion":"1.0.0"}', 0o644),
                          ("index.json", "file", index, 0o644), ("blobs", "dir", None, 0o755),
                          ("blobs/sha256", "dir", None, 0o755), *blobs])
    os.makedirs(directory, exist_ok=True)
    partial = f"{path}.{os.getpid()}.tmp"
    with open(partial, "wb") as f:
        f.write(tarball)
    os.rename(partial, path)  # atomic: a concurrent run sees no file or the whole one
    for name in os.listdir(directory):
        if name.startswith("busybox-oci-") and name != os.path.basename(path) and not name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(directory, name))
    took = time.monotonic() - start
    return path, f"built {path} ({len(tarball) // 1024} KiB, {len(applets)} applets) in {took:.2f} s"


# ---------------------------------------------------------------------------------------------------------------
# Scratch state: namespaces, links, processes, the directory.

class Scratch:
    def __init__(self, keep=False):
        self.dir = tempfile.mkdtemp(prefix="nodeboot-ctr-cni-")
        self.tag = f"ncc{os.getpid() % 100000}"
        self.netns, self.stops, self.keep, self.cache = [], [], keep, None

    def name(self, suffix):
        return f"{self.tag}-{suffix}"

    def add_netns(self, name):
        run(["ip", "netns", "add", name], check=True)
        self.netns.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)

    def close(self):
        for stop in reversed(self.stops):
            try:
                stop()
            except Exception as error:  # noqa: BLE001 - cleanup goes on; say what was left
                print(f"      cleanup: {type(error).__name__}: {error}", flush=True)
        for name in self.netns:
            run(["ip", "netns", "del", name])
        if self.keep:
            print(f"      scratch kept: {self.dir}", flush=True)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------------
# A private containerd in the node's network namespace and in its own mount namespace.

MOUNT_SCRIPT = r"""set -e
echo $$ > "$NS_PID"
# Only this namespace sees what follows: nothing propagates back to the host.
mount --make-rprivate /
# The node's sysfs (its /sys/class/net), as `ip netns exec` mounts it, but keeping the cgroup hierarchies that runc
# needs (ip netns exec itself hides them: runc then says "no cgroup mount found in mountinfo").
mkdir -p "$NS_SCRATCH/cgroup"
mount --rbind /sys/fs/cgroup "$NS_SCRATCH/cgroup"
umount -l /sys
mount -t sysfs "$NS_NAME" /sys
mount --rbind "$NS_SCRATCH/cgroup" /sys/fs/cgroup
for pair in $NS_BINDS; do
    src=${pair%%=*}; dst=${pair#*=}
    if [ ! -d "$dst" ]; then
        # The host lacks the mount point (e.g. /etc/cni): an overlay of its first missing ancestor's parent, so
        # the directory can be made in this namespace's view only.
        base=$dst
        while [ ! -d "$(dirname "$base")" ]; do base=$(dirname "$base"); done
        lower=$(dirname "$base")
        if ! grep -q " $lower overlay " /proc/self/mounts; then
            ov="$NS_SCRATCH/overlay$(echo "$lower" | tr / _)"
            mkdir -p "$ov/upper" "$ov/work"
            mount -t overlay overlay -o "lowerdir=$lower,upperdir=$ov/upper,workdir=$ov/work" "$lower"
        fi
        mkdir -p "$dst"
    fi
    mount --bind "$src" "$dst"
done
exec "$@"
"""


class Containerd:
    """containerd with its own root, state, socket and opt dir under DIR; started in network namespace NETNS and in a
    new mount namespace where each (source, target) of `binds` is bind-mounted (targets the host lacks are made in an
    overlay seen only there). `ctr(...)` runs ctr in the same namespaces."""

    def __init__(self, directory, netns, binds):
        self.dir, self.netns, self.binds = directory, netns, binds
        self.address = os.path.join(directory, "containerd.sock")
        self.proc, self.pid, self.log = None, None, os.path.join(directory, "containerd.log")

    def start(self, timeout=20):
        os.makedirs(self.dir, exist_ok=True)
        config = os.path.join(self.dir, "config.toml")
        with open(config, "w") as f:
            f.write(f'version = 2\nroot = "{self.dir}/root"\nstate = "{self.dir}/state"\n'
                    f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    f'[grpc]\n  address = "{self.address}"\n'
                    f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{self.dir}/opt"\n')
        pid_file = os.path.join(self.dir, "ns.pid")
        env = {**os.environ, "NS_PID": pid_file, "NS_SCRATCH": self.dir, "NS_NAME": self.netns,
               "NS_BINDS": " ".join(f"{src}={dst}" for src, dst in self.binds)}
        with open(self.log, "wb") as log:
            # nsenter, not `ip netns exec`: that remounts /sys, and this keeps the cgroup hierarchies (MOUNT_SCRIPT).
            self.proc = popen(["nsenter", f"--net=/var/run/netns/{self.netns}", "unshare", "--mount",
                               "--propagation", "private", "sh", "-c", MOUNT_SCRIPT, "mount-ns",
                               "containerd", "--config", config],
                              stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failed(f"containerd exited {self.proc.returncode}:\n{self.log_tail()}")
            if os.path.exists(self.address) and os.path.exists(pid_file):
                with open(pid_file) as f:
                    self.pid = int(f.read().strip())
                if self.ctr("version", timeout=10).returncode == 0:
                    return
            time.sleep(0.05)
        raise Failed(f"containerd did not answer on {self.address} within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines=30):
        with open(self.log, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def ctr_argv(self, *args):
        return ["nsenter", "-t", str(self.pid), "-m", "-n", "--", "ctr", "--address", self.address, *args]

    def ctr(self, *args, timeout=60):
        return run(self.ctr_argv(*args), timeout=timeout)

    def stop(self):
        if self.proc is None:
            return
        if self.pid:  # what is left: tasks killed, containers removed (snapshots go with the root dir)
            tasks = self.ctr("tasks", "ls", "-q", timeout=20).stdout.split()
            for task in tasks:
                self.ctr("tasks", "kill", "-s", "SIGKILL", task, timeout=20)
            for task in tasks:
                for _ in range(40):
                    if self.ctr("tasks", "rm", "-f", task, timeout=20).returncode == 0:
                        break
                    time.sleep(0.1)
            for container in self.ctr("containers", "ls", "-q", timeout=20).stdout.split():
                self.ctr("containers", "rm", container, timeout=20)
        stop_process(self.proc, timeout=10)
        self.proc = None


class Container:
    """`ctr run --rm --cni IMAGE ID sleep 3600`, in the foreground as a user would run it (ctr waits on the task and,
    when it ends, calls go-cni's Remove: the chain's DEL), here in the background of this runner."""

    def __init__(self, containerd, cid, log_dir):
        self.containerd, self.id = containerd, cid
        self.log = os.path.join(log_dir, f"ctr-run-{cid}.log")
        self.proc, self.started = None, None

    def start(self, timeout=30):
        with open(self.log, "wb") as log:
            self.started = time.monotonic()
            self.proc = popen(self.containerd.ctr_argv("run", "--rm", "--cni", "--null-io", IMAGE, self.id,
                                                       "/bin/sh", "-c", "httpd -p 80 -h /var/www; exec sleep 3600"),
                              stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        # RUNNING, not merely created: ctr run sets the network up (go-cni's Setup) between creating the task and
        # starting it, and `ctr task exec` already works in a created task.
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failed(f"ctr run --cni {self.id} exited {self.proc.returncode}:\n{self.output()}")
            if self.state() == "RUNNING":
                return time.monotonic() - self.started
            time.sleep(0.05)
        raise Failed(f"ctr run --cni {self.id}: no running task within {timeout} s:\n{self.output()}")

    def state(self):
        """The task's status as `ctr tasks ls` shows it (CREATED, RUNNING, STOPPED), or None."""
        for line in self.containerd.ctr("tasks", "ls", timeout=10).stdout.splitlines()[1:]:
            fields = line.split()
            if fields[:1] == [self.id] and len(fields) >= 3:
                return fields[2]
        return None

    def exec(self, *argv, timeout=30):
        exec_id = f"x{time.monotonic_ns() % 10**12}"
        return self.containerd.ctr("tasks", "exec", "--exec-id", exec_id, self.id, *argv, timeout=timeout)

    def address(self):
        """(IPv4 addresses on eth0 in the container, the raw `ip` output)."""
        out = self.exec("ip", "-o", "-4", "addr", "show", "dev", "eth0")
        found = [part.split("/")[0] for line in out.stdout.splitlines()
                 for part in line.split()[3:4] if line.split()[2:3] == ["inet"]]
        return found, (out.stdout + out.stderr).strip()

    def kill(self, timeout=30):
        """`ctr task kill -s SIGKILL`; waits for `ctr run` to end (its DEL and the container's removal)."""
        start = time.monotonic()
        killed = self.containerd.ctr("tasks", "kill", "-s", "SIGKILL", self.id)
        if killed.returncode != 0:
            raise Failed(f"ctr tasks kill {self.id}: {killed.stderr.strip()}")
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failed(f"ctr run {self.id} did not end within {timeout} s of the kill:\n{self.output()}") from None
        return time.monotonic() - start

    def output(self):
        with open(self.log, errors="replace") as f:
            return f.read()[-1500:]

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.containerd.ctr("tasks", "kill", "-s", "SIGKILL", self.id, timeout=20)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
            stop_process(self.proc)


# ---------------------------------------------------------------------------------------------------------------
# The chains.

def bin_dir(scratch, name, plugins):
    directory = os.path.join(scratch.dir, f"{name}-bin")
    os.makedirs(directory, exist_ok=True)
    for plugin, real in plugins.items():
        os.symlink(real, os.path.join(directory, plugin))
    return directory


def cache_bind(scratch):
    """libcni's results cache (/var/lib/cni/results: ctr offers no other place) in a scratch dir, not the host's."""
    directory = os.path.join(scratch.dir, "cni-cache")
    os.makedirs(directory, exist_ok=True)
    scratch.cache = os.path.join(directory, "results")
    return directory, "/var/lib/cni"


def bridge_chain(scratch):
    """(netns, binds, released(ip), describe): Debian's bridge + host-local + portmap in a scratch node namespace."""
    node = scratch.name("bnode")
    scratch.add_netns(node)
    conf_dir = os.path.join(scratch.dir, "bridge-conf")
    ipam_dir = os.path.join(scratch.dir, "bridge-ipam")
    network = f"{scratch.tag}-br"
    os.makedirs(conf_dir)
    with open(os.path.join(conf_dir, "10-bridge.conflist"), "w") as f:
        json.dump({"cniVersion": "1.0.0", "name": network, "plugins": [
            {"type": "bridge", "bridge": f"{scratch.tag}br", "isGateway": True, "ipMasq": False,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": BRIDGE_SUBNET}]], "dataDir": ipam_dir}},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}]}, f)
    bins = bin_dir(scratch, "bridge", {n: os.path.join(REF_DIR, n) for n in ("bridge", "host-local", "portmap",
                                                                             "loopback")})

    def released(ip):
        lease = os.path.join(ipam_dir, network, ip)
        gone = not os.path.exists(lease)
        return gone, f"host-local's lease {lease} {'is gone' if gone else 'is still there'}"

    def held(ip):
        return os.path.exists(os.path.join(ipam_dir, network, ip))
    return {"netns": node, "binds": [(conf_dir, "/etc/cni/net.d"), (bins, "/opt/cni/bin"), cache_bind(scratch)],
            "released": released, "held": held, "subnet": BRIDGE_SUBNET, "network": network,
            "veth_prefix": "veth"}


def find_binaries(opts):
    """({name: path}, None) or (None, why not): nodeboot, nodeboot-testbed and nodeboot-cni."""
    places = [opts.bin_dir] if opts.bin_dir else []
    places += [os.path.join(PROJECT, ".build", "debug"), os.path.join(PROJECT, ".build", "release")]
    found = {}
    for name in ("nodeboot", "nodeboot-testbed", "nodeboot-cni"):
        if name == "nodeboot-cni" and opts.plugin:
            candidates = [opts.plugin]
        else:
            candidates = [os.path.join(p, name) for p in places]
        path = next((c for c in candidates if os.access(c, os.X_OK)), None)
        if path is None:
            return None, f"no {name} in {', '.join(candidates)} (swift build makes it)"
        found[name] = path
    return found, None


def start_testbed_on(binary, config, netns, host, directory, timeout=20):
    """`nodeboot-testbed serve` in network namespace NETNS, listening on HOST: (process, the environment it exports).
    Its stdout is drained by a thread to the end, so it never blocks on a full pipe."""
    with open(os.path.join(directory, "testbed.log"), "wb") as log:
        proc = popen(["ip", "netns", "exec", netns, binary, "serve", "--config", config, "--host", host,
                      "--kube-ca-out", os.path.join(directory, "kube-ca.crt")], stdout=subprocess.PIPE, stderr=log)
    env, ready = {}, threading.Event()

    def drain():
        for raw in proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith("export ") and "=" in line:
                name, _, value = line[len("export "):].partition("=")
                env[name] = value
            if "AWS_ENDPOINT_URL" in env and "AWS_EC2_METADATA_SERVICE_ENDPOINT" in env:
                ready.set()
        ready.set()
    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(timeout) or "AWS_ENDPOINT_URL" not in env:
        stop_process(proc)
        with open(os.path.join(directory, "testbed.log"), errors="replace") as f:
            raise Failed(f"nodeboot-testbed on {host} printed no endpoints within {timeout} s:\n{f.read()[-1500:]}")
    time.sleep(0.1)  # the rest of its exports (printed in one write)
    return proc, dict(env)


def nodeboot_chain(scratch, binaries, report):
    """ipamd + the testbed as an m5.large in a node namespace; its conflist and socket as containerd's."""
    # The node namespace's eth0 is the primary ENI (its MAC and address); its peer is in a namespace of its own where
    # the testbed listens, so this runner's namespace is not touched and fixed addresses cannot collide.
    node, vpc = scratch.name("node"), scratch.name("vpc")
    scratch.add_netns(node)
    scratch.add_netns(vpc)
    host_address, primary = "198.18.0.1", "198.18.0.2"
    run(["ip", "-n", vpc, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "address", PRIMARY_MAC,
         "netns", node], check=True)
    for argv in (["ip", "-n", vpc, "address", "add", f"{host_address}/30", "dev", "eth0"],
                 ["ip", "-n", vpc, "link", "set", "eth0", "up"],
                 ["ip", "-n", node, "address", "add", f"{primary}/30", "dev", "eth0"],
                 ["ip", "-n", node, "link", "set", "eth0", "up"]):
        run(argv, check=True)
    root = os.path.join(scratch.dir, "node-root")
    os.makedirs(os.path.join(root, "etc", "nodeboot"))
    os.makedirs(os.path.join(root, "etc", "cni", "net.d"))
    os.makedirs(os.path.join(root, "run", "nodeboot"))
    config = os.path.join(scratch.dir, "testbed.json")
    with open(config, "w") as f:
        json.dump({"instance": {
            "metadata": {"values": {"instance-id": INSTANCE_ID, "instance-type": "m5.large", "local-ipv4": primary,
                                    "mac-local-ipv4s": primary, "mac": PRIMARY_MAC}},
            "dynamic": {"values": {"instance-identity-document": {
                "region": "us-west-2", "availabilityZone": "us-west-2f", "instanceId": INSTANCE_ID,
                "instanceType": "m5.large"}}}}}, f)
    with open(os.path.join(root, "etc", "nodeboot", "ipamd.json"), "w") as f:
        json.dump({"schema": "nodeboot.ipamd/v1", "cluster": "my-cluster", "ipFamily": "ipv4", "maxPods": 29,
                   "instanceType": "m5.large", "limits": {"maxENIs": 3, "ipv4PerENI": 10, "source": "table"},
                   "vethPrefix": "eni"}, f)
        f.write("\n")
    # The node reaches the testbed over the link, so it listens on this end of it.
    testbed, env = start_testbed_on(binaries["nodeboot-testbed"], config, vpc, host_address, scratch.dir)
    scratch.stops.append(lambda: stop_process(testbed))
    log_path = os.path.join(scratch.dir, "ipamd.log")
    daemon_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    daemon_env.update(env)
    daemon_env.update({"SWIFT_BACKTRACE": "enable=no", "WARM_IP_TARGET": "3", "IP_COOLDOWN_PERIOD": "60"})
    with open(log_path, "wb") as log:
        ipamd = popen(["ip", "netns", "exec", node, binaries["nodeboot"], "ipamd", "--root", root],
                      stdout=log, stderr=subprocess.STDOUT, env=daemon_env)
    scratch.stops.append(lambda: stop_process(ipamd, timeout=10))
    sock = os.path.join(root, "run", "nodeboot", "ipamd.sock")
    conflist = os.path.join(root, "etc", "cni", "net.d", "10-nodeboot.conflist")
    start = time.monotonic()
    while time.monotonic() - start < 30:
        if ipamd.poll() is not None:
            break
        if os.path.exists(conflist) and os.path.exists(sock):
            break
        time.sleep(0.05)
    ready_s = time.monotonic() - start

    def ipamd_log():
        with open(log_path, errors="replace") as f:
            return f.read()[-2500:]
    if not report.check("nodeboot: `nodeboot ipamd` (testbed m5.large, WARM_IP_TARGET=3) serves and writes its "
                        "conflist", os.path.exists(conflist) and os.path.exists(sock) and ipamd.poll() is None,
                        f"after {ready_s:.1f} s: conflist {os.path.exists(conflist)}, socket {os.path.exists(sock)}, "
                        f"exit {ipamd.poll()}\n{ipamd_log()}", info=f"{ready_s:.2f} s"):
        raise Failed("no ipamd")
    with open(conflist) as f:
        text = f.read()
    report.note(f"conflist: {text.strip()}")
    bins = bin_dir(scratch, "nodeboot", {"nodeboot-cni": binaries["nodeboot-cni"],
                                         "portmap": os.path.join(REF_DIR, "portmap"),
                                         "loopback": os.path.join(REF_DIR, "loopback")})

    def status():
        reply = ipamd_request(sock, {"v": "1.0", "op": "status"})
        if not reply.get("ok"):
            raise Failed(f"ipamd's status: {json.dumps(reply)}")
        return reply["status"]

    def allocated():
        with open(os.path.join(root, "run", "nodeboot", "ipamd", "checkpoint.json")) as f:
            checkpoint = json.load(f)
        return {a.get("address", "").split("/")[0] for a in checkpoint.get("allocations", [])}, checkpoint

    def held(ip):
        return ip in allocated()[0]

    def released(ip):
        addresses, _ = allocated()
        return ip not in addresses, f"checkpoint allocations: {sorted(addresses)}"
    def ec2():
        """{ENI id: its private addresses} as EC2 (the testbed) lists them, through the AWS CLI with the testbed's
        static keys; None when the CLI is not installed."""
        if shutil.which("aws") is None:
            return None
        out = run(["ip", "netns", "exec", vpc, "aws", "--endpoint-url", env["AWS_ENDPOINT_URL"], "--region",
                   "us-west-2", "--output", "json", "ec2", "describe-network-interfaces"], check=True, timeout=60,
                  env={**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}).stdout
        return {eni["NetworkInterfaceId"]: [a["PrivateIpAddress"] for a in eni.get("PrivateIpAddresses", [])]
                for eni in json.loads(out).get("NetworkInterfaces", [])}

    def stop():
        ipamd.send_signal(signal.SIGTERM)
        try:
            return ipamd.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return None
    binds = [(os.path.join(root, "etc", "cni", "net.d"), "/etc/cni/net.d"), (bins, "/opt/cni/bin"), cache_bind(scratch)]
    named = next((p.get("socket", "") for p in json.loads(text).get("plugins", [])
                  if p.get("type") == "nodeboot-cni"), "")
    if named.startswith("/run/nodeboot/"):  # an ipamd whose conflist names the default path even under --root
        binds.append((os.path.join(root, "run", "nodeboot"), "/run/nodeboot"))
    report.check("nodeboot: the conflist's nodeboot-cni names the socket ipamd serves", named in (
        sock, "/run/nodeboot/ipamd.sock"), f"conflist socket {named!r}, ipamd serves {sock}", info=named)
    return {"netns": node, "binds": binds,
            "released": released, "held": held, "subnet": VPC, "status": status, "log": ipamd_log,
            "allocated": allocated, "ec2": ec2, "network": json.loads(text).get("name"), "stop": stop,
            "veth_prefix": "eni"}


def in_subnet(ip, cidr):
    return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)


def node_traces(netns, ips, veth_prefix):
    """What the node namespace still shows of these pod addresses: routes to them, and (nodeboot) host veths."""
    found = []
    routes = run(["ip", "-n", netns, "-4", "route", "show", "table", "all"]).stdout
    found += [line for line in routes.splitlines() if any(line.split()[:1] == [ip] for ip in ips)]
    rules = run(["ip", "-n", netns, "-4", "rule", "show"]).stdout
    found += [f"rule {line}" for line in rules.splitlines() if any(f" {ip} " in f" {line} " for ip in ips)]
    if veth_prefix:
        links = json.loads(run(["ip", "-n", netns, "-j", "link", "show"]).stdout or "[]")
        found += [f"link {link['ifname']}" for link in links if link.get("ifname", "").startswith(veth_prefix)]
    return found


def cache_file(scratch, chain, cid):
    """libcni's results cache entry for ctr's container CID (ctr names the sandbox `<namespace>-<id>`)."""
    return os.path.join(scratch.cache, f"{chain['network']}-default-{cid}-eth0")


def prove(label, chain, scratch, image, report, opts_wait=0):
    t0 = time.monotonic()
    ctrd = Containerd(os.path.join(scratch.dir, f"{label}-containerd"), chain["netns"], chain["binds"])
    scratch.stops.append(ctrd.stop)
    ctrd.start()
    started = time.monotonic() - t0
    version = ctrd.ctr("version").stdout
    server = next((line.split()[-1] for line in version.splitlines()[::-1] if "Version:" in line), "?")
    listing = run(ctrd.ctr_argv()[:6] + ["ls", "/etc/cni/net.d", "/opt/cni/bin"]).stdout.split()
    report.check(f"{label}: a private containerd {server} in the node namespace; ctr's /etc/cni/net.d and "
                 "/opt/cni/bin are the chain's", True, info=f"started in {started:.2f} s; sees {' '.join(listing)}")
    t = time.monotonic()
    imported = ctrd.ctr("images", "import", image)
    if not report.check(f"{label}: ctr images import of the busybox OCI tarball", imported.returncode == 0,
                        imported.stderr + imported.stdout, info=f"{time.monotonic() - t:.2f} s"):
        raise Failed("no image")
    status0 = chain["status"]() if "status" in chain else None
    pods = [Container(ctrd, f"{scratch.tag}-{n}", scratch.dir) for n in ("a", "b")]
    for pod in pods:
        scratch.stops.append(pod.stop)
    ips = {}
    for pod in pods:
        took = pod.start()
        found, raw = pod.address()
        ok = len(found) == 1 and in_subnet(found[0], chain["subnet"]) and chain["held"](found[0])
        report.check(f"{label}: ctr run --cni {pod.id}: eth0 in the container has an address of {chain['subnet']} "
                     "that the chain's IPAM holds; libcni cached the result", ok and os.path.exists(
                         cache_file(scratch, chain, pod.id)),
                     f"ip addr in the container: {raw}\ncache {cache_file(scratch, chain, pod.id)}: "
                     f"{os.path.exists(cache_file(scratch, chain, pod.id))}\n{pod.output()}",
                     info=f"{found[0] if found else '-'}; running in {took:.2f} s")
        if not ok:
            raise Failed(f"{pod.id} has no address")
        ips[pod.id] = found[0]
    a, b = pods
    if status0 is not None:
        status1 = chain["status"]()
        addresses, checkpoint = chain["allocated"]()
        primary = next((e["id"] for e in status1.get("enis", []) if e.get("primary")), None)
        on = {x.get("address"): x.get("eni") for x in checkpoint.get("allocations", [])}
        report.check(f"{label}: ipamd counts both containers as assigned, on the primary ENI {primary}",
                     status1.get("assigned") == status0.get("assigned", 0) + 2
                     and all(on.get(ip) == primary for ip in ips.values()),
                     f"before: {json.dumps(status0)}\nafter: {json.dumps(status1)}\nallocations: {on}",
                     info=f"assigned {status0.get('assigned')} -> {status1.get('assigned')}, "
                          f"free {status1.get('free')} of {status1.get('total')}")
        enis = chain["ec2"]()
        if enis is None:
            report.skip(f"{label}: EC2 lists the containers' addresses on the primary ENI", "no aws CLI "
                        "(scripts/setup.sh test installs awscli)")
        else:
            report.check(f"{label}: EC2 (the testbed) lists both addresses as secondary private addresses of {primary}",
                         all(ip in enis.get(primary, [])[1:] for ip in ips.values()), json.dumps(enis),
                         info=f"{primary}: {' '.join(enis.get(primary, []))}")
        route = a.exec("ip", "-4", "route").stdout.strip()
        report.check(f"{label}: the container's routes: default via 169.254.1.1 on eth0 (aws-cni's wiring)",
                     route.splitlines()[:1] == ["default via 169.254.1.1 dev eth0 "] or
                     route.splitlines()[:1] == ["default via 169.254.1.1 dev eth0"], route,
                     info=" | ".join(line.strip() for line in route.splitlines()))
    report.check(f"{label}: the containers have distinct addresses", ips[a.id] != ips[b.id], f"{ips}")
    ping = a.exec("ping", "-c", "3", "-W", "2", ips[b.id])
    report.check(f"{label}: container {a.id} pings {b.id} at {ips[b.id]}",
                 ping.returncode == 0 and " 0% packet loss" in ping.stdout, ping.stdout + ping.stderr,
                 info=next((line for line in ping.stdout.splitlines() if "packet loss" in line), ""))
    # busybox nc rather than wget: Debian's busybox-static wget segfaults with -T (exit 139) on these machines.
    fetched = b.exec("sh", "-c", f'printf "GET /index.html HTTP/1.0\\r\\n\\r\\n" | nc -w 5 {ips[a.id]} 80')
    lines = fetched.stdout.strip().splitlines()
    report.check(f"{label}: container {b.id} fetches a page from {a.id}'s busybox httpd at {ips[a.id]}:80 (TCP)",
                 bool(lines) and " 200 " in lines[0] and lines[-1] == "hello-from-ctr-cni",
                 f"exit {fetched.returncode}: {fetched.stdout}{fetched.stderr}", info=lines[0] if lines else "")
    took = b.kill()
    ok, detail = chain["released"](ips[b.id])
    gone = b.id not in ctrd.ctr("containers", "ls", "-q").stdout.split()
    cached = os.path.exists(cache_file(scratch, chain, b.id))
    report.check(f"{label}: ctr task kill {b.id}: ctr run's DEL releases {ips[b.id]}; the container and the cached "
                 "result are gone", ok and b.proc.returncode is not None and gone and not cached,
                 f"{detail}\ncontainer gone {gone}, cache file left {cached}\nctr run exit {b.proc.returncode}\n"
                 f"{b.output()}", info=f"{took:.2f} s; {detail}")
    if status0 is not None:
        status2 = chain["status"]()
        report.check(f"{label}: ipamd's status: one assigned fewer, the address cooling down",
                     status2.get("assigned") == status0.get("assigned", 0) + 1 and
                     status2.get("cooling", 0) >= status0.get("cooling", 0) + 1,
                     f"{json.dumps(status2)}",
                     info=f"assigned {status2.get('assigned')}, cooling {status2.get('cooling')}")
    report.check(f"{label}: {a.id} keeps its address {ips[a.id]}",
                 chain["held"](ips[a.id]) and a.address()[0] == [ips[a.id]], a.address()[1])
    took = a.kill()
    ok, detail = chain["released"](ips[a.id])
    report.check(f"{label}: ctr task kill {a.id} releases {ips[a.id]}", ok, detail, info=f"{took:.2f} s")
    left = node_traces(chain["netns"], list(ips.values()), chain.get("veth_prefix"))
    report.check(f"{label}: nothing of either container is left in the node namespace (routes, rules, host "
                 f"veths {chain['veth_prefix']}*)", not left, "\n".join(left))
    report.note(f"{label}: {time.monotonic() - t0:.1f} s from containerd's start to both containers deleted")

    # ctr's detached form: `ctr run -d --cni` sets the network up, but in containerd 1.6 neither `ctr task kill`,
    # `ctr task rm` nor `ctr container rm` calls DEL (only the foreground `ctr run` does, when its task ends).
    detached = Container(ctrd, f"{scratch.tag}-d", scratch.dir)
    started = ctrd.ctr("run", "-d", "--cni", "--null-io", IMAGE, detached.id, "sleep", "3600")
    found = detached.address()[0] if started.returncode == 0 else []
    ctrd.ctr("tasks", "kill", "-s", "SIGKILL", detached.id)
    for _ in range(50):
        if ctrd.ctr("tasks", "rm", detached.id).returncode == 0:
            break
        time.sleep(0.1)
    ctrd.ctr("containers", "rm", detached.id)
    ip = found[0] if found else None
    still = ip is not None and chain["held"](ip)
    cached = os.path.exists(cache_file(scratch, chain, detached.id))
    report.check(f"{label}: ctr run -d --cni, then ctr task kill, task rm, container rm: containerd 1.6's ctr sends "
                 "no DEL (the IPAM still holds the address, libcni's cache entry stays)", still and cached,
                 f"run -d: exit {started.returncode} {started.stderr.strip()}; address {ip}; held {still}; "
                 f"cache entry {cached}", info=f"{ip} still held")
    traces = node_traces(chain["netns"], [ip] if ip else [], chain.get("veth_prefix"))
    report.note(f"{label}: what the node namespace keeps of {ip} without its DEL: "
                + ("; ".join(traces) if traces else "nothing (the veth and its routes went with the namespace)"))
    if "status" in chain:
        report.note(f"{label}: ipamd's reconcile frees {ip} once it is 5 min old with no host route to a veth "
                    "(docs/ipamd.md §6); --missed-del-wait 480 watches for it")
    if opts_wait and "status" in chain and ip:
        report.note(f"{label}: --missed-del-wait: watching ipamd for {opts_wait} s")
        start = time.monotonic()
        while time.monotonic() - start < opts_wait and chain["held"](ip):
            time.sleep(5)
        report.note(f"{label}: after {time.monotonic() - start:.0f} s: {ip} "
                    f"{'still held' if chain['held'](ip) else 'released'}; status {json.dumps(chain['status']())}; "
                    f"node traces {node_traces(chain['netns'], [ip], chain.get('veth_prefix'))}")
    if "stop" in chain:
        status = chain["stop"]()
        report.check(f"{label}: ipamd stops on SIGTERM with exit 0", status == 0, f"exit {status}\n{chain['log']()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin-dir", help="where the project's binaries are (make test passes the debug dir)")
    parser.add_argument("--plugin", help="the nodeboot-cni binary (default: BIN_DIR, .build/debug, .build/release)")
    parser.add_argument("--chain", choices=("bridge", "nodeboot", "all"), default="all",
                        help="bridge: Debian's bridge + host-local; nodeboot: ipamd's conflist; all (default): both")
    parser.add_argument("--cache-dir", default=os.environ.get("NODEBOOT_CACHE", "/var/cache/nodeboot"),
                        help="where the image tarball is kept (default /var/cache/nodeboot; NODEBOOT_CACHE)")
    parser.add_argument("--missed-del-wait", type=int, default=0, metavar="SECONDS",
                        help="nodeboot: after the detached container (no DEL), watch ipamd this long for its release")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs, configs)")
    opts = parser.parse_args()
    if opts.bin_dir:
        opts.bin_dir = os.path.abspath(opts.bin_dir)  # the plugin dir links to it from elsewhere

    def terminated(*_):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, terminated)
    report = Report()
    reason = missing_prerequisites()
    if reason:
        return report.skip_runner("ctr-cni", reason)
    try:
        image, how = image_tarball(opts.cache_dir)
        report.check("the busybox image is an OCI layout tarball made offline from Debian's busybox-static", True,
                     info=how)
    except (OSError, Failed, subprocess.SubprocessError) as error:
        report.check("the busybox image is an OCI layout tarball made offline from Debian's busybox-static", False,
                     str(error))
        return report.summary()
    chains = ["bridge", "nodeboot"] if opts.chain == "all" else [opts.chain]
    for label in chains:
        scratch = Scratch(keep=opts.keep)
        chain = None
        try:
            if label == "bridge":
                chain = bridge_chain(scratch)
            else:
                binaries, why = find_binaries(opts)
                if not binaries:
                    report.skip("nodeboot: ctr run --cni through ipamd's conflist", why)
                    continue
                chain = nodeboot_chain(scratch, binaries, report)
            prove(label, chain, scratch, image, report, opts.missed_del_wait)
        except (Failed, OSError, RuntimeError, subprocess.SubprocessError, ValueError) as error:
            detail = str(error)
            if chain and "log" in chain:
                detail += "\nipamd's log:\n" + chain["log"]()
            report.check(f"{label}: ran to the end", False, f"{type(error).__name__}: {detail}")
        finally:
            scratch.close()
    return report.summary()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("ctr-cni: interrupted", flush=True)
        sys.exit(130)
