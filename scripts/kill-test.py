#!/usr/bin/env python3
"""All-or-nothing apply and interrupted runs (issue 15), tried on real processes against nodeboot-testbed.

    scripts/kill-test.py [--bin-dir DIR] [--trials N] [--seed S] [--work DIR] [--keep] [--only SECTION]...

Every run is `nodeboot init --root ROOT -c file://B.yaml --register-node` (the phases source … register, then the
report) against one `nodeboot-testbed serve`, from one of two starting nodes: `empty` (scripts/conformance.py's node
root: version files, sysfs, the ECR provider) and `old` (that root after an uninterrupted init of another config, A:
other kubelet flags, no environment drop-ins, another maxPods, so most files change). B and A leave the cluster's
endpoint and CA to DescribeCluster, so discover also persists /var/lib/nodeboot/cluster-my-cluster.json on the empty
node. The reference for each starting node is an uninterrupted B run (two runs must give the same tree).

Sections (--only NAME):

kill        SIGKILL at random moments, --trials N (default 240) on a real filesystem (--work, default under
            /var/tmp). Each trial copies its starting node, runs init with NOTIFY_SOCKET pointing at the runner, and
            kills it a random time after the STATUS=<phase> message (sd_notify) of the phase it aims at, round robin
            over start (before source), source, validate, discover, render, apply, run, register and report, the
            delay drawn from [0, that phase's measured duration] (apply: [0, 1.2 x], so its renames are reached).
            The phase it was in is the last STATUS it sent before it died. Checked, per phase: right after the kill
            every file and link is its complete old or complete new content (status.json parses), only staged
            files (.NAME.nodeboot-PID) are extra; `nodeboot status` says INTERRUPTED (exit 1) when status.json says
            running; the next init exits 0, warns about the interrupted run when there was one, leaves no staged
            file anywhere and a tree byte for byte the reference's (every path, type, mode, content, link target;
            status.json and init.lock aside, which hold times and pids). One more trial is sabotaged to check the
            checks (a file cut in half after the kill, a staged file planted and a file changed after the repair:
            each must be reported). Delays come from the median of 6 uninterrupted runs; a phase no trial died in
            (a loaded machine stretches the others) is aimed at again with no delay, up to 20 rounds.
full-disk   (root) The old node on a 2 MiB tmpfs filled to leave 0, 4, … 64 KiB: init B either succeeds with the
            reference tree, or exits 1 saying no file was changed with the old tree exactly (no staged file, no new
            directory).
lock        Two inits at once on one node (the API server made slow so the first holds the lock): the second says
            which pid holds the lock and waits, and writes only after the first reported (STATUS=apply after its
            READY=1); with --lock-timeout 0.5 it exits 1 naming the holder and leaves the first's status.json; a
            holder killed by SIGKILL releases the lock at once.

Closing line `N passed, N failed, N skipped`; exit 1 when a check failed, 2 on a usage or environment error.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testkit  # noqa: E402
from testkit import Report, tree_state, write  # noqa: E402

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHASES = ["start", "source", "validate", "discover", "render", "apply", "run", "register", "report"]
STAGED = re.compile(r"^\..+\.nodeboot-\d+$")
VOLATILE = {"run/nodeboot/status.json", "run/nodeboot/init.lock"}  # times and pids: checked on their own
# What `nodeboot reset` undoes, recorded before apply writes (a write-ahead record, by design): it may be new while
# the configuration stays old.
RECORD = re.compile(r"^var/lib/nodeboot/(installed\.json|original(/.*)?)$")
TIMEOUT = 60

CONFIG_A = """apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster: {name: my-cluster}
  kubelet:
    flags: [--v=2]
"""
CONFIG_B = """apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster: {name: my-cluster}
  instance:
    environment:
      default: {NODE_ROLE: "kill-test"}
      kubelet: {KUBELET_VAR: "k"}
      containerd: {CONTAINERD_VAR: "c"}
  kubelet:
    flags: [--v=5, --node-labels=kill-test=true]
    config: {maxPods: 42}
  containerd:
    config: |
      [plugins."io.containerd.grpc.v1.cri".containerd]
      discard_unpacked_layers = false
