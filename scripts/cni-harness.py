#!/usr/bin/env python3
"""CNI plugins driven through containerd's own client library (issue 13, "the real client library").

    scripts/cni-harness.py [--bin-dir DIR] [--plugin PATH] [--ipamd-socket PATH | --conflist FILE] [--node-netns NAME]
    scripts/cni-harness.py --bench [--bench-pods N] [--bench-concurrency C] [--bench-ports] [--json FILE] [...]
    scripts/cni-harness.py --demo [--bin-dir DIR]      (make demo's last section: one pod, for a person)
    scripts/cni-harness.py [--cycles N] [--only-cycles] [--cycles-reconcile S] [--bench-concurrency C] [...]

The harness (scripts/cni-harness/main.go) is a small Go program over Debian's go-cni 1.1.7 and libcni 1.1.2 (what
containerd 1.6/1.7 vendor), built offline with Debian's Go 1.19 (GO111MODULE=off, GOPATH=<cache>:/usr/share/gocode)
into CACHE/cni-harness/ (default /var/cache/nodeboot; NODEBOOT_CACHE overrides), and rebuilt only when main.go or the
Debian packages change. It loads the conf dir and runs ADD/DEL as containerd's CRI plugin does: loopback in parallel
with the pod network, K8S_POD_* in CNI_ARGS, capabilities, the results cache, DEL with the cached result.

1. Debian's reference plugins (bridge + host-local, portmap chained), which proves the harness itself. The node is a
   network namespace (the root namespace is not touched); pods are network namespaces (`ip netns add`). A recording
   shim in front of each plugin keeps what it was given (environment and stdin). Checks: config selection (the first
   file by name; `.tmp` and later files ignored), ADD gives eth0 an address, loopback is up and its ADD overlapped the
   chain's, the K8S args and the portMappings capability reached the plugins that should see them, the results cache
   holds the result, portmap's rules appear and forward a port to the pod, CHECK, DEL in reverse order with the cached
   result as prevResult, the cache file and the rules go, DEL again and DEL without a netns succeed, a failed ADD is
   followed by containerd's cleanup DEL, and nothing is left behind.
2. The same checks against `nodeboot-cni` with the conflist ipamd writes (docs/ipamd.md §8: nodeboot-cni, then
   portmap), when a binary exists (--plugin, else BIN_DIR, .build/debug, .build/release), against a real
   `nodeboot ipamd` that nodeboot_node() starts: the testbed (`nodeboot-testbed serve --host 198.18.0.1`, from the
   same bin dir) in a namespace of its own, joined by a veth /30 to the node's namespace, where the primary ENI's NIC
   (the m5.large's MAC, primary address 198.18.0.2) is eth0 and `nodeboot ipamd --root TMP` runs with
   TMP/etc/nodeboot/ipamd.json as init writes it (IPAMDSystemTests's node, in Python). Plus: each address is a
   secondary address of the primary ENI in EC2's model (the testbed's control API), the pods ping each other and the
   node and the node pings them, DEL gives the address back (ipamd's `status` over its socket, and its checkpoint).
   Then a secondary ENI: ipamd grows one (WARM_ENI_TARGET=1), a small hypervisor here plugs its NIC into the node
   (the standalone testbed has no attach hook), pods are added until one lands on it; it and a primary-ENI pod ping
   each other and the node, the rules are docs/cni.md §3's, CHECK passes, DEL (its netns gone first) leaves nothing.
   At the end ipamd holds nothing, the node has no pod route or rule left, ipamd exits 0 on SIGTERM. The
   conflist must name the socket ipamd serves under its --root. --ipamd-socket (a running ipamd; --node-netns if it runs in a namespace) or --conflist (the file as
   ipamd wrote it) use an ipamd started by hand instead.
3. --bench: ADD and DEL latency through the harness, p50/p99, sequential and CONCURRENCY at a time (default 16), for
   bridge + host-local + portmap, bridge + host-local alone, and, when it can run, nodeboot-cni + portmap and
   nodeboot-cni alone, in the same run, with the same number of pods per row (at most ipamd's pool: prefix
   delegation, maxPods 110); each plugin's own peak RSS (GNU time); nodeboot-cni against issue 13's targets.
   Figures are printed (and written to --json FILE).

4. --demo: the node of 2 (ipamd + the testbed), ONE pod added through the harness (nodeboot-cni + portmap, as containerd
   would), printed for a person: its address and that EC2 has it as a secondary address of the primary ENI, the pod's
   `ip -4 addr` and `ip route`, a ping to the node, ipamd's pool (status over its socket) before, with the pod and
   after DEL (the address back in the pool). Exit 0, or 1 with a `demo FAILED:` line; without root, the Go packages,
   Debian's plugins or the binaries it prints one line saying what is missing and how to get it, and exits 0.

5. --cycles N (default 1000; after the checks, or alone with --only-cycles): N ADD/DEL cycles through the harness
   (`cycles`), one at a time and 16 at a time, then both again with ipamd SIGKILLed in the middle and restarted, on a
   node of their own (ipamd with prefix delegation, maxPods 110, IP_COOLDOWN_PERIOD=1). Each pod gets a namespace of
   its own, made and deleted as containerd does; every 4th DEL comes after it is gone. After every DEL (and every
   failed ADD's cleanup DEL) the harness checks the host veth, the 512/1536 rules and the pod's links and neighbours.
   At the end of each run: no pod namespace, cache file, node veth/route/rule/neighbour, ipamd assignment (status and
   checkpoint), and ipamd's pool = EC2's /28s. No address is in two live pods at once. In the kill runs:
   - ADDs while ipamd is down fail with code 11 naming it and leave nothing;
   - DELs while it is down succeed;
   - once back, ipamd holds exactly the addresses it never heard DELed, and CNI GC releases them
     (--cycles-reconcile S: ipamd's own reconcile instead, about 6 min).
   Prints cycles, duration and the leaks found (0) per run. docs/cni.md §6.

Cleanup, however the run ends: namespaces, the daemon and the testbed, results-cache files of the run's sandboxes,
the scratch dir. SIGKILL too: ipamd and the testbed get a signal when the runner dies (setpriv --pdeathsig), and the
next run removes what a killed run's ledger (/run/nodeboot-cni-harness/PID.json) lists.

Output: one line per check (`ok`, `FAIL` with the detail below it, `skip NAME (reason)`), then
`N passed, N failed, N skipped`; exit 1 when a check failed. Not root, or the Debian packages missing
(scripts/setup.sh test installs them): `cni-harness: skipped (<reason>)`, exit 0.
"""
import argparse
import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testkit import Report, ipamd_request, ipamd_status  # noqa: E402

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(PROJECT, "scripts", "cni-harness", "main.go")
GO = "/usr/lib/go-1.19/bin/go"
GOCODE = "/usr/share/gocode"
GOCNI = GOCODE + "/src/github.com/containerd/go-cni"
REF_DIR = "/usr/lib/cni"
REF_PLUGINS = ("bridge", "host-local", "portmap", "loopback")
DEBS = ("golang-1.19-go", "golang-github-containerd-go-cni-dev", "golang-github-appc-cni-dev",
        "containernetworking-plugins", "iptables")
RESULTS = "/var/lib/cni/results"  # libcni's cache; go-cni offers no other place (containerd uses the same)
USED_IDS = set()  # sandbox ids this run used: their cache files go at the end, whatever the network's name
LEDGER_DIR = "/run/nodeboot-cni-harness"  # one file per run: what to remove should the run be killed (SIGKILL)
SUBNET, GATEWAY = "10.251.0.0/16", "10.251.0.1"
HOST_PORT, POD_PORT = 18080, 80
GNU_TIME = "/usr/bin/time"  # the bench's per-plugin peak RSS
ANNOTATION = "example.com/harness=yes"


def run(argv, timeout=120, check=False, **kwargs):
    result = subprocess.run(argv, stdin=kwargs.pop("stdin", subprocess.DEVNULL), capture_output=True, text=True,
                            timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()[-800:]}")
    return result


def in_netns(netns, argv):
    return ["ip", "netns", "exec", netns, *argv] if netns else list(argv)


def missing_prerequisites():
    """Why the runner cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root: network namespaces, bridges, iptables"
    lacking = [p for p in (GO, GOCNI, *(os.path.join(REF_DIR, n) for n in REF_PLUGINS)) if not os.path.exists(p)]
    lacking += [tool for tool in ("ip", "iptables-save") if shutil.which(tool) is None]
    if lacking:
        return f"missing {', '.join(lacking)}: scripts/setup.sh test installs Debian's {' '.join(DEBS)}"
    return None


# ---------------------------------------------------------------------------------------------------------------
# The harness binary: built once per source and package versions, outside the repository.

def build_harness(cache_root):
    """(path, how): the harness for main.go as it is now; built when the cache lacks it."""
    with open(SOURCE, "rb") as f:
        source = f.read()
    versions = run(["dpkg-query", "-W", "-f=${Package}=${Version} ", *DEBS[:3]]).stdout
    key = hashlib.sha256(source + versions.encode()).hexdigest()[:16]
    directory = os.path.join(cache_root, "cni-harness")
    binary = os.path.join(directory, f"cni-harness-{key}")
    if os.access(binary, os.X_OK):
        return binary, f"cached {binary}"
    os.makedirs(directory, exist_ok=True)
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": f"{directory}/gopath:{GOCODE}",
           "GOCACHE": f"{directory}/gocache", "GOFLAGS": "", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    start = time.monotonic()
    partial = f"{binary}.{os.getpid()}.tmp"
    result = run([GO, "build", "-o", partial, SOURCE], env=env, cwd=directory, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"go build of {SOURCE} failed:\n{result.stderr}")
    os.rename(partial, binary)  # atomic: a concurrent run sees the old state or the whole binary
    for name in os.listdir(directory):  # older builds
        if name.startswith("cni-harness-") and name != os.path.basename(binary) and not name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(directory, name))
    return binary, f"built {binary} in {time.monotonic() - start:.1f} s"


class Harness:
    """The harness run as containerd would be: in the node's network namespace, with a conf dir and plugin dirs."""

    def __init__(self, binary, node_netns, conf_dir, bin_dirs):
        self.binary, self.node_netns, self.conf_dir, self.bin_dirs = binary, node_netns, conf_dir, bin_dirs

    def __call__(self, *args, flags=(), timeout=300):
        """(exit status, parsed JSON or None, stderr)."""
        argv = in_netns(self.node_netns, [self.binary, "-conf-dir", self.conf_dir, "-bin-dir", ":".join(self.bin_dirs),
                                          *flags, *args])
        result = run(argv, timeout=timeout)
        try:
            out = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else None
        except (ValueError, IndexError):
            out = None
        return result.returncode, out, result.stderr


# ---------------------------------------------------------------------------------------------------------------
# Network namespaces, the recording shim, what the kernel shows.

def netns_add(*names):
    if names:
        run(["ip", "-batch", "-"], input="".join(f"netns add {n}\n" for n in names), stdin=None, check=True)


def netns_del(*names):
    existing = set(os.listdir("/var/run/netns")) if os.path.isdir("/var/run/netns") else set()
    gone = [n for n in names if n in existing]
    if gone:
        run(["ip", "-force", "-batch", "-"], input="".join(f"netns del {n}\n" for n in gone), stdin=None)


SHIM = """#!/bin/sh
# cni-harness recording shim: keeps one invocation's environment and stdin, then runs {real}
t0=$(date +%s%N)
in=$(cat)
f={log}/$t0-$$
printf '%s' "$in" > "$f.stdin"
printf '%s' "$in" | {real}
rc=$?
t1=$(date +%s%N)
printf 'plugin=%s\\ncommand=%s\\nifname=%s\\nnetns=%s\\ncontainerid=%s\\nargs=%s\\nstart=%s\\nend=%s\\nrc=%s\\n' \\
    {name} "$CNI_COMMAND" "$CNI_IFNAME" "$CNI_NETNS" "$CNI_CONTAINERID" "$CNI_ARGS" "$t0" "$t1" "$rc" > "$f.env"
exit $rc
"""


def make_shims(directory, log_dir, plugins):
    """A plugin dir whose entries (name -> real path) record each call in log_dir, then run the real plugin."""
    os.makedirs(directory, exist_ok=True)
    os.makedirs(log_dir, exist_ok=True)
    for name, real in plugins.items():
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(SHIM.format(real=real, log=log_dir, name=name))
        os.chmod(path, 0o755)


def calls(log_dir):
    """The recorded calls, oldest first: dicts of the env lines plus `stdin` (parsed JSON or the text)."""
    found = []
    for name in sorted(os.listdir(log_dir)):
        if not name.endswith(".env"):
            continue
        call = {}
        with open(os.path.join(log_dir, name)) as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition("=")
                call[key] = value
        with open(os.path.join(log_dir, name[:-4] + ".stdin")) as f:
            text = f.read()
        try:
            call["stdin"] = json.loads(text)
        except ValueError:
            call["stdin"] = text
        call["start"], call["end"] = int(call.get("start", 0)), int(call.get("end", 0))
        found.append(call)
    return sorted(found, key=lambda c: c["start"])


def cni_args(text):
    return dict(part.partition("=")[::2] for part in text.split(";") if part)


def lower_keys(value):
    if isinstance(value, dict):
        return {k.lower(): lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lower_keys(v) for v in value]
    return value


def result_ips(result):
    return [ip.get("address", "").split("/")[0] for ip in (result or {}).get("ips", [])]


