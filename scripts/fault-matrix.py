#!/usr/bin/env python3
"""make test: the fault matrix (issue 15). `nodeboot init --register-node` against `nodeboot-testbed serve` with one
fault at a time; each row is a check.

    scripts/fault-matrix.py [--bin-dir DIR] [--only ROW]... [--jobs N] [--write-doc] [--keep]

A row: the fault (testbed fault rules in its config file, a late listener, no listener, a NodeConfig with another CA
or an unresolvable proxy, a node root on a full or read-only tmpfs), what must come of it (success, or exit status 1
with an error line and a hint that match the fault), and the bound the time must stay within: the documented deadline
the failure runs into (IMDS --imds-timeout, the AWS retry budget with AWS_MAX_ATTEMPTS, the 10 s per-attempt timeout,
--register-timeout), each shortened through the agent's own knobs so the matrix fits CI, with slack: a bound, not a
timing. For every row the node root is snapshotted before and after: a failed run must leave every node file as it
was (the agent's own state under /run/nodeboot and /var/lib/nodeboot aside), a successful one must have written the
complete set of files of a clean run; no staged file (.NAME.nodeboot-PID) may remain either way. status.json is read
back: `failed` (or `ok`) with the error — a run that fails before it touches the node still writes its report, when
it can take the lock — or absent when even that could not be written (a full or read-only /run: docs/reliability.md).

The table in docs/reliability.md (between the fault-matrix markers) is generated from a run: --write-doc writes it;
a normal run checks that the doc's rows and outcomes are the run's (times may differ, they are not compared).
Rows that need root (tmpfs mounts) are skipped with the reason without it; the doc keeps their last measured line.

Prints one line per row, then `N passed, N failed, N skipped`; exit 1 if a row failed, 2 on an environment error.
"""
import argparse
import base64
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testkit  # noqa: E402

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(PROJECT, "docs", "reliability.md")
BEGIN, END = "<!-- fault-matrix:begin -->", "<!-- fault-matrix:end -->"
AEMM = os.path.join(PROJECT, "Sources", "Testbed", "Resources", "aemm-default-config.json")
NODE_NAME = "ip-172-16-34-43.us-west-2.compute.internal"
HARD_TIMEOUT = 150  # a row's agent is killed after this: far above every bound below
BOOKKEEPING = ("run/nodeboot/", "var/lib/nodeboot/")  # the agent's own state, allowed to change on a failed run
STAGED = re.compile(r"^\..+\.nodeboot-\d+$")
USER_DATA = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: my-cluster\n"
PROXY = "http://proxy.invalid:3128"
PROXY_USER_DATA = USER_DATA + (f"  instance:\n    environment:\n      default:\n        HTTP_PROXY: {PROXY}\n"
                               f"        HTTPS_PROXY: {PROXY}\n")
REGISTER_TIMEOUT = 8  # --register-timeout of the API-server rows (default 300 s)
IMDS_TIMEOUT = 5  # --imds-timeout of the IMDS rows that must fail (default 60 s)
PERMISSION = "lacks '"  # AWSError's permission hint: only for access denied


def rule(endpoint, **effects):
    return {"endpoint": endpoint, **effects}


def row(name, fault, expect, bound, bound_from, faults=(), **extra):
    """expect: 'ok' or an exit status. bound: seconds the run must end within (slack included).
    extra: user_data, args, env, late, imds_absent, other_ca, mount (full|ro), hint (substrings all required),
    error (substrings of the error line), never (substrings the hint must not have), min_seconds, tree (the node
    tree expected after the run: default complete for success, unchanged for a failure),
    check (a function (row result, requests) -> problem or None), root (needs root)."""
    return {"name": name, "fault": fault, "expect": expect, "bound": bound, "bound_from": bound_from,
            "faults": list(faults), **extra}


