#!/usr/bin/env python3
"""The CPU `nodeboot init` spends in the two boot units, measured natively against nodeboot-testbed.

    scripts/bench-init-cpu.py [--bin-dir .build/release] [--testbed DIR/nodeboot-testbed] [--runs N]
                              [--valgrind DIR] [--strace] [--qemu] [--keep]

Under qemu's TCG (scripts/vm-test.py, docs/boot.md) every instruction is emulated and every basic block run for the
first time is translated first, so the agent's share of the boot follows the instructions it executes and the distinct
code it runs (both counted here), more than its time on this machine. This runs the boot units' command
lines (cloud-init/nodeboot-config.service and nodeboot-run.service) against a node root (--root) and the testbed,
the way the VM boot does: user data from IMDS (a MIME multipart: a NodeConfig with only the cluster name, so
DescribeCluster fills in the rest, and a shell script), `file://ROOT/etc/eks/nodeadm.d/`, the config cache under the
root. Between the phases it does what the VM's user script does: appends a line to config.toml and drops a NodeConfig
with a `--node-labels` flag into nodeadm.d, so the run phase re-renders the changed files. The run phase adds
`--register-node` (under --root the run phase does not touch this machine's systemd; the VM's waits for the
kubelet's Node instead, over the same TLS client). `nodeboot --version` is the floor (process start, runtime init).

Per command: wall (median), task-clock, page faults (perf stat, or getrusage without perf); with --strace the
processes it starts (execve); with --valgrind DIR one run under callgrind: instructions executed and distinct
instructions executed (the code TCG translates), DIR/NAME.callgrind.PID for callgrind_annotate (more callgrind
options in $CALLGRIND_ARGS, e.g. --separate-callers12='*swift_conformsToProtocolMaybe*'). The release binary is
stripped: for function names, profile .build/x86_64-unknown-linux-gnu/release/nodeboot as linked (before `make
release` strips it) with `strip --strip-debug` (valgrind 3.19 cannot read its DWARF 5, the symbol table it can).

With --qemu each command runs under qemu's user-mode emulator (`qemu-x86_64`, Debian's qemu-user), the same TCG
translator the VM boot runs the agent under, without booting a guest: its CPU is the closest figure to the boot units'
CPUUsageNSec this machine gives in seconds (each run translates its code afresh, as each unit's process does).

    python3 scripts/bench-init-cpu.py --bin-dir .build/release --runs 10 --strace
    python3 scripts/bench-init-cpu.py --bin-dir .build/release --runs 5 --qemu
    python3 scripts/bench-init-cpu.py --bin-dir DIR_WITH_SYMBOLS --runs 1 --valgrind /tmp/callgrind
"""
import argparse
import glob
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testkit  # noqa: E402

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AEMM = os.path.join(PROJECT, "Sources", "Testbed", "Resources", "aemm-default-config.json")
DAEMONS = ["--daemon", "containerd", "--daemon", "nodeboot-ipamd", "--daemon", "kubelet"]
NODECONFIG = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: my-cluster\n"
DROPIN = ("apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  kubelet:\n    flags:\n"
          "      - --node-labels=bench=dropin\n")


def user_data():
    boundary = "BENCH-BOUNDARY"
    return (f'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="{boundary}"\n\n'
            f"--{boundary}\nContent-Type: application/node.eks.aws\n\n{NODECONFIG}\n"
            f'--{boundary}\nContent-Type: text/x-shellscript; charset="us-ascii"\n\n#!/bin/bash\necho hello\n\n'
            f"--{boundary}--\n")


def image_root(root):
    """What the image bakes in (image/): version files, the ECR credential provider, a 2-CPU sysfs, nodeadm.d."""
    files = {
        "etc/eks/kubelet-version.txt": "Kubernetes v1.33.4-eks-1234567\n",
        "etc/eks/containerd-version.txt": f"containerd github.com/containerd/containerd v1.7.27 {testkit.CONTAINERD_COMMIT}\n",
        "etc/eks/image-credential-provider/ecr-credential-provider": "",
        "sys/devices/system/cpu/online": "0-1\n",
    }
    for path, text in files.items():
        testkit.write(os.path.join(root, path), text)
    for cpu in ("cpu0", "cpu1"):
        os.makedirs(os.path.join(root, "sys/devices/system/cpu", cpu), exist_ok=True)
    os.makedirs(os.path.join(root, "etc/eks/nodeadm.d"), exist_ok=True)


