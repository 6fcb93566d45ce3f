#!/usr/bin/env python3
"""libFuzzer runs of the decoders of untrusted input (Fuzz/, issue 15).

    scripts/fuzz.py [--seconds N] [--target NAME]... [--work DIR]   build, replay the regressions, fuzz each target
    scripts/fuzz.py --seed                                          rewrite Fuzz/corpus/ from the project's data

The targets (Fuzz/Sources/fuzz-*): user data (base64, gzip, MIME, then each NodeConfig decoded, merged and
validated), the YAML reader, the TOML reader (with the property that canonical output reads back to itself),
the maxPods expression, IMDS/EC2/EKS answers through the real clients, KUBERNETES_EXEC_INFO.

Build: `swift build --package-path Fuzz -c debug -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library`
(a package of its own: a fuzz target has no main; linked with lld). Each target first replays every file of its seed corpus
(Fuzz/corpus/NAME, committed) and of Fuzz/regressions/NAME (inputs that once crashed it), then fuzzes for
--seconds (default 10: the short run of `make test`; `make fuzz` runs 600) with a working corpus in
WORK/corpus/NAME that grows across runs, artifacts (crashing inputs) in WORK/artifacts/NAME. A crash, a leak, a
timeout (> 10 s for one input) or an out-of-memory (> 2 GiB) fails the target and prints the artifact's path:
copy it into Fuzz/regressions/NAME/ and add a unit test with the same input. Per target it prints the executions,
the coverage (libFuzzer's `cov:` edges and `ft:` features) and the corpus size.

Seeds (--seed): every NodeConfig of nodeadm's e2e cases (../shared/conformance/nodeadm/*/config.yaml and the other
YAML/JSON inputs there) and the bad-input corpus (Tests/BadInput/), in the YAML and user-data corpora, also as
base64, gzip and MIME; the containerd and SOCI TOML files of the conformance data; the maxPods expressions of the
conformance cases and the unit tests; small hand-written IMDS, EC2 and EKS answers; ExecCredential documents.
"""
import argparse
import base64
import glob
import gzip
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testkit import Report  # noqa: E402

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUZZ = os.path.join(PROJECT, "Fuzz")
CONFORMANCE = os.path.join(os.path.dirname(PROJECT), "shared", "conformance")
TARGETS = ["fuzz-userdata", "fuzz-yaml", "fuzz-toml", "fuzz-maxpods", "fuzz-aws", "fuzz-execinfo"]
# lld: Debian's gold crashes (internal error in format_file_lineno) on the sanitizer objects' debug info.
BUILD = ["build", "--package-path", FUZZ, "-c", "debug", "-Xswiftc", "-sanitize=fuzzer,address",
         "-Xswiftc", "-parse-as-library", "-Xswiftc", "-use-ld=lld"]


def swift():
    return shutil.which("swift") or "/opt/swift/usr/bin/swift"


def read(path):
    with open(path, "rb") as f:
        return f.read()


def mime(parts):
    """A multipart/mixed user data with NodeConfig parts."""
    body = b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="BOUNDARY"\n\n'
    for part in parts:
        body += b"--BOUNDARY\nContent-Type: application/node.eks.aws\n\n" + part + b"\n"
    body += b'--BOUNDARY\nContent-Type: text/x-shellscript; charset="us-ascii"\n\n#!/bin/bash\necho hi\n'
    return body + b"--BOUNDARY--\n"


