#!/usr/bin/env python3
"""make bad-input: feed nodeboot the malformed inputs of Tests/BadInput/cases.json and check it refuses them.

A case: `name`, `file` (under Tests/BadInput), `via` (`file`: `-c file://PATH`; `dir`: the file in a
directory given as `-c file://DIR`; `userdata`: served as the instance user data by a testbed, the agent
run without `-c`), optional `args` (extra init args, `{root}` becomes the node root), `expect` (strings
stderr must contain; an entry starting with `re:` is a Python regex searched in stderr), optional
`secretMarker` (a string that must appear in neither stderr nor stdout), `padTo` (the input is padded
with YAML comment lines up to that many bytes) and `note`. Files served as user data must be UTF-8
text (the testbed serves a JSON string): binary payloads are kept as base64 text, which the agent
decodes when the whole payload is valid base64.

Each case runs `nodeboot init --skip run --root ROOT` on a fresh node root (as scripts/conformance.py
prepares it, plus an /etc/hosts and /etc/eks/kubelet/environment with known content, every mtime set
in the past) and passes when: exit status is exactly 2, every `expect` entry is found, the marker is
not echoed, and the root and the input directory are unchanged (paths, types, bytes, modes, mtimes).

Prints one line per case, then `N passed, N failed, N skipped`; exit 1 if a case failed, 2 on a usage
or environment error.
"""
import argparse
import contextlib
import errno
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 60
EXPECTED_STATUS = 2
OLD_TIME = 1_500_000_000  # 2017-07-14: every node file's mtime, so any write shows even within a second
CONTAINERD_COMMIT = "05044ec0a9a75232cad458027ca83437aae3f4da"
PRIVATE_DNS_NAME = "ip-172-16-34-43.ec2.internal"
HOSTS = "127.0.0.1   localhost localhost.localdomain\n::1         localhost6 localhost6.localdomain6\n"
KUBELET_ENV = 'NODEADM_KUBELET_ARGS="--node-ip=10.0.0.1 --v=2"\n'
CASE_KEYS = {"name", "file", "via", "args", "expect", "secretMarker", "padTo", "note"}
VIAS = {"file", "dir", "userdata"}


class Fatal(Exception):
    """The environment is unusable (missing binaries, bad case data, testbed down): exit 2."""


def popen(argv, **kwargs):
    """subprocess.Popen, waiting up to 60 s while a binary is being rebuilt (ETXTBSY: text file busy)."""
    for attempt in range(120):
        try:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)
        except OSError as error:
            if error.errno != errno.ETXTBSY or attempt == 119:
                raise
            time.sleep(0.5)


def write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(path, mode)


def copy_tree(src, dst):
    shutil.copytree(src, dst, copy_function=shutil.copyfile, dirs_exist_ok=True)
    for directory, _, _ in os.walk(dst):
        os.chmod(directory, 0o755)


def prepare_root(root, infra):
    """scripts/conformance.py's prepare_root (kubelet 1.31.0, containerd 1.7.27) plus two files to protect."""
    write(root + "/etc/eks/kubelet-version.txt", "Kubernetes v1.31.0\n")
    write(root + "/etc/eks/containerd-version.txt",
          f"containerd github.com/containerd/containerd v1.7.27 {CONTAINERD_COMMIT}\n")
    write(root + "/etc/eks/image-credential-provider/ecr-credential-provider", b"")
    copy_tree(os.path.join(infra, "cpu"), root + "/sys/devices/system/cpu")
    copy_tree(os.path.join(infra, "node"), root + "/sys/devices/system/node")
    write(root + "/etc/hosts", HOSTS)
    write(root + "/etc/eks/kubelet/environment", KUBELET_ENV)
    age(root)


def age(top):
    for directory, dirs, files in os.walk(top, topdown=False):
        for name in files + dirs:
            os.utime(os.path.join(directory, name), (OLD_TIME, OLD_TIME), follow_symlinks=False)
    os.utime(top, (OLD_TIME, OLD_TIME))