"""


class Fatal(Exception):
    """The environment is unusable: exit 2."""


def differences(got, want, limit=8):
    lines = [f"missing {p}" for p in sorted(set(want) - set(got))]
    lines += [f"unexpected {p}" for p in sorted(set(got) - set(want))]
    for path in sorted(set(got) & set(want)):
        if got[path] != want[path]:
            what = [name for name, a, b in zip(("type", "mode", "mtime", "content"), got[path], want[path]) if a != b]
            lines.append(f"{path}: {', '.join(what)} differ")
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])


def staged_files(top):
    return sorted(os.path.relpath(os.path.join(d, n), top) for d, dirs, files in os.walk(top)
                  for n in files + dirs if STAGED.match(n))


class Node:
    """The testbed, the configs and the agent's command line."""

    def __init__(self, bin_dir, infra, work):
        self.bin_dir, self.infra, self.work = bin_dir, infra, work
        self.agent = os.path.join(bin_dir, "nodeboot")
        with open(os.path.join(infra, "aemm-default-config.json")) as f:
            aemm = json.load(f)
        tb = os.path.join(work, "testbed")
        os.makedirs(tb)
        write(os.path.join(tb, "config.json"), json.dumps({"instance": aemm}))
        self.testbed, printed = testkit.start_testbed(os.path.join(bin_dir, "nodeboot-testbed"),
                                                      os.path.join(tb, "config.json"), tb)
        self.aws = printed["aws"]
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": work, "LANG": "C.UTF-8",
                    **printed["env"]}
        self.configs = {}
        for name, text in (("A", CONFIG_A), ("B", CONFIG_B)):
            self.configs[name] = os.path.join(work, f"{name}.yaml")
            write(self.configs[name], text)

    def argv(self, root, config="B", extra=()):
        return [self.agent, "init", "--root", root, "-c", "file://" + self.configs[config], "--register-node",
                *extra]

    def run(self, root, config="B", extra=(), env=None):
        code, out, err = testkit.run_agent(self.argv(root, config, extra), self.work, {**self.env, **(env or {})},
                                           TIMEOUT)
        return code, out, err

    def faults(self, rules):
        request = urllib.request.Request(self.aws + "/_testbed/faults", data=json.dumps(rules).encode(), method="PUT")
        urllib.request.urlopen(request, timeout=10).read()

    def stop(self):
        testkit.stop_process(self.testbed)

    def status(self, root):
        proc = subprocess.run([self.agent, "status", "--root", root], capture_output=True, text=True, timeout=30,
                              env=self.env)
        return proc.returncode, proc.stdout + proc.stderr


