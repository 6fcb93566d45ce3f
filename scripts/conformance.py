#!/usr/bin/env python3
"""make conformance: play nodeadm's end-to-end suite (conformance/nodeadm/cases.json) with nodeboot.

Format (conformance/README.md): a case's `steps` run in order against one node root. A step has
`kubelet` (the version file is written first), `args` (the agent's command line), `exit` (success:
status 0; failure: any other status, but not a signal), `checks` on node files (`compare: bytes|json`
with a file of the case folder, `PATH#.spec` = the `.spec` member; `contains`/`notContains`, regexes
per line as `grep -e`; `absent: true`), and optionally `before` (copy/remove/touch node files),
`stubs`, `tokenHelper` and `requires` (the step is skipped, and its case counts as skipped, never as
passed). Per case: `imds` metadata overrides (one testbed per distinct set) and `containerd` versions
(one run each, fresh root). `kind: behaviour` cases are skipped (the Swift fault-injection tests).

Node root: each run has a temporary DIR given as `--root DIR`, under which the agent finds its default
node paths (version files, sysfs CPUs, credential provider, stubs). Command-line paths are taken as
given, so they are rewritten: absolute node paths (`/run/...`, `file:///etc/...`, `--opt=/...`) get
the DIR prefix; relative `file://x` stay relative to the working directory, a copy of the case folder
(nothing is ever written under the shared data); `{emptydir}` / `{dir-with-NAME}` become absolute
scratch directories (empty / holding a copy of the case's NAME).

Prints one line per case, then `N passed, N failed, N skipped`; exit 1 if a case failed, 2 on a
usage or environment error.
"""
import argparse
import difflib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import namedtuple
from dataclasses import dataclass, field

from testkit import copy_tree, prepare_root, run_agent, stop_process, write, writable_dirs

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEP_TIMEOUT = 60
DIFF_LINES = 20
PRIVATE_DNS_NAME = "ip-172-16-34-43.ec2.internal"  # moto's PrivateDnsName form (ip-A-B-C-D.ec2.internal)
BEHAVIOUR_REASON = "behaviour case: covered by the Swift fault-injection tests (BootstrapTests/InitBehaviourTests)"
# Metadata keys mirrored into the identity document, so both views of the instance agree.
IDENTITY_FIELDS = {"instance-type": "instanceType", "instance-id": "instanceId"}
CASE_KEYS = {"name", "kind", "note", "steps", "containerd", "imds"}
STEP_KEYS = {"kubelet", "args", "exit", "checks", "before", "stubs", "tokenHelper", "requires"}
CHECK_KEYS = {"path", "expected", "compare", "contains", "notContains", "absent"}
BEFORE_KEYS, STUBS = {"copy", "remove", "touch"}, {"setup-local-disks"}

# Inputs the restated data lost on the way from upstream, put back as upstream's run.sh has them.
# Each is printed under its case, so a pass that depends on one is visible.
DATA_CORRECTIONS = {
    ("config-cache", "nodeadm.d-test.yaml"): (
        "nodeadm.d-test.yaml restored to upstream's heredoc (config-cache/run.sh at 81fec2e8 writes the TOML"
        " with blank lines; cached-config-2.json holds that verbatim text, the restated file lost the blank lines)",
        "---\napiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  containerd:\n    config: |\n"
        "      version = 2\n\n      [grpc]\n      address = \"/run/foo/foo.sock\"\n\n"
        "      [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n      discard_unpacked_layers = false\n",
    ),
}


class RunnerError(Exception):
    """A step the runner could not set up or does not understand (reported as a failure)."""


class Fatal(Exception):
    """The environment is unusable (missing binaries, testbed down): exit 2."""


@dataclass
class Outcome:
    """A case's result: failed if any step failed, else skipped if any step was skipped, else passed.
    `lines` is what goes under the case line: each further reason followed by its own details."""
    failures: list = field(default_factory=list)
    skips: list = field(default_factory=list)
    lines: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    steps_passed: int = 0

    @property
    def status(self):
        return "failed" if self.failures else "skipped" if self.skips else "passed"

    def fail(self, reason, details=()):
        if self.failures:
            self.lines.append(reason)
        self.failures.append(reason)
        self.lines.extend("  " + line for line in details)


