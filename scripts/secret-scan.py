#!/usr/bin/env python3
"""make test, last: no secret in anything the test suite and a demo-like run print or write (issue 15).

    scripts/secret-scan.py [--bin-dir DIR] [--log-dir DIR] [--keep]

What is scanned:
  1. every runner's saved output in LOG_DIR (.build/test-logs/*.log, written by scripts/test-all.py before this
     runner; its own log is left out);
  2. a demo-like run of its own: `nodeboot-testbed serve` with the bundled instance (its default role: credentials
     made at start, read back from IMDS as an instance would) serving a MIME user data with a NodeConfig part and a
     shell-script part carrying a marker body; `nodeboot facts`, `nodeboot init --register-node --root ROOT` (which
     signs EC2/EKS calls with the role's session credentials and registers with a k8s-aws-v1 token) twice (text and
     -o json), `nodeboot status`; their stdout and stderr, ROOT/run/nodeboot/status.json, every file under ROOT/run and
     ROOT/var/lib/nodeboot and every other file the run wrote under ROOT, the testbed's stderr log and its request log
     (GET /_testbed/requests). Not scanned: the journal (under --root the agent logs to stderr only; systemd-test.py's
     journal lines reach this scan through its saved log).

Needles: the role's secret access key and session token (exact), and by shape in every file: a session token like the
testbed's (`IQoJb3JpZ2luX2Vj…`) or after X-Amz-Security-Token=, a presigned URL's X-Amz-Signature, a secret access key
next to its name, a bearer token (`k8s-aws-v1.` then base64url), the user data's marker body, a private key
(`-----BEGIN … PRIVATE KEY-----`: allowed only in a file under a node root that is a key file, never in a log). Every
hit fails its check with the file and line, the secret masked. A self-check plants each needle in a scratch log and
expects the scan to find it (a scan that cannot fail is no scan).

Prints one line per check, then `N passed, N failed, N skipped`; exit 1 if a check failed, 2 on an environment error.
"""
import argparse
import base64
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testkit  # noqa: E402

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AEMM = os.path.join(PROJECT, "Sources", "Testbed", "Resources", "aemm-default-config.json")
OWN_LOG = "secret-scan.log"
MARKER = "NODEBOOT-USERDATA-MARKER-7f3a9c2e51"  # the shell part's body: nodeboot must never echo or keep it

# (kind, regex): secrets recognised by their shape, whatever run made them.
SHAPES = [
    ("session token", re.compile(r"IQoJb3JpZ2luX2Vj[A-Za-z0-9+/=]{16,}")),
    ("session token", re.compile(r"X-Amz-Security-Token=(?!\{|<|\$)[A-Za-z0-9%+/=_-]{16,}")),
    ("presigned URL signature", re.compile(r"X-Amz-Signature=[0-9a-f]{64}")),
    ("secret access key", re.compile(
        r"(?i)(?:aws_secret_access_key|secret_?access_?key)[\"']?\s*[:=]\s*[\"']?(?!testing\b)"
        r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])")),
    ("bearer token", re.compile(r"k8s-aws-v1\.[A-Za-z0-9_-]{40,}")),
    ("private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")),
]


def mask(secret):
    return f"{secret[:6]}…({len(secret)} chars)" if len(secret) > 8 else "…"


def scan_text(text, exact, allow_private_key=False):
    """[(line number, kind, masked)] of every needle in `text`. `exact`: {kind: [strings]} (this run's secrets)."""
    hits = []
    for number, line in enumerate(text.splitlines(), 1):
        for kind, pattern in SHAPES:
            if kind == "private key" and allow_private_key:
                continue
            for match in pattern.finditer(line):
                hits.append((number, kind, mask(match.group())))
        for kind, values in exact.items():
            for value in values:
                if value and value in line:
                    hits.append((number, kind, mask(value)))
    return sorted(set(hits))


def legitimate_key_file(path, node_roots):
    """A private key is allowed only in a key file under a node root (a TLS key the node itself holds)."""
    inside = any(os.path.abspath(path).startswith(os.path.abspath(root) + os.sep) for root in node_roots)
    return inside and (path.endswith((".key", "-key.pem")) or "/pki/" in path)


def scan_file(path, exact, node_roots=()):
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError as error:
        return [(0, "unreadable", str(error))]
    return scan_text(text, exact, allow_private_key=legitimate_key_file(path, node_roots))