def addresses(netns, ifname):
    """(flags, [IPv4/IPv6 addresses]) of a link in a netns, or (None, []) when it is not there."""
    result = run(["ip", "-n", netns, "-j", "addr", "show", "dev", ifname])
    if result.returncode != 0 or not result.stdout.strip():
        return None, []
    link = json.loads(result.stdout)[0]
    return link.get("flags", []), [a["local"] for a in link.get("addr_info", [])]


def veths(netns):
    """The names of the veths in a namespace."""
    out = run(in_netns(netns, ["ip", "-j", "link", "show", "type", "veth"])).stdout
    return {link["ifname"] for link in json.loads(out or "[]")}


def nat_rules(node_netns):
    return run(in_netns(node_netns, ["iptables-save", "-t", "nat"])).stdout


def node_address(node_netns):
    """The first global IPv4 address of the node's namespace (the bridge's gateway on the reference node)."""
    out = run(in_netns(node_netns, ["ip", "-4", "-j", "addr", "show", "scope", "global"])).stdout
    for link in json.loads(out or "[]"):
        for a in link.get("addr_info", []):
            return a["local"]
    return None


def pings(node_netns, pod_a, pod_b, ip_a, ip_b):
    """(ok, detail): ICMP echo a -> b, b -> a, each pod -> the node's address, the node -> each pod."""
    node_ip = node_address(node_netns)
    cases = [(pod_a, ip_b), (pod_b, ip_a), (pod_a, node_ip), (pod_b, node_ip), (node_netns, ip_a), (node_netns, ip_b)]
    failed = []
    for netns, target in cases:
        result = run(in_netns(netns, ["ping", "-c", "1", "-W", "2", "-q", target]), timeout=20)
        if result.returncode != 0:
            failed.append(f"{netns or 'this namespace'} -> {target}: exit {result.returncode} "
                          f"{(result.stdout + result.stderr).strip()[-300:]}")
    return not failed, "\n".join(failed) or f"{ip_a} <-> {ip_b}, both <-> node {node_ip}"


def forward_works(node_netns, pod_netns, address, port=HOST_PORT):
    """A TCP server on POD_PORT in the pod; a connection from the node to address:port must reach it."""
    server = subprocess.Popen(["ip", "netns", "exec", pod_netns, sys.executable, "-c", (
        "import socket,sys\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('0.0.0.0',{POD_PORT})); s.listen(1); print('listening', flush=True); s.settimeout(10)\n"
        "c,_=s.accept(); c.sendall(b'hello-from-pod'); c.close()\n")],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if server.stdout.readline().strip() != "listening":
            return False, f"the pod's server did not start: {server.stderr.read()[-300:]}"
        client = run(in_netns(node_netns, [sys.executable, "-c", (
            "import socket\n"
            f"s=socket.create_connection(({address!r},{port}),timeout=5); print(s.recv(64).decode())\n")]), timeout=20)
        got = client.stdout.strip()
        return got == "hello-from-pod", f"from {address}:{port}: {got!r} {client.stderr.strip()[-300:]}"
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=2)
        if server.poll() is None:
            server.kill()
            server.wait()


# ---------------------------------------------------------------------------------------------------------------
# The checks, the same for the reference chain and for nodeboot-cni.

class Node:
    """What one run of the checks works on: a conf dir holding a conflist whose first plugin is `main`, followed by
    portmap; the harness; the namespaces; a way to know whether an address went back to its IPAM."""

    def __init__(self, label, main, network, harness, node_netns, pods, log_dir, released, origin):
        self.label, self.main, self.network, self.harness = label, main, network, harness
        self.node_netns, self.pods, self.log_dir, self.released = node_netns, pods, log_dir, released
        self.origin = origin  # fn(ip) -> (True/False/None, detail): whether the address is the IPAM's to give


def write_conf_dir(conf_dir, conflist_name, conflist_text):
    """The conflist plus what go-cni must not pick: a half-written `.tmp` that sorts first (ipamd's temp name) and a
    valid conflist that sorts after it (max_conf_num 1)."""
    os.makedirs(conf_dir, exist_ok=True)
    with open(os.path.join(conf_dir, conflist_name), "w") as f:
        f.write(conflist_text)
    with open(os.path.join(conf_dir, "00-half-written.conflist.tmp"), "w") as f:
        f.write('{"cniVersion":"1.0.0","name":"half-wr')
    with open(os.path.join(conf_dir, "99-not-chosen.conflist"), "w") as f:
        json.dump({"cniVersion": "1.0.0", "name": "not-chosen", "plugins": [{"type": "not-installed"}]}, f)


def prove(node, report):
    """Every check of one chain; returns nothing, records in report."""
    h, label, net = node.harness, node.label, node.network
    pod_a, pod_b = node.pods
    id_a = hashlib.sha256(f"{pod_a}-a".encode()).hexdigest()  # 64 hex characters, as containerd's sandbox ids
    id_b = hashlib.sha256(f"{pod_b}-b".encode()).hexdigest()
    id_c = hashlib.sha256(f"{pod_a}-c".encode()).hexdigest()
    use_ids(id_a, id_b, id_c)
    port_flags = ["-port", f"{HOST_PORT}:{POD_PORT}/tcp", "-annotation", ANNOTATION]
    cache_a, lo_cache_a = f"{RESULTS}/{net}-{id_a}-eth0", f"{RESULTS}/cni-loopback-{id_a}-lo"
    node_veths = veths(node.node_netns)  # the node's own (nodeboot's node: eth0, the primary ENI's NIC)

    # Config selection.
    status, out, err = h("load")
    got = [(n["name"], n["ifname"], n["plugins"]) for n in (out or {}).get("networks", [])]
    want = [("cni-loopback", "lo", ["loopback"]), (net, "eth0", [node.main, "portmap"])]
    report.check(f"{label}: go-cni loads loopback and the first conflist by name (.tmp and later files ignored)",
                 status == 0 and got == want, f"exit {status}: got {got}, want {want}\n{err}")

    # ADD with a port mapping and an annotation.
    status, out, err = h("setup", id_a, f"/var/run/netns/{pod_a}", flags=port_flags)
    ip_a = (out or {}).get("ip")
    if not report.check(f"{label}: ADD through go-cni gives the sandbox an address on eth0", status == 0 and ip_a,
                        f"exit {status}: {json.dumps(out)}\n{err}", info=f"{ip_a}, {out and out.get('ms')} ms"):
        return
    flags, addrs = addresses(pod_a, "eth0")
    report.check(f"{label}: the pod's eth0 carries {ip_a}", ip_a in addrs, f"eth0 in {pod_a}: {flags} {addrs}")
    known, detail = node.origin(ip_a)
    if known is None:
        report.skip(f"{label}: {ip_a} is the IPAM's to give", detail)
    else:
        report.check(f"{label}: {ip_a} is the IPAM's to give", known, detail, info=detail)
    flags, addrs = addresses(pod_a, "lo")
    report.check(f"{label}: loopback is up in the pod", flags is not None and "UP" in flags and "127.0.0.1" in addrs,
                 f"lo in {pod_a}: {flags} {addrs}")

    recorded = calls(node.log_dir)
    adds = {c["plugin"]: c for c in recorded if c["command"] == "ADD" and c["containerid"] == id_a}
    lo, main, portmap = adds.get("loopback"), adds.get(node.main), adds.get("portmap")
    if lo and main:
        overlap = lo["start"] < main["end"] and main["start"] < lo["end"]
        report.check(f"{label}: the loopback ADD ran in parallel with the {node.main} ADD", overlap,
                     f"loopback {lo['start']}..{lo['end']}, {node.main} {main['start']}..{main['end']} (ns)",
                     info=f"both running for {(min(lo['end'], main['end']) - max(lo['start'], main['start'])) / 1e6:.1f}"
                          " ms")
    else:
        report.check(f"{label}: the loopback and {node.main} ADDs were recorded", False, f"recorded: {sorted(adds)}")
    if main:
        args = cni_args(main["args"])
        want_args = {"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": f"harness-{id_a[:8]}",
                     "K8S_POD_INFRA_CONTAINER_ID": id_a}
        good = all(args.get(k) == v for k, v in want_args.items()) and len(args.get("K8S_POD_UID", "")) == 36
        report.check(f"{label}: {node.main} got CNI_ARGS with IgnoreUnknown and K8S_POD_NAMESPACE/NAME/"
                     f"INFRA_CONTAINER_ID/UID", good, f"CNI_ARGS={main['args']}")
        stdin = main["stdin"] if isinstance(main["stdin"], dict) else {}
        report.check(f"{label}: {node.main} (no capabilities declared) got no runtimeConfig, no prevResult, "
                     f"name and cniVersion of the list",
                     "runtimeConfig" not in stdin and "prevResult" not in stdin and stdin.get("name") == net,
                     f"stdin: {json.dumps(stdin)[:600]}")
    if portmap:
        stdin = portmap["stdin"] if isinstance(portmap["stdin"], dict) else {}
        mappings = lower_keys(stdin.get("runtimeConfig", {}).get("portMappings"))
        want_map = [{"hostport": HOST_PORT, "containerport": POD_PORT, "protocol": "tcp", "hostip": ""}]
        report.check(f"{label}: portmap got runtimeConfig.portMappings (its declared capability) and the chain's "
                     f"result as prevResult", mappings == want_map and ip_a in result_ips(stdin.get("prevResult")),
                     f"runtimeConfig={stdin.get('runtimeConfig')} prevResult={stdin.get('prevResult')}")
        report.check(f"{label}: portmap accepted {node.main}'s result (exit 0)", portmap.get("rc") == "0",
                     f"portmap rc {portmap.get('rc')}")
    else:
        report.check(f"{label}: portmap's ADD was recorded", False, f"recorded: {sorted(adds)}")

    # The results cache.
    try:
        with open(cache_a) as f:
            cached = json.load(f)
        cached_args = dict(cached.get("cniArgs") or [])
        good = (cached.get("kind") == "cniCacheV1" and ip_a in result_ips(cached.get("result"))
                and cached_args.get("K8S_POD_INFRA_CONTAINER_ID") == id_a
                and "portMappings" in (cached.get("capabilityArgs") or {}) and os.path.exists(lo_cache_a))
        report.check(f"{label}: the results cache holds the chain's result, args and capabilities", good,
                     f"{cache_a}: {json.dumps(cached)[:600]}; {lo_cache_a} exists: {os.path.exists(lo_cache_a)}")
    except (OSError, ValueError) as error:
        report.check(f"{label}: the results cache holds the chain's result", False, f"{cache_a}: {error}")

    # portmap's rules, and a port forwarded to the pod.
    rules = nat_rules(node.node_netns)
    dnat = f"--to-destination {ip_a}:{POD_PORT}"
    backend = run(["iptables", "-V"]).stdout.strip()
    report.check(f"{label}: portmap's DNAT rule for host port {HOST_PORT} is in the node's nat table",
                 f"--dport {HOST_PORT}" in rules and dnat in rules, rules[-1500:], info=backend)
    address = node_address(node.node_netns)
    if address:
        ok, detail = forward_works(node.node_netns, pod_a, address)
        report.check(f"{label}: a connection to the node's {address}:{HOST_PORT} reaches the pod's port {POD_PORT}",
                     ok, detail)
    else:
        report.skip(f"{label}: port forward", "the node's namespace has no global IPv4 address to connect to")

    # A second pod without port mappings; CHECK on it.
    status, out, err = h("setup", id_b, f"/var/run/netns/{pod_b}")
    ip_b = (out or {}).get("ip")
    report.check(f"{label}: a second pod gets another address", status == 0 and ip_b and ip_b != ip_a,
                 f"exit {status}: {json.dumps(out)[:600]}\n{err}", info=ip_b)
    if ip_b and ip_b != ip_a:
        ok, detail = pings(node.node_netns, pod_a, pod_b, ip_a, ip_b)
        report.check(f"{label}: the pods ping each other and the node, and the node pings them", ok, detail,
                     info=detail if ok else "")
    status, out, err = h("check", id_b, f"/var/run/netns/{pod_b}")
    report.check(f"{label}: CHECK with the cached result passes (containerd never sends it; CRI-O does)",
                 status == 0 and out and out.get("ok"), f"exit {status}: {json.dumps(out)}\n{err}")
    # CHECK on the pod with a port mapping is not asserted: Debian's portmap 1.1.1 looks for an IPv6 chain it never
    # made (containernetworking/plugins#819).

    # DEL of the first pod.
    mark = time.time_ns()
    status, out, err = h("remove", id_a, f"/var/run/netns/{pod_a}", flags=port_flags)
    report.check(f"{label}: DEL through go-cni succeeds", status == 0 and out and out.get("ok"),
                 f"exit {status}: {json.dumps(out)}\n{err}", info=f"{out and out.get('ms')} ms")
    dels = [c for c in calls(node.log_dir) if c["command"] == "DEL" and c["containerid"] == id_a and c["start"] >= mark]
    chain = [c for c in dels if c["plugin"] != "loopback"]
    order = [c["plugin"] for c in chain]
    main_del = next((c for c in chain if c["plugin"] == node.main), None)
    main_stdin = (main_del or {}).get("stdin")
    prev = main_stdin.get("prevResult") if isinstance(main_stdin, dict) else None
    report.check(f"{label}: DEL ran portmap then {node.main}, each with the cached result as prevResult",
                 order == ["portmap", node.main] and ip_a in result_ips(prev)
                 and all(ip_a in result_ips(c["stdin"].get("prevResult"))
                         for c in chain if isinstance(c["stdin"], dict)),
                 f"order {order}; {node.main} prevResult {prev}")
    report.check(f"{label}: DEL removed the cache files (chain and loopback)",
                 not os.path.exists(cache_a) and not os.path.exists(lo_cache_a),
                 f"{cache_a} exists: {os.path.exists(cache_a)}; {lo_cache_a} exists: {os.path.exists(lo_cache_a)}")
    rules = nat_rules(node.node_netns)
    report.check(f"{label}: DEL removed portmap's rules", f"--dport {HOST_PORT}" not in rules and dnat not in rules,
                 rules[-1500:])
    flags, _ = addresses(pod_a, "eth0")
    report.check(f"{label}: DEL removed the pod's eth0", flags is None, f"eth0 in {pod_a}: {flags}")
    released, detail = node.released(ip_a)
    if released is None:
        report.skip(f"{label}: {ip_a} back in the IPAM", detail)
    else:
        report.check(f"{label}: {ip_a} went back to the IPAM", released, detail)

    status, out, err = h("remove", id_a, f"/var/run/netns/{pod_a}", flags=port_flags)
    report.check(f"{label}: a second DEL (no cached result, nothing left) succeeds", status == 0,
                 f"exit {status}: {json.dumps(out)}\n{err}")

    # DEL after the pod's netns is gone: containerd sends an empty CNI_NETNS.
    netns_del(pod_b)
    status, out, err = h("remove", id_b, "-")
    report.check(f"{label}: DEL with no netns (the sandbox's netns already gone) succeeds",
                 status == 0 and not os.path.exists(f"{RESULTS}/{net}-{id_b}-eth0"),
                 f"exit {status}: {json.dumps(out)}\n{err}")
    released, detail = node.released(ip_b)
    if released is None:
        report.skip(f"{label}: {ip_b} back in the IPAM after a DEL without netns", detail)
    else:
        report.check(f"{label}: {ip_b} went back to the IPAM after a DEL without netns", released, detail)

    # A failed ADD (the netns does not exist) is followed by containerd's cleanup DEL.
    status, out, err = h("setup", id_c, f"/var/run/netns/{pod_a}-missing")
    good = status != 0 and out and not out.get("ok") and out.get("cleanup_error") == ""
    report.check(f"{label}: a failed ADD fails the sandbox and the cleanup DEL succeeds", good,
                 f"exit {status}: {json.dumps(out)}\n{err}", info=(out or {}).get("error", "")[:120])

    # Nothing left behind.
    left = sorted(n for n in os.listdir(RESULTS) if n.startswith(f"{net}-")) if os.path.isdir(RESULTS) else []
    # The node's NICs are not the pods' (nodeboot's node: a secondary ENI's NIC ethN may be plugged in meanwhile).
    new_veths = sorted(v for v in veths(node.node_netns) - node_veths if not v.startswith("eth"))
    report.check(f"{label}: nothing left behind (cache files, portmap chains, veths in the node)",
                 not left and "CNI-DN-" not in nat_rules(node.node_netns) and not new_veths,
                 f"cache: {left}; veths: {new_veths}")