def snapshot(top):
    """{relative path: (type and mode, mtime ns, content or link target)} for the tree and its top."""
    st = os.lstat(top)
    state = {".": (st.st_mode, st.st_mtime_ns, None)}
    for directory, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            content = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    content = f.read()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            state[os.path.relpath(path, top)] = (st.st_mode, st.st_mtime_ns, content)
    return state


def compare(before, after, label):
    problems = [f"{label}/{p} was created" for p in sorted(set(after) - set(before))]
    problems += [f"{label}/{p} was removed" for p in sorted(set(before) - set(after))]
    for path in sorted(set(before) & set(after)):
        (mode0, mtime0, data0), (mode1, mtime1, data1) = before[path], after[path]
        what = [w for w, changed in (("content", data0 != data1), ("mode", mode0 != mode1),
                                     ("mtime", mtime0 != mtime1)) if changed]
        if what:
            problems.append(f"{label}/{path}: {', '.join(what)} changed")
    return problems


# ---------------------------------------------------------------- testbed

class Testbed:
    def __init__(self, binary, aemm, tmp, user_data=None):
        instance = json.loads(json.dumps(aemm))
        if user_data is not None:
            instance.setdefault("userdata", {}).setdefault("values", {})["userdata"] = user_data
        self.dir = tempfile.mkdtemp(prefix="testbed-", dir=tmp)
        config = os.path.join(self.dir, "config.json")
        write(config, json.dumps({"instance": instance, "privateDnsName": PRIVATE_DNS_NAME}))
        self.log = os.path.join(self.dir, "stderr.log")
        with open(self.log, "wb") as log:
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
            with open(self.log, errors="replace") as f:
                raise Fatal(f"nodeboot-testbed did not print its endpoints (config {config}):\n{f.read()[-1500:]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------- cases

def agent_env(testbed, home):
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": os.environ.get("LANG", "C.UTF-8"),
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": testbed.endpoints["imds"],
            "AWS_ENDPOINT_URL": testbed.endpoints["aws"], "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def run_agent(argv, cwd, env):
    """(status or None on timeout, stdout, stderr); the agent runs in its own process group."""
    proc = popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
    except BaseException as error:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        if isinstance(error, subprocess.TimeoutExpired):
            return None, out.decode(errors="replace"), err.decode(errors="replace")
        raise


def payload(case, corpus):
    with open(os.path.join(corpus, case["file"]), "rb") as f:
        data = f.read()
    if case.get("padTo"):
        line = b"# padding: this input is deliberately larger than any user data limit\n"
        data += line * ((case["padTo"] - len(data)) // len(line) + 1)
    return data


def found(entry, text):
    return re.search(entry[3:], text) is not None if entry.startswith("re:") else entry in text


def run_case(case, ctx):
    """(failure reasons, empty when the case passed; the status and output to show with them)."""
    work = tempfile.mkdtemp(prefix=f"{case['name']}-", dir=ctx["tmp"])
    root, inputs, home = (os.path.join(work, d) for d in ("root", "input", "home"))
    os.makedirs(home)
    prepare_root(root, ctx["infra"])
    data = payload(case, ctx["corpus"])
    args, testbed = ["init", "--skip", "run", "--root", root], None
    if case["via"] == "userdata":
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise Fatal(f"{case['name']}: {case['file']} is not UTF-8 text (served user data is a JSON string)")
        testbed = Testbed(ctx["testbed_bin"], ctx["aemm"], ctx["tmp"], text)
    else:
        path = os.path.join(inputs, os.path.basename(case["file"]))
        write(path, data)
        args += ["-c", "file://" + (path if case["via"] == "file" else inputs)]
    age(inputs) if os.path.isdir(inputs) else os.makedirs(inputs)
    args += [arg.replace("{root}", root) for arg in case.get("args", [])]
    before, inputs_before = snapshot(root), snapshot(inputs)
    try:
        code, out, err = run_agent([ctx["agent"]] + args, work, agent_env(testbed or ctx["testbed"], home))
    finally:
        if testbed:
            testbed.stop()
    reasons = []
    if code is None:
        reasons.append(f"timed out after {TIMEOUT} s")
    elif code < 0:
        reasons.append(f"crashed: killed by signal {-code}")
    elif code != EXPECTED_STATUS:
        reasons.append(f"exit status {code}, expected {EXPECTED_STATUS}")
    reasons += [f"stderr lacks {entry!r}" for entry in case["expect"] if not found(entry, err)]
    marker = case.get("secretMarker")
    if marker and (marker in err or marker in out):
        reasons.append(f"secret marker {marker!r} echoed on {'stderr' if marker in err else 'stdout'}")
    changes = compare(before, snapshot(root), "ROOT") + compare(inputs_before, snapshot(inputs), "INPUT")
    reasons += changes[:8] + ([f"... and {len(changes) - 8} more changes"] if len(changes) > 8 else [])
    details = [f"exit status {code}"]
    details += [f"stderr: {line[:400]}" for line in err.rstrip("\n").split("\n")[-12:] if line] or ["stderr: (empty)"]
    details += [f"stdout: {line[:400]}" for line in out.rstrip("\n").split("\n")[-6:] if line]
    if not ctx["keep"]:
        shutil.rmtree(work, ignore_errors=True)
    return reasons, details


def load_cases(corpus, names):
    with open(os.path.join(corpus, "cases.json")) as f:
        cases = json.load(f)["cases"]
    seen = set()
    for case in cases:
        unknown = set(case) - CASE_KEYS
        missing = {"name", "file", "via", "expect"} - set(case)
        if unknown or missing or case["via"] not in VIAS or case["name"] in seen or not case["expect"]:
            raise Fatal(f"case {case.get('name')}: unknown {sorted(unknown)}, missing {sorted(missing)}, "
                        f"via {case.get('via')!r}, duplicate name or empty expect")
        if not os.path.isfile(os.path.join(corpus, case["file"])):
            raise Fatal(f"case {case['name']}: no file {case['file']}")
        for entry in case["expect"]:
            if entry.startswith("re:"):
                re.compile(entry[3:])
        seen.add(case["name"])
    if set(names) - seen:
        raise Fatal(f"no such case(s): {', '.join(sorted(set(names) - seen))}")
    return [case for case in cases if not names or case["name"] in names]


def main():
    parser = argparse.ArgumentParser(description="Check that nodeboot refuses Tests/BadInput's malformed inputs.")
    parser.add_argument("--bin-dir", required=True, help="directory holding nodeboot and nodeboot-testbed")
    parser.add_argument("--corpus", default=os.path.join(PROJECT, "Tests", "BadInput"))
    parser.add_argument("--conformance", default=os.path.join(PROJECT, "..", "shared", "conformance"))
    parser.add_argument("--case", action="append", default=[], metavar="NAME", help="run only these cases")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the agent's output of passing cases too")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print it")
    opts = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bin_dir, nodeadm = os.path.abspath(opts.bin_dir), os.path.join(os.path.abspath(opts.conformance), "nodeadm")
    tmp, counts, testbed = None, {"passed": 0, "failed": 0, "skipped": 0}, None
    try:
        for binary in ("nodeboot", "nodeboot-testbed"):
            if not os.access(os.path.join(bin_dir, binary), os.X_OK):
                raise Fatal(f"{os.path.join(bin_dir, binary)} is missing or not executable (build first)")
        cases = load_cases(os.path.abspath(opts.corpus), opts.case)
        with open(os.path.join(nodeadm, "_infra", "aemm-default-config.json")) as f:
            aemm = json.load(f)
        tmp = tempfile.mkdtemp(prefix="nodeboot-bad-input-")
        testbed = Testbed(os.path.join(bin_dir, "nodeboot-testbed"), aemm, tmp)
        ctx = {"tmp": tmp, "infra": os.path.join(nodeadm, "_infra"), "corpus": os.path.abspath(opts.corpus),
               "agent": os.path.join(bin_dir, "nodeboot"), "testbed_bin": os.path.join(bin_dir, "nodeboot-testbed"),
               "aemm": aemm, "testbed": testbed, "keep": opts.keep}
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
