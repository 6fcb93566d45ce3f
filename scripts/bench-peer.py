#!/usr/bin/env python3
"""nodeboot side by side with another node agent (nodeadm): the same NodeConfig, the same mock, one run, alternating.

    scripts/bench-peer.py AGENT_BIN MOCK_CMD [CONFIG] [--nodeboot PATH] [--runs N] [--warmup N] [--throwaway]

AGENT_BIN  the other agent's binary, e.g. nodeadm (built from awslabs/amazon-eks-ami's nodeadm/)
MOCK_CMD   the command (one shell string) that starts an IMDSv2 + EC2 mock and serves until SIGTERM, e.g.
           ".build/release/nodeboot-testbed serve" or a moto-based server. It is found through
           AWS_EC2_METADATA_SERVICE_ENDPOINT and AWS_ENDPOINT_URL: lines `export NAME=VALUE` it prints on stdout (as
           nodeboot-testbed does) or, else, the same variables in this script's environment
CONFIG     a NodeConfig file; default ../shared/conformance/nodeadm/config-provider-chain/config.yaml

For each of `init --skip run -c file://CONFIG` (discovery from the mock, render, write 8 files) and
`config check -c file://CONFIG` (no network), both agents run N times after a warm-up, alternating (the order flips
every round), and the script prints each agent's median wall time (min-max), its median CPU time, and the ratio
AGENT / nodeboot. When the mock is nodeboot-testbed, the requests each agent sends per init run are read from its log
(GET|DELETE /_testbed/requests on the AWS port, between runs, outside the timing). Nothing is downloaded or built:
both agents run as given.

Where the agents write. nodeboot gets `--root DIR`: a fresh node root per run (copied outside the timing) holding
what a machine image bakes in (kubelet and containerd version files, the ECR credential provider, a 2-CPU sysfs), so
every run writes all its files; the script checks that it did. nodeadm has no --root: it writes to the real paths
(/etc/containerd, /etc/kubernetes, /etc/eks, /var/lib/kubelet, ...) and reads the real /etc/eks version files and
sysfs. So the other agent's init runs only in a throwaway container or VM, and only when --throwaway says that this
is one: the script then writes the image files the conformance cases assume under / when they are absent
(/etc/eks/kubelet-version.txt `Kubernetes v1.31.0`, /etc/eks/containerd-version.txt, the credential provider) and
does not check the peer's writes (they overwrite the same real files every run). Without --throwaway only
`config check` is compared. An agent whose `init --help` lists --root (nodeboot itself, to test this script) gets a
fresh root too and its writes are checked.

Example, in a throwaway container with nodeadm on PATH and the release binaries built:
    scripts/bench-peer.py --throwaway "$(command -v nodeadm)" ".build/release/nodeboot-testbed serve"
This script checked against itself (both sides nodeboot):
    scripts/bench-peer.py .build/release/nodeboot ".build/release/nodeboot-testbed serve"

Exit status: 0 when both agents succeeded on every run, 1 when a run failed (its output is printed), 2 on a usage or
environment error (the mock did not come up).
"""
import argparse
import contextlib
import errno
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(PROJECT, "..", "shared", "conformance", "nodeadm", "config-provider-chain",
                              "config.yaml")
GOAL_RATIO = 3.0  # issue 11: nodeboot at least 3x faster than nodeadm on the same work

# What a machine image bakes in (cases.json `environment`): nodeboot's under its --root, the peer's under / (only
# with --throwaway, and only where absent).
IMAGE_FILES = {
    "etc/eks/kubelet-version.txt": "Kubernetes v1.31.0\n",
    "etc/eks/containerd-version.txt":
        "containerd github.com/containerd/containerd v1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da\n",
    "etc/eks/image-credential-provider/ecr-credential-provider": "",
}


def fail(message, status=2):
    print(f"bench-peer: {message}", file=sys.stderr)
    sys.exit(status)


def image_root(directory):
    for path, text in dict(IMAGE_FILES, **{"sys/devices/system/cpu/online": "0-1\n"}).items():
        os.makedirs(os.path.join(directory, os.path.dirname(path)), exist_ok=True)
        with open(os.path.join(directory, path), "w") as f:
            f.write(text)
    for cpu in ("cpu0", "cpu1"):
        os.makedirs(os.path.join(directory, "sys/devices/system/cpu", cpu), exist_ok=True)


def files_under(directory):
    return {os.path.relpath(os.path.join(d, name), directory)
            for d, _, names in os.walk(directory) for name in names}