FAKE = """#!/bin/sh
# cni-harness fake plugin: answers ADD with $FAKE_RESULT (the harness passes its environment on), DEL with nothing
cat >/dev/null
case "$CNI_COMMAND" in
ADD) printf '%s' "$FAKE_RESULT" ;;
VERSION) printf '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}' ;;
esac
exit 0
"""


def refusals(scratch, binary, report):
    """Results containerd 1.6/1.7 refuse (vpc-cni §16), from a fake plugin: the harness must refuse them too, and
    accept the same plugin with a good result (so the refusals are for the stated reason)."""
    bin_dir = os.path.join(scratch.dir, "fake-bin")
    os.makedirs(bin_dir, exist_ok=True)
    with open(os.path.join(bin_dir, "fake-cni"), "w") as f:
        f.write(FAKE)
    os.chmod(os.path.join(bin_dir, "fake-cni"), 0o755)
    os.symlink(os.path.join(REF_DIR, "loopback"), os.path.join(bin_dir, "loopback"))
    pod = scratch.name("f")
    scratch.add_netns(pod)
    sandbox = f"/var/run/netns/{pod}"
    cases = [  # (what, conflist cniVersion, result, expected error or None)
        ("a 1.0.0 result with the IP on eth0 is accepted", "1.0.0",
         {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": sandbox}],
          "ips": [{"address": "10.9.9.9/32", "interface": 0}]}, None),
        ("an IP on the host veth, not on eth0, fails the sandbox (VPC PR #1092)", "1.0.0",
         {"cniVersion": "1.0.0", "interfaces": [{"name": "eni0a1b2c3d4e5"}, {"name": "eth0", "sandbox": sandbox}],
          "ips": [{"address": "10.9.9.9/32", "interface": 0}]}, "failed to find network info for sandbox"),
        ("a conflist and result of CNI 1.1.0 fail the ADD after the plugin ran (libcni 1.1)", "1.1.0",
         {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "sandbox": sandbox}],
          "ips": [{"address": "10.9.9.9/32", "interface": 0}]}, "unsupported CNI result version"),
    ]
    for number, (what, version, result, expected) in enumerate(cases):
        network = f"{scratch.tag}-fake{number}"
        scratch.add_network(network)
        conf_dir = os.path.join(scratch.dir, f"fake-conf{number}")
        os.makedirs(conf_dir)
        with open(os.path.join(conf_dir, "10-fake.conflist"), "w") as f:
            json.dump({"cniVersion": version, "name": network, "plugins": [{"type": "fake-cni"}]}, f)
        harness = Harness(binary, None, conf_dir, [bin_dir])
        os.environ["FAKE_RESULT"] = json.dumps(result)
        try:
            status, out, err = harness("setup", f"fake{number}", sandbox)
            if expected is None:
                ok = status == 0 and (out or {}).get("ip") == "10.9.9.9"
                status2, _, err2 = harness("remove", f"fake{number}", sandbox)
                ok = ok and status2 == 0
                err += err2
            else:
                ok = (status == 1 and expected in (out or {}).get("error", "")
                      and (out or {}).get("cleanup_error") == "")
        finally:
            del os.environ["FAKE_RESULT"]
        left = os.path.exists(f"{RESULTS}/{network}-fake{number}-eth0")
        report.check(f"containerd's rules: {what}", ok and not left,
                     f"exit {status}: {json.dumps(out)}\n{err}\ncache file left: {left}",
                     info=(out or {}).get("error", "")[:100] if expected else "")


def nodeboot_without_ipamd(scratch, binary, plugin, report):
    """What nodeboot-cni must do through go-cni with no ipamd at all (issue 13): a clear refusal of ADD, then
    containerd's cleanup DEL succeeds; a DEL of an unknown sandbox without netns succeeds; nothing cached."""
    spec = {"conflist": ipamd_conflist(os.path.join(scratch.dir, "no-ipamd.sock"), name=f"{scratch.tag}-noipamd"),
            "netns": None}
    network, _, _, harness = nodeboot_setup(scratch, binary, plugin, spec, shims=False, tag="noipamd")
    label = "nodeboot-cni without ipamd"
    status, out, err = harness("load")
    got = [(n["name"], n["plugins"]) for n in (out or {}).get("networks", [])]
    report.check(f"{label}: go-cni loads ipamd's conflist (docs/ipamd.md §8)",
                 status == 0 and got == [("cni-loopback", ["loopback"]), (network, ["nodeboot-cni", "portmap"])],
                 f"exit {status}: {got}\n{err}")
    pod = scratch.name("n0")
    scratch.add_netns(pod)
    sandbox_id = hashlib.sha256(pod.encode()).hexdigest()
    use_ids(sandbox_id)
    status, out, err = harness("setup", sandbox_id, f"/var/run/netns/{pod}")
    report.check(f"{label}: ADD fails with a message, and containerd's cleanup DEL succeeds",
                 status == 1 and (out or {}).get("error") and (out or {}).get("cleanup_error") == "",
                 f"exit {status}: {json.dumps(out)}\n{err}", info=((out or {}).get("error") or "")[:140])
    flags, _ = addresses(pod, "eth0")
    report.check(f"{label}: the failed ADD left no eth0 in the pod", flags is None, f"eth0 in {pod}: {flags}")
    status, out, err = harness("remove", hashlib.sha256(b"never-added").hexdigest(), "-")
    report.check(f"{label}: DEL of an unknown sandbox with no netns succeeds", status == 0,
                 f"exit {status}: {json.dumps(out)}\n{err}")
    left = sorted(n for n in os.listdir(RESULTS) if n.startswith(f"{network}-")) if os.path.isdir(RESULTS) else []
    report.check(f"{label}: nothing in the results cache", not left, f"{left}")


# ---------------------------------------------------------------------------------------------------------------
# The two chains.

def reference_conflist(network, bridge, ipam_dir):
    return json.dumps({"cniVersion": "1.0.0", "name": network, "plugins": [
        {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]], "dataDir": ipam_dir}},
        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}]}, indent=1) + "\n"


def without_portmap(conflist_text, name):
    """The conflist with its first plugin alone, under another network name."""
    conflist = json.loads(conflist_text)
    conflist["plugins"], conflist["name"] = conflist["plugins"][:1], name
    return json.dumps(conflist) + "\n"


def in_subnet(ip):
    inside = ipaddress.ip_address(ip) in ipaddress.ip_network(SUBNET)
    return inside, f"{ip} {'in' if inside else 'not in'} host-local's range {SUBNET}"


def host_local_released(ipam_dir, network):
    def released(ip):
        path = os.path.join(ipam_dir, network, ip)
        return not os.path.exists(path), f"host-local reservation {path} exists: {os.path.exists(path)}"
    return released


def ipamd_conflist(socket_path, mtu=9001, name="nodeboot"):
    """docs/ipamd.md §8, with the socket of the ipamd under test."""
    return json.dumps({"cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0"], "name": name, "plugins": [
        {"type": "nodeboot-cni", "socket": socket_path, "mtu": mtu, "vethPrefix": "eni", "ipFamily": "ipv4"},
        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}]}) + "\n"


def find_binary(opts, name):
    """The project's binary `name`: BIN_DIR, else .build/debug, else .build/release; (path, None) or (None, why not)."""
    places = [opts.bin_dir] if opts.bin_dir else []
    places += [os.path.join(PROJECT, ".build", "debug"), os.path.join(PROJECT, ".build", "release")]
    for place in places:
        path = os.path.abspath(os.path.join(place, name))  # absolute: the plugin dirs hold symlinks to it
        if os.access(path, os.X_OK):
            return path, None
    shown = ", ".join(os.path.relpath(p, PROJECT) if p.startswith(PROJECT) else p for p in dict.fromkeys(places))
    return None, f"no {name} binary in {shown}"


def find_plugin(opts):
    """(path, None) or (None, why not)."""
    if opts.plugin:
        if os.access(opts.plugin, os.X_OK):
            return os.path.abspath(opts.plugin), None
        return None, f"--plugin {opts.plugin} is not executable"
    path, why = find_binary(opts, "nodeboot-cni")
    return path, why and f"{why} (issue 13's plugin is not built yet; --plugin PATH names one)"


# The node nodeboot_node() makes, as Tests/CommandTests/IPAMDSystemTests.swift makes it in Swift: an m5.large whose
# primary ENI's NIC (its MAC) is `eth0` in the node's namespace, the node's end of a /30 whose other end is in a
# namespace of its own where the testbed listens (the runner's namespace is not touched). The primary address is the
# node's end, so ipamd's SNAT of its own traffic to the testbed is a no-op.
TESTBED_ADDRESS, NODE_ADDRESS = "198.18.0.1", "198.18.0.2"
PRIMARY_MAC = "0e:49:61:0f:c3:11"
INSTANCE_ID = "i-1234567890abcdef0"
IPAMD_SOCKET = "/run/nodeboot/ipamd.sock"  # what ipamd names in its conflist (IPAMWire.socketPath)
PREFIXES_ON_PRIMARY = 9  # m5.large: 10 IPv4 slots per ENI, one is the primary address; a /28 takes one slot


HYPERVISOR = r"""
# cni-harness's hypervisor: the standalone testbed has no attach hook, so this plays it from outside (as
# IPAMDSystemTests's hook does in process): each ENI EC2 attaches to the instance at device N > 0 becomes a NIC ethN
# with its MAC in the node's namespace (the peer of vpcN here); a detached one is unplugged.
import json, subprocess, sys, time, urllib.request
url, instance, node, vpc = sys.argv[1:]
plugged = {}
while True:
    try:
        enis = json.load(urllib.request.urlopen(url + "/_testbed/ec2/network-interfaces", timeout=5))
    except Exception as error:
        print(f"hypervisor: {error}", flush=True)
        time.sleep(0.5)
        continue
    enis = enis.get("networkInterfaces", enis) if isinstance(enis, dict) else enis
    want = {}
    for eni in enis:
        attachment = eni.get("attachment") or {}
        if attachment.get("instanceId") == instance and eni.get("status") == "in-use" \
                and attachment.get("deviceIndex", 0) > 0:
            want[attachment["deviceIndex"]] = eni["macAddress"]
    for device, mac in sorted(want.items()):
        if plugged.get(device) != mac:
            for argv in (["ip", "-n", vpc, "link", "add", f"vpc{device}", "type", "veth", "peer", "name",
                          f"eth{device}", "address", mac, "netns", node],
                         ["ip", "-n", vpc, "link", "set", f"vpc{device}", "up"]):
                subprocess.run(argv, check=False)
            plugged[device] = mac
            print(f"hypervisor: plugged eth{device} {mac}", flush=True)
    for device in [d for d in plugged if d not in want]:
        subprocess.run(["ip", "-n", vpc, "link", "del", f"vpc{device}"], check=False)
        del plugged[device]
        print(f"hypervisor: unplugged eth{device}", flush=True)
    time.sleep(0.1)
"""


