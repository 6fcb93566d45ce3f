#!/usr/bin/env python3
"""make bench: nodeboot's timings against a peer measured in the same run.

facts: `nodeboot facts` end to end against the testbed (IMDSv2 discovery of every instance
fact, instance-role credentials, one signed DescribeInstances), compared with the same
discovery done the way AL2's bootstrap.sh does it (curl against IMDS + `aws ec2
describe-instances`). Median of N runs after warm-up, peak RSS from wait4().
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TARGET_MS = 20.0
TARGET_RSS_MB = 25.0
INIT_TARGET_MS = 50.0
INIT_TARGET_RSS_MB = 30.0
TOKEN_TARGET_MS = 5.0
TOKEN_TARGET_RATIO = 60.0

PEER = r"""
set -e
T=$(curl -sf -X PUT "$IMDS/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 21600")
g() { curl -sf -H "X-aws-ec2-metadata-token: $T" "$IMDS/latest/$1"; }
doc=$(g dynamic/instance-identity/document)
mac=$(g meta-data/mac); g meta-data/local-ipv4 >/dev/null; g meta-data/local-hostname >/dev/null
for m in $(g meta-data/network/interfaces/macs/); do
  for p in device-number network-card interface-id local-ipv4s ipv6s subnet-ipv4-cidr-block vpc-ipv4-cidr-blocks; do
    g "meta-data/network/interfaces/macs/${m%/}/$p" >/dev/null || true
  done
done
role=$(g meta-data/iam/security-credentials/)
id=$(echo "$doc" | python3 -c 'import json,sys; print(json.load(sys.stdin)["instanceId"])')
aws ec2 describe-instances --instance-ids "$id" --region us-west-2 \
  --query 'Reservations[0].Instances[0].PrivateDnsName' --output text >/dev/null
"""


# A child forked from Python inherits Python's resident size as its peak (the kernel keeps the
# pre-exec high-water mark), so peak RSS is read through a tiny C launcher instead.
LAUNCHER_C = r"""
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    pid_t pid = fork();
    if (pid == 0) { execvp(argv[1], argv + 1); _exit(127); }
    int status; struct rusage ru;
    wait4(pid, &status, 0, &ru);
    fprintf(stderr, "\nmaxrss_kb=%ld\n", ru.ru_maxrss);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}