AWS_ATTEMPTS = {"AWS_MAX_ATTEMPTS": "3"}  # the retry budget's knob (default 30 attempts in 120 s)
ROWS = [
    row("baseline", "no fault", "ok", 10, "—"),
    # IMDS
    row("imds-absent", "IMDS absent (no listener)", 1, IMDS_TIMEOUT + 5,
        f"--imds-timeout {IMDS_TIMEOUT} (default 60 s)", imds_absent=True, args=["--imds-timeout", str(IMDS_TIMEOUT)],
        error=["IMDS"], hint=["no answer", "--imds-timeout"],
        never=[PERMISSION],
        min_seconds=IMDS_TIMEOUT - 2),  # it gives up when the next wait (≤ 1 s) would pass the deadline
    row("imds-late", "IMDS late (listener opens after 4 s)", "ok", 60 + 5, "IMDS deadline 60 s (RetryPolicy.imds)",
        late={"imdsSeconds": 4}, min_seconds=3.5),
    row("imds-500", "IMDS answers 500", 1, IMDS_TIMEOUT + 5, f"--imds-timeout {IMDS_TIMEOUT} (default 60 s)",
        [rule("imds", status=500)], args=["--imds-timeout", str(IMDS_TIMEOUT)], error=["500"],
        hint=["HTTP 500", "--imds-timeout"], never=[PERMISSION]),
    row("imds-401", "IMDS 401 mid-run (2 metadata reads after the user data)", "ok", 60 + 5,
        "IMDS deadline 60 s (RetryPolicy.imds)", [rule("imds", path="/latest/meta-data", status=401, count=2)],
        check=lambda r, reqs: None
        if sum(1 for q in reqs if q.get("endpoint") == "imds" and q.get("status") == 401) == 2
        else "the testbed did not answer two 401s"),
    row("imds-throttled", "IMDS throttled (429 × 5)", "ok", 60 + 5, "IMDS deadline 60 s (RetryPolicy.imds)",
        [rule("imds", throttle=True, count=5)]),
    row("imds-truncated", "IMDS truncated bodies (× 3)", "ok", 60 + 5, "IMDS deadline 60 s (RetryPolicy.imds)",
        [rule("imds", path="/latest/", truncatedBody=True, count=3)]),
    # EC2 (DescribeInstances), EKS (DescribeCluster: the user data leaves out the endpoint and CA), STS
    row("ec2-throttled", "EC2 throttled (RequestLimitExceeded × 3)", "ok", 120 + 5, "AWS retry budget 120 s",
        [rule("ec2", action="DescribeInstances", throttle=True, count=3)]),
    row("ec2-5xx", "EC2 answers 500", 1, 20, "AWS_MAX_ATTEMPTS=3 (default 30 attempts, 120 s)",
        [rule("ec2", action="DescribeInstances", status=500)], env=AWS_ATTEMPTS, error=["DescribeInstances", "500"],
        hint=["service's side"], never=[PERMISSION]),
    row("ec2-blackhole", "EC2 black-holed", 1, 10 + 8, "AWS_MAX_ATTEMPTS=1 × 10 s attempt timeout",
        [rule("ec2", action="DescribeInstances", blackhole=True)], env={"AWS_MAX_ATTEMPTS": "1"},
        error=["DescribeInstances"], hint=["network path"], never=[PERMISSION], min_seconds=9),
    row("ec2-garbage", "EC2 answers garbage (200, not XML)", 1, 20, "AWS_MAX_ATTEMPTS=3 (default 30 attempts, 120 s)",
        [rule("ec2", action="DescribeInstances", garbageBody=True)], env=AWS_ATTEMPTS, error=["DescribeInstances"],
        never=[PERMISSION]),
    row("eks-throttled", "EKS throttled (ThrottlingException × 3)", "ok", 120 + 5, "AWS retry budget 120 s",
        [rule("eks", path="/clusters/", throttle=True, count=3)]),
    row("eks-5xx", "EKS answers 500", 1, 20, "AWS_MAX_ATTEMPTS=3 (default 30 attempts, 120 s)",
        [rule("eks", path="/clusters/", status=500)], env=AWS_ATTEMPTS, error=["DescribeCluster", "500"],
        hint=["service's side", "apiServerEndpoint"], never=[PERMISSION]),
    row("eks-blackhole", "EKS black-holed", 1, 10 + 8, "AWS_MAX_ATTEMPTS=1 × 10 s attempt timeout",
        [rule("eks", path="/clusters/", blackhole=True)], env={"AWS_MAX_ATTEMPTS": "1"}, error=["DescribeCluster"],
        hint=["network path", "apiServerEndpoint"], never=[PERMISSION], min_seconds=9),
    row("eks-garbage", "EKS answers garbage (200, not JSON)", 1, 20, "AWS_MAX_ATTEMPTS=3 (default 30 attempts, 120 s)",
        [rule("eks", path="/clusters/", garbageBody=True)], env=AWS_ATTEMPTS, error=["DescribeCluster"],
        hint=["apiServerEndpoint"], never=[PERMISSION]),
    *[row(f"sts-{name}", f"STS {what} (every request)", "ok", 10,
          "— (init calls no STS API: the token is a presigned URL)",
          [rule("sts", **effect)], check=lambda r, reqs: None if not any(q.get("endpoint") == "sts" for q in reqs)
          else "init called STS")
      for name, what, effect in (("throttled", "throttled", {"throttle": True}),
                                 ("5xx", "answers 500", {"status": 500}),
                                 ("blackhole", "black-holed", {"blackhole": True}),
                                 ("garbage", "answers garbage", {"garbageBody": True}))],
    # The API server
    row("kube-slow", "API server slow (1.5 s per request)", "ok", REGISTER_TIMEOUT + 5,
        f"--register-timeout {REGISTER_TIMEOUT} (default 300 s)", [rule("kube", latencyMs=1500)],
        args=["--register-timeout", str(REGISTER_TIMEOUT)]),
    row("kube-5xx", "API server answers 500", 1, REGISTER_TIMEOUT + 5,
        f"--register-timeout {REGISTER_TIMEOUT} (default 300 s)", [rule("kube", status=500)],
        tree="complete", args=["--register-timeout", str(REGISTER_TIMEOUT)], error=["500"]),
    row("kube-other-ca", "API server TLS with another CA (the NodeConfig's CA is a different one)", 1,
        REGISTER_TIMEOUT + 5, f"--register-timeout {REGISTER_TIMEOUT} (default 300 s)", other_ca=True,
        tree="complete", args=["--register-timeout", str(REGISTER_TIMEOUT)], hint=["certificateAuthority"]),
    row("kube-401", "API server answers 401", 1, REGISTER_TIMEOUT + 5,
        f"--register-timeout {REGISTER_TIMEOUT} (default 300 s)", [rule("kube", status=401)],
        tree="complete", args=["--register-timeout", str(REGISTER_TIMEOUT)], error=["401"], hint=["access entry"],
        never=["certificate"]),
    row("kube-403", "API server answers 403", 1, REGISTER_TIMEOUT + 5,
        f"--register-timeout {REGISTER_TIMEOUT} (default 300 s)", [rule("kube", status=403)],
        tree="complete", args=["--register-timeout", str(REGISTER_TIMEOUT)], error=["403"], hint=["EC2_LINUX"],
        never=["not mapped"]),
    # The node's disk
    row("disk-full", "disk full (node root on a full 2 MiB tmpfs)", 1, 10, "— (no wait: the first write fails)",
        mount="full", root=True, error=["No space left", "ENOSPC"], hint=["space"]),
    row("disk-full-apply", "disk full after an earlier run (a new kubelet config to apply)", 1, 10,
        "— (no wait: the first write fails)", mount="full", prior=True, root=True, stale_status=True,
        error=["No space left", "ENOSPC"],
        hint=["space"]),
    row("read-only", "read-only filesystem (node root on a tmpfs remounted ro)", 1, 10,
        "— (no wait: the first write fails)", mount="ro", root=True, error=["Read-only", "EROFS"],
        hint=["read-only"]),
    # The network path from the NodeConfig
    row("proxy-unresolvable", "unresolvable HTTP_PROXY host from spec.instance.environment.default", 1, 30,
        "AWS_MAX_ATTEMPTS=3 (default 30 attempts, 120 s)", user_data=PROXY_USER_DATA, env=AWS_ATTEMPTS,
        error=["proxy.invalid"], hint=["proxy"], never=[PERMISSION, "ec2:DescribeInstances"]),
]
# Rows not run here: what covers them instead, for the table.
ELSEWHERE = [
    ("systemd unit failing",
     "exit 1, the unit and its journal lines named; the kubelet not started; status.json failed",
     "Swift: InitServiceTests 'a unit that fails' (RecordingServiceManager); under a real systemd 252: "
     "scripts/systemd-test.py scenarios c (containerd refuses its config) and f (a kubelet that exits after it "
     "started)"),
    ("systemd unit timing out", "exit 1 after --unit-timeout (default 120 s), the hint names the limit and the flag",
     "Swift: SystemdTests/UnitJobTests 'a job that never finishes is .timeout within its bound' (the bound, over a "
     "recorded sd-bus) and BootstrapTests/UnitErrorHintTests (the error and hint init reports)"),
]