class Mock:
    """MOCK_CMD in its own session; its endpoints from the `export` lines it prints, else from the environment."""

    NAMES = ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_ENDPOINT_URL")

    def __init__(self, command, log_path, timeout=30):
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.log, start_new_session=True)
        self.printed = {}
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                fail(f"the mock exited with status {self.proc.returncode}: {self._tail(log_path)}")
            endpoints = self.endpoints()
            if all(endpoints.get(name) for name in self.NAMES) and all(map(self._listening, endpoints.values())):
                self.env = endpoints
                return
            time.sleep(0.05)
        self.stop()
        fail(f"the mock did not print or serve {' and '.join(self.NAMES)} within {timeout} s "
             f"(print `export NAME=URL` lines, or set them in the environment): {self._tail(log_path)}")

    def _drain(self):  # reads stdout to EOF, so the mock never blocks on a full pipe
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith("export ") and "=" in line:
                name, _, value = line[len("export "):].partition("=")
                self.printed[name] = value.strip("'\"")

    def endpoints(self):
        return {name: self.printed.get(name) or os.environ.get(name) for name in self.NAMES}

    @staticmethod
    def _listening(url):
        parsed = urllib.parse.urlsplit(url)
        try:
            with socket.create_connection((parsed.hostname, parsed.port or 80), timeout=1):
                return True
        except OSError:
            return False

    @staticmethod
    def _tail(path):
        with open(path, errors="replace") as f:
            return f.read()[-1000:].strip() or "(no output)"

    def stop(self):
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


class RequestLog:
    """nodeboot-testbed's request log (GET|DELETE /_testbed/requests on the AWS port); None-valued for other mocks."""

    def __init__(self, aws_endpoint):
        self.url = aws_endpoint.rstrip("/") + "/_testbed/requests"
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
        try:
            self.read()
            self.available = True
        except (OSError, ValueError):
            self.available = False

    def clear(self):
        if self.available:
            self.opener.open(urllib.request.Request(self.url, method="DELETE"), timeout=10).read()

    def read(self):
        with self.opener.open(self.url, timeout=10) as response:
            records = json.load(response)
        if not isinstance(records, list):
            raise ValueError("not a request log")
        return [r for r in records if r.get("endpoint") != "aws" and not r.get("path", "").startswith("/_testbed/")]