def describe(hits, label, limit=20):
    lines = [f"{label}:{number}: {kind} {masked}" for number, kind, masked in hits[:limit]]
    if len(hits) > limit:
        lines.append(f"… and {len(hits) - limit} more")
    return "\n".join(lines)


# ---------------------------------------------------------------- the demo-like run

USER_DATA = f"""MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="BOUNDARY"

--BOUNDARY
Content-Type: application/node.eks.aws

---
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    name: my-cluster
  kubelet:
    flags:
      - --node-labels=team=secret-scan
--BOUNDARY
Content-Type: text/x-shellscript

#!/bin/sh
echo "{MARKER}"
--BOUNDARY--
"""


def imds_get(endpoint, path, token):
    request = urllib.request.Request(endpoint + path, headers={"X-aws-ec2-metadata-token": token})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def role_credentials(imds):
    """The instance role's credentials as IMDS hands them out (what the agent signs with)."""
    request = urllib.request.Request(imds + "/latest/api/token", method="PUT",
                                     headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    with urllib.request.urlopen(request, timeout=10) as response:
        token = response.read().decode()
    role = imds_get(imds, "/latest/meta-data/iam/security-credentials/", token).split()[0]
    return json.loads(imds_get(imds, f"/latest/meta-data/iam/security-credentials/{role}", token))


def demo_run(ctx, report):
    """[(label, path)] of what the demo-like run printed and wrote, and the exact needles; None when it failed."""
    work = ctx["work"]
    root, home = os.path.join(work, "root"), os.path.join(work, "home")
    os.makedirs(home)
    with open(AEMM) as f:
        instance = json.load(f)
    instance.setdefault("userdata", {}).setdefault("values", {})["userdata"] = \
        base64.b64encode(USER_DATA.encode()).decode()
    config = os.path.join(work, "testbed.json")
    testkit.write(config, json.dumps({"instance": instance}))
    proc, printed = testkit.start_testbed(ctx["testbed"], config, work)
    outputs = []
    try:
        credentials = role_credentials(printed["imds"])
        exact = {"secret access key": [credentials.get("SecretAccessKey", "")],
                 "session token": [credentials.get("Token", "")], "user data marker": [MARKER]}
        report.check("the role's secret access key and session token read from IMDS (the needles of this run)",
                     all(v[0] for v in exact.values()), json.dumps(sorted(credentials)))
        testkit.write(root + "/etc/eks/kubelet-version.txt", "Kubernetes v1.31.0\n")
        testkit.write(root + "/etc/eks/containerd-version.txt",
                      f"containerd github.com/containerd/containerd v1.7.27 {testkit.CONTAINERD_COMMIT}\n")
        testkit.write(root + "/etc/eks/image-credential-provider/ecr-credential-provider", b"", 0o755)
        testkit.write(root + "/sys/devices/system/cpu/online", "0-1\n")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8", **printed["env"]}
        commands = [("facts", ["facts"]), ("init", ["init", "--root", root, "--register-node"]),
                    ("init-again", ["init", "--root", root, "--register-node", "-o", "json"]),
                    ("status", ["status", "--root", root])]
        for label, argv in commands:
            status, out, err = testkit.run_agent([ctx["agent"], *argv], work, env, 120)
            for stream, text in (("stdout", out), ("stderr", err)):
                path = os.path.join(work, f"{label}.{stream}")
                testkit.write(path, text)
                outputs.append((f"nodeboot {' '.join(argv).replace(root, 'ROOT')} ({stream})", path))
            if status != 0:
                report.check(f"nodeboot {label} succeeded (so the scan saw a real run)", False,
                             f"exit status {status}\n{err[-1500:]}")
                return None
        with urllib.request.urlopen(printed["env"]["AWS_ENDPOINT_URL"] + "/_testbed/requests", timeout=10) as r:
            requests = r.read().decode()
        testkit.write(os.path.join(work, "requests.json"), requests)
    finally:
        testkit.stop_process(proc)
    # The run really used the secrets: signed with the role's key and registered with a bearer token.
    logged = json.loads(requests)
    logged = logged if isinstance(logged, list) else logged.get("requests", [])
    signed = any(q.get("accessKeyId") == credentials.get("AccessKeyId") for q in logged)
    registered = any(q.get("endpoint") == "kube" and str(q.get("username", "")).startswith("system:node:")
                     for q in logged)
    report.check("the run signed AWS calls with the role's credentials and registered with a k8s-aws-v1 token",
                 signed and registered, f"signed with the role: {signed}; kube requests as the node: {registered}")
    outputs += [("testbed stderr log", os.path.join(work, "testbed.log")),
                ("testbed request log (GET /_testbed/requests)", os.path.join(work, "requests.json"))]
    # /run and /var/lib/nodeboot (the agent's state), and every other file it wrote (kubeconfig, drop-ins).
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if os.path.relpath(os.path.join(directory, d), root) != "sys")
        for name in sorted(files):
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                outputs.append(("ROOT/" + os.path.relpath(path, root), path))
    return outputs, exact, root