# ---------------------------------------------------------------- node trees

def prepare_root(root):
    """What a machine image bakes in (as make demo): version files, the ECR credential provider, 2 CPUs."""
    testkit.write(root + "/etc/eks/kubelet-version.txt", "Kubernetes v1.31.0\n")
    testkit.write(root + "/etc/eks/containerd-version.txt",
                  f"containerd github.com/containerd/containerd v1.7.27 {testkit.CONTAINERD_COMMIT}\n")
    testkit.write(root + "/etc/eks/image-credential-provider/ecr-credential-provider", b"", 0o755)
    testkit.write(root + "/sys/devices/system/cpu/online", "0-1\n")


def tree_verdict(before, after, complete):
    """('unchanged' | 'complete' | 'HALF-WRITTEN' | 'INCOMPLETE', problems). `complete`: {path: bytes} of a clean
    run's files (a file empty there may be empty here). Either outcome of a run may leave the node unchanged (it
    failed before apply) or complete (it failed after apply: registration); anything between is half-written."""
    staged = [p for p in after if STAGED.match(os.path.basename(p))]
    problems = [f"staged file left: /{p}" for p in staged]
    changed = sorted(p for p in set(before) | set(after)
                     if before.get(p) != after.get(p) and not p.startswith(BOOKKEEPING)
                     and (after.get(p) or before[p])[0] != "dir")
    if not changed:
        return "unchanged", problems
    files = {p for p in after if after[p][0] != "dir" and not p.startswith(BOOKKEEPING)}
    missing = sorted(set(complete) - files)
    empty = sorted(p for p in set(complete) & files if not after[p][3] and complete[p])
    if not missing and not empty:
        return "complete", problems
    problems.append("HALF-WRITTEN: " + "; ".join(
        part for part in (f"changed {', '.join('/' + p for p in changed[:8])}" + (" …" if len(changed) > 8 else ""),
                          f"missing {', '.join('/' + p for p in missing[:8])}" if missing else "",
                          f"empty {', '.join('/' + p for p in empty)}" if empty else "") if part))
    return "HALF-WRITTEN", problems


