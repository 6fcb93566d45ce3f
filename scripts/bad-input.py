#!/usr/bin/env python3
"""make bad-input: feed nodeboot the malformed inputs of Tests/BadInput/cases.json; each must be refused.

A case: `name`, `file` (in Tests/BadInput), `via` (`file`: `-c file://PATH`; `dir`: the file alone in a
directory given as `-c file://DIR`; `userdata`: served as the instance user data by a testbed, no `-c`),
`expect` (strings stderr must contain; `re:REGEX` entries are searched), optional `args` (extra init args,
`{root}` = the node root), `secretMarker` (never on stderr or stdout), `padTo` (pad with YAML comment
lines to that many bytes), `note`. User data must be UTF-8 (the testbed serves a JSON string): binary
payloads are stored as base64, which the agent decodes when the whole payload is valid base64.
Each case runs `nodeboot init --skip run --root ROOT` on a fresh ROOT (scripts/conformance.py's prepare_root
plus /etc/hosts and /etc/eks/kubelet/environment, every mtime in the past) and passes when: exit status
exactly 2, every `expect` found, no raw control character on stderr, the marker not echoed, ROOT and the
input directory unchanged (paths, bytes, modes, mtimes) but for the run's report: /run/nodeboot/status.json (with
the lock taken to write it), when there is one, saying `failed` with code `input`, without the marker. Prints one line per case, then `N passed, N failed,
N skipped`; exit 1 if a case failed, 2 on a usage or environment error."""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

import testkit
from testkit import popen, tree_state, write

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT, EXPECTED_STATUS = 60, 2
OLD_TIME = 1_500_000_000  # every node file's mtime (2017), so any write shows, even within the same second
PRIVATE_DNS_NAME = "ip-172-16-34-43.ec2.internal"
HOSTS = "127.0.0.1   localhost localhost.localdomain\n::1         localhost6 localhost6.localdomain6\n"
KUBELET_ENV = 'NODEADM_KUBELET_ARGS="--node-ip=10.0.0.1 --v=2"\n'
REQUIRED, VIAS = {"name", "file", "via", "expect"}, {"file", "dir", "userdata"}
CASE_KEYS = REQUIRED | {"args", "secretMarker", "padTo", "note"}
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # C0 controls but tab and newline, and DEL
PADDING = b"# padding: this input is deliberately larger than any user data limit\n"
# What a refused run writes: its report (and the lock it took to write it) — nothing of the node's configuration.
REPORT = "run/nodeboot/status.json"
REPORT_PATHS = ("run", "run/nodeboot", "run/nodeboot/init.lock", REPORT)


class Fatal(Exception):
    """The environment or the case data is unusable: exit 2."""


def prepare_root(root, infra):
    """scripts/conformance.py's node root (kubelet 1.31.0, containerd 1.7.27) plus two files to protect."""
    testkit.prepare_root(root, infra, "1.7.27", kubelet="1.31.0")
    write(root + "/etc/hosts", HOSTS)
    write(root + "/etc/eks/kubelet/environment", KUBELET_ENV)


def age(top):
    for directory, dirs, files in os.walk(top, topdown=False):
        for name in files + dirs:
            os.utime(os.path.join(directory, name), (OLD_TIME, OLD_TIME), follow_symlinks=False)
    os.utime(top, (OLD_TIME, OLD_TIME))


def compare(before, after, label):
    problems = [f"{label}/{p} was created" for p in sorted(set(after) - set(before))]
    problems += [f"{label}/{p} was removed" for p in sorted(set(before) - set(after))]
    return problems + [f"{label}/{path}: {', '.join(changed)} changed" for path in sorted(set(before) & set(after))
                       if (changed := [what for what, old, new in zip(("type", "mode", "mtime", "content"), before[path],
                                                                       after[path]) if old != new])]