class Notifications:
    """A NOTIFY_SOCKET for one agent: the sd_notify messages it sent, with their arrival times."""

    def __init__(self, directory, name="notify"):
        self.path = os.path.join(directory, f"{name}.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def receive(self, timeout):
        """The next message (appended to messages) or None after timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096).decode(errors="replace")
        except (socket.timeout, BlockingIOError):
            return None
        self.messages.append((time.monotonic(), data))
        return data

    def drain(self):
        self.sock.setblocking(False)
        while True:
            try:
                self.messages.append((time.monotonic(), self.sock.recv(4096).decode(errors="replace")))
            except BlockingIOError:
                break

    def statuses(self):
        """The STATUS= values' first words (`apply: taking the init lock` is apply)."""
        return [line[len("STATUS="):].split(":")[0] for _, data in self.messages for line in data.split("\n")
                if line.startswith("STATUS=")]

    def time_of(self, line):
        return next((t for t, data in self.messages if line in data.split("\n")), None)

    def close(self):
        self.sock.close()
        os.unlink(self.path)


def last_phase(notes):
    """The phase the agent was in when it died: its last STATUS=, `finished` after READY=1."""
    if any("READY=1" in data for _, data in notes.messages):
        return "finished"
    phases = [s for s in notes.statuses() if s in PHASES]
    return phases[-1] if phases else "start"


def wait_for(proc, notes, phase, timeout=TIMEOUT):
    """Until the agent sent STATUS=<phase> (or exited, or timeout seconds)."""
    limit = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < limit and phase not in notes.statuses():
        notes.receive(0.5)


def spawn(node, root, notes):
    return testkit.popen(node.argv(root), cwd=node.work, env={**node.env, "NOTIFY_SOCKET": notes.path},
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def calibrate(node, bases, runs=3):
    """Phase durations (seconds, the median over runs) and each base's reference tree; checks runs agree."""
    samples = {phase: [] for phase in PHASES}
    references, problems = {}, []
    for name, base in bases.items():
        trees = []
        for number in range(runs):
            root = os.path.join(node.work, f"calibrate-{name}-{number}")
            shutil.copytree(base, root, symlinks=True)
            notes = Notifications(node.work, f"calibrate-{name}-{number}")
            started = time.monotonic()
            proc = spawn(node, root, notes)
            times = {}
            while proc.poll() is None or notes.receive(0) is not None:
                data = notes.receive(0.05)
                if data:
                    for line in data.split("\n"):
                        if line.startswith("STATUS=") and line[7:] in PHASES:
                            times[line[7:]] = notes.messages[-1][0]
                        if line == "READY=1":
                            times["end"] = notes.messages[-1][0]
            err = proc.stderr.read().decode(errors="replace")
            proc.wait()
            notes.close()
            if proc.returncode != 0 or "end" not in times:
                raise Fatal(f"the uninterrupted run from the {name} node failed (exit {proc.returncode}):\n{err[-1500:]}")
            times["start"] = started
            order = ["start"] + [p for p in PHASES[1:] if p in times] + ["end"]
            for phase, following in zip(order, order[1:]):
                samples[phase].append(times[following] - times[phase])
            trees.append(tree_state(root, VOLATILE))
            shutil.rmtree(root)
        for other in trees[1:]:
            problems += differences(other, trees[0])
        references[name] = trees[0]
    durations = {phase: sorted(values)[len(values) // 2] if values else 0.0 for phase, values in samples.items()}
    return durations, references, problems


SABOTAGE = "etc/eks/kubelet/environment"


def kill_trial(node, base_name, base, reference, target, delay, number, sabotage=False):
    """One trial: (phase it died in, problems, facts). `sabotage` checks the checker: after the kill one file is cut
    in half, after the repair a staged file is planted and a file changed; each must be reported."""
    root = os.path.join(node.work, f"trial-{number}")
    shutil.copytree(base, root, symlinks=True)
    before = tree_state(root, VOLATILE)
    notes = Notifications(node.work, f"trial-{number}")
    proc = spawn(node, root, notes)
    try:
        if target == "start":
            deadline = time.monotonic() + delay
        else:
            deadline = None
            limit = time.monotonic() + TIMEOUT
            while proc.poll() is None and time.monotonic() < limit:
                data = notes.receive(0.5)
                if data and any(line.startswith(f"STATUS={target}") for line in data.split("\n")):
                    deadline = time.monotonic() + delay
                    break
        if deadline is not None:
            while time.monotonic() < deadline:
                pass
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    err = proc.stderr.read().decode(errors="replace")
    notes.drain()
    notes.close()
    phase = last_phase(notes)
    problems, facts = [], {"staged": 0, "interrupted": False, "mixed": False}

    if sabotage:
        with open(os.path.join(root, SABOTAGE), "r+b") as f:
            size = len(f.read())
            f.truncate(size // 2)
    # Right after the kill: each path old or new, whole; only staged files extra.
    after = tree_state(root, VOLATILE)
    staged = [p for p in after if STAGED.match(os.path.basename(p))]
    facts["staged"] = len(staged)
    old_new = {"old": 0, "new": 0}
    for path, entry in after.items():
        if path in staged or entry[0] == "dir":
            continue
        if entry == before.get(path) and entry == reference.get(path):
            continue
        if entry == before.get(path):
            old_new["old"] += path in reference
        elif entry == reference.get(path):
            old_new["new"] += 1
        else:
            problems.append(f"after the kill {path} is neither its old nor its new content (torn?)")
    facts["mixed"] = old_new["old"] > 0 and old_new["new"] > 0
    for path in set(before) - set(after):
        problems.append(f"after the kill {path} is gone")
    status_path = os.path.join(root, "run/nodeboot/status.json")
    report = None
    if os.path.exists(status_path):
        try:
            with open(status_path) as f:
                report = json.load(f)
        except ValueError as error:
            problems.append(f"after the kill status.json does not parse: {error}")
    if report and report.get("result") == "running":
        facts["interrupted"] = True
        code, text = node.status(root)
        if code != 1 or "INTERRUPTED" not in text:
            problems.append(f"nodeboot status on a killed run's report: exit {code}, {text.splitlines()[:1]}")

    # The next init repairs the node.
    code, out, err2 = node.run(root)
    if code != 0:
        problems.append(f"the next init: exit {code}: {err2.strip().splitlines()[-3:]}")
    if facts["interrupted"] and "was interrupted" not in out:
        problems.append("the next init did not say the previous run was interrupted")
    if sabotage:
        write(os.path.join(root, "etc/eks/kubelet/.environment.nodeboot-999999"), "planted\n")
        with open(os.path.join(root, "etc/kubernetes/kubelet/config.json"), "ab") as f:
            f.write(b" ")
    left = staged_files(root)
    if left:
        problems.append(f"staged files left after the next init: {left[:3]}")
    problems += [f"after the next init: {line}" for line in differences(tree_state(root, VOLATILE), reference)]
    try:
        with open(status_path) as f:
            final = json.load(f)
        if final.get("result") != "ok":
            problems.append(f"after the next init status.json says {final.get('result')}")
    except (OSError, ValueError) as error:
        problems.append(f"after the next init status.json: {error}")
    if not problems or sabotage:
        shutil.rmtree(root)
    else:
        problems.append(f"(trial {number}: {base_name} node, aimed at {target} + {delay * 1000:.2f} ms; root kept: {root})")
    return phase, problems, facts


def section_kill(node, bases, report, opts):
    started = time.monotonic()
    durations, references, problems = calibrate(node, bases)
    report.check("two uninterrupted runs from each starting node give the same tree", not problems, "\n".join(problems))
    report.note("measured phase durations (ms, median of 6): "
                + ", ".join(f"{p} {durations[p] * 1000:.1f}" for p in PHASES))
    _, found, _ = kill_trial(node, "old", bases["old"], references["old"], "register", 0.0, "sabotage", sabotage=True)
    wanted = {"torn": f"{SABOTAGE} is neither", "staged": "staged files left", "changed": "config.json: content differ"}
    missed = [name for name, text in wanted.items() if not any(text in line for line in found)]
    report.check("the checks themselves: a file cut in half after the kill, a staged file and a changed file after the "
                 "repair are each reported", not missed, f"not reported: {missed}; reported: {found}")
    rng = random.Random(opts.seed)
    by_phase = {phase: {"trials": 0, "problems": [], "staged": 0, "interrupted": 0, "mixed": 0} for phase in
                PHASES + ["finished"]}
    base_names = sorted(bases)
    plan = [(PHASES[n % len(PHASES)], None) for n in range(opts.trials)]
    extra = 0
    number = 0
    while number < len(plan):
        target, delay = plan[number]
        base_name = base_names[(number // len(PHASES)) % len(base_names)]
        if delay is None:
            delay = rng.uniform(0, durations[target] * (1.2 if target == "apply" else 1.0))
        phase, problems, facts = kill_trial(node, base_name, bases[base_name], references[base_name], target, delay,
                                            number)
        number += 1
        entry = by_phase[phase]
        entry["trials"] += 1
        entry["problems"] += problems
        entry["staged"] += facts["staged"] > 0
        entry["interrupted"] += facts["interrupted"]
        entry["mixed"] += facts["mixed"]
        missing = [p for p in PHASES if not by_phase[p]["trials"]]
        if number == len(plan) and missing and extra < 20 * len(PHASES):
            # A loaded machine stretches phases and the aim misses short ones: aim again at each phase no trial
            # died in, at once (delay 0), up to 20 more rounds.
            plan += [(p, 0.0) for p in missing]
            extra += len(missing)
    elapsed = time.monotonic() - started
    for phase in PHASES + ["finished"]:
        entry = by_phase[phase]
        if phase == "finished" and not entry["trials"]:
            continue
        name = f"SIGKILL in {phase}" if phase != "finished" else "SIGKILL just after READY=1"
        if not entry["trials"]:
            report.check(name, False, f"no trial died in {phase}: aim again (--seed) or raise --trials")
            continue
        report.check(f"{name}: every file old or new, no torn file; the next init repairs it byte for byte",
                     not entry["problems"], "\n".join(entry["problems"]),
                     info=f"{entry['trials']} trials; {entry['staged']} left staged files, {entry['mixed']} some "
                          f"files new and some old, {entry['interrupted']} status.json running")
    staged = sum(e["staged"] for e in by_phase.values())
    report.check("some kills left staged files, and the next init removed every one", staged > 0,
                 "no trial left a staged file: the kills missed apply's staging window", info=f"{staged} trials")
    report.note(f"{len(plan)} trials ({opts.trials} planned, {extra} more aimed at phases missed) in {elapsed:.1f} s"
                f" on {fs_type(node.work)} ({node.work}), seed {opts.seed}")


def fs_type(path):
    proc = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--target", path], capture_output=True, text=True)
    return proc.stdout.strip() or "?"


def section_full_disk(node, bases, report):
    if os.geteuid() != 0:
        report.skip("full tmpfs: all old or all new", "needs root: mount -t tmpfs")
        return
    _, references, _ = calibrate(node, {"old": bases["old"]}, runs=1)
    reference = references["old"]
    mount = os.path.join(node.work, "tmpfs")
    os.makedirs(mount)
    results, problems = [], []
    for free in range(0, 68, 4):
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mount], check=True, capture_output=True)
        try:
            root = os.path.join(mount, "root")
            shutil.copytree(bases["old"], root, symlinks=True)
            before = tree_state(root, VOLATILE)
            available = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize // 1024
            with open(os.path.join(mount, "filler"), "wb") as f:
                f.write(b"\0" * max(0, (available - free) * 1024))
            code, out, err = node.run(root)
            after = tree_state(root, VOLATILE)
            if code == 0:
                results.append(f"{free}:new")
                problems += [f"{free} KiB free, succeeded: {line}" for line in differences(after, reference)]
            else:
                results.append(f"{free}:old")
                if code != 1 or "No space left on device" not in err:
                    problems.append(f"{free} KiB free: exit {code}, stderr {err.strip().splitlines()[-2:]}")
                config = {path: entry for path, entry in after.items() if not RECORD.match(path)}
                old = {path: entry for path, entry in before.items() if not RECORD.match(path)}
                problems += [f"{free} KiB free, failed: {line}" for line in differences(config, old)]
        finally:
            subprocess.run(["umount", mount], capture_output=True)
    fails = sum(r.endswith(":old") for r in results)
    report.check("full tmpfs (2 MiB, 0…64 KiB free): each init all new (the reference) or all old (exit 1, nothing "
                 "staged, no new directory)", not problems and fails > 0 and fails < len(results),
                 "\n".join(problems) or f"no size both failed and succeeded: {results}",
                 info=f"{fails} of {len(results)} sizes failed cleanly, {len(results) - fails} succeeded")


def section_lock(node, bases, report):
    node.faults([{"endpoint": "kube", "latencyMs": 1500}])
    try:
        root = os.path.join(node.work, "lock-root")
        shutil.copytree(bases["old"], root, symlinks=True)
        first_notes, second_notes = Notifications(node.work, "lock-1"), Notifications(node.work, "lock-2")
        first = spawn(node, root, first_notes)
        wait_for(first, first_notes, "register")
        second = testkit.popen(node.argv(root), cwd=node.work, env={**node.env, "NOTIFY_SOCKET": second_notes.path},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out2, err2 = second.communicate(timeout=TIMEOUT)
        first.wait(timeout=TIMEOUT)
        first_notes.drain()
        second_notes.drain()
        err2 = err2.decode(errors="replace")
        ready1, apply2 = first_notes.time_of("READY=1"), second_notes.time_of("STATUS=apply")
        waited = f"pid {first.pid}" in err2 and "waiting" in err2
        ordered = ready1 is not None and apply2 is not None and apply2 > ready1
        report.check("a second init waits for the first (message names its pid) and writes only after it reported",
                     first.returncode == 0 and second.returncode == 0 and waited and ordered,
                     f"exits {first.returncode}/{second.returncode}; stderr: {err2.strip()[-600:]}; "
                     f"READY=1 of the first at {ready1}, STATUS=apply of the second at {apply2}",
                     info=f"its apply began {(apply2 - ready1) * 1000:.1f} ms after the first's READY=1" if ordered else "")
        first_notes.close()
        second_notes.close()

        # Refusal after --lock-timeout.
        notes = Notifications(node.work, "lock-3")
        first = spawn(node, root, notes)
        wait_for(first, notes, "register")
        code, out, err = node.run(root, extra=("--lock-timeout", "0.5"))
        first.wait(timeout=TIMEOUT)
        notes.close()
        with open(os.path.join(root, "run/nodeboot/status.json")) as f:
            status = json.load(f)
        report.check("with --lock-timeout 0.5 the second init exits 1 naming the holder; the first's report stands",
                     code == 1 and f"pid {first.pid}" in err and "still holds" in err and status.get("pid") == first.pid
                     and status.get("result") == "ok", f"exit {code}; stderr {err.strip()[-500:]}; status {status.get('pid')} {status.get('result')}")

        # A killed holder releases the lock at once.
        notes = Notifications(node.work, "lock-4")
        first = spawn(node, root, notes)
        wait_for(first, notes, "register")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        notes.close()
        begun = time.monotonic()
        code, out, err = node.run(root, extra=("--lock-timeout", "5"))
        took = time.monotonic() - begun
        report.check("a holder killed by SIGKILL releases the lock: the next init runs at once and says the last "
                     "run was interrupted", code == 0 and "waiting up to" not in err and "was interrupted" in out,
                     f"exit {code}; stdout {out[:300]}; stderr {err.strip()[-300:]}", info=f"{took:.2f} s")
    finally:
        node.faults([])


def prepare_bases(node):
    """{'empty': root, 'old': root}: the conformance node root, and it after an uninterrupted init of A."""
    bases = {}
    for name in ("empty", "old"):
        root = os.path.join(node.work, f"base-{name}")
        testkit.prepare_root(root, node.infra, "1.7.27", kubelet="1.31.0")
        bases[name] = root
    code, out, err = node.run(bases["old"], "A")
    if code != 0:
        raise Fatal(f"init of config A failed (exit {code}):\n{err[-1500:]}")
    return bases


def main():
    parser = argparse.ArgumentParser(description="SIGKILL, full disks and two runs at once against nodeboot init.")
    parser.add_argument("--bin-dir", default=os.path.join(PROJECT, ".build", "debug"))
    parser.add_argument("--conformance", default=os.path.join(PROJECT, "..", "shared", "conformance"))
    parser.add_argument("--trials", type=int, default=240, help="SIGKILL trials (default 240)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time; printed)")
    parser.add_argument("--work", default="/var/tmp", help="where node roots go: a real filesystem (default /var/tmp)")
    parser.add_argument("--only", action="append", default=[], choices=["kill", "full-disk", "lock"])
    parser.add_argument("--keep", action="store_true", help="keep the work directory and print it")
    opts = parser.parse_args()
    if opts.seed is None:
        opts.seed = int(time.time())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bin_dir = os.path.abspath(opts.bin_dir)
    report = Report(detail_lines=40)
    for binary in ("nodeboot", "nodeboot-testbed"):
        if not os.access(os.path.join(bin_dir, binary), os.X_OK):
            print(f"kill-test: {os.path.join(bin_dir, binary)} is missing (build first: swift build)", file=sys.stderr)
            return 2
    infra = os.path.join(os.path.abspath(opts.conformance), "nodeadm", "_infra")
    if not os.path.isdir(infra):
        print(f"kill-test: no conformance data at {infra}", file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="nodeboot-kill-test-", dir=opts.work)
    node = None
    try:
        node = Node(bin_dir, infra, work)
        bases = prepare_bases(node)
        sections = opts.only or ["kill", "full-disk", "lock"]
        if "full-disk" in sections:
            section_full_disk(node, bases, report)
        if "lock" in sections:
            section_lock(node, bases, report)
        if "kill" in sections:
            section_kill(node, bases, report, opts)
    except Fatal as error:
        print(f"kill-test: {error}", file=sys.stderr)
        return 2
    finally:
        if node:
            node.stop()
        if opts.keep or report.counts["failed"]:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