@contextlib.contextmanager
def mounted(kind, directory, setup):
    """The node root on a small tmpfs, `setup` run on it, then 'full' (filled to the last byte) or 'ro' (remounted
    read-only)."""
    os.makedirs(directory, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", directory], check=True,
                   capture_output=True, timeout=30)
    try:
        setup()
        if kind == "full":
            descriptor = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                for size in (65536, 4096, 1):  # to the last byte
                    with contextlib.suppress(OSError):
                        while True:
                            os.write(descriptor, b"\0" * size)
            finally:
                os.close(descriptor)
        else:
            subprocess.run(["mount", "-o", "remount,ro", directory], check=True, capture_output=True, timeout=30)
        yield
    finally:
        for _ in range(20):
            if subprocess.run(["umount", directory], capture_output=True, timeout=30).returncode == 0:
                break
            time.sleep(0.25)
        else:
            subprocess.run(["umount", "-l", directory], capture_output=True, timeout=30)


# ---------------------------------------------------------------- one row

def other_ca(directory):
    """A CA certificate the testbed's server certificate does not chain to (PEM)."""
    cert, _ = testkit.make_ca(directory, "another-ca")
    with open(cert, "rb") as f:
        return f.read()


def error_lines(stderr):
    """(error line, hint line) as the agent prints them (`nodeboot: error: …`, `hint: …`)."""
    error = hint = ""
    for line in stderr.splitlines():
        if line.startswith("nodeboot: error: ") and not error:
            error = line[len("nodeboot: error: "):]
        elif line.startswith("hint: ") and not hint:
            hint = line[len("hint: "):]
    return error, hint