def commands(nodeboot, root):
    common = [*DAEMONS, "--config-source", "imds://user-data", "--config-source", f"file://{root}/etc/eks/nodeadm.d/",
              "--config-cache", f"{root}/run/eks/nodeadm/config.json", "--root", root]
    return {
        "version": [nodeboot, "--version"],
        "config": [nodeboot, "init", "--skip", "run", "--defer-to-script", *common],
        "run": [nodeboot, "init", "--skip", "config", *common, "--register-node"],
    }


def between_phases(root):
    """The VM's user script: an edit of a generated file and a NodeConfig dropped into nodeadm.d."""
    with open(os.path.join(root, "etc/containerd/config.toml"), "a") as f:
        f.write("# edited by the user data script\n")
    testkit.write(os.path.join(root, "etc/eks/nodeadm.d/50-bench.yaml"), DROPIN)


PERF = shutil.which("perf")


def measure(argv, env, cwd):
    """(wall ms, task-clock ms, page faults) of one run; exits on failure."""
    prefix = [PERF, "stat", "-x", ",", "-e", "task-clock,page-faults,major-faults"] if PERF else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(prefix + argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        sys.exit(f"bench-init-cpu: {' '.join(argv[1:4])} failed ({proc.returncode}): {err.strip()[-2000:]}")
    counters = {}
    for line in err.splitlines():
        fields = line.split(",")
        if len(fields) > 3 and fields[2] in ("task-clock", "page-faults", "major-faults"):
            counters[fields[2]] = float(fields[0]) if fields[0] not in ("<not counted>", "<not supported>") else None
    if "task-clock" not in counters:  # no perf: the children's rusage (the agent's and anything it started)
        counters["task-clock"] = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1000
        counters["page-faults"] = (after.ru_minflt - before.ru_minflt) + (after.ru_majflt - before.ru_majflt)
    return wall, counters["task-clock"], counters["page-faults"]


def traced(argv, env, cwd, directory, name):
    """The programs the command executes (strace -f), itself excluded."""
    out = os.path.join(directory, f"{name}.strace")
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", out] + argv, env=env, cwd=cwd,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    with open(out) as f:
        calls = re.findall(r'execve\("([^"]+)"', f.read())
    return calls[1:]


def valgrind(argv, env, cwd, directory, name, root):
    """[(instructions, distinct instructions)] of the command and each process it starts under callgrind, on a
    copy of the node root (a phase's output is the next run's input). The distinct instructions executed are the
    code TCG translates."""
    def on_copy(tool_args):
        copy = root + "-vg"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(root, copy, symlinks=True)
        proc = subprocess.run(["valgrind"] + tool_args + [a.replace(root, copy) for a in argv], env=env, cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        shutil.rmtree(copy, ignore_errors=True)
        if proc.returncode != 0:
            sys.exit(f"bench-init-cpu: valgrind {tool_args[0]} {name} failed: {proc.stderr.decode(errors='replace')[-2000:]}")

    on_copy(["--tool=callgrind", "--dump-instr=yes", "--compress-pos=no", "--trace-children=yes",
             f"--callgrind-out-file={directory}/{name}.callgrind.%p", *os.environ.get("CALLGRIND_ARGS", "").split()])
    results = []  # per process, the agent first
    for out in sorted(glob.glob(f"{directory}/{name}.callgrind.*"), key=lambda p: int(p.rsplit(".", 1)[1])):
        addresses, total = set(), 0
        with open(out) as f:
            for line in f:
                if line.startswith("0x"):
                    addresses.add(line.split(" ", 1)[0])
                elif line.startswith(("summary:", "totals:")):
                    total = int(line.split()[1])
        results.append((total, len(addresses)))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-dir", default=os.path.join(PROJECT, ".build", "release"), help="holds nodeboot")
    parser.add_argument("--testbed", help="nodeboot-testbed (default: --bin-dir's, else .build/debug's)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--valgrind", metavar="DIR", help="one run of each under callgrind, output in DIR")
    parser.add_argument("--strace", action="store_true", help="list the programs each command executes")
    parser.add_argument("--qemu", action="store_true", help="run each command under qemu-x86_64 (TCG)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    emulator = []
    if args.qemu:
        if not shutil.which("qemu-x86_64"):
            sys.exit("bench-init-cpu: --qemu needs qemu-x86_64 (apt-get install qemu-user)")
        emulator = [shutil.which("qemu-x86_64")]

    nodeboot = os.path.abspath(os.path.join(args.bin_dir, "nodeboot"))
    testbed = args.testbed or next((p for p in (os.path.join(args.bin_dir, "nodeboot-testbed"),
                                                os.path.join(PROJECT, ".build", "debug", "nodeboot-testbed"))
                                    if os.access(p, os.X_OK)), None)
    if not os.access(nodeboot, os.X_OK) or not testbed:
        sys.exit(f"bench-init-cpu: {nodeboot} or nodeboot-testbed missing (swift build, make release)")
    scratch = tempfile.mkdtemp(prefix="nodeboot-cpu-")
    with open(AEMM) as f:
        instance = json.load(f)
    instance.setdefault("userdata", {}).setdefault("values", {})["userdata"] = user_data()
    config = os.path.join(scratch, "testbed.json")
    testkit.write(config, json.dumps({"instance": instance}))
    proc, printed = testkit.start_testbed(testbed, config, scratch)
    try:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": scratch, "LANG": "C.UTF-8",
               **printed["env"]}
        print(f"nodeboot {nodeboot} ({time.strftime('%Y-%m-%d %H:%M', time.localtime(os.stat(nodeboot).st_mtime))}),"
              f" testbed {testbed}; {args.runs} runs, fresh root each; perf: {'yes' if PERF else 'no (rusage)'}"
              + ("; under qemu-x86_64 (TCG)" if emulator else ""))
        samples = {name: [] for name in ("version", "config", "run")}
        for index in range(args.runs + 1):  # the first run warms the page cache
            root = os.path.join(scratch, f"node-{index}")
            image_root(root)
            argvs = commands(nodeboot, root)
            for name in ("version", "config", "run"):
                if name == "run":
                    between_phases(root)
                sample = measure(emulator + argvs[name], env, scratch)
                if index:
                    samples[name].append(sample)
            shutil.rmtree(root, ignore_errors=True)
        print(f"{'command':<10} {'wall ms':>9} {'cpu ms':>9} {'faults':>8}   (medians)")
        for name, values in samples.items():
            wall, cpu, faults = (statistics.median(v[i] for v in values) for i in range(3))
            print(f"{name:<10} {wall:9.1f} {cpu:9.1f} {faults:8.0f}")
        if args.strace or args.valgrind:
            root = os.path.join(scratch, "node-traced")
            image_root(root)
            argvs = commands(nodeboot, root)
            for name in ("version", "config", "run"):
                if name == "run":
                    between_phases(root)
                line = f"{name:<10}"
                if args.valgrind:
                    os.makedirs(args.valgrind, exist_ok=True)
                    for old in glob.glob(f"{args.valgrind}/{name}.callgrind.*"):
                        os.unlink(old)
                    (instructions, distinct), *children = valgrind(argvs[name], env, scratch, args.valgrind, name, root)
                    line += f" instructions {instructions:>12,}  distinct {distinct:>8,}"
                    line += "".join(f"  + child: instructions {i:,} distinct {d:,}" for i, d in children)
                if args.strace:
                    execs = traced(argvs[name], env, scratch, scratch, name)
                    line += f"  execve {len(execs)}" + (f" ({', '.join(execs)})" if execs else "")
                else:
                    measure(argvs[name], env, scratch)
                print(line)
    finally:
        testkit.stop_process(proc)
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