# ---------------------------------------------------------------- main

def self_check(report, tmp):
    """Each needle planted in a scratch log must be found; a key file under a node root must not be."""
    log = os.path.join(tmp, "planted.log")
    planted = {
        "session token": "creds: IQoJb3JpZ2luX2VjEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLE",
        "presigned URL signature": "GET /?Action=GetCallerIdentity&X-Amz-Signature=" + "ab12" * 16,
        "secret access key": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "bearer token": "Authorization: Bearer k8s-aws-v1." + "aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8_QWN0aW9u" * 2,
        "private key": "-----BEGIN EC PRIVATE KEY-----",
        "user data marker": f"user data: {MARKER}",
    }
    testkit.write(log, "a harmless line\n" + "\n".join(planted.values()) + "\nk8s-aws-v1 tokens are never logged\n")
    hits = scan_file(log, {"user data marker": [MARKER]})
    found = {kind for _, kind, _ in hits}
    report.check("self-check: every needle planted in a scratch log is found, on its line, masked",
                 found == set(planted) and all(planted[kind] not in masked for _, kind, masked in hits)
                 and len({n for n, _, _ in hits}) == len(planted),
                 f"found {sorted(found)} of {sorted(planted)}:\n{describe(hits, log)}")
    clean = os.path.join(tmp, "clean.log")
    testkit.write(clean, "AWS_SECRET_ACCESS_KEY=testing\nX-Amz-Security-Token={token}\nthe k8s-aws-v1. prefix\n")
    key = os.path.join(tmp, "node", "etc", "kubernetes", "pki", "apiserver.key")
    testkit.write(key, "-----BEGIN PRIVATE KEY-----\n")
    stray = scan_file(clean, {}) + scan_file(key, {}, node_roots=[os.path.join(tmp, "node")])
    report.check("self-check: no false alarm on placeholders, the static test key, or a key file under a node root",
                 not stray, describe(stray, "clean"))


def main():
    parser = argparse.ArgumentParser(description="No secret in what the tests and a demo-like run print or write.")
    parser.add_argument("--bin-dir", default=os.path.join(PROJECT, ".build", "debug"))
    parser.add_argument("--log-dir", default=os.path.join(PROJECT, ".build", "test-logs"))
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    opts = parser.parse_args()
    bin_dir = os.path.abspath(opts.bin_dir)
    scratch = tempfile.mkdtemp(prefix="secret-scan-")
    ctx = {"agent": os.path.join(bin_dir, "nodeboot"), "testbed": os.path.join(bin_dir, "nodeboot-testbed"),
           "work": os.path.join(scratch, "demo")}
    report = testkit.Report()
    try:
        self_check(report, scratch)
        # 1. The other runners' saved output.
        logs = sorted(name for name in os.listdir(opts.log_dir) if name.endswith(".log") and name != OWN_LOG) \
            if os.path.isdir(opts.log_dir) else []
        if not logs:
            report.skip(f"runner logs in {os.path.relpath(opts.log_dir, PROJECT)}",
                        "none saved yet: scripts/test-all.py writes them before this runner")
        for name in logs:
            path = os.path.join(opts.log_dir, name)
            hits = scan_file(path, {"user data marker": [MARKER]})
            report.check(f"runner log {name}: no secret", not hits,
                         describe(hits, os.path.relpath(path, PROJECT)), f"{os.path.getsize(path)} bytes")
        # 2. The demo-like run.
        for binary in (ctx["agent"], ctx["testbed"]):
            if not os.access(binary, os.X_OK):
                print(f"secret-scan: no {binary}: run swift build first", file=sys.stderr)
                return 2
        os.makedirs(ctx["work"])
        result = demo_run(ctx, report)
        if result:
            outputs, exact, root = result
            for label, path in outputs:
                hits = scan_file(path, exact, node_roots=[root])
                report.check(f"{label}: no secret", not hits, describe(hits, label),
                             f"{os.path.getsize(path)} bytes")
            report.note(f"scanned {len(logs)} runner logs and {len(outputs)} outputs of the demo-like run")
    finally:
        if opts.keep:
            report.note(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