def sanitized(line, work):
    """A line as the table shows it: the scratch root as ROOT, loopback ports as PORT, pids as PID."""
    line = line.replace(os.path.join(work, "root"), "ROOT").replace(work, "WORK")
    line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", line)
    line = re.sub(r"(nodeboot-|pid )\d+", r"\1PID", line)
    return re.sub(r"fingerprint [0-9A-F:]{95}", "fingerprint …", line)


def requests_of(aws_endpoint):
    with urllib.request.urlopen(aws_endpoint + "/_testbed/requests", timeout=10) as response:
        data = json.load(response)
    return data if isinstance(data, list) else data.get("requests", [])


def run_row(spec, ctx):
    work = tempfile.mkdtemp(prefix=f"{spec['name']}-", dir=ctx["tmp"])
    root, home = os.path.join(work, "root"), os.path.join(work, "home")
    os.makedirs(home)
    instance = json.loads(json.dumps(ctx["aemm"]))
    instance.setdefault("userdata", {}).setdefault("values", {})["userdata"] = spec.get("user_data", USER_DATA)
    config = {"instance": instance, "faults": spec["faults"]}
    if spec.get("late"):
        config["lateStart"] = spec["late"]
    config_path = os.path.join(work, "testbed.json")
    testkit.write(config_path, json.dumps(config))
    proc, printed = testkit.start_testbed(ctx["testbed"], config_path, work)
    result = {"name": spec["name"], "problems": []}
    try:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8", **printed["env"],
               **spec.get("env", {})}
        if spec.get("imds_absent"):
            env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = f"http://127.0.0.1:{testkit.free_port()}"
        args = [ctx["agent"], "init", "--root", root, "--register-node", *spec.get("args", [])]
        if spec.get("other_ca"):
            node_config = (USER_DATA + f"    apiServerEndpoint: {printed['kube']}\n"
                           f"    certificateAuthority: {base64.b64encode(other_ca(work)).decode()}\n"
                           "    cidr: 10.100.0.0/16\n")
            testkit.write(os.path.join(work, "nodeconfig.yaml"), node_config)
            args += ["-c", "file://" + os.path.join(work, "nodeconfig.yaml")]
        def setup():
            prepare_root(root)
            if spec.get("prior"):  # an earlier complete run with another kubelet config: the node's previous state
                prior = os.path.join(work, "prior.yaml")
                testkit.write(prior, USER_DATA + "  kubelet:\n    config:\n      maxPods: 50\n")
                argv = [ctx["agent"], "init", "--root", root, "-c", "file://" + prior]
                status, _, prior_err = testkit.run_agent(argv, work, env, 60)
                if status != 0:
                    raise RuntimeError(f"the earlier run failed ({status}): {prior_err[-600:]}")
        with (mounted(spec["mount"], root, setup) if spec.get("mount") else contextlib.nullcontext()):
            if not spec.get("mount"):
                setup()
            before = testkit.tree_state(root)
            start = time.monotonic()
            code, out, err = testkit.run_agent(args, work, env, HARD_TIMEOUT)
            result["seconds"] = time.monotonic() - start
            after = testkit.tree_state(root)
        try:
            requests = requests_of(printed["env"]["AWS_ENDPOINT_URL"])
        except OSError as error:
            requests, result["problems"] = [], [f"cannot read the testbed's request log: {error}"]
    finally:
        testkit.stop_process(proc)
    result["code"], result["stdout"], result["stderr"] = code, out, err
    result["error"], result["hint"] = (sanitized(line, work) for line in error_lines(err))
    status = after.get("run/nodeboot/status.json")
    try:
        result["status"] = json.loads(status[3])["result"] if status else "absent"
        if status and before.get("run/nodeboot/status.json") == status:
            result["status"] = f"the previous run's ({result['status']}): not rewritten"
    except (ValueError, KeyError):
        result["status"] = "unreadable"
    result["tree"], problems = tree_verdict(before, after, ctx.get("complete", {}))
    result["problems"] += problems
    result["files"] = {p: after[p][3] for p in after
                       if after[p][0] != "dir" and not p.startswith(BOOKKEEPING) and before.get(p) != after[p]}
    judge(spec, result, requests)
    if not ctx["keep"]:
        shutil.rmtree(work, ignore_errors=True)
    return result