def seeds():
    """Target name -> {file name: bytes}."""
    out = {name: {} for name in TARGETS}
    documents = []
    for path in sorted(glob.glob(os.path.join(CONFORMANCE, "nodeadm", "*", "*"))):
        if re.search(r"\.(ya?ml|json)$", path) and not os.path.basename(path).startswith("expected"):
            documents.append((os.path.relpath(path, CONFORMANCE).replace("/", "_"), read(path)))
    for path in sorted(glob.glob(os.path.join(PROJECT, "Tests", "BadInput", "*"))):
        # The gzip bombs are the corpus' only large files: the decoder refuses them by size, once is enough.
        if not path.endswith("cases.json") and os.path.isfile(path) and os.path.getsize(path) <= 32 << 10:
            documents.append(("badinput_" + os.path.basename(path), read(path)))
    for name, data in documents:
        out["fuzz-yaml"][name] = data
        out["fuzz-userdata"][name] = data
    configs = [data for name, data in documents if name.endswith("config.yaml")][:6]
    for index, data in enumerate(configs):
        out["fuzz-userdata"][f"base64_{index}"] = base64.b64encode(data)
        out["fuzz-userdata"][f"gzip_{index}"] = gzip.compress(data, mtime=0)
        out["fuzz-userdata"][f"base64gzip_{index}"] = base64.b64encode(gzip.compress(data, mtime=0))
    out["fuzz-userdata"]["mime_two_parts"] = mime(configs[:2])
    for path in sorted(glob.glob(os.path.join(CONFORMANCE, "nodeadm", "**", "*.toml"), recursive=True)):
        out["fuzz-toml"][os.path.relpath(path, CONFORMANCE).replace("/", "_")] = read(path)
    out["fuzz-toml"]["inline"] = b'a = { b = [1, 2.5, "x", true], c = 1979-05-27T07:32:00Z }\n[[t]]\nk = \'v\'\n'
    expressions = set()
    for path in glob.glob(os.path.join(CONFORMANCE, "nodeadm", "**", "*.yaml"), recursive=True):
        for match in re.finditer(rb"maxPodsExpression: *(.+)", read(path)):
            expressions.add(match.group(1).strip().strip(b"'\""))
    tests = os.path.join(PROJECT, "Tests", "NodeRenderTests", "MaxPodsTests.swift")
    if os.path.exists(tests):
        for match in re.finditer(rb'(?:expression: |\(\s*)"([^"]+)"', read(tests)):
            expressions.add(match.group(1))
    expressions |= {b"default_enis * (ips_per_eni - 1) + 2", b"min(max_pods, 110)", b"-(1)", b"((((1))))"}
    for index, expression in enumerate(sorted(expressions)):
        out["fuzz-maxpods"][f"expression_{index}"] = expression
    identity = b'{"instanceId":"i-0123456789abcdef0","instanceType":"m5.large","region":"us-west-2",' \
               b'"availabilityZone":"us-west-2a","accountId":"123456789012","privateIp":"10.0.0.5"}'
    instances = (b'<DescribeInstancesResponse><reservationSet><item><instancesSet><item>'
                 b'<instanceId>i-0123456789abcdef0</instanceId><privateDnsName>ip-10-0-0-5.ec2.internal'
                 b'</privateDnsName><instanceType>m5.large</instanceType><placement><availabilityZone>us-west-2a'
                 b'</availabilityZone></placement><networkInterfaceSet><item><networkInterfaceId>eni-1'
                 b'</networkInterfaceId><macAddress>0e:00:00:00:00:01</macAddress><attachment><attachmentId>a-1'
                 b'</attachmentId><deviceIndex>0</deviceIndex><status>attached</status></attachment></item>'
                 b'</networkInterfaceSet></item></instancesSet></item></reservationSet></DescribeInstancesResponse>')
    types = (b'<DescribeInstanceTypesResponse><instanceTypeSet><item><instanceType>m5.large</instanceType>'
             b'<networkInfo><maximumNetworkInterfaces>3</maximumNetworkInterfaces><ipv4AddressesPerInterface>10'
             b'</ipv4AddressesPerInterface><networkCards><item><networkCardIndex>0</networkCardIndex>'
             b'<maximumNetworkInterfaces>3</maximumNetworkInterfaces></item></networkCards></networkInfo></item>'
             b'</instanceTypeSet></DescribeInstanceTypesResponse>')
    cluster = (b'{"cluster":{"name":"my-cluster","endpoint":"https://example.com","status":"ACTIVE",'
               b'"certificateAuthority":{"data":"Y2E="},"kubernetesNetworkConfig":{"serviceIpv4Cidr":"10.100.0.0/16",'
               b'"ipFamily":"ipv4"},"version":"1.31"}}')
    enis = (b'<DescribeNetworkInterfacesResponse><networkInterfaceSet><item><networkInterfaceId>eni-0123'
            b'</networkInterfaceId><privateIpAddressesSet><item><privateIpAddress>10.0.0.6</privateIpAddress>'
            b'<primary>false</primary></item></privateIpAddressesSet></item></networkInterfaceSet>'
            b'</DescribeNetworkInterfacesResponse>')
    error = b'<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>slow down</Message></Error>' \
            b'</Errors><RequestID>r-1</RequestID></Response>'
    # Byte 0: the call (0 identity, 1 IMDS facts, 2 DescribeInstances, 3 DescribeInstanceTypes,
    # 4 DescribeCluster, 5 DescribeNetworkInterfaces); byte 1: the status (0 → 200, 9 → 503).
    aws = {"imds_identity": b"\x00\x00" + identity, "imds_facts": b"\x01\x00" + b"0e:00:00:00:00:01\n",
           "ec2_instances": b"\x02\x00" + instances, "ec2_types": b"\x03\x00" + types,
           "eks_cluster": b"\x04\x00" + cluster, "ec2_enis": b"\x05\x00" + enis, "ec2_throttled": b"\x02\x09" + error,
           "eks_not_found": b"\x04\x86" + b'{"message":"No cluster found for name: my-cluster."}'}
    out["fuzz-aws"].update(aws)
    for name, document in {
        "v1beta1": b'{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","spec":{"interactive":false}}',
        "v1": b'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential"}',
        "empty": b"", "wrong_kind": b'{"kind":"Pod"}',
    }.items():
        out["fuzz-execinfo"][name] = document
    return out