# ---------------------------------------------------------------- files

def node(root, path):
    if not path.startswith("/"):
        raise RunnerError(f"node path {path!r} is not absolute")
    return root + path


# ---------------------------------------------------------------- testbed

class Testbeds:
    """One `nodeboot-testbed serve` per distinct IMDS override set, started on first use."""

    def __init__(self, binary, aemm, tmp):
        self.binary, self.aemm, self.tmp, self.running = binary, aemm, tmp, {}

    def get(self, overrides):
        key = json.dumps(overrides or {}, sort_keys=True)
        if key not in self.running:
            entry = {"proc": None, "endpoints": {}, "index": len(self.running)}
            self.running[key] = entry  # registered before starting, so stop_all sees it whatever happens
            self._start(overrides or {}, entry)
        return self.running[key]["endpoints"]

    def _start(self, overrides, entry):
        instance = json.loads(json.dumps(self.aemm))
        for name, value in overrides.items():
            instance["metadata"]["values"][name] = value
            if name in IDENTITY_FIELDS:
                instance["dynamic"]["values"]["instance-identity-document"][IDENTITY_FIELDS[name]] = value
        directory = os.path.join(self.tmp, f"testbed-{entry['index']}")
        os.makedirs(directory)
        config = os.path.join(directory, "config.json")
        write(config, json.dumps({"instance": instance, "privateDnsName": PRIVATE_DNS_NAME}, indent=2))
        log_path = os.path.join(directory, "stderr.log")
        with open(log_path, "wb") as log:
            proc = entry["proc"] = subprocess.Popen(
                [self.binary, "serve", "--config", config, "--imds-port", "0", "--aws-port", "0"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        ready, endpoints = threading.Event(), entry["endpoints"]

        def drain():  # reads stdout to EOF, so the testbed never blocks on a full pipe
            for raw in proc.stdout:
                name, _, url = raw.decode(errors="replace").strip().partition(": ")
                if name in ("imds", "aws") and url.startswith("http"):
                    endpoints[name] = url
                if len(endpoints) == 2:
                    ready.set()
            ready.set()
        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(20) or len(endpoints) < 2:
            with open(log_path, errors="replace") as f:
                raise Fatal(f"nodeboot-testbed did not print its endpoints (config {config}):\n{f.read()[-1500:]}")

    def stop_all(self):
        for entry in self.running.values():
            proc = entry["proc"]
            if proc:
                stop_process(proc)
        self.running.clear()


# ---------------------------------------------------------------- node root

def install_stubs(root, stubs):
    if "setup-local-disks" in (stubs or {}):
        log = shlex.quote(node(root, "/var/log/setup-local-disks.log"))
        write(node(root, "/usr/bin/setup-local-disks"),
              f'#!/bin/sh\nmkdir -p "$(dirname {log})"\necho "$*" >> {log}\n', 0o755)


def apply_before(root, case_dir, before):
    for src, dst in (before.get("copy") or {}).items():
        os.makedirs(os.path.dirname(node(root, dst)), exist_ok=True)
        shutil.copyfile(os.path.join(case_dir, src), node(root, dst))
    for path in before.get("remove") or []:  # as rm -f
        if os.path.lexists(node(root, path)):
            os.remove(node(root, path))
    for path in before.get("touch") or []:
        if os.path.exists(node(root, path)):
            os.utime(node(root, path))
        else:
            write(node(root, path), b"")


def placeholder(name, case_dir, scratch):
    """`{emptydir}`: an empty directory; `{dir-with-NAME}`: a directory holding a copy of NAME."""
    if name != "emptydir" and not name.startswith("dir-with-"):
        raise RunnerError(f"unknown placeholder {{{name}}}")
    path = os.path.join(scratch, name)
    os.makedirs(path, exist_ok=True)
    if name.startswith("dir-with-"):
        source = name[len("dir-with-"):]
        shutil.copyfile(os.path.join(case_dir, source), os.path.join(path, source))
    return path


def rewrite_args(args, root, case_dir, scratch):
    out = []
    for arg in args:
        if arg.startswith("file:///"):
            arg = "file://" + node(root, arg[len("file://"):])
        elif arg.startswith("/"):
            arg = node(root, arg)
        elif arg.startswith("--") and "=/" in arg:
            name, _, value = arg.partition("=")
            arg = f"{name}={node(root, value)}"
        out.append(re.sub(r"\{([\w.-]+)\}", lambda m: placeholder(m.group(1), case_dir, scratch), arg))
    return out


# ---------------------------------------------------------------- running the agent

def agent_env(endpoints, home):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
           "LANG": os.environ.get("LANG", "C.UTF-8")}
    env.update({"AWS_EC2_METADATA_SERVICE_ENDPOINT": endpoints["imds"], "AWS_ENDPOINT_URL": endpoints["aws"],
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": "us-east-1"})
    return env


def tail(label, text, lines=15):
    rows = text.rstrip("\n").split("\n")[-lines:] if text.strip() else []
    return [f"{label}:"] + [f"  {row[:300]}" for row in rows] if rows else []


# ---------------------------------------------------------------- checks

def text_lines(data):
    return data.decode(errors="replace").split("\n")


def short_diff(expected_lines, actual_lines, expected_name, actual_name):
    diff = list(difflib.unified_diff(expected_lines, actual_lines, f"expected {expected_name}",
                                     f"node {actual_name}", lineterm=""))
    if len(diff) > DIFF_LINES:
        diff = diff[:DIFF_LINES] + [f"... ({len(diff) - DIFF_LINES} more diff lines)"]
    return [line[:300] for line in diff]


def select_member(value, member, path):
    for key in [k for k in member.split(".") if k]:
        if not isinstance(value, dict) or key not in value:
            raise ValueError(f"{path} has no member {member}")
        value = value[key]
    return value


def compare_file(check, actual, case_src):
    """`compare: bytes` (exact) or `json` (equal after parsing; `PATH#.spec` selects a member)."""
    spec, name, compare = check["path"], check["expected"], check.get("compare", "bytes")
    with open(os.path.join(case_src, name), "rb") as f:
        expected = f.read()
    if compare == "bytes":
        if actual == expected:
            return None
        diff = short_diff(text_lines(expected), text_lines(actual), name, spec)
        if not diff:
            at = next(i for i, (a, b) in enumerate(zip(actual + b"\0", expected + b"\0")) if a != b)
            diff = [f"bytes differ invisibly in a text diff, first at offset {at}"]
        return f"{spec} differs from {name} (bytes)", diff
    if compare != "json":
        raise RunnerError(f"unknown compare {compare!r}")
    path, _, member = spec.partition("#")
    try:
        want, got = json.loads(expected), select_member(json.loads(actual), member, path)
    except ValueError as error:
        return f"{spec}: {error}", []
    if want == got:
        return None
    dump = lambda value: json.dumps(value, indent=2, sort_keys=True).split("\n")  # noqa: E731
    return f"{spec} differs from {name} (json)", short_diff(dump(want), dump(got), name, spec)


def grep_file(check, path, actual):
    """`contains` / `notContains`: a regular expression searched in each line, as `grep -e`."""
    pattern, wanted = (check["contains"], True) if "contains" in check else (check["notContains"], False)
    lines = text_lines(actual)
    hits = [line for line in lines if re.search(pattern, line)]
    if bool(hits) == wanted:
        return None
    if wanted:
        return f"no line of {path} matches /{pattern}/", tail(f"{path} (last lines)", "\n".join(lines), 8)
    return f"{path} matches /{pattern}/", [f"  {line[:300]}" for line in hits[:5]]


def run_check(check, root, case_src):
    """None when the check holds, else (reason, detail lines). A missing file fails every check but `absent`."""
    path = check["path"].partition("#")[0]
    if check.get("absent"):
        return (f"{path} exists, expected absent", []) if os.path.lexists(node(root, path)) else None
    if not os.path.isfile(node(root, path)):
        return f"{path} was not written", []
    with open(node(root, path), "rb") as f:
        actual = f.read()
    if "expected" in check:
        return compare_file(check, actual, case_src)
    if "contains" in check or "notContains" in check:
        return grep_file(check, path, actual)
    raise RunnerError(f"check on {path} has nothing to check")


# ---------------------------------------------------------------- cases

Context = namedtuple("Context", "bin_dir nodeadm_dir tmp testbeds default_containerd verbose")
# One run of a case: the node root, the case folder's copy (the cwd), the shared original, scratch dirs, env.
Run = namedtuple("Run", "root case_dir case_src scratch env")


def run_step(step, label, ctx, run, outcome):
    """Runs one step; False when it failed (the case stops: later steps depend on its state)."""
    write(node(run.root, "/etc/eks/kubelet-version.txt"), f"Kubernetes v{step['kubelet']}\n")
    apply_before(run.root, run.case_dir, step.get("before") or {})
    install_stubs(run.root, step.get("stubs"))
    args = rewrite_args(step["args"], run.root, run.case_dir, run.scratch) + ["--root", run.root]
    if step.get("tokenHelper") and step["args"][0] == "init":
        args += ["--token-helper", step["tokenHelper"]]
    code, out, err = run_agent([os.path.join(ctx.bin_dir, "nodeboot")] + args, run.case_dir, run.env, STEP_TIMEOUT)
    shown = f"nodeboot {shlex.join(step['args'])}"
    if ctx.verbose:
        status = "timeout" if code is None else f"exit {code}"
        outcome.lines.append(f"{label}: {shlex.join(['nodeboot'] + args)} -> {status}")
    output = tail("agent stderr", err) + tail("agent stdout", out)
    # `exit: failure` accepts any non-zero status, never a death by signal (a crash is no refusal).
    problem = (f"timed out after {STEP_TIMEOUT} s" if code is None else f"killed by signal {-code}" if code < 0
               else f"exit status {code}, expected {step['exit']}" if (code == 0) != (step["exit"] == "success")
               else None)
    if problem:
        outcome.fail(f"{label}: {shown}: {problem}", output)
        return False
    failures = [r for r in (run_check(c, run.root, run.case_src) for c in step.get("checks") or []) if r]
    for index, (reason, details) in enumerate(failures):
        outcome.fail(f"{label}: {reason}", details + (output if index == len(failures) - 1 else []))
    return not failures


def run_case_once(case, containerd, tag, ctx, outcome):
    work = tempfile.mkdtemp(prefix=f"{case['name']}-", dir=ctx.tmp)
    case_src = os.path.join(ctx.nodeadm_dir, case["name"])
    case_dir, root, scratch, home = (os.path.join(work, d) for d in ("case", "root", "dirs", "home"))
    if os.path.isdir(case_src):
        copy_tree(case_src, case_dir)
    for (name, relative), (reason, text) in DATA_CORRECTIONS.items():
        if name == case["name"] and os.path.exists(os.path.join(case_dir, relative)):
            write(os.path.join(case_dir, relative), text.encode())
            if reason not in outcome.notes:
                outcome.notes.append(reason)
    for directory in (case_dir, scratch, home):
        os.makedirs(directory, exist_ok=True)
    prepare_root(root, os.path.join(ctx.nodeadm_dir, "_infra"), containerd)
    run = Run(root, case_dir, case_src, scratch, agent_env(ctx.testbeds.get(case.get("imds")), home))
    for number, step in enumerate(case["steps"], 1):
        label = f"step {number}{tag}"
        if step.get("requires"):
            outcome.skips.append(f"{label} requires {step['requires']}")
            continue
        try:
            if not run_step(step, label, ctx, run, outcome):
                break
            outcome.steps_passed += 1
        except (RunnerError, OSError, KeyError, re.error, json.JSONDecodeError) as error:
            outcome.fail(f"{label}: runner: {error}")
            break


def run_case(case, ctx):
    if case.get("kind") == "behaviour":
        return Outcome(skips=[BEHAVIOUR_REASON])
    outcome = Outcome()
    versions = case.get("containerd") or [ctx.default_containerd]
    for version in versions:
        run_case_once(case, version, f" [containerd {version}]" if len(versions) > 1 else "", ctx, outcome)
    return outcome


def report(name, outcome, verbose):
    """One line per case (status, name, first reason); the rest indented below on failure or -v."""
    first = (outcome.failures + outcome.skips + [""])[0]
    more = len(outcome.failures) + len(outcome.skips) - 1
    passed = f"; its other {outcome.steps_passed} step(s) passed" if outcome.status == "skipped" and outcome.steps_passed else ""
    print(f"{outcome.status:<8} {name}" + (f": {first}" if first else "") + (f" (+{more} more)" if more > 0 else "") + passed)
    skips = outcome.skips[1:] if outcome.status == "skipped" else outcome.skips
    for note in outcome.notes:
        print(f"    note: {note}")
    if outcome.status == "failed" or verbose:
        for line in outcome.lines + skips:
            print(f"    {line}")
    sys.stdout.flush()


# ---------------------------------------------------------------- main

def parse_args():
    parser = argparse.ArgumentParser(description="Play conformance/nodeadm/cases.json with nodeboot.")
    parser.add_argument("--bin-dir", required=True, help="directory holding nodeboot and nodeboot-testbed")
    parser.add_argument("--conformance", default=os.path.join(PROJECT, "..", "shared", "conformance"))
    parser.add_argument("--case", action="append", default=[], metavar="NAME", help="run only these cases")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print it")
    parser.add_argument("-v", "--verbose", action="store_true", help="print commands and details of every case")
    return parser.parse_args()


def validate(suite):
    """Refuses data this runner does not understand, rather than pass a case by ignoring a key."""
    for case in suite["cases"]:
        steps = case.get("steps", [])
        items = [(case, CASE_KEYS)] + [(step, STEP_KEYS) for step in steps]
        items += [(check, CHECK_KEYS) for step in steps for check in step.get("checks", [])]
        items += [(step[key], keys) for step in steps for key, keys in (("before", BEFORE_KEYS), ("stubs", STUBS))
                  if key in step]
        for obj, keys in items:
            if set(obj) - keys:
                raise Fatal(f"case {case['name']}: unknown {sorted(set(obj) - keys)} (the runner needs updating)")


def load(opts):
    """(bin_dir, nodeadm_dir, suite, aemm base config); Fatal when something is missing."""
    bin_dir = os.path.abspath(opts.bin_dir)
    for binary in ("nodeboot", "nodeboot-testbed"):
        if not os.access(os.path.join(bin_dir, binary), os.X_OK):
            raise Fatal(f"{os.path.join(bin_dir, binary)} is missing or not executable (build first: swift build)")
    nodeadm_dir = os.path.join(os.path.abspath(opts.conformance), "nodeadm")
    try:
        with open(os.path.join(nodeadm_dir, "cases.json")) as f:
            suite = json.load(f)
        with open(os.path.join(nodeadm_dir, suite["environment"]["imds"])) as f:
            aemm = json.load(f)
    except (OSError, ValueError, KeyError) as error:
        raise Fatal(f"cannot read the conformance data in {nodeadm_dir}: {error}")
    validate(suite)
    unknown = set(opts.case) - {case["name"] for case in suite["cases"]}
    if unknown:
        raise Fatal(f"no such case(s): {', '.join(sorted(unknown))}")
    return bin_dir, nodeadm_dir, suite, aemm


def main():
    opts = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through the cleanup below
    try:
        bin_dir, nodeadm_dir, suite, aemm = load(opts)
    except Fatal as error:
        print(f"conformance: {error}", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="nodeboot-conformance-")
    testbeds = Testbeds(os.path.join(bin_dir, "nodeboot-testbed"), aemm, tmp)
    ctx = Context(bin_dir, nodeadm_dir, tmp, testbeds, suite["environment"]["containerdDefault"], opts.verbose)
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    try:
        for case in suite["cases"]:
            if opts.case and case["name"] not in opts.case:
                continue
            outcome = run_case(case, ctx)
            counts[outcome.status] += 1
            report(case["name"], outcome, opts.verbose)
    except Fatal as error:
        print(f"conformance: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("conformance: interrupted", file=sys.stderr)
        return 130
    finally:
        testbeds.stop_all()
        if opts.keep:
            print(f"conformance: kept {tmp}", file=sys.stderr)
        else:
            writable_dirs(tmp)
            shutil.rmtree(tmp)
    print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