def judge(spec, result, requests):
    p = result["problems"]
    code, seconds = result["code"], result["seconds"]
    if code is None:
        p.append(f"no end after {HARD_TIMEOUT} s (killed)")
        return
    if code < 0:
        p.append(f"killed by signal {-code}")
    expected = 0 if spec["expect"] == "ok" else spec["expect"]
    if code != expected:
        p.append(f"exit status {code}, expected {expected}")
    if seconds > spec["bound"]:
        p.append(f"took {seconds:.1f} s, the bound is {spec['bound']} s ({spec['bound_from']})")
    if seconds < spec.get("min_seconds", 0):
        p.append(f"ended after {seconds:.1f} s, before the fault could have been waited out ({spec['min_seconds']} s)")
    if expected == 0:
        if result["status"] != "ok":
            p.append(f"status.json result {result['status']!r}, expected 'ok'")
    else:
        if not result["error"]:
            p.append("no 'nodeboot: error:' line on stderr")
        if not result["hint"]:
            p.append("no 'hint:' line on stderr")
        stale = spec.get("stale_status") and "previous" in result["status"]
        if result["status"] not in ("failed", "absent") and not stale:
            p.append(f"status.json result {result['status']!r}, expected 'failed' (or absent: /run not writable)")
        if result["status"] == "absent" and result["tree"] != "unchanged":
            p.append("no status.json although the node was changed")
        if spec.get("error") and not any(s in result["error"] for s in spec["error"]):
            p.append(f"the error line names none of {spec['error']}: {result['error']!r}")
        for s in spec.get("hint", []):
            if s not in result["hint"]:
                p.append(f"the hint lacks {s!r}: {result['hint']!r}")
        for s in spec.get("never", []):
            if s in result["hint"]:
                p.append(f"the hint says {s!r}, which does not match the fault: {result['hint']!r}")
    want = spec.get("tree", "complete" if expected == 0 else "unchanged")
    if result["tree"] != want and result["tree"] != "HALF-WRITTEN":  # half-written is a problem of its own
        p.append(f"node tree {result['tree']}, expected {want}")
    if spec.get("check"):
        problem = spec["check"](result, requests)
        if problem:
            p.append(problem)