def testbed_configuration():
    """The testbed's m5.large (docs/testbed.md, aemm format), as IPAMDSystemTests configures it."""
    return {"instance": {
        "metadata": {"values": {"instance-id": INSTANCE_ID, "instance-type": "m5.large", "local-ipv4": NODE_ADDRESS,
                                "mac-local-ipv4s": NODE_ADDRESS, "mac": PRIMARY_MAC}},
        "dynamic": {"values": {"instance-identity-document": {
            "region": "us-west-2", "availabilityZone": "us-west-2f", "instanceId": INSTANCE_ID,
            "instanceType": "m5.large"}}}}}


IPAMD_JSON = {"schema": "nodeboot.ipamd/v1", "cluster": "my-cluster", "ipFamily": "ipv4", "maxPods": 29,
              "instanceType": "m5.large", "limits": {"maxENIs": 3, "ipv4PerENI": 10, "source": "table"},
              "vethPrefix": "eni"}  # what `nodeboot init` renders for this node (IPAMDSystemTests's ipamd.json)


def setpriv_pdeathsig(signal_name):
    """A prefix that makes the child get `signal_name` when this runner dies (however: even SIGKILL), or []."""
    return ["setpriv", f"--pdeathsig={signal_name}"] if shutil.which("setpriv") else []


def nodeboot_node(opts, scratch, bench_pods=None, cooldown="0", suffix=""):
    """What nodeboot-cni needs around it: a running `nodeboot ipamd` (and, for ipamd, the testbed).

    Returns (node, None) or (None, why not); node is a dict:
      conflist   the conflist text, as ipamd writes it (docs/ipamd.md §8)
      netns      the node's network namespace (where ipamd wired the host side), or None for the current one
      released   fn(ip) -> (True/False, detail), or (None, why not known): whether ipamd took the address back
      origin     fn(ip) -> (True/False, detail), or (None, why not known): whether the address is the ENI's
      finish     fn(report, label): the checks at the end (ipamd holds nothing, the node's tables are clean, ipamd
                 exits 0 on SIGTERM), or None
      pool       how many addresses ipamd has free for pods
      notes      lines to print (what the runner had to work around)
      stop       fn() stopping whatever this started (also registered in scratch.stops)
    --conflist FILE or --ipamd-socket PATH use an ipamd the caller started. Otherwise this starts one: the testbed
    (`nodeboot-testbed serve --host 198.18.0.1` in a namespace of its own) and `nodeboot ipamd --root TMP` in the node's
    namespace (`ip netns exec NODE`) with TMP/etc/nodeboot/ipamd.json as init writes it, and waits for its conflist
    and pool: the primary ENI's 9 secondary addresses (WARM_ENI_TARGET=1; HYPERVISOR plugs in the NICs of the ENIs
    ipamd attaches later, as the testbed's in-process attach hook would), or for bench_pods, prefix delegation,
    maxPods 110 and MAX_ENI=1 (/28s on the primary ENI for 110 pods, so 16 ADDs can run at once) and
    IP_COOLDOWN_PERIOD=0 (the rows reuse addresses).
    """
    def unknown(_ip):
        return None, "the runner has no view of ipamd's pool (an ipamd the caller started)"
    external = {"released": unknown, "origin": unknown, "finish": None, "pool": None, "notes": [],
                "stop": lambda: None}
    if opts.conflist:
        with open(opts.conflist) as f:
            return {**external, "conflist": f.read(), "netns": opts.node_netns}, None
    if opts.ipamd_socket:
        return {**external, "conflist": ipamd_conflist(opts.ipamd_socket), "netns": opts.node_netns}, None

    nodeboot, why = find_binary(opts, "nodeboot")
    testbed_binary, why2 = find_binary(opts, "nodeboot-testbed")
    if not nodeboot or not testbed_binary:
        return None, f"cannot start ipamd: {why or why2}"
    import testkit  # scripts/testkit.py: start_testbed, stop_process

    node, vpc = scratch.name(f"node4{suffix}"), scratch.name(f"vpc{suffix}")
    scratch.add_netns(node, vpc)
    for argv in (["ip", "-n", vpc, "link", "add", "tb0", "type", "veth", "peer", "name", "eth0", "address",
                  PRIMARY_MAC, "netns", node],
                 ["ip", "-n", vpc, "address", "add", f"{TESTBED_ADDRESS}/30", "dev", "tb0"],
                 ["ip", "-n", vpc, "link", "set", "tb0", "up"], ["ip", "-n", vpc, "link", "set", "lo", "up"],
                 ["ip", "-n", node, "address", "add", f"{NODE_ADDRESS}/30", "dev", "eth0"],
                 ["ip", "-n", node, "link", "set", "eth0", "up"], ["ip", "-n", node, "link", "set", "lo", "up"]):
        run(argv, check=True)

    # The testbed, in its namespace (a wrapper, so testkit.start_testbed runs it there).
    directory = os.path.join(scratch.dir, f"node{suffix}")
    os.makedirs(directory)
    config = os.path.join(directory, "testbed.json")
    with open(config, "w") as f:
        json.dump(testbed_configuration(), f)
    wrapper = os.path.join(directory, "testbed.sh")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec " + " ".join(setpriv_pdeathsig("KILL") + ["ip", "netns", "exec", vpc, testbed_binary])
                + f' "$@" --host {TESTBED_ADDRESS}\n')
    os.chmod(wrapper, 0o755)
    testbed, printed = testkit.start_testbed(wrapper, config, directory)
    scratch.stops.append(lambda: testkit.stop_process(testbed))
    aws = printed["aws"]
    if not bench_pods:  # the bench keeps to the primary ENI (MAX_ENI=1)
        with open(os.path.join(directory, "hypervisor.log"), "wb") as log:
            hypervisor = testkit.popen(setpriv_pdeathsig("KILL") + ["ip", "netns", "exec", vpc, sys.executable, "-c",
                                       HYPERVISOR, aws, INSTANCE_ID, node, vpc], stdout=log, stderr=log)
        scratch.stops.append(lambda: testkit.stop_process(hypervisor))

    # ipamd, with the files init writes under its root.
    root = os.path.join(directory, "root")
    os.makedirs(os.path.join(root, "etc", "nodeboot"))
    spec = dict(IPAMD_JSON)
    settings = {}
    if bench_pods:
        # The kubelet's max pods raised to 110 with prefix delegation, as EKS recommends; ipamd's pool stops there.
        spec["maxPods"] = 110
        settings.update({"MAX_ENI": "1", "ENABLE_PREFIX_DELEGATION": "true",
                         "WARM_PREFIX_TARGET": str(PREFIXES_ON_PRIMARY), "IP_COOLDOWN_PERIOD": cooldown})
        want = spec["maxPods"]
    else:
        settings.update({"WARM_ENI_TARGET": "1"})
        want = 9
    with open(os.path.join(root, "etc", "nodeboot", "ipamd.json"), "w") as f:
        f.write(json.dumps(spec, separators=(",", ":")) + "\n")
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SWIFT_BACKTRACE": "enable=no",
           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", **printed["env"], **settings}
    log_path = os.path.join(directory, "ipamd.log")
    socket_path = root + IPAMD_SOCKET
    checkpoint_path = os.path.join(root, "run", "nodeboot", "ipamd", "checkpoint.json")
    conflist_path = os.path.join(root, "etc", "cni", "net.d", "10-nodeboot.conflist")
    daemons = []  # the one running last; kill_daemon/restart_daemon (the cycles' outage) start another

    def start_daemon():
        with open(log_path, "ab") as log:
            daemons.append(testkit.popen(setpriv_pdeathsig("TERM") + ["ip", "netns", "exec", node, nodeboot, "ipamd",
                                                                      "--root", root], env=env, stdout=log, stderr=log))
    start_daemon()
    exited = {}

    def stop_daemon():
        daemon = daemons[-1]
        if daemon.poll() is None:
            testkit.stop_process(daemon, timeout=10)
            exited.setdefault("status", daemon.returncode)
    scratch.stops.append(stop_daemon)

    def kill_daemon():
        """SIGKILL to the running ipamd (no cleanup, no final checkpoint write); returns once it is reaped."""
        daemon = daemons[-1]
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait()
        return daemon.returncode

    def restart_daemon():
        """ipamd again, on the same root (its checkpoint, conflist, socket path), as systemd would restart it."""
        with open(log_path, "ab") as log:
            log.write(b"\n--- cni-harness: ipamd restarted after SIGKILL ---\n")
        start_daemon()

    def log_tail(lines=30):
        with open(log_path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    deadline, last = time.monotonic() + 60, "no answer yet"
    daemon = daemons[-1]
    while True:
        if daemon.poll() is not None:
            raise RuntimeError(f"nodeboot ipamd exited {daemon.returncode} while starting; its log ends:\n{log_tail()}")
        try:
            status = ipamd_status(socket_path)
            last = json.dumps(status)[:600]
            if os.path.exists(conflist_path) and status.get("free", 0) >= want:
                break
        except (OSError, ValueError, RuntimeError) as error:
            last = f"{type(error).__name__}: {error}"
        if time.monotonic() > deadline:
            raise RuntimeError(f"ipamd did not serve {want} free addresses and write {conflist_path} within 60 s;"
                               f" last status: {last}\nits log ends:\n{log_tail()}")
        time.sleep(0.1)
    with open(conflist_path) as f:
        written = f.read()
    conflist = json.loads(written)
    shown = " ".join(f"{k}={v}" for k, v in settings.items())
    notes = [f"ipamd in {node} (maxPods {spec['maxPods']}; testbed at {TESTBED_ADDRESS} in {vpc}; {shown}): "
             f"{status.get('free')} free addresses, mode {status.get('mode')}, wrote {conflist_path}"]
    named = conflist["plugins"][0].get("socket")
    if named != socket_path:
        # The plugin reads the socket from the conflist: it must be the one this ipamd serves (under --root too).
        raise RuntimeError(f"ipamd --root wrote socket {named!r} into its conflist but serves {socket_path}")
    text = json.dumps(conflist, separators=(",", ":")) + "\n"

    def allocations():
        with open(checkpoint_path) as f:
            return [a["address"].split("/")[0] for a in json.load(f).get("allocations", [])]

    def released(ip):
        try:
            counts = ipamd_status(socket_path)
            held = allocations()
        except (OSError, ValueError, RuntimeError) as error:
            return False, f"ipamd's status or checkpoint: {type(error).__name__}: {error}"
        detail = (f"status: assigned {counts.get('assigned')}, cooling {counts.get('cooling')}, free "
                  f"{counts.get('free')}; checkpoint allocations {held}")
        return ip not in held and counts.get("assigned") == len(held), detail

    def enis():
        """EC2's view (the testbed's control API), the instance's ENIs."""
        out = run(in_netns(vpc, [sys.executable, "-c", "import sys,urllib.request\n"
                                 "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())",
                                 f"{aws}/_testbed/ec2/network-interfaces"]), check=True).stdout
        found = json.loads(out)
        found = found.get("networkInterfaces", found) if isinstance(found, dict) else found
        return [e for e in found if (e.get("attachment") or {}).get("instanceId") == INSTANCE_ID]

    def origin(ip):
        try:
            attached = enis()
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as error:
            return False, f"the testbed's ENIs: {error}"
        for eni in attached:
            secondaries = [a for a in eni.get("privateIpAddresses", [])[1:]]
            secondaries = [a.get("privateIpAddress", a) if isinstance(a, dict) else a for a in secondaries]
            prefixes = [ipaddress.ip_network(p.get("ipv4Prefix", p) if isinstance(p, dict) else p)
                        for p in eni.get("ipv4Prefixes", [])]
            if ip in secondaries or any(ipaddress.ip_address(ip) in p for p in prefixes):
                return True, f"{eni.get('networkInterfaceId')} (device {eni['attachment'].get('deviceIndex')})"
        return False, f"not a secondary or in a prefix of the instance's ENIs in EC2: {json.dumps(attached)[:900]}"

    def finish(report, label):
        try:
            counts = ipamd_status(socket_path)
            held = allocations()
            report.check(f"{label}: ipamd holds no address at the end (status and checkpoint)",
                         counts.get("assigned") == 0 and not held,
                         f"status {json.dumps(counts)[:800]}; checkpoint allocations {held}",
                         info=f"{counts.get('adds')} adds, {counts.get('deletes')} deletes")
        except (OSError, ValueError, RuntimeError) as error:
            report.check(f"{label}: ipamd answers status at the end", False, f"{error}\n{log_tail()}")
        routes = run(["ip", "-n", node, "-4", "route", "show", "table", "all"]).stdout
        rules = run(["ip", "-n", node, "-4", "rule", "show"]).stdout
        neigh = run(["ip", "-n", node, "neigh", "show", "proxy"]).stdout
        # A pod's: a route to its host veth (eni…), rules at 512 and 1536 (docs/cni.md §3).
        pods = [line for line in routes.splitlines() if " dev eni" in f" {line}"]
        pod_rules = [line for line in rules.splitlines() if line.split(":")[0] in ("512", "1536")]
        report.check(f"{label}: no pod route (to an eni… veth) or rule (512, 1536) left in the node",
                     not pods and not pod_rules,
                     f"routes: {pods}\nrules: {pod_rules}\nproxy neighbours: {neigh}")
        stop_daemon()
        report.check(f"{label}: ipamd exits 0 on SIGTERM", exited.get("status") == 0,
                     f"exit {exited.get('status')}; its log ends:\n{log_tail()}")

    def device_of(ip):
        for eni in enis():
            if ip in [a.get("privateIpAddress", a) if isinstance(a, dict) else a
                      for a in eni.get("privateIpAddresses", [])[1:]]:
                return eni["attachment"].get("deviceIndex")
        return None

    def wait_status(what, condition, timeout=45):
        end, last = time.monotonic() + timeout, "no answer"
        while time.monotonic() < end:
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                counts = ipamd_status(socket_path)
                if condition(counts):
                    return counts, None
                last = json.dumps(counts)[:800]
            time.sleep(0.1)
        return None, f"ipamd's status never showed {what} within {timeout} s; last: {last}\n{log_tail()}"

    return {"conflist": text, "netns": node, "released": released, "origin": origin, "finish": finish,
            "pool": min(status.get("free"), spec["maxPods"]), "notes": notes, "stop": lambda: None,
            "device_of": device_of, "wait_status": wait_status, "log_tail": log_tail, "enis": enis,
            "socket": socket_path, "checkpoint": checkpoint_path, "kill": kill_daemon, "restart": restart_daemon,
            "daemon": lambda: daemons[-1]}, None


def rules_of(netns, ips):
    """The node's IPv4 policy rules that name one of `ips`, as `ip rule` prints them (`512:\tfrom all to ...`)."""
    out = run(in_netns(netns, ["ip", "-4", "rule", "show"])).stdout
    return [" ".join(line.split()) for line in out.splitlines() if any(f" {ip} " in f" {line} " for ip in ips)]


def secondary_eni(spec, harness, scratch, report, label):
    """Pods on the primary and on a secondary ENI (issue 13's proof): ipamd grows a second ENI after the first pod
    (WARM_ENI_TARGET=1), which the runner's hypervisor plugs into the node; pods are added through go-cni until one
    lands on it (packing: the primary ENI's addresses first). The two ping each other and the node; the secondary
    pod has its rules (512: to it lookup main; 1536: from it lookup the ENI's table); CHECK passes; DEL (the secondary
    pod's after its netns is gone, as containerd does once the sandbox is gone, with the cached result) leaves no rule,
    route or address behind."""
    node = spec["netns"]
    counts, problem = spec["wait_status"]("a second ENI with its 9 addresses",
                                          lambda c: len(c.get("enis", [])) >= 2 and c.get("total", 0) >= 18)
    if not report.check(f"{label}: ipamd grew a second ENI (WARM_ENI_TARGET=1), plugged into the node by the runner",
                        counts is not None, problem,
                        info=counts and f"{counts['total']} addresses on {len(counts['enis'])} ENIs"):
        return
    added, failure = [], None  # (netns, sandbox id, ip, device)
    for number in range(12):
        netns = scratch.name(f"s{number}")
        scratch.add_netns(netns)
        sandbox = hashlib.sha256(f"{netns}-s".encode()).hexdigest()
        use_ids(sandbox)
        status, out, err = harness("setup", sandbox, f"/var/run/netns/{netns}")
        if status != 0 or not (out or {}).get("ip"):
            failure = f"ADD of pod {number} ({netns}): exit {status}: {json.dumps(out)[:800]}\n{err}"
            break
        device = spec["device_of"](out["ip"])
        added.append((netns, sandbox, out["ip"], device))
        if device is None or device > 0:
            break
    devices = [a[3] for a in added]
    secondary = added[-1] if added and devices[-1] else None
    report.check(f"{label}: pods get the primary ENI's addresses first, then the secondary ENI's",
                 not failure and secondary and devices[:-1] == [0] * (len(added) - 1), failure or
                 f"(address, device) in order: {[(a[2], a[3]) for a in added]}",
                 info=secondary and f"pod {len(added)} got {secondary[2]} on device {secondary[3]}")
    if secondary and len(added) > 1:
        primary = added[0]
        ok, detail = pings(node, primary[0], secondary[0], primary[2], secondary[2])
        report.check(f"{label}: a pod on the primary ENI and one on the secondary ENI ping each other and the node, "
                     "and the node pings them", ok, detail, info=detail if ok else "")
        table = secondary[3] + 1
        want = [f"512: from all to {secondary[2]} lookup main", f"1536: from {secondary[2]} lookup {table}"]
        got = rules_of(node, [secondary[2]])
        want_primary = [f"512: from all to {primary[2]} lookup main"]
        got_primary = rules_of(node, [primary[2]])
        report.check(f"{label}: the rules of docs/cni.md §3: the secondary ENI's pod 512 (to it, main) and 1536 (from "
                     f"it, table {table}), the primary ENI's pod 512 only", sorted(got) == sorted(want)
                     and got_primary == want_primary, f"secondary's: {got}, want {want}; primary's: {got_primary}, "
                     f"want {want_primary}")
        status, out, err = harness("check", secondary[1], f"/var/run/netns/{secondary[0]}")
        report.check(f"{label}: CHECK of the secondary ENI's pod passes", status == 0 and out and out.get("ok"),
                     f"exit {status}: {json.dumps(out)}\n{err}")
    problems = []
    for netns, sandbox, ip, device in reversed(added):
        where = f"/var/run/netns/{netns}"
        if secondary and netns == secondary[0]:
            netns_del(netns)
            where = "-"
        status, out, err = harness("remove", sandbox, where)
        if status != 0:
            problems.append(f"DEL {netns} ({where}): exit {status}: {json.dumps(out)[:400]}\n{err}")
    ips = [a[2] for a in added]
    left_rules = rules_of(node, ips)
    routes = run(in_netns(node, ["ip", "-4", "route", "show", "table", "all"])).stdout
    left_routes = [line for line in routes.splitlines() if line.split(" ")[0] in ips]
    held = [ip for ip in ips if not spec["released"](ip)[0]]
    report.check(f"{label}: DEL of the {len(added)} pods (the secondary ENI's without its netns) leaves no rule, "
                 "route or address held", not problems and not left_rules and not left_routes and not held,
                 "\n".join(problems) + f"\nrules: {left_rules}\nroutes: {left_routes}\nstill held by ipamd: {held}")


def start_node(opts, scratch, report, bench_pods=None, **node_options):
    """nodeboot_node, its failure to start one a failed check; (spec, None), (None, why not) or (None, None)."""
    try:
        return nodeboot_node(opts, scratch, bench_pods=bench_pods, **node_options)
    except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError, KeyError) as error:
        report.check("nodeboot ipamd starts in the node's namespace against the testbed and writes its conflist",
                     False, f"{type(error).__name__}: {error}")
        return None, None