def spawn(argv, env, output):
    """(wall ms, CPU ms, exit status): posix_spawn + wait4, stdout and stderr to `output`. Retries while the binary
    is being rebuilt (ETXTBSY)."""
    actions = [(os.POSIX_SPAWN_OPEN, 1, output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
               (os.POSIX_SPAWN_DUP2, 1, 2), (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)]
    for attempt in range(120):
        try:
            start = time.perf_counter()
            pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
            break
        except OSError as error:
            if error.errno != errno.ETXTBSY or attempt == 119:
                raise
            time.sleep(0.5)
    _, status, usage = os.wait4(pid, 0)
    wall = (time.perf_counter() - start) * 1000
    return wall, (usage.ru_utime + usage.ru_stime) * 1000, os.waitstatus_to_exitcode(status)


class Agent:
    def __init__(self, name, binary, scratch):
        self.name, self.binary, self.scratch = name, binary, scratch
        probe = subprocess.run([binary, "init", "--help"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=30)
        self.has_root = "--root" in probe.stdout.decode(errors="replace")
        self.samples = {}
        self.requests = {}
        self.written = []

    def run(self, command, argv, env, template, log, record):
        root = None
        if command == "init" and self.has_root:
            root = os.path.join(self.scratch, f"{self.name}-root")
            shutil.rmtree(root, ignore_errors=True)
            shutil.copytree(template, root)
            argv = argv + ["--root", root]
        output = os.path.join(self.scratch, f"{self.name}.out")
        if log:
            log.clear()
        wall, cpu, status = spawn([self.binary] + argv, env, output)
        if status != 0:
            with open(output, errors="replace") as f:
                text = f.read().strip()
            fail(f"{self.name} {shlex.join(argv)} exited with status {status}:\n{text}", 1)
        if record:
            self.samples.setdefault(command, []).append((wall, cpu))
            if command == "init" and log and log.available:
                self.requests.setdefault(command, []).append(log.read())
            if root:
                self.written.append(len(files_under(root) - files_under(template)))
        if root:
            shutil.rmtree(root, ignore_errors=True)


def spread(values):
    low, high = min(values), max(values)
    return f"{statistics.median(values):g}" + ("" if low == high else f" ({low}-{high})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("agent", metavar="AGENT_BIN", help="the other agent's binary (nodeadm)")
    parser.add_argument("mock", metavar="MOCK_CMD", help="command that starts the IMDSv2 + EC2 mock")
    parser.add_argument("config", metavar="CONFIG", nargs="?", default=DEFAULT_CONFIG, help="NodeConfig file")
    parser.add_argument("--nodeboot", default=os.path.join(PROJECT, ".build", "release", "nodeboot"),
                        help="nodeboot's binary (default: .build/release/nodeboot)")
    parser.add_argument("--runs", type=int, default=20, help="measured runs per agent and command (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured runs first (default 2)")
    parser.add_argument("--throwaway", action="store_true",
                        help="this is a throwaway container or VM: an agent without --root may write to the real "
                             "paths (its init is skipped otherwise)")
    args = parser.parse_args()

    config = os.path.abspath(args.config)
    for path, what in ((args.agent, "AGENT_BIN"), (args.nodeboot, "--nodeboot")):
        if not os.access(path, os.X_OK):
            fail(f"{what} {path} is not an executable file")
    if not os.path.isfile(config):
        fail(f"CONFIG {config} is not a file")

    scratch = tempfile.mkdtemp(prefix="nodeboot-bench-peer-")
    mock = None
    try:
        peer_name = os.path.basename(args.agent)
        peer = Agent("peer" if peer_name == "nodeboot" else peer_name, os.path.abspath(args.agent), scratch)
        ours = Agent("nodeboot", os.path.abspath(args.nodeboot), scratch)
        template = os.path.join(scratch, "image")
        image_root(template)

        mock = Mock(args.mock, os.path.join(scratch, "mock.log"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.lower().endswith("_proxy")}
        env.update({"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}, **mock.env)
        log = RequestLog(mock.env["AWS_ENDPOINT_URL"])

        peer_init = peer.has_root or args.throwaway
        if not peer.has_root and args.throwaway:
            for path, text in IMAGE_FILES.items():
                if not os.path.exists("/" + path):
                    os.makedirs(os.path.dirname("/" + path), exist_ok=True)
                    with open("/" + path, "w") as f:
                        f.write(text)

        print(f"bench-peer: {peer.name} ({peer.binary}) vs nodeboot ({ours.binary}), alternating, "
              f"{args.runs} runs each after {args.warmup} warm-up")
        print(f"  config {config}; mock `{args.mock}` (IMDS {mock.env['AWS_EC2_METADATA_SERVICE_ENDPOINT']}, "
              f"AWS {mock.env['AWS_ENDPOINT_URL']})")
        commands = [("config check", ["config", "check", "-c", f"file://{config}"])]
        if peer_init:
            commands.insert(0, ("init", ["init", "--skip", "run", "-c", f"file://{config}"]))
        for command, argv in commands:
            for index in range(args.warmup + args.runs):
                pair = (peer, ours) if index % 2 == 0 else (ours, peer)
                for agent in pair:
                    agent.run(command, argv, env, template, log, index >= args.warmup)

        verdict = lambda ok: "met" if ok else "NOT met"
        for command, argv in commands:
            label = f"{argv[0]} {argv[1]}" if command == "config check" else "init --skip run"
            print(f"  {label} -c file://CONFIG" + (" (no network)" if command == "config check" else ""))
            medians = {}
            for agent in (peer, ours):
                walls = sorted(s[0] for s in agent.samples[command])
                cpus = [s[1] for s in agent.samples[command]]
                medians[agent.name] = statistics.median(walls)
                extra = ""
                if command == "init":
                    if agent.has_root:
                        extra += f"   new files under its root per run {spread(agent.written)}"
                    else:
                        extra += "   writes to the real paths (not checked)"
                    if agent.requests.get(command):
                        logs = agent.requests[command]
                        imds = [sum(1 for r in run if r["endpoint"] == "imds") for run in logs]
                        aws = [sum(1 for r in run if r["endpoint"] != "imds") for run in logs]
                        extra += f"   requests per run: IMDS {spread(imds)}, AWS {spread(aws)}"
                print(f"    {agent.name:<10} median {medians[agent.name]:7.1f} ms ({walls[0]:.1f}-{walls[-1]:.1f})"
                      f"   CPU {statistics.median(cpus):6.1f} ms{extra}")
            ratio = medians[peer.name] / medians[ours.name]
            print(f"    ratio {peer.name} / nodeboot: {ratio:.2f}x (median); goal >= {GOAL_RATIO:.0f}x: "
                  f"{verdict(ratio >= GOAL_RATIO)}")
        if not log.available:
            print("  requests per run: not counted (the mock has no /_testbed/requests log)")
        if not peer_init:
            print(f"  init not compared: {peer.name} has no --root, so its init writes to the real paths (/etc, "
                  "/var/lib/kubelet); run this in a throwaway container or VM with --throwaway")
    finally:
        if mock:
            mock.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