# ---------------------------------------------------------------- the table

LEGEND = [
    "Each row: `nodeboot init --register-node --root ROOT` against `nodeboot-testbed serve` with that one fault (its",
    "user data names only the cluster, so EC2 DescribeInstances, EKS DescribeCluster and the API server are all on the",
    "path). **time** is one measured run; **bound** is what the run must end within (the documented deadline, shortened",
    "through the agent's own knob where the default is long, plus slack) — make test checks the bound, not the time.",
    "**error → hint** are the two lines the operator sees on stderr (`nodeboot: error:`, `hint:`), shortened here;",
    "the runner requires words of the hint that match the fault and forbids ones that do not (no IAM permission hint",
    "for a network failure). **status.json**: `failed`/`ok` as the run wrote it (a run refused before it touched the",
    "node writes only this report), `absent` when it could not be written (a full or read-only /run). **node tree**: ROOT compared before and after,",
    "the agent's own /run/nodeboot and /var/lib/nodeboot aside: `unchanged`, or `complete` (every file of a clean run:",
    "the failures after apply, in registration); never half-written, and no staged `.NAME.nodeboot-PID` file left.",
    "The disk rows need root (tmpfs); without it they are skipped and keep their last line here.",
]


def cell(text, width=160):
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= width else text[:width - 1] + "…"


def outcome(spec, result):
    return "ok" if result["code"] == 0 else f"exit {result['code']}"


def table(results, previous):
    """The markdown table; rows not run here (skipped) keep their line from `previous`."""
    lines = LEGEND + ["", "| fault | outcome | time | bound | error → hint | status.json | node tree |",
                      "|---|---|---|---|---|---|---|"]
    for spec in ROWS:
        result = results.get(spec["name"])
        if result is None:
            if spec["fault"] in previous:
                lines.append(previous[spec["fault"]])
            continue
        said = "—" if result["code"] == 0 else f"`{cell(result['error'])}` → {cell(result['hint'])}"
        lines.append(f"| {cell(spec['fault'])} | {outcome(spec, result)} | {result['seconds']:.1f} s | "
                     f"≤ {spec['bound']} s: {spec['bound_from']} | {said} | {result['status']} | {result['tree']} |")
    for fault, what, where in ELSEWHERE:
        lines.append(f"| {fault} | {what} | — | — | {where} | — | — |")
    return lines


def doc_rows(text):
    """{fault: line} of the table between the markers, or None when there are no markers."""
    if BEGIN not in text or END not in text:
        return None
    inside = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = {}
    for line in inside.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 7 and cells[0] not in ("fault", "---"):
            rows[cells[0]] = line
    return rows


def comparable(line):
    """A table line without its time: fault, outcome, status.json and node tree."""
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
    return (cells[0], cells[1], cells[5], cells[6])


def write_doc(lines):
    block = "\n".join([BEGIN, "", *lines, "", END])
    text = open(DOC).read() if os.path.exists(DOC) else "# Reliability\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Fault matrix\n\nGenerated by `scripts/fault-matrix.py --write-doc`" \
            " (checked by `make test`: the rows and outcomes, not the times).\n\n" + block + "\n"
    with open(DOC + ".tmp", "w") as f:
        f.write(text)
    os.replace(DOC + ".tmp", DOC)