def use_ids(*ids):
    """Sandbox ids about to be used: their results-cache files are removed at the end (and by a later run's sweep)."""
    USED_IDS.update(ids)
    if Scratch.current:
        Scratch.current.save()


def process_start(pid):
    """The start time of a process (/proc/PID/stat's 22nd field), or None when there is no such process (or a zombie:
    a killed run its parent has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return None if fields[0] in ("Z", "X") else fields[19]
    except (OSError, IndexError):
        return None


def remove_cache_files(networks, ids):
    if os.path.isdir(RESULTS):
        for name in os.listdir(RESULTS):
            if any(name.startswith(f"{net}-") for net in networks) or any(f"-{i}-" in name for i in ids):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(RESULTS, name))


def sweep_killed_runs():
    """What runs killed outright (SIGKILL: no cleanup ran) left, from their ledgers: namespaces, scratch dirs, cache
    files. (Their ipamd and testbed died with them: setpriv --pdeathsig.) Returns what was removed, for a note."""
    swept = []
    for name in sorted(os.listdir(LEDGER_DIR)) if os.path.isdir(LEDGER_DIR) else []:
        path = os.path.join(LEDGER_DIR, name)
        try:
            with open(path) as f:
                ledger = json.load(f)
        except (OSError, ValueError):
            continue
        if process_start(ledger.get("pid")) == ledger.get("start"):
            continue  # that run is still going
        netns_del(*ledger.get("netns", []))
        remove_cache_files(ledger.get("networks", []), ledger.get("ids", []))
        if ledger.get("dir", "").startswith(tempfile.gettempdir() + "/nodeboot-cni-harness-"):
            shutil.rmtree(ledger["dir"], ignore_errors=True)
        with contextlib.suppress(OSError):
            os.remove(path)
        swept.append(f"pid {ledger.get('pid')}: {len(ledger.get('netns', []))} namespaces, {ledger.get('dir')}")
    return swept


class Scratch:
    """A temp dir, unique namespace names, cleanup of what was made (namespaces, cache files, the dir). A ledger in
    LEDGER_DIR lists them while the run goes, so that a later run removes them should this one be killed."""
    current = None

    def __init__(self, keep=False):
        self.swept = sweep_killed_runs()
        self.dir = tempfile.mkdtemp(prefix="nodeboot-cni-harness-")
        self.tag = f"nbh{os.getpid() % 100000}"
        self.netns, self.networks, self.stops, self.keep = [], [], [], keep
        os.makedirs(LEDGER_DIR, exist_ok=True)
        self.ledger = os.path.join(LEDGER_DIR, f"{os.getpid()}.json")
        Scratch.current = self
        self.save()

    def save(self):
        record = {"pid": os.getpid(), "start": process_start(os.getpid()), "dir": self.dir, "netns": self.netns,
                  "networks": self.networks, "ids": sorted(USED_IDS)}
        with open(self.ledger + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(self.ledger + ".tmp", self.ledger)

    def name(self, suffix):
        return f"{self.tag}-{suffix}"

    def add_netns(self, *names):
        self.netns += names
        self.save()
        netns_add(*names)

    def add_network(self, name):
        self.networks.append(name)
        self.save()

    def close(self):
        for stop in reversed(self.stops):
            with contextlib.suppress(Exception):
                stop()
        netns_del(*self.netns)
        remove_cache_files(self.networks, USED_IDS)
        if self.keep:
            print(f"      scratch kept: {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.remove(self.ledger)
        Scratch.current = None


def reference_node(scratch, binary, shims=True):
    """A node namespace with lo up, the reference conflist in a conf dir, plugin dirs (shims first)."""
    node = scratch.name("node")
    scratch.add_netns(node)
    run(["ip", "-n", node, "link", "set", "lo", "up"], check=True)
    network = f"{scratch.tag}-ref"
    scratch.add_network(network)
    ipam_dir = os.path.join(scratch.dir, "ipam")
    conf_dir = os.path.join(scratch.dir, "ref-conf")
    write_conf_dir(conf_dir, "10-harness.conflist", reference_conflist(network, scratch.tag + "br", ipam_dir))
    log_dir = os.path.join(scratch.dir, "ref-calls")
    bin_dirs = [REF_DIR]
    if shims:
        shim_dir = os.path.join(scratch.dir, "ref-shims")
        make_shims(shim_dir, log_dir, {n: os.path.join(REF_DIR, n) for n in ("bridge", "portmap", "loopback")})
        bin_dirs = [shim_dir, REF_DIR]
    return node, network, ipam_dir, conf_dir, log_dir, Harness(binary, node, conf_dir, bin_dirs)


def nodeboot_setup(scratch, binary, plugin, spec, shims=True, tag="nodeboot"):
    """Conf dir with ipamd's conflist, plugin dir with nodeboot-cni and Debian's portmap and loopback. (The network's
    cache files are removed at the end by sandbox id, not by name: a real node's `nodeboot` network is not ours.)"""
    network = json.loads(spec["conflist"]).get("name", "nodeboot")
    conf_dir = os.path.join(scratch.dir, f"{tag}-conf")
    write_conf_dir(conf_dir, "10-nodeboot.conflist", spec["conflist"])
    bin_dir = os.path.join(scratch.dir, f"{tag}-bin")
    os.makedirs(bin_dir, exist_ok=True)
    reals = {"nodeboot-cni": plugin, "portmap": os.path.join(REF_DIR, "portmap"),
             "loopback": os.path.join(REF_DIR, "loopback")}
    log_dir = os.path.join(scratch.dir, f"{tag}-calls")
    if shims:
        make_shims(bin_dir, log_dir, reals)
    else:
        for name, real in reals.items():
            os.symlink(real, os.path.join(bin_dir, name))
    # Debian's plugins after it: what a chain may delegate to (a node's /opt/cni/bin has them beside nodeboot-cni).
    return network, conf_dir, log_dir, Harness(binary, spec["netns"], conf_dir, [bin_dir, REF_DIR])


# ---------------------------------------------------------------------------------------------------------------
# --cycles: ADD/DEL cycles against the real ipamd, one at a time and 16 at a time, then the same with ipamd SIGKILLed
# in the middle and restarted; nothing may leak.

CYCLES_COOLDOWN = "1"  # s: a released address is not handed out again at once, so a cycle's checks right after its
#                        DEL never see the address's next pod (and the cooling path is used)


def cycle_ids(prefix, n):
    """The sandbox ids the harness gives its cycles (cycleID in main.go)."""
    return [hashlib.sha256(f"cycle:/var/run/netns/{prefix}{i}".encode()).hexdigest() for i in range(n)]


def node_leftovers(node, node_veths):
    """What pods left in the node's namespace: veths (other than the node's NICs), routes to eni… veths in any table,
    rules at 512/1536, neighbour entries on eni… veths."""
    left = [f"veth {v}" for v in sorted(veths(node) - node_veths) if not v.startswith("eth")]
    routes = run(in_netns(node, ["ip", "-4", "route", "show", "table", "all"])).stdout
    left += [f"route {line}" for line in routes.splitlines() if " dev eni" in f" {line}"]
    rules = run(in_netns(node, ["ip", "-4", "rule", "show"])).stdout
    left += [f"rule {' '.join(line.split())}" for line in rules.splitlines() if line.split(":")[0] in ("512", "1536")]
    neigh = run(in_netns(node, ["ip", "neigh", "show"])).stdout
    left += [f"neighbour {line}" for line in neigh.splitlines() if " dev eni" in f" {line}"]
    return left


def plugin_gc(spec, plugin, network, valid=()):
    """CNI GC (1.1.0) of the network through nodeboot-cni, as containerd >= 2.0 sends it (libcni 1.2's GCNetworkList:
    the plugin's configuration with cni.dev/valid-attachments); (exit status, stdout, stderr)."""
    conf = {**json.loads(spec["conflist"])["plugins"][0], "cniVersion": "1.1.0", "name": network,
            "cni.dev/valid-attachments": [{"containerID": c, "ifname": "eth0"} for c in valid]}
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": "GC",
           "CNI_PATH": REF_DIR}
    result = run(in_netns(spec["netns"], [plugin]), input=json.dumps(conf), stdin=None, env=env)
    return result.returncode, result.stdout, result.stderr