def write_seeds():
    for target, files in seeds().items():
        directory = os.path.join(FUZZ, "corpus", target)
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
        for name, data in files.items():
            with open(os.path.join(directory, re.sub(r"[^A-Za-z0-9._-]", "_", name)), "wb") as f:
                f.write(data)
        print(f"{target}: {len(files)} seeds in {os.path.relpath(directory, PROJECT)}")


def stats(output):
    """Executions, coverage, features and corpus size from libFuzzer's output."""
    result = {}
    executed = re.findall(r"stat::number_of_executed_units: (\d+)", output)
    if executed:
        result["execs"] = int(executed[-1])
    progress = re.findall(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)", output)
    if progress:
        runs, cov, ft, corp = progress[-1]
        result.update(cov=int(cov), ft=int(ft), corpus=int(corp))
        result.setdefault("execs", int(runs))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="fuzzing time per target (default 10)")
    parser.add_argument("--target", action="append", choices=TARGETS, help="only these targets")
    parser.add_argument("--work", default=os.path.join(PROJECT, ".build", "fuzz"), help="working corpora, artifacts")
    parser.add_argument("--seed", action="store_true", help="rewrite Fuzz/corpus from the project's data")
    args = parser.parse_args()
    if args.seed:
        write_seeds()
        return 0
    report = Report()
    if not sys.platform.startswith("linux"):
        report.skip("fuzz", "libFuzzer targets are built on Linux only")
        return report.summary()
    start = time.monotonic()
    build = subprocess.run([swift()] + BUILD, cwd=PROJECT, capture_output=True, text=True)
    build_seconds = time.monotonic() - start
    if not report.check(f"the fuzz targets build with -sanitize=fuzzer,address ({build_seconds:.0f} s)",
                        build.returncode == 0, (build.stdout + build.stderr)[-3000:]):
        return report.summary()
    bin_dir = subprocess.run([swift()] + BUILD + ["--show-bin-path"], cwd=PROJECT, capture_output=True,
                             text=True).stdout.strip()
    for target in args.target or TARGETS:
        binary = os.path.join(bin_dir, target)
        seed_dir = os.path.join(FUZZ, "corpus", target)
        regressions = sorted(glob.glob(os.path.join(FUZZ, "regressions", target, "*")))
        replay = sorted(glob.glob(os.path.join(seed_dir, "*"))) + regressions
        options = ["-rss_limit_mb=2048", "-timeout=10", "-malloc_limit_mb=2048"]
        if replay:
            # Given files, libFuzzer runs each once and exits non-zero on the first crash.
            ran = subprocess.run([binary] + options + replay, capture_output=True, text=True, timeout=600)
            report.check(f"{target}: {len(replay)} seed and regression inputs replay without a crash",
                         ran.returncode == 0, ran.stderr[-3000:])
        work = os.path.join(args.work, "corpus", target)
        artifacts = os.path.join(args.work, "artifacts", target) + "/"
        os.makedirs(work, exist_ok=True)
        os.makedirs(artifacts, exist_ok=True)
        command = [binary] + options + [f"-max_total_time={args.seconds}", "-print_final_stats=1",
                                         f"-artifact_prefix={artifacts}", work, seed_dir]
        ran = subprocess.run(command, capture_output=True, text=True, timeout=args.seconds + 600)
        found = stats(ran.stderr)
        crashed = [line for line in ran.stderr.splitlines() if "Test unit written to" in line]
        summary = (f"{found.get('execs', 0)} executions, cov {found.get('cov', '?')} edges, "
                   f"ft {found.get('ft', '?')}, corpus {found.get('corpus', '?')}")
        report.check(f"{target}: {args.seconds} s of fuzzing without a crash ({summary})",
                     ran.returncode == 0 and not crashed,
                     "\n".join(crashed) + "\n" + ran.stderr[-4000:]
                     + f"\ncopy the input into Fuzz/regressions/{target}/ and add a unit test with it")
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