# ---------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description="nodeboot init against the testbed, one fault at a time.")
    parser.add_argument("--bin-dir", default=os.path.join(PROJECT, ".build", "debug"))
    parser.add_argument("--only", action="append", default=[], metavar="ROW",
                        help="only these rows: " + ", ".join(r["name"] for r in ROWS))
    parser.add_argument("--jobs", type=int, default=6, help="rows run at once (default 6)")
    parser.add_argument("--write-doc", action="store_true", help="write the table into docs/reliability.md")
    parser.add_argument("--keep", action="store_true", help="keep the rows' scratch directories")
    opts = parser.parse_args()
    unknown = set(opts.only) - {r["name"] for r in ROWS}
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}")
    bin_dir = os.path.abspath(opts.bin_dir)
    ctx = {"agent": os.path.join(bin_dir, "nodeboot"), "testbed": os.path.join(bin_dir, "nodeboot-testbed"),
           "keep": opts.keep, "tmp": tempfile.mkdtemp(prefix="fault-matrix-")}
    for binary in (ctx["agent"], ctx["testbed"]):
        if not os.access(binary, os.X_OK):
            print(f"fault-matrix: no {binary}: run swift build first", file=sys.stderr)
            return 2
    with open(AEMM) as f:
        ctx["aemm"] = json.load(f)
    report = testkit.Report()
    started = time.monotonic()
    try:
        # The baseline first: the complete set of files a successful run writes, for the other rows.
        baseline = run_row(ROWS[0], ctx)
        ctx["complete"] = baseline["files"]
        results = {"baseline": baseline}
        todo, skipped = [], []
        for spec in ROWS[1:]:
            if opts.only and spec["name"] not in opts.only:
                continue
            if spec.get("root") and os.geteuid() != 0:
                skipped.append(spec)
                continue
            if spec.get("other_ca") and not shutil.which("openssl"):
                skipped.append(dict(spec, why="needs openssl"))
                continue
            todo.append(spec)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
            futures = {spec["name"]: pool.submit(run_row, spec, ctx) for spec in todo}
            for spec in todo:
                try:
                    results[spec["name"]] = futures[spec["name"]].result()
                except Exception as error:  # noqa: BLE001 — one row's setup failing is that row's failure
                    results[spec["name"]] = {"name": spec["name"], "problems": [f"{type(error).__name__}: {error}"],
                                             "code": None, "seconds": 0.0, "error": "", "hint": "", "status": "?",
                                             "tree": "?", "stderr": "", "stdout": ""}
        for spec in ROWS:
            result = results.get(spec["name"])
            if result is None:
                why = next((s.get("why", "needs root: tmpfs mounts") for s in skipped if s["name"] == spec["name"]),
                           None)
                if why:
                    report.skip(f"{spec['name']}: {spec['fault']}", why)
                continue
            info = (f"{outcome(spec, result)}, {result['seconds']:.1f} s ≤ {spec['bound']} s, status.json "
                    f"{result['status']}, tree {result['tree']}")
            if result["code"] not in (0, None):
                info += f"; error: {result['error'][:160]}; hint: {result['hint'][:160]}"
            detail = result["problems"] + [f"stderr: {line}" for line in result["stderr"].splitlines()[-8:]]
            report.check(f"{spec['name']}: {spec['fault']}", not result["problems"], "\n".join(detail), info)
        # The doc: written with --write-doc, else checked (rows and outcomes; times are not compared).
        existing = open(DOC).read() if os.path.exists(DOC) else ""
        previous = doc_rows(existing) or {}
        lines = table(results, previous)
        if opts.write_doc:
            write_doc(lines)
            report.note(f"wrote the table into {os.path.relpath(DOC, PROJECT)}")
        elif not opts.only:
            ran = {comparable(line) for line in lines if line.startswith("| ") and not line.startswith("| fault |")}
            documented = {comparable(line) for line in previous.values()}
            stale = sorted(ran ^ documented)
            report.check("docs/reliability.md's fault matrix is this run's (rows and outcomes)",
                         bool(previous) and not stale,
                         "no fault-matrix markers in docs/reliability.md" if not previous else
                         "\n".join(f"{'run' if row in ran else 'doc'}: {' | '.join(row)}" for row in stale)
                         + "\nrun scripts/fault-matrix.py --write-doc (as root, for the disk rows)")
        report.note(f"the matrix took {time.monotonic() - started:.0f} s")
    finally:
        if not opts.keep:
            shutil.rmtree(ctx["tmp"], ignore_errors=True)
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