def cycles_one(spec, harness, plugin, network, scratch, report, n, concurrency, kill, key, node_veths,
               wait_reconcile=0):
    """One run of n cycles through the harness (`cycles`), its checks and its figures; returns the leaks found."""
    node = spec["netns"]
    label = f"{n} ADD/DEL cycles {'one at a time' if concurrency == 1 else f'{concurrency} at a time'}"
    if kill:
        label += ", ipamd SIGKILLed in the middle and restarted"
    prefix = scratch.name(f"{key}-")
    ids = cycle_ids(prefix, n)
    use_ids(*ids)
    scratch.netns += [f"{prefix}{i}" for i in range(n)]  # the harness makes and deletes them; a killed run's sweep
    scratch.save()
    flags = ["-gone-every", "4"]  # every 4th DEL after the pod's namespace is gone, as containerd sends it then
    held, outage = 16, max(8, min(64, n // 8))
    if kill:
        kill_at = max(0, n // 2 - (held if concurrency == 1 else 0))
        flags += ["-kill-at", str(kill_at), "-held", str(held), "-outage", str(outage)]
    log_path = os.path.join(scratch.dir, f"cycles-{key}.log")
    argv = in_netns(node, [harness.binary, "-conf-dir", harness.conf_dir, "-bin-dir", ":".join(harness.bin_dirs),
                           *flags, "cycles", str(n), str(concurrency), prefix])
    events, last = {}, ""

    def wait_ready():
        while "ready" not in events and time.monotonic() < events["restart_mono"] + 60:
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                status = ipamd_status(spec["socket"])
                events.setdefault("answer", time.time_ns())
                if status.get("ready", True) and status.get("free", 0) > 0:
                    events["ready"] = time.time_ns()
                    break
            time.sleep(0.005)
    waiter = None
    start = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            for line in proc.stdout:
                line = line.strip()
                if line == "@kill":
                    events["kill"] = time.time_ns()
                    events["kill_status"] = spec["kill"]()
                    events["dead"] = time.time_ns()
                    proc.stdin.write("go\n")
                    proc.stdin.flush()
                elif line == "@restart":
                    events["restart"], events["restart_mono"] = time.time_ns(), time.monotonic()
                    spec["restart"]()
                    import threading
                    waiter = threading.Thread(target=wait_ready, daemon=True)
                    waiter.start()
                elif line:
                    last = line
            proc.wait(timeout=1800)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if waiter:
        waiter.join(70)
    try:
        out = json.loads(last)
    except ValueError:
        with open(log_path, errors="replace") as f:
            tail = f.read()[-2000:]
        report.check(f"cycles: {label}: the harness ran them", False, f"exit {proc.returncode}: {last[:500]}\n{tail}")
        return 1
    cycles = out["cycles"]
    problems, leaks = [], []
    for c in cycles:
        where = (f"cycle {c['i']}{' (held over the kill)' if c.get('held') else ''}"
                 f"{' (DEL without netns)' if c.get('gone') else ''}")
        leaks += [f"{where}: {leak}" for leak in c.get("leaks") or []]
        if not c["dok"]:
            problems.append(f"{where}: {'DEL' if c['ok'] else 'the cleanup DEL'} failed: {c.get('derr')}")
    # No address in two live pods at once (across ipamd's restart too): from the ADD's answer to the DEL's start.
    by_ip = {}
    for c in cycles:
        if c["ok"]:
            by_ip.setdefault(c["ip"], []).append((c["a1"], c["d0"], c["i"]))
    for ip, lives in by_ip.items():
        lives.sort()
        for (_, end, first), (begin, _, second) in zip(lives, lives[1:]):
            if begin < end:
                problems.append(f"{ip} was given to cycle {second} while cycle {first} still held it")
    failed_adds = [c for c in cycles if not c["ok"]]
    if not kill:
        problems += [f"cycle {c['i']}: ADD failed (code {c.get('code')}): {c.get('err')}" for c in failed_adds]
    else:
        if not {"kill", "restart", "ready"} <= events.keys():
            problems.append(f"the kill and restart did not both happen (events {sorted(events)})")
        else:
            killed, dead, restarted, ready = events["kill"], events["dead"], events["restart"], events["ready"]
            for c in cycles:
                if c["a1"] < killed and not c["ok"]:
                    problems.append(f"cycle {c['i']}: ADD before the kill failed: {c.get('err')}")
                if c["a0"] > dead and c["a1"] < restarted and c["ok"]:
                    problems.append(f"cycle {c['i']}: ADD while ipamd was dead succeeded ({c.get('ip')})")
                if c["a0"] > ready and not c["ok"]:
                    problems.append(f"cycle {c['i']}: ADD after ipamd was back failed: {c.get('err')}")
            for c in failed_adds:
                if c.get("code") != 11 or "ipamd" not in (c.get("err") or ""):
                    problems.append(f"cycle {c['i']}: ADD failed with code {c.get('code')} (want 11, naming ipamd):"
                                    f" {c.get('err')}")
    if leaks:
        problems.append(f"{len(leaks)} leftovers after ADD failures or DELs:\n" + "\n".join(leaks[:20]))
    names = set(os.listdir("/var/run/netns")) if os.path.isdir("/var/run/netns") else set()
    left_netns = sorted(n for n in names if n.startswith(prefix))
    cache = sorted(name for name in (os.listdir(RESULTS) if os.path.isdir(RESULTS) else [])
                   if any(f"-{i}-" in name for i in ids))
    left_node = node_leftovers(node, node_veths)
    for what, found in (("pod namespaces", left_netns), ("results-cache files", cache), ("in the node", left_node)):
        if found:
            leaks += found
            problems.append(f"left {what}: {found[:10]}")

    detail_kill = ""
    if kill and "ready" in events:
        dead, restarted, ready = events["dead"], events["restart"], events["ready"]
        outage_dels = [c for c in cycles if c["ok"] and c["d0"] > dead and c["d1"] < restarted]
        outage_gone = sum(1 for c in outage_dels if c.get("gone"))
        outage_adds = [c for c in cycles if c["a0"] > dead and c["a1"] < restarted]
        messages = sorted({(c.get("code"), (c.get("err") or "").split("nodeboot-cni\" failed (add): ")[-1]
                            .replace(spec["socket"], "SOCKET")[:100]) for c in failed_adds})
        # What ipamd holds once back: the addresses whose DEL it never heard of (the host side went with the DEL; the
        # restart's reconcile keeps an allocation younger than 5 min without a kernel trace: docs/ipamd.md §6), and
        # any an ADD that met the kill was given.
        try:
            with open(spec["checkpoint"]) as f:
                allocations = json.load(f).get("allocations", [])
        except (OSError, ValueError) as error:
            allocations = []
            problems.append(f"ipamd's checkpoint: {error}")
        held_ids = {a.get("container") for a in allocations}
        by_id = dict(zip(ids, cycles))
        must = {ids[c["i"]] for c in outage_dels}
        may = must | {ids[c["i"]] for c in cycles if (c["ok"] and c["d0"] < ready and c["d1"] > events["kill"])
                      or (not c["ok"] and c["a0"] < dead and c["a1"] > events["kill"])}
        strangers = sorted(i for i in held_ids if i not in may)
        if not must <= held_ids or strangers:
            problems.append(f"after the restart ipamd holds {len(held_ids)} addresses; the {len(must)} DELed while it "
                            f"was down must be among them ({len(must - held_ids)} are not) and nothing else "
                            f"({[by_id.get(i, {}).get('i', i[:12]) for i in strangers]})")
        if wait_reconcile and held_ids:
            # containerd 1.6/1.7 send no GC: ipamd's own reconcile must free them (docs/ipamd.md §6: no kernel trace
            # and older than the 5-minute wiring grace; the host reconcile runs at most every 60 s).
            youngest = max(a.get("since", 0) for a in allocations) / 1000
            end, left = time.monotonic() + wait_reconcile, held_ids
            while left and time.monotonic() < end:
                time.sleep(2)
                with contextlib.suppress(OSError, ValueError), open(spec["checkpoint"]) as f:
                    left = {a.get("container") for a in json.load(f).get("allocations", [])} & held_ids
            waited = time.time() - youngest
            if left:
                problems.append(f"ipamd's reconcile did not free {len(left)} of the {len(held_ids)} held addresses "
                                f"within {waited:.0f} s of the youngest allocation")
            how = (f"ipamd's reconcile (no GC) freed {len(held_ids) - len(left)} by {waited:.0f} s after the "
                   "youngest allocation")
        else:
            status, stdout, stderr = plugin_gc(spec, plugin, network)
            gc_line = next((line for line in stderr.splitlines() if "GC: released " in line), "")
            gc_count = len(gc_line.split("GC: released ")[-1].split(" (")[0].split(", ")) if gc_line else 0
            if status != 0 or gc_count != len(held_ids):
                problems.append(f"CNI GC: exit {status}, released {gc_count} of the {len(held_ids)} held: {stdout} "
                                f"{stderr[-500:]}")
            how = f"CNI GC (valid attachments: none) released {gc_count}"
        detail_kill = (f"; ipamd SIGKILLed at cycle {kill_at}, down {(restarted - dead) / 1e9:.2f} s, answering again "
                       f"after {(ready - restarted) / 1e9:.2f} s; {len(outage_adds)} ADDs while down all failed "
                       f"cleanly ({len(failed_adds)} failed in all: {', '.join(f'code {c}: {m}' for c, m in messages)})"
                       f", {len(outage_dels)} DELs while down ({outage_gone} without netns) all succeeded; ipamd held {len(held_ids)} addresses "
                       f"once back (those DELs' and any an ADD met the kill with); {how}")
    # ipamd's view: nothing assigned, nothing in the checkpoint; EC2's addresses all in ipamd's pool.
    try:
        counts = ipamd_status(spec["socket"])
        with open(spec["checkpoint"]) as f:
            allocations = json.load(f).get("allocations", [])
        if counts.get("assigned") != 0 or allocations:
            leaks.append("addresses held")
            problems.append(f"ipamd still holds addresses: status assigned {counts.get('assigned')}, checkpoint "
                            f"{[(a.get('container', '')[:12], a.get('address')) for a in allocations][:10]}")
        prefixes = sum(len(e.get("ipv4Prefixes", [])) for e in spec["enis"]())
        if prefixes * 16 != counts.get("total"):
            problems.append(f"EC2 has {prefixes} /28s ({prefixes * 16} addresses), ipamd's pool {counts.get('total')}")
        pool = (f"ipamd: assigned {counts.get('assigned')}, cooling {counts.get('cooling')}, free {counts.get('free')} "
                f"of {counts.get('total')} (= EC2's {prefixes} /28s), checkpoint empty")
    except (OSError, ValueError, RuntimeError, subprocess.SubprocessError) as error:
        problems.append(f"ipamd's status, checkpoint or EC2's view: {type(error).__name__}: {error}")
        pool = ""
    s, r = out["setup"], out["remove"]
    info = (f"{n} cycles in {out['wall_s']:.1f} s ({time.monotonic() - start:.1f} s with the checks); leaks found: "
            f"{len(leaks)}; {sum(1 for c in cycles if c.get('gone'))} DELs after the pod's netns was gone; "
            f"ADD p50 {s['p50_ms']:.1f} p99 {s['p99_ms']:.1f} ms, DEL p50 {r['p50_ms']:.1f} p99 "
            f"{r['p99_ms']:.1f} ms over the {s['n']} cycles whose ADD succeeded; {pool}{detail_kill}")
    if report.check(f"cycles: {label}: every DEL succeeds, no address in two live pods, nothing leaks (host veth, "
                    "rules, pod links and neighbours after each cycle; netns, cache, node veths/routes/rules/neighbours,"
                    " ipamd's addresses at the end)",
                    not problems, "\n".join(problems) + f"\n{info}"):
        report.note(info)
    return len(leaks)


def run_cycles(opts, binary, scratch, report):
    """--cycles N: the four runs against one node (ipamd with prefix delegation, maxPods 110, a 1 s cooldown)."""
    plugin, why = find_plugin(opts)
    if opts.conflist or opts.ipamd_socket:
        plugin, why = None, "--conflist/--ipamd-socket: the runner cannot kill and restart that ipamd"
    if not plugin:
        report.skip("cycles", why)
        return
    spec, why = start_node(opts, scratch, report, bench_pods=110, cooldown=CYCLES_COOLDOWN, suffix="c")
    if not spec:
        if why:
            report.skip("cycles", why)
        return
    scratch.stops.append(spec["stop"])
    for note in spec["notes"]:
        report.note(note)
    network, _, _, harness = nodeboot_setup(scratch, binary, plugin, spec, shims=False, tag="cycles")
    node_veths = veths(spec["netns"])
    started, total, ran = time.monotonic(), 0, 0
    for key, concurrency, kill in (("cs", 1, False), ("cc", opts.bench_concurrency, False), ("ks", 1, True),
                                   ("kc", opts.bench_concurrency, True)):
        if kill and opts.cycles < 100:
            report.skip(f"cycles: {opts.cycles} cycles with ipamd SIGKILLed ({'one' if concurrency == 1 else 'several'}"
                        " at a time)", "needs --cycles 100 or more: cycles before the kill, an outage, cycles after")
            continue
        if opts.cycles_reconcile and not (kill and concurrency == 1):
            continue
        total += cycles_one(spec, harness, plugin, network, scratch, report, opts.cycles, concurrency, kill, key,
                            node_veths, wait_reconcile=opts.cycles_reconcile)
        ran += opts.cycles
    report.note(f"cycles: {ran} ADD/DEL cycles in {time.monotonic() - started:.1f} s; leaks found: {total}")
    spec["finish"](report, "cycles")


# ---------------------------------------------------------------------------------------------------------------
# The benchmark.

def summarize(samples):
    """main.go's summarize: nearest-rank p50/p99, min, max, mean (ms)."""
    ordered = sorted(samples)
    if not ordered:
        return {"n": 0, "p50_ms": 0, "p99_ms": 0, "min_ms": 0, "max_ms": 0, "mean_ms": 0}

    def rank(q):
        return ordered[max(0, -(-int(q * 100) * len(ordered) // 100) - 1)]
    return {"n": len(ordered), "p50_ms": rank(0.50), "p99_ms": rank(0.99), "min_ms": ordered[0],
            "max_ms": ordered[-1], "mean_ms": round(sum(ordered) / len(ordered), 3)}


def bench_one(harness, scratch, key, pods, concurrency, port_flags):
    """ADD then DEL of `pods` fresh namespaces through the harness; (figures, problem or None). `key` makes the
    namespaces' names (and so the sandbox ids) the row's own."""
    prefix = scratch.name(f"{key}{concurrency}-")
    names = [f"{prefix}{i}" for i in range(pods)]
    # The harness derives each sandbox id from its netns path (benchID in main.go): their cache files go at the end.
    use_ids(*(hashlib.sha256(f"bench:/var/run/netns/{n}".encode()).hexdigest() for n in names))
    scratch.add_netns(*names)
    try:
        status, out, err = harness("bench", str(pods), str(concurrency), prefix, flags=port_flags, timeout=1800)
    finally:
        netns_del(*names)
    if status != 0 or not out:
        return out, f"exit {status}: {json.dumps(out)[:1500] if out else ''}\n{err[-1500:]}"
    if out["distinct_ips"] != pods:
        return out, f"{out['distinct_ips']} distinct addresses for {pods} pods"
    return out, None


def run_bench(opts, binary, scratch, report):
    figures = {}
    port_flags = ["-port", f"{opts.bench_base_port}:{POD_PORT}/tcp"] if opts.bench_ports else []
    modes = [("sequential", 1), (f"{opts.bench_concurrency} concurrent", opts.bench_concurrency)]
    chains = []
    node, network, ipam_dir, conf_dir, log_dir, harness = reference_node(scratch, binary, shims=False)
    chains.append(("bridge+host-local+portmap", harness))
    # Each main plugin alone too (a conflist without portmap): what the plugin costs apart from portmap's iptables.
    alone = f"{scratch.tag}-ref-alone"
    scratch.add_network(alone)
    alone_dir = os.path.join(scratch.dir, "ref-alone-conf")
    write_conf_dir(alone_dir, "10-harness.conflist", without_portmap(
        reference_conflist(alone, scratch.tag + "br", os.path.join(scratch.dir, "ipam")), alone))
    chains.append(("bridge+host-local", Harness(binary, node, alone_dir, [REF_DIR])))
    pods, spec = opts.bench_pods, None
    plugin, why = find_plugin(opts)
    if plugin:
        spec, why = start_node(opts, scratch, report, bench_pods=opts.bench_pods)
        if spec:
            scratch.stops.append(spec["stop"])
            for note in spec["notes"]:
                report.note(note)
            if spec["pool"] is not None and spec["pool"] < pods:
                report.note(f"{pods} pods per row is more than ipamd's pool of {spec['pool']}: both chains get "
                            f"{spec['pool']} pods per row")
                pods = spec["pool"]
            _, _, _, nb_harness = nodeboot_setup(scratch, binary, plugin, spec, shims=False)
            chains.append(("nodeboot-cni+portmap", nb_harness))
            alone_spec = {**spec, "conflist": without_portmap(spec["conflist"], "nodeboot-alone")}
            _, _, _, nb_alone = nodeboot_setup(scratch, binary, plugin, alone_spec, shims=False, tag="nodeboot-alone")
            chains.append(("nodeboot-cni", nb_alone))
    if why:
        report.skip("bench nodeboot-cni", why)
    # In rounds, each a share of the pods for every chain and mode in turn: a machine whose load changes during the run
    # then weighs on every row alike, and the ratios of one run stay fair.
    rounds = max(1, min(opts.bench_rounds, pods // max(opts.bench_concurrency, 1)))
    shares = [pods // rounds + (1 if r < pods % rounds else 0) for r in range(rounds)]
    merged, failed = {}, set()
    for round_number, share in enumerate(shares):
        for number, (chain, harness) in enumerate(chains):
            for mode, concurrency in modes:
                if (chain, mode) in failed:
                    continue
                flags = port_flags if chain.endswith("+portmap") else []
                out, problem = bench_one(harness, scratch, f"{'rpnq'[number]}{round_number}", share, concurrency,
                                         flags)
                if problem:
                    failed.add((chain, mode))
                    report.check(f"bench {chain} {mode}: {pods} pods ADD then DEL, no errors, distinct addresses",
                                 False, f"round {round_number + 1} of {rounds}: {problem}")
                    continue
                row = merged.setdefault((chain, mode), {"setup_samples_ms": [], "remove_samples_ms": [],
                                                        "setup_wall_s": 0.0, "remove_wall_s": 0.0})
                for k in ("setup_samples_ms", "remove_samples_ms"):
                    row[k] += out[k]
                for k in ("setup_wall_s", "remove_wall_s"):
                    row[k] += out[k]
    for number, (chain, harness) in enumerate(chains):
        for mode, concurrency in modes:
            out = merged.get((chain, mode))
            if (chain, mode) in failed or not out:
                continue
            out.update(n=pods, concurrency=concurrency, rounds=rounds, setup=summarize(out["setup_samples_ms"]),
                       remove=summarize(out["remove_samples_ms"]))
            name = (f"bench {chain} {mode}: {pods} pods ADD then DEL ({rounds} rounds, interleaved with the other "
                    "rows), no errors, distinct addresses")
            if report.check(name, True):
                figures[(chain, mode)] = out
                s, r = out["setup"], out["remove"]
                report.note(f"ADD p50 {s['p50_ms']:.1f} ms  p99 {s['p99_ms']:.1f} ms  (min {s['min_ms']:.1f}, "
                            f"max {s['max_ms']:.1f}, mean {s['mean_ms']:.1f}; wall {out['setup_wall_s']:.2f} s)   "
                            f"DEL p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  (wall {out['remove_wall_s']:.2f} s)")
    # Each plugin's own peak RSS: a row again (fewer pods, one at a time) with each plugin run under GNU time (%M:
    # wait4's ru_maxrss of that process; a fork of time, about 1 MiB, is the floor; bridge's includes host-local's,
    # which it waits for). Not in the latency rows: the shim costs an exec or two.
    rss = {}  # (plugin, command) -> [KiB]
    rss_pods = min(pods, 20)
    for number, (chain, harness) in enumerate(chains if os.access(GNU_TIME, os.X_OK) else []):
        wrap_dir = os.path.join(scratch.dir, f"rss-wrap-{number}")
        os.makedirs(wrap_dir)
        log = os.path.join(scratch.dir, f"rss-{number}.log")
        for name in ("nodeboot-cni", "bridge", "portmap", "loopback"):
            real = next((os.path.join(d, name) for d in harness.bin_dirs if os.path.exists(os.path.join(d, name))),
                        None)
            if real:
                with open(os.path.join(wrap_dir, name), "w") as f:
                    f.write(f'#!/bin/sh\nexec {GNU_TIME} -a -o {log} -f "{name} $CNI_COMMAND %M" {real}\n')
                os.chmod(os.path.join(wrap_dir, name), 0o755)
        wrapped = Harness(harness.binary, harness.node_netns, harness.conf_dir, [wrap_dir, *harness.bin_dirs])
        out, problem = bench_one(wrapped, scratch, "RPNQ"[number], rss_pods, 1,
                                 port_flags if chain.endswith("+portmap") else [])
        lines = open(log).read().split("\n") if os.path.exists(log) else []
        for line in lines:
            parts = line.split()
            if len(parts) == 3 and parts[2].isdigit():
                rss.setdefault((parts[0], parts[1]), []).append(int(parts[2]))
        report.check(f"bench {chain}: each plugin's own peak RSS recorded ({rss_pods} pods, ADD and DEL)",
                     problem is None and any(line for line in lines), problem or f"nothing in {log}")
    if spec and spec["finish"]:
        spec["finish"](report, "bench nodeboot-cni+portmap")
    print("\ncni-harness bench (ms; through go-cni 1.1.7 as containerd 1.6/1.7, loopback in parallel, "
          f"{pods} pods per row{', one host port each' if opts.bench_ports else ''})")
    print(f"{'chain':<28} {'mode':<14} {'ADD p50':>8} {'ADD p99':>8} {'DEL p50':>8} {'DEL p99':>8}")
    for (chain, mode), out in figures.items():
        print(f"{chain:<28} {mode:<14} {out['setup']['p50_ms']:>8.1f} {out['setup']['p99_ms']:>8.1f} "
              f"{out['remove']['p50_ms']:>8.1f} {out['remove']['p99_ms']:>8.1f}")
    if not os.access(GNU_TIME, os.X_OK):
        report.skip("bench: each plugin's own peak RSS", f"no {GNU_TIME} (Debian's time)")
    if rss:
        print(f"\nplugin peak RSS, MiB (each plugin process's own: GNU time's %M, wait4; {rss_pods} pods per chain, "
              "one at a time; bridge's includes host-local's)")
        print(f"{'plugin':<14} {'command':<8} {'runs':>5} {'p50':>6} {'max':>6}")
        for (name, command), values in sorted(rss.items()):
            values = sorted(values)
            print(f"{name:<14} {command:<8} {len(values):>5} {values[(len(values) - 1) // 2] / 1024:>6.1f} "
                  f"{values[-1] / 1024:>6.1f}")
    pairs = [("bridge+host-local+portmap", "nodeboot-cni+portmap"), ("bridge+host-local", "nodeboot-cni")]
    if any((nb, mode) in figures for _, nb in pairs for mode, _ in modes):
        print("issue 13's targets: nodeboot-cni's ADD p50 <= 10 ms (one at a time; 16 at once on this machine's "
              f"{os.cpu_count()} cores is mostly waiting for a core) and bridge + host-local's ADD p50 >= 2 x "
              "nodeboot-cni's")
    for ref, nb in pairs:
        for mode, _ in modes:
            r, n = figures.get((ref, mode)), figures.get((nb, mode))
            if not (r and n):
                continue
            def ratio(op, q):
                return r[op][q] / max(n[op][q], 0.001)
            add = n["setup"]["p50_ms"]
            verdict = ("met" if add <= 10 else "NOT met") if mode == "sequential" else "-"
            print(f"  {nb:<21} {mode:<14} ADD p50 {add:6.1f} ms ({verdict});"
                  f" {ref}'s / nodeboot-cni's: ADD p50 {ratio('setup', 'p50_ms'):4.2f}"
                  f" ({'met' if ratio('setup', 'p50_ms') >= 2 else 'NOT met'}), p99 {ratio('setup', 'p99_ms'):4.2f};"
                  f" DEL p50 {ratio('remove', 'p50_ms'):4.2f}, p99 {ratio('remove', 'p99_ms'):4.2f}")
    ours = max(rss.get(("nodeboot-cni", "ADD"), []) + rss.get(("nodeboot-cni", "DEL"), []), default=0)
    theirs = max(rss.get(("bridge", "ADD"), []) + rss.get(("bridge", "DEL"), []), default=0)
    if ours and theirs:
        print(f"  peak RSS: nodeboot-cni {ours / 1024:.1f} MiB, bridge (+ host-local) {theirs / 1024:.1f} MiB: "
              f"bridge's / nodeboot-cni's {theirs / ours:4.2f}")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({**{f"{chain} {mode}": {k: v for k, v in out.items()
                                              if not k.endswith("samples_ms") and k != "children_maxrss_kib"}
                          for (chain, mode), out in figures.items()},
                       "plugin_maxrss_kib": {f"{name} {command}": sorted(v) for (name, command), v in rss.items()}},
                      f, indent=1)
            f.write("\n")
        print(f"figures written to {opts.json}")


# ---------------------------------------------------------------------------------------------------------------
# --demo: one pod, for a person (make demo's last section).

class DemoFailure(Exception):
    pass


def demo(opts):
    """One pod through go-cni against the node the checks start (ipamd + the testbed's m5.large): its address, that
    EC2 has it as a secondary address of the primary ENI, what the pod sees, a ping to the node, ipamd's pool before
    and after, DEL and the address back in the pool; everything removed. 0 on success (and when a prerequisite is
    missing: one line saying which and how to get it), 1 with a `demo FAILED:` line otherwise."""
    if os.geteuid() != 0:
        print("   (skipped: needs root, for the network namespaces of the node and the pod; run `sudo make demo`)")
        return 0
    lacking = [p for p in (GO, GOCNI, *(os.path.join(REF_DIR, n) for n in ("portmap", "loopback")))
               if not os.path.exists(p)]
    lacking += [tool for tool in ("ip", "iptables-save", "ping") if shutil.which(tool) is None]
    if lacking:
        print(f"   (skipped: missing {', '.join(lacking)}; `make deps-test` installs the test packages: Debian's "
              f"{' '.join(DEBS)})")
        return 0
    missing = [why for why in (find_binary(opts, n)[1] for n in ("nodeboot", "nodeboot-cni", "nodeboot-testbed"))
               if why]
    if missing:
        print(f"   (skipped: {'; '.join(missing)}; `swift build` builds them)")
        return 0

    def show(text, indent="   "):
        for line in text.rstrip().splitlines():
            print((indent + line).rstrip())
        sys.stdout.flush()

    def pool(counts):
        enis = counts.get("enis") or []
        return (f"free {counts.get('free')}, assigned {counts.get('assigned')}, cooling {counts.get('cooling')} "
                f"(of {counts.get('total')} on {len(enis) if isinstance(enis, list) else enis} ENI(s))")

    scratch = None
    try:
        binary, how = build_harness(opts.cache_dir)
        scratch = Scratch()
        plugin, _ = find_binary(opts, "nodeboot-cni")
        spec, why = nodeboot_node(opts, scratch)
        if not spec:
            raise DemoFailure(why)
        socket_path = json.loads(spec["conflist"])["plugins"][0]["socket"]
        show(f"node: a network namespace where `nodeboot ipamd --root` runs against the testbed's m5.large "
             f"({INSTANCE_ID}; primary ENI's NIC eth0, {NODE_ADDRESS})")
        show(f"go-cni harness: {how.split(' ')[0]} (Debian's go-cni 1.1.7 + libcni 1.1.2, as containerd 1.6/1.7)")
        _, _, _, harness = nodeboot_setup(scratch, binary, plugin, spec, shims=False, tag="demo")
        before = ipamd_status(socket_path)
        show(f"ipamd's pool before (status over {os.path.basename(socket_path)}): {pool(before)}")

        pod = scratch.name("pod")
        scratch.add_netns(pod)
        sandbox = hashlib.sha256(f"{pod}-demo".encode()).hexdigest()
        use_ids(sandbox)
        print()
        show(f"ADD: pod netns {pod}, sandbox {sandbox[:12]}… through go-cni (loopback, then nodeboot-cni + portmap)")
        status, out, err = harness("setup", sandbox, f"/var/run/netns/{pod}")
        ip = (out or {}).get("ip")
        if status != 0 or not ip:
            raise DemoFailure(f"ADD through go-cni: exit {status}: {(out or {}).get('error') or err.strip()[-400:]}")
        show(f"the pod got {ip} in {out.get('ms', 0):.1f} ms")
        known, detail = spec["origin"](ip)
        device = spec["device_of"](ip)
        if not known or device != 0:
            raise DemoFailure(f"{ip} is not a secondary address of the primary ENI in EC2: {detail}")
        show(f"EC2's view (the testbed's control API): {ip} is a secondary private address of "
             f"{detail.split(' ')[0]}, the instance's primary ENI (device 0)")
        show("inside the pod: ip -4 addr; ip route")
        show(run(["ip", "-n", pod, "-4", "addr"], check=True).stdout, "     ")
        show(run(["ip", "-n", pod, "route"], check=True).stdout, "     ")
        node_ip = node_address(spec["netns"])
        ping = run(in_netns(pod, ["ping", "-c", "2", "-i", "0.2", "-W", "2", node_ip]), timeout=20)
        if ping.returncode != 0:
            raise DemoFailure(f"ping from the pod to the node's {node_ip}: exit {ping.returncode}: "
                              f"{(ping.stdout + ping.stderr).strip()[-300:]}")
        show(f"ping from the pod to the node ({node_ip}):")
        show("\n".join(line for line in ping.stdout.splitlines() if "bytes from" in line or "packet" in line), "     ")
        during = ipamd_status(socket_path)
        grew = (" (ipamd attached a second ENI to keep one warm: WARM_ENI_TARGET=1)"
                if len(during.get("enis") or []) > len(before.get("enis") or []) else "")
        show(f"ipamd's pool with the pod: {pool(during)}{grew}")

        print()
        status, out, err = harness("remove", sandbox, f"/var/run/netns/{pod}")
        if status != 0:
            raise DemoFailure(f"DEL through go-cni: exit {status}: {(out or {}).get('error') or err.strip()[-400:]}")
        released, detail = spec["released"](ip)
        if not released:
            raise DemoFailure(f"after DEL, ipamd still holds {ip}: {detail}")
        flags, _ = addresses(pod, "eth0")
        if flags is not None:
            raise DemoFailure(f"after DEL, the pod still has eth0 ({flags})")
        routes = run(["ip", "-n", spec["netns"], "-4", "route", "show", "table", "all"]).stdout
        left = [line for line in routes.splitlines() if line.split(" ")[0] == ip]
        if left:
            raise DemoFailure(f"after DEL, the node still routes {ip}: {left}")
        show(f"DEL through go-cni (with the cached result, as containerd): {out.get('ms', 0):.1f} ms; the pod's eth0 "
             "and the node's route to it are gone")
        show(f"ipamd's pool after: {pool(ipamd_status(socket_path))}: {ip} is back in the pool, free for reuse after "
             "IP_COOLDOWN_PERIOD (30 s)")
    except DemoFailure as error:
        print(f"demo FAILED: {error}")
        return 1
    except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError, KeyError) as error:
        print(f"demo FAILED: {type(error).__name__}: {error}")
        return 1
    finally:
        if scratch:
            scratch.close()
    tag = scratch.tag + "-"
    left = [n for n in os.listdir("/var/run/netns") if n.startswith(tag)] if os.path.isdir("/var/run/netns") else []
    left += [n for n in os.listdir(RESULTS) if any(i in n for i in USED_IDS)] if os.path.isdir(RESULTS) else []
    if left or os.path.exists(scratch.dir):
        print(f"demo FAILED: the cleanup left {left or scratch.dir}")
        return 1
    show("cleaned up: ipamd, the testbed and the namespaces stopped and removed, results-cache files deleted")
    return 0


# ---------------------------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin-dir", help="where the project's binaries are (make test passes the debug dir)")
    parser.add_argument("--plugin", help="the nodeboot-cni binary (default: BIN_DIR, .build/debug, .build/release)")
    parser.add_argument("--ipamd-socket", help="a running `nodeboot ipamd`'s socket: the conflist names it")
    parser.add_argument("--conflist", help="the conflist as ipamd wrote it (instead of --ipamd-socket)")
    parser.add_argument("--node-netns", help="the network namespace ipamd wires the node side in (default: this one)")
    parser.add_argument("--cache-dir", default=os.environ.get("NODEBOOT_CACHE", "/var/cache/nodeboot"),
                        help="where the harness is built (default /var/cache/nodeboot; NODEBOOT_CACHE)")
    parser.add_argument("--bench", action="store_true", help="latency benchmark instead of the checks")
    parser.add_argument("--cycles", type=int, default=1000, metavar="N",
                        help="after the checks: N ADD/DEL cycles one at a time and 16 at a time, then both with ipamd "
                             "SIGKILLed in the middle (default 1000; 0: none)")
    parser.add_argument("--only-cycles", action="store_true", help="the cycles without the checks")
    parser.add_argument("--cycles-reconcile", type=int, default=0, metavar="S",
                        help="only the one-at-a-time kill run, and instead of CNI GC wait up to S s for ipamd's own "
                             "reconcile to free what it held (containerd 1.6/1.7 send no GC; about 6 min)")
    parser.add_argument("--bench-pods", type=int, default=200, help="pods per benchmark row (default 200)")
    parser.add_argument("--bench-concurrency", type=int, default=16, help="concurrent row's width (default 16)")
    parser.add_argument("--bench-ports", action="store_true", help="each benchmark pod maps one host port")
    parser.add_argument("--bench-rounds", type=int, default=3,
                        help="rows interleaved in this many rounds, each a share of the pods (default 3)")
    parser.add_argument("--bench-base-port", type=int, default=20000, help=argparse.SUPPRESS)
    parser.add_argument("--json", help="--bench: write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (recorded calls, confs)")
    parser.add_argument("--demo", action="store_true", help="one pod, for a person (make demo), instead of the checks")
    opts = parser.parse_args()
    if opts.conflist and opts.ipamd_socket:
        parser.error("--conflist and --ipamd-socket both name the conflist: give one")

    def terminated(*_):  # make test's SIGTERM: the finally below still deletes the namespaces and cache files
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, terminated)
    if opts.demo:
        return demo(opts)
    report = Report()
    reason = missing_prerequisites()
    if reason:
        return report.skip_runner("cni-harness", reason)
    try:
        binary, how = build_harness(opts.cache_dir)
        report.check("the go-cni harness builds offline with Debian's Go 1.19, go-cni 1.1.7 and libcni 1.1.2",
                     True, info=how)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        report.check("the go-cni harness builds offline with Debian's Go 1.19, go-cni 1.1.7 and libcni 1.1.2",
                     False, str(error))
        return report.summary()

    scratch = Scratch(keep=opts.keep)
    for line in scratch.swept:
        report.note(f"removed what a killed run left ({line})")
    try:
        if opts.bench:
            run_bench(opts, binary, scratch, report)
            return report.summary()
        if opts.only_cycles:
            run_cycles(opts, binary, scratch, report)
            return report.summary()
        # 1. The reference chain proves the harness.
        node, network, ipam_dir, conf_dir, log_dir, harness = reference_node(scratch, binary)
        pods = (scratch.name("a"), scratch.name("b"))
        scratch.add_netns(*pods)
        prove(Node("bridge+host-local+portmap", "bridge", network, harness, node, pods, log_dir,
                   host_local_released(ipam_dir, network), in_subnet), report)
        leftover = sorted(n for n in os.listdir(os.path.join(ipam_dir, network))
                          if n[0].isdigit()) if os.path.isdir(os.path.join(ipam_dir, network)) else []
        report.check("bridge+host-local+portmap: host-local holds no address at the end", not leftover, f"{leftover}")
        refusals(scratch, binary, report)
        # 2. nodeboot-cni, when it and a node to serve it exist.
        plugin, why = find_plugin(opts)
        spec = None
        if plugin:
            nodeboot_without_ipamd(scratch, binary, plugin, report)
            spec, why = start_node(opts, scratch, report)
        else:
            report.skip("nodeboot-cni without ipamd", why)
        if not spec:
            if why:
                report.skip("nodeboot-cni through go-cni", why)
        else:
            scratch.stops.append(spec["stop"])
            for note in spec["notes"]:
                report.note(note)
            network, conf_dir, log_dir, harness = nodeboot_setup(scratch, binary, plugin, spec)
            pods = (scratch.name("na"), scratch.name("nb"))
            scratch.add_netns(*pods)
            prove(Node("nodeboot-cni+portmap", "nodeboot-cni", network, harness, spec["netns"], pods, log_dir,
                       spec["released"], spec["origin"]), report)
            if "device_of" in spec:
                secondary_eni(spec, harness, scratch, report, "nodeboot-cni+portmap")
            if spec["finish"]:
                spec["finish"](report, "nodeboot-cni+portmap")
        # 3. ADD/DEL cycles, with ipamd killed in the middle too (a node of their own: prefix delegation).
        if plugin and opts.cycles > 0 and not (opts.conflist or opts.ipamd_socket):
            run_cycles(opts, binary, scratch, report)
        elif opts.cycles > 0:
            report.skip("cycles", why or "--conflist/--ipamd-socket: the runner cannot kill and restart that ipamd")
    except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as error:
        report.check("cni-harness ran to the end", False, f"{type(error).__name__}: {error}")
    finally:
        scratch.close()
    return report.summary()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # SIGINT or SIGTERM; the scratch state is already cleaned up
        print("cni-harness: interrupted", flush=True)
        sys.exit(130)