"""
LAUNCHER = None


def build_launcher(directory):
    global LAUNCHER
    source = os.path.join(directory, "maxrss.c")
    with open(source, "w") as f:
        f.write(LAUNCHER_C)
    binary = os.path.join(directory, "maxrss")
    subprocess.run(["cc", "-O2", "-o", binary, source], check=True)
    LAUNCHER = binary


def run_once(argv, env, stdout=None):
    start = time.perf_counter()
    proc = subprocess.run([LAUNCHER] + argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = (time.perf_counter() - start) * 1000
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(argv[:2])} failed: {err.strip()}")
    if stdout is not None:
        stdout.append(proc.stdout.decode(errors="replace"))
    return elapsed, int(re.findall(r"maxrss_kb=(\d+)", err)[-1]) / 1024.0


def image_root(directory):
    """What a machine image bakes in: version files, the ECR credential provider, a 2-CPU sysfs."""
    files = {
        "etc/eks/kubelet-version.txt": "Kubernetes v1.33.4-eks-1234567\n",
        "etc/eks/containerd-version.txt": "containerd github.com/containerd/containerd v1.7.27 abc\n",
        "etc/eks/image-credential-provider/ecr-credential-provider": "",
        "sys/devices/system/cpu/online": "0-1\n",
    }
    for path, text in files.items():
        os.makedirs(os.path.join(directory, os.path.dirname(path)), exist_ok=True)
        with open(os.path.join(directory, path), "w") as f:
            f.write(text)
    for cpu in ("cpu0", "cpu1"):
        os.makedirs(os.path.join(directory, "sys/devices/system/cpu", cpu), exist_ok=True)


def measure_init(nodeboot, env, scratch, runs, warmup):
    """`nodeboot init --skip run` from IMDS user data into a fresh node root per run (copied
    outside the timing): every file is written each time. Phase shares from --output json."""
    template = os.path.join(scratch, "image")
    image_root(template)
    outputs, samples = [], []
    for index in range(warmup + runs):
        root = os.path.join(scratch, f"node-{index}")
        shutil.copytree(template, root)
        captured = []
        sample = run_once([nodeboot, "init", "--skip", "run", "--root", root, "--output", "json"], env, captured)
        shutil.rmtree(root, ignore_errors=True)
        if index >= warmup:
            samples.append(sample)
            outputs.append(captured[0])
    times = sorted(s[0] for s in samples)
    rss = max(s[1] for s in samples)
    median = statistics.median(times)
    print(f"  {'nodeboot init --skip run (fresh root)':<44} median {median:8.1f} ms   p90 "
          f"{times[int(len(times) * 0.9) - 1]:8.1f} ms   min {times[0]:8.1f} ms   peak RSS {rss:6.1f} MB   ({runs} runs)")
    phases = {}
    for text in outputs:
        for phase in json.loads(text)["phases"]:
            phases.setdefault(phase["name"], []).append(phase["milliseconds"])
    total = sum(statistics.median(v) for v in phases.values())
    print("  phases (median ms, share of the agent's own timeline; the rest of the wall time is process start/exit):")
    for name, values in phases.items():
        value = statistics.median(values)
        print(f"    {name:<10} {value:7.2f} ms  {100 * value / total:5.1f}%")
    return {"median": median, "rss": rss}


def measure(name, argv, env, runs, warmup):
    for _ in range(warmup):
        run_once(argv, env)
    samples = [run_once(argv, env) for _ in range(runs)]
    times = sorted(s[0] for s in samples)
    rss = max(s[1] for s in samples)
    result = {
        "name": name,
        "median": statistics.median(times),
        "p90": times[int(len(times) * 0.9) - 1],
        "min": times[0],
        "rss": rss,
    }
    print(f"  {name:<44} median {result['median']:8.1f} ms   p90 {result['p90']:8.1f} ms   "
          f"min {result['min']:8.1f} ms   peak RSS {rss:6.1f} MB   ({runs} runs)")
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    scratch = tempfile.mkdtemp(prefix="nodeboot-bench-")
    build_launcher(scratch)
    nodeboot = os.path.join(args.bin_dir, "nodeboot")
    testbed = os.path.join(args.bin_dir, "nodeboot-testbed")
    out = tempfile.NamedTemporaryFile("w+", delete=False)
    server = subprocess.Popen([testbed, "serve"], stdout=out, stderr=subprocess.DEVNULL)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.lower().endswith("_proxy")}
        env.update({"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_PAGER": ""})
        deadline = time.time() + 20
        exports = {}
        while time.time() < deadline and "AWS_ENDPOINT_URL" not in exports:
            time.sleep(0.05)
            with open(out.name) as f:
                exports = dict(re.findall(r"^export (\w+)=(.*)$", f.read(), re.M))
        if "AWS_ENDPOINT_URL" not in exports:
            sys.exit("bench: the testbed did not print its endpoints")
        env.update(exports)

        print("benchmark: nodeboot facts (all instance facts over IMDSv2 + one signed DescribeInstances), testbed on loopback")
        ours = measure("nodeboot facts", [nodeboot, "facts", "--output", "json"], env, args.runs, args.warmup)
        if shutil.which("aws") and shutil.which("curl"):
            # The peer needs the role's credentials the way the AWS CLI gets them: from IMDS.
            peer_env = dict(env, IMDS=exports["AWS_EC2_METADATA_SERVICE_ENDPOINT"])
            peer = measure("peer: bootstrap.sh-style curl + aws ec2 CLI", ["bash", "-c", PEER], peer_env,
                           max(10, args.runs // 3), 1)
            print(f"  ratio: nodeboot is {peer['median'] / ours['median']:.1f}x faster (median) and uses "
                  f"{peer['rss'] / ours['rss']:.1f}x less peak memory than the peer")
        else:
            print("  peer skipped: aws CLI or curl not installed")
        verdict = lambda ok: "met" if ok else "NOT met"
        print(f"  target <= {TARGET_MS:.0f} ms median: {verdict(ours['median'] <= TARGET_MS)}; "
              f"target <= {TARGET_RSS_MB:.0f} MB peak RSS: {verdict(ours['rss'] <= TARGET_RSS_MB)}")

        print()
        print("benchmark: nodeboot init --skip run (user data from IMDS, DescribeInstances, render, atomic writes of 8 files)")
        init = measure_init(nodeboot, env, scratch, max(20, args.runs), args.warmup)
        print("  peer: nodeadm (Go) is not on this machine, so no ratio for init; the facts ratio above compares the"
              " discovery both agents share")
        print(f"  target <= {INIT_TARGET_MS:.0f} ms median: {verdict(init['median'] <= INIT_TARGET_MS)}; "
              f"target <= {INIT_TARGET_RSS_MB:.0f} MB peak RSS: {verdict(init['rss'] <= INIT_TARGET_RSS_MB)}")
        print()
        print("benchmark: nodeboot token vs aws eks get-token (same fake credentials in the environment, no network)")
        token_env = {"PATH": env.get("PATH", "/usr/bin:/bin"), "HOME": scratch, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
                     "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "AWS_REGION": "us-west-2",
                     "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                     "AWS_EC2_METADATA_DISABLED": "true"}
        token = measure("nodeboot token", [nodeboot, "token", "--cluster-name", "my-cluster"], token_env,
                        max(20, args.runs), args.warmup)
        if shutil.which("aws"):
            peer = measure("peer: aws eks get-token", ["aws", "eks", "get-token", "--cluster-name", "my-cluster"],
                           token_env, 20, 1)
            ratio = peer["median"] / token["median"]
            print(f"  ratio: nodeboot token is {ratio:.1f}x faster (median) and uses "
                  f"{peer['rss'] / token['rss']:.1f}x less peak memory than aws eks get-token")
            print(f"  target >= {TOKEN_TARGET_RATIO:.0f}x faster: {verdict(ratio >= TOKEN_TARGET_RATIO)}")
        else:
            print("  peer skipped: the aws CLI is not installed")
        print(f"  target <= {TOKEN_TARGET_MS:.0f} ms median: {verdict(token['median'] <= TOKEN_TARGET_MS)}")
    finally:
        server.terminate()
        server.wait(timeout=10)
        os.unlink(out.name)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