class Testbed:
    """`nodeboot-testbed serve` with nodeadm's aemm instance, optionally serving `user_data`."""

    def __init__(self, binary, aemm, tmp, user_data=None):
        instance = json.loads(json.dumps(aemm))
        if user_data is not None:
            instance.setdefault("userdata", {}).setdefault("values", {})["userdata"] = user_data
        directory = tempfile.mkdtemp(prefix="testbed-", dir=tmp)
        config, log_path = os.path.join(directory, "config.json"), os.path.join(directory, "stderr.log")
        write(config, json.dumps({"instance": instance, "privateDnsName": PRIVATE_DNS_NAME}))
        with open(log_path, "wb") as log:
            self.proc = popen([binary, "serve", "--config", config, "--imds-port", "0", "--aws-port", "0"],
                              stdout=subprocess.PIPE, stderr=log)
        self.endpoints, ready = {}, threading.Event()

        def drain():  # reads stdout to EOF, so the testbed never blocks on a full pipe
            for raw in self.proc.stdout:
                name, _, url = raw.decode(errors="replace").strip().partition(": ")
                if name in ("imds", "aws") and url.startswith("http"):
                    self.endpoints[name] = url
                if len(self.endpoints) == 2:
                    ready.set()
            ready.set()
        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(20) or len(self.endpoints) < 2:
            self.stop()
            with open(log_path, errors="replace") as f:
                raise Fatal(f"nodeboot-testbed did not print its endpoints (config {config}):\n{f.read()[-1500:]}")

    def env(self, home):
        aws = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": self.endpoints["imds"], "AWS_ENDPOINT_URL": self.endpoints["aws"],
               "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8", **aws}

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def payload(case, corpus):
    with open(os.path.join(corpus, case["file"]), "rb") as f:
        data = f.read()
    if case.get("padTo"):
        data += PADDING * ((case["padTo"] - len(data)) // len(PADDING) + 1)
    return data


def excerpt(label, text, lines):
    """The last lines of an output, control characters shown escaped (never replayed on the terminal)."""
    rows = text.rstrip("\n").split("\n")[-lines:]
    rows = [CONTROL.sub(lambda m: repr(m.group())[1:-1], row)[:400] for row in rows]
    return [f"{label}: {row}" for row in rows if row] or ([f"{label}: (empty)"] if label == "stderr" else [])


def run_case(case, ctx):
    """(failure reasons, empty when the case passed; the status and output to show with them)."""
    work = tempfile.mkdtemp(prefix=f"{case['name']}-", dir=ctx["tmp"])
    root, inputs, home = (os.path.join(work, d) for d in ("root", "input", "home"))
    for directory in (inputs, home):
        os.makedirs(directory)
    prepare_root(root, ctx["infra"])
    data = payload(case, ctx["corpus"])
    args, testbed = ["init", "--skip", "run", "--root", root], ctx["testbed"]  # userdata: a testbed of its own
    if case["via"] == "userdata":
        testbed = Testbed(ctx["testbed_bin"], ctx["aemm"], ctx["tmp"], data.decode())
    else:
        path = os.path.join(inputs, os.path.basename(case["file"]))
        write(path, data)
        args += ["-c", "file://" + (path if case["via"] == "file" else inputs)]
    args += [arg.replace("{root}", root) for arg in case.get("args", [])]
    age(root)
    age(inputs)
    before = tree_state(root, mtimes=True, top_entry=True), tree_state(inputs, mtimes=True, top_entry=True)
    try:
        code, out, err = testkit.run_agent([ctx["agent"]] + args, work, testbed.env(home), TIMEOUT)
    finally:
        if testbed is not ctx["testbed"]:
            testbed.stop()
    reasons = ([f"timed out after {TIMEOUT} s"] if code is None else [f"crashed: killed by signal {-code}"] if code < 0
               else [f"exit status {code}, expected {EXPECTED_STATUS}"] if code != EXPECTED_STATUS else [])
    reasons += [f"stderr lacks {entry!r}" for entry in case["expect"]
                if not (re.search(entry[3:], err) if entry.startswith("re:") else entry in err)]
    if control := CONTROL.search(err):
        reasons.append(f"raw control character {control.group()!r} in stderr (input echoed unescaped)")
    marker = case.get("secretMarker")
    reasons += [f"secret marker {marker!r} echoed on {n}" for n, text in (("stderr", err), ("stdout", out))
                if marker and marker in text]
    # The run's report is the one thing a refused run writes: /run/nodeboot/status.json (and the lock it takes to write
    # it), saying why, for `nodeboot status`. It must say failed, code input, and never carry the marker. (A usage
    # error of the command line is refused before there is a run, and writes no report.)
    after = tree_state(root, mtimes=True, top_entry=True)
    report_path = os.path.join(root, REPORT)
    if os.path.exists(report_path):
        with open(report_path, "rb") as f:
            raw = f.read()
        try:
            status = json.loads(raw)
        except ValueError:
            status = {}
        if status.get("result") != "failed" or (status.get("error") or {}).get("code") != "input":
            reasons.append(f"{REPORT} does not say failed with code input: {raw[:300]!r}")
        if marker and marker.encode() in raw:
            reasons.append(f"secret marker {marker!r} in {REPORT}")
    for path in REPORT_PATHS:
        if path not in before[0]:
            after.pop(path, None)
    if "." in before[0] and "." in after and "run" not in before[0]:
        after["."] = before[0]["."]  # the root's mtime moved when run/ was made
    changes = compare(before[0], after, "ROOT") + compare(before[1], tree_state(inputs, mtimes=True, top_entry=True), "INPUT")
    reasons += changes[:8] + ([f"... and {len(changes) - 8} more changes"] if len(changes) > 8 else [])
    if not ctx["keep"]:
        shutil.rmtree(work, ignore_errors=True)
    return reasons, [f"exit status {code}"] + excerpt("stderr", err, 12) + excerpt("stdout", out, 6)


def load_cases(corpus, names):
    """The cases to run; Fatal on data the runner does not understand, rather than pass a case by ignoring it."""
    with open(os.path.join(corpus, "cases.json")) as f:
        cases = json.load(f)["cases"]
    seen = set()
    for case in cases:
        name, unknown, missing = case.get("name"), set(case) - CASE_KEYS, REQUIRED - set(case)
        if unknown or missing or case["via"] not in VIAS or name in seen or not case["expect"]:
            raise Fatal(f"case {name}: unknown keys {sorted(unknown)}, missing {sorted(missing)}, "
                        f"via {case.get('via')!r}, a duplicate name or an empty expect")
        path = os.path.join(corpus, case["file"])
        if not os.path.isfile(path):
            raise Fatal(f"case {name}: no file {case['file']}")
        if case["via"] == "userdata":
            try:
                payload(case, corpus).decode()
            except UnicodeDecodeError:
                raise Fatal(f"case {name}: {case['file']} is not UTF-8 (served user data is a JSON string; use base64)")
        [re.compile(entry[3:]) for entry in case["expect"] if entry.startswith("re:")]
        seen.add(name)
    if set(names) - seen:
        raise Fatal(f"no such case(s): {', '.join(sorted(set(names) - seen))}")
    return [case for case in cases if not names or case["name"] in names]


def main():
    parser = argparse.ArgumentParser(description="Check that nodeboot refuses Tests/BadInput's malformed inputs.")
    parser.add_argument("--bin-dir", required=True, help="directory holding nodeboot and nodeboot-testbed")
    parser.add_argument("--corpus", default=os.path.join(PROJECT, "Tests", "BadInput"))
    parser.add_argument("--conformance", default=os.path.join(PROJECT, "..", "shared", "conformance"))
    parser.add_argument("--case", action="append", default=[], metavar="NAME", help="run only these cases")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the agent's output for passing cases too")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print it")
    opts = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through the cleanup below
    bin_dir = os.path.abspath(opts.bin_dir)
    infra = os.path.join(os.path.abspath(opts.conformance), "nodeadm", "_infra")
    corpus, tmp, testbed = os.path.abspath(opts.corpus), None, None
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    try:
        for binary in ("nodeboot", "nodeboot-testbed"):
            if not os.access(os.path.join(bin_dir, binary), os.X_OK):
                raise Fatal(f"{os.path.join(bin_dir, binary)} is missing or not executable (build first: swift build)")
        cases = load_cases(corpus, opts.case)
        with open(os.path.join(infra, "aemm-default-config.json")) as f:
            aemm = json.load(f)
        tmp = tempfile.mkdtemp(prefix="nodeboot-bad-input-")
        testbed = Testbed(os.path.join(bin_dir, "nodeboot-testbed"), aemm, tmp)
        ctx = {"tmp": tmp, "infra": infra, "corpus": corpus, "agent": os.path.join(bin_dir, "nodeboot"),
               "testbed_bin": os.path.join(bin_dir, "nodeboot-testbed"), "aemm": aemm, "testbed": testbed,
               "keep": opts.keep}
        for case in cases:
            reasons, details = run_case(case, ctx)
            counts["failed" if reasons else "passed"] += 1
            print(f"{'failed' if reasons else 'passed':<8} {case['name']}" + (f": {reasons[0]}" if reasons else ""))
            for line in reasons[1:] + (details if reasons or opts.verbose else []):
                print(f"    {line}")
            sys.stdout.flush()
    except (Fatal, OSError, ValueError, KeyError, re.error) as error:
        print(f"bad-input: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bad-input: interrupted", file=sys.stderr)
        return 130
    finally:
        if testbed:
            testbed.stop()
        if tmp and opts.keep:
            print(f"bad-input: kept {tmp}", file=sys.stderr)
        elif tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
