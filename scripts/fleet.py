#!/usr/bin/env python3
"""N nodes booting at once (issue 15, "500 nodes at once"): N `nodeboot init --register-node` processes, each with
its own node root and its own instance identity (the testbed's `fleet`: instance id, IP, DNS name, MAC, role keys,
its IMDS under /<instance id>), started together against one testbed whose EC2, EKS and STS throttle like AWS
(token buckets, `rateLimits`) and whose API server takes every node's registration.

Two fleets, each against a fresh testbed:
  1. the CA, endpoint and service CIDR in the user data (what nodeadm requires): no DescribeCluster at all;
  2. only the cluster name in the user data, so every node calls DescribeCluster (the pattern that broke
     bootstrap.sh at scale, reference/nodeadm.md §13.2), with the throttling absorbed by nodeboot's jittered
     backoff; then a repair run of part of the fleet, which must read the persisted DescribeCluster result
     (/var/lib/nodeboot/cluster-NAME.json) and call it no more.

Asserted for each fleet: every agent exits 0, the API server holds exactly the N nodes (each the name of its own
instance), and in fleet 2 one successful DescribeCluster per node with a bounded number of attempts. Reported:
API calls per node (p50/max, from the testbed's request log), throttling errors absorbed, time until the last
node registered, agent peak RSS. `make fleet N=500` runs it at full size; make test at CI size.
"""
import argparse
import base64
import json
import os
import resource
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testkit import Report, free_port, make_ca, popen, prepare_root, start_testbed, stop_process  # noqa: E402

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = "my-cluster"
CIDR = "10.100.0.0/16"
# AWS's published EC2 figures for non-mutating actions (bucket 100, 20 refilled a second). EKS publishes none for
# DescribeCluster: 10 a second with a burst of 20 is a guess on the low side (bootstrap.sh fleets of 150-400 were
# throttled). STS GetCallerIdentity is not called by the agents (the API server checks tokens offline).
RATE_LIMITS = {"ec2": {"ratePerSecond": 20, "burst": 100}, "eks": {"ratePerSecond": 10, "burst": 20},
               "sts": {"ratePerSecond": 100, "burst": 200}}


def user_data(endpoint=None, ca_pem=None):
    cluster = f"    name: {CLUSTER}\n"
    if endpoint:
        ca = base64.b64encode(ca_pem.encode()).decode()
        cluster += f"    apiServerEndpoint: {endpoint}\n    certificateAuthority: {ca}\n    cidr: {CIDR}\n"
    document = ("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"BOUNDARY\"\n\n--BOUNDARY\n"
                "Content-Type: application/node.eks.aws\n\n---\napiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\n"
                f"spec:\n  cluster:\n{cluster}--BOUNDARY--\n")
    return base64.b64encode(document.encode()).decode()


def fetch_json(url, method="GET", body=None, headers=None, context=None, timeout=60):
    request = urllib.request.Request(url, method=method, data=body, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return json.load(response)


def admin_nodes(bin_dir, kube, ca_file, home):
    """The API server's nodes, read as kubernetes-admin (the testbed's static keys) with nodeboot's token helper."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-west-2", "AWS_EC2_METADATA_DISABLED": "true"}
    out = subprocess.run([os.path.join(bin_dir, "nodeboot"), "token", "--cluster-name", CLUSTER], env=env,
                         capture_output=True, check=True, timeout=60, stdin=subprocess.DEVNULL).stdout
    token = json.loads(out)["status"]["token"]
    context = ssl.create_default_context(cafile=ca_file)
    return fetch_json(f"{kube}/api/v1/nodes", headers={"Authorization": f"Bearer {token}"}, context=context)["items"]


class Fleet:
    """One testbed with a fleet of `count` instances and the agents run against it."""

    def __init__(self, opts, work, name, with_ca):
        self.opts, self.name, self.with_ca = opts, name, with_ca
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        self.count = opts.count
        self.results = {}  # index -> dict(status, rss_kb, seconds, out)

    def start(self):
        instance = json.load(open(os.path.join(PROJECT, "Sources/Testbed/Resources/aemm-default-config.json")))
        config = {"instance": instance, "fleet": {"count": self.count}, "rateLimits": self.opts.rate_limits}
        args = []
        if self.with_ca:
            cert, key = make_ca(self.dir, "fleet-test-ca")
            port = free_port()
            config["kubeAPI"] = {"caCertificateFile": cert, "caKeyFile": key}
            instance["userdata"]["values"]["userdata"] = user_data(f"https://127.0.0.1:{port}", open(cert).read())
            args = ["--kube-port", str(port)]
        else:
            instance["userdata"]["values"]["userdata"] = user_data()
        path = os.path.join(self.dir, "testbed.json")
        json.dump(config, open(path, "w"))
        self.testbed, self.printed = start_testbed_with(self.opts.testbed, path, self.dir, args)
        self.aws = self.printed["env"]["AWS_ENDPOINT_URL"]
        self.imds = self.printed["env"]["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
        self.instances = fetch_json(self.aws + "/_testbed/fleet")
        assert len(self.instances) == self.count, f"the testbed has {len(self.instances)} fleet instances"

    def root(self, instance):
        return os.path.join(self.dir, "nodes", instance["instanceId"])

    def prepare_roots(self):
        infra = os.path.join(self.opts.conformance, "nodeadm", "_infra")
        template = os.path.join(self.dir, "template")
        prepare_root(template, infra, "1.7.27", kubelet="1.31.4-eks-1234567")
        for instance in self.instances:
            shutil.copytree(template, self.root(instance), symlinks=True)

    def run_agents(self, instances, timeout):
        """All agents at once; returns (seconds from the first start to the last exit, results by index)."""
        home = os.path.join(self.dir, "home")
        os.makedirs(home, exist_ok=True)
        base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "AWS_ENDPOINT_URL": self.aws}
        procs, results = {}, {}
        start = time.monotonic()

        def reap():
            """Collects the agents that have exited; False when none had."""
            pid, status, usage = os.wait4(-1, os.WNOHANG)
            if pid == 0:
                return False
            if pid in procs:
                proc, instance = procs.pop(pid)
                proc.returncode = os.waitstatus_to_exitcode(status)
                results[instance["index"]] = {"status": proc.returncode, "rss_kb": usage.ru_maxrss,
                                              "seconds": time.monotonic() - start}
            return True

        window = self.opts.start_window
        for number, instance in enumerate(instances):
            if window > 0:  # evenly over the window, as an auto scaling group launches in batches
                due = start + window * number / len(instances)
                while time.monotonic() < due:
                    if procs and reap():
                        continue
                    time.sleep(min(0.01, max(0.0, due - time.monotonic())))
            env = dict(base_env, AWS_EC2_METADATA_SERVICE_ENDPOINT=self.imds + instance["imdsPathPrefix"])
            out = open(os.path.join(self.dir, f"agent-{instance['index']}.log"), "wb")
            proc = popen([os.path.join(self.opts.bin_dir, "nodeboot"), "init", "--register-node",
                          "--root", self.root(instance)], env=env, stdout=out, stderr=subprocess.STDOUT,
                         preexec_fn=lambda: os.nice(self.opts.agent_nice))
            out.close()
            procs[proc.pid] = (proc, instance)
        deadline = start + timeout
        while procs:
            if reap():
                continue
            if time.monotonic() > deadline:
                for proc, instance in procs.values():
                    stop_process(proc, timeout=1)
                    results[instance["index"]] = {"status": None, "rss_kb": 0, "seconds": None}
                break
            time.sleep(0.02)
        return time.monotonic() - start, results

    def agent_log(self, index):
        with open(os.path.join(self.dir, f"agent-{index}.log"), errors="replace") as f:
            return f.read()

    def requests(self):
        return fetch_json(self.aws + "/_testbed/requests", timeout=120)

    def per_node(self, records):
        """Records grouped by fleet index: IMDS by path prefix, AWS by access key, kube by user."""
        by_prefix = {i["imdsPathPrefix"] + "/": i["index"] for i in self.instances}
        by_key = {i["accessKeyId"]: i["index"] for i in self.instances}
        by_user = {"system:node:" + i["privateDnsName"]: i["index"] for i in self.instances}
        grouped = {i["index"]: [] for i in self.instances}
        for record in records:
            index = None
            if record["endpoint"] == "imds":
                prefix = "/" + record["path"].split("/")[1] + "/" if record["path"].count("/") >= 2 else ""
                index = by_prefix.get(prefix)
            elif record["endpoint"] == "kube":
                index = by_user.get(record.get("username"))
            else:
                index = by_key.get(record.get("accessKeyId"))
            if index is not None:
                grouped[index].append(record)
        return grouped

    def stop(self):
        stop_process(self.testbed)


def start_testbed_with(binary, config, directory, extra):
    """testkit.start_testbed with extra serve arguments (a fixed kube port), at a higher priority than the agents
    (nice -10 when root): it stands in for AWS and for N instances' own metadata services, which have hardware of
    their own; on 2 shared cores the agents would otherwise starve it and time out against a server that is merely
    descheduled."""
    wrapper = os.path.join(directory, "testbed-serve.sh")
    nice = "nice -n -10 " if os.geteuid() == 0 else ""
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec {nice}'{binary}' \"$@\" " + " ".join(f"'{a}'" for a in extra) + "\n")
    os.chmod(wrapper, 0o755)
    return start_testbed(wrapper, config, directory)


def summarize(fleet, report, label, elapsed, results, records, expect_describe):
    n = fleet.count
    failed = {i: r for i, r in results.items() if r["status"] != 0}
    detail = ""
    for index in sorted(failed)[:3]:
        detail += f"agent {index} ({fleet.instances[index - 1]['instanceId']}) exit {failed[index]['status']}:\n"
        detail += "\n".join(fleet.agent_log(index).splitlines()[-8:]) + "\n"
    report.check(f"{label}: {n} agents exit 0", not failed and len(results) == n,
                 f"{len(failed)} of {n} failed or timed out\n{detail}",
                 info=f"last exit {elapsed:.1f} s after the start")
    nodes = admin_nodes(fleet.opts.bin_dir, fleet.printed["kube"], fleet.printed["kube-ca"],
                        os.path.join(fleet.dir, "home"))
    names = sorted(node["metadata"]["name"] for node in nodes)
    expected = sorted(i["privateDnsName"] for i in fleet.instances)
    provider_ok = all(node.get("spec", {}).get("providerID", "").endswith("/" + i["instanceId"])
                      for node, i in zip(sorted(nodes, key=lambda x: x["metadata"]["name"]),
                                         sorted(fleet.instances, key=lambda x: x["privateDnsName"])))
    missing = sorted(set(expected) - set(names))
    report.check(f"{label}: the API server holds the {n} nodes, each its own instance's", names == expected and
                 provider_ok, f"{len(names)} nodes; missing {missing[:5]}; unexpected "
                 f"{sorted(set(names) - set(expected))[:5]}; providerIDs match: {provider_ok}")
    grouped = fleet.per_node(records)
    aws = {i: [r for r in rs if r["endpoint"] in ("ec2", "eks", "sts")] for i, rs in grouped.items()}
    imds = {i: [r for r in rs if r["endpoint"] == "imds"] for i, rs in grouped.items()}
    kube = {i: [r for r in rs if r["endpoint"] == "kube"] for i, rs in grouped.items()}
    throttled = [r for r in records if r.get("fault") == "rateLimit"]
    creates = sorted(r["time"] for r in records if r["endpoint"] == "kube" and r.get("action") == "create"
                     and r["status"] == 201)
    describe = {i: [r for r in rs if r.get("action") == "DescribeCluster"] for i, rs in aws.items()}
    describe_ok = {i: sum(1 for r in rs if r["status"] == 200) for i, rs in describe.items()}
    rss = [r["rss_kb"] for r in results.values() if r["rss_kb"]]
    exits = [r["seconds"] for r in results.values() if r["seconds"] is not None]
    figures = {
        "nodes": n,
        "aws_calls_per_node": {"p50": statistics.median(len(v) for v in aws.values()),
                               "max": max(len(v) for v in aws.values())},
        "imds_calls_per_node": {"p50": statistics.median(len(v) for v in imds.values()),
                                "max": max(len(v) for v in imds.values())},
        "kube_calls_per_node": {"p50": statistics.median(len(v) for v in kube.values()),
                                "max": max(len(v) for v in kube.values())},
        "by_action": {},
        "throttled": len(throttled),
        "throttled_by_service": {s: sum(1 for r in throttled if r["endpoint"] == s) for s in ("ec2", "eks", "sts")},
        "nodes_throttled": sum(1 for v in aws.values() if any(r.get("fault") == "rateLimit" for r in v)),
        "describe_cluster_per_node": {"p50": statistics.median(len(v) for v in describe.values()),
                                      "max": max(len(v) for v in describe.values()),
                                      "total": sum(len(v) for v in describe.values())},
        "last_exit_s": round(max(exits), 1) if exits else None,
        "agent_exit_s": {"p50": round(statistics.median(exits), 1) if exits else None},
        "registrations_span_s": None,
        "agent_peak_rss_mb": {"p50": round(statistics.median(rss) / 1024, 1) if rss else None,
                              "max": round(max(rss) / 1024, 1) if rss else None},
    }
    for r in records:
        if r["endpoint"] in ("ec2", "eks", "sts"):
            key = f"{r['endpoint']} {r['action']}"
            figures["by_action"][key] = figures["by_action"].get(key, 0) + 1
    if creates:
        figures["registrations_span_s"] = creates[-1][11:19] + " - " + creates[0][11:19]
    if expect_describe:
        bound = fleet.opts.describe_bound
        over = {i: len(v) for i, v in describe.items() if len(v) > bound}
        report.check(f"{label}: one successful DescribeCluster per node, at most {bound} attempts each",
                     all(v == 1 for v in describe_ok.values()) and not over,
                     f"successful per node: {sorted(set(describe_ok.values()))}; over the bound: {over}")
        missing_files = [i["instanceId"] for i in fleet.instances
                         if not os.path.exists(os.path.join(fleet.root(i), f"var/lib/nodeboot/cluster-{CLUSTER}.json"))]
        report.check(f"{label}: every node persisted the DescribeCluster result", not missing_files,
                     f"no var/lib/nodeboot/cluster-{CLUSTER}.json under {missing_files[:5]}")
    else:
        report.check(f"{label}: no DescribeCluster call (the CA and endpoint are in the user data)",
                     figures["describe_cluster_per_node"]["total"] == 0,
                     f"{figures['describe_cluster_per_node']['total']} DescribeCluster calls")
    a, d = figures["aws_calls_per_node"], figures["describe_cluster_per_node"]
    report.note(f"{label}: AWS API calls per node p50 {a['p50']} max {a['max']} "
                f"(IMDS p50 {figures['imds_calls_per_node']['p50']}, kube p50 {figures['kube_calls_per_node']['p50']}); "
                f"by action {figures['by_action']}; DescribeCluster per node p50 {d['p50']} max {d['max']}")
    report.note(f"{label}: throttling errors absorbed {figures['throttled']} {figures['throttled_by_service']} "
                f"on {figures['nodes_throttled']} nodes; last node done {figures['last_exit_s']} s after the start "
                f"(p50 {figures['agent_exit_s']['p50']} s); agent peak RSS p50 {figures['agent_peak_rss_mb']['p50']}"
                f" MiB max {figures['agent_peak_rss_mb']['max']} MiB")
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin-dir", required=True, help="where nodeboot and nodeboot-testbed are (debug build)")
    parser.add_argument("-n", "--count", type=int, default=int(os.environ.get("N", "200")), help="nodes (200)")
    parser.add_argument("--conformance", default=os.path.join(PROJECT, "..", "shared", "conformance"))
    parser.add_argument("--timeout", type=float, default=600, help="bound on one fleet's run, seconds (600)")
    parser.add_argument("--rate-limits", type=json.loads, default=RATE_LIMITS,
                        help="the testbed's rateLimits as JSON (default: AWS-like, see RATE_LIMITS)")
    parser.add_argument("--describe-bound", type=int, default=30,
                        help="most DescribeCluster attempts a node may make (the AWS retry policy's 30)")
    parser.add_argument("--repair", type=int, default=50, help="nodes of fleet 2 run again (50)")
    parser.add_argument("--agent-nice", type=int, default=19,
                        help="niceness of the agents (19): the testbed (AWS, N metadata services) runs first")
    parser.add_argument("--start-window", type=float, default=0,
                        help="start the agents evenly over this many seconds instead of all at once (0)")
    parser.add_argument("--only", choices=["ca", "describe"], help="run one of the two fleets")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    opts = parser.parse_args()
    opts.bin_dir = os.path.abspath(opts.bin_dir)
    opts.conformance = os.path.abspath(opts.conformance)
    opts.testbed = os.path.join(opts.bin_dir, "nodeboot-testbed")
    report = Report()
    for binary in ("nodeboot", "nodeboot-testbed"):
        if not os.access(os.path.join(opts.bin_dir, binary), os.X_OK):
            report.skip("fleet", f"no {binary} in {opts.bin_dir}: build first")
            return report.summary()
    if not shutil.which("openssl"):
        report.skip("fleet", "openssl not found (it makes the API server's CA for the user data)")
        return report.summary()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the testbed holds a connection or two per agent
    work = tempfile.mkdtemp(prefix="nodeboot-fleet-")
    figures = {"count": opts.count, "rateLimits": opts.rate_limits}
    when = f"started over {opts.start_window:g} s" if opts.start_window > 0 else "at once"
    print(f"fleet: {opts.count} nodes {when}, rate limits {json.dumps(opts.rate_limits, sort_keys=True)}")
    try:
        phases = [("ca", "fleet with CA+endpoint", True), ("describe", "fleet without CA+endpoint", False)]
        for key, label, with_ca in phases:
            if opts.only and opts.only != key:
                continue
            fleet = Fleet(opts, work, key, with_ca)
            try:
                fleet.start()
                fleet.prepare_roots()
                elapsed, results = fleet.run_agents(fleet.instances, opts.timeout)
                records = fleet.requests()
                figures[key] = summarize(fleet, report, label, elapsed, results, records, not with_ca)
                if not with_ca and opts.repair > 0:
                    # Node repair: the same nodes again; the persisted result spares DescribeCluster.
                    urllib.request.urlopen(urllib.request.Request(fleet.aws + "/_testbed/requests", method="DELETE"),
                                           timeout=60).close()
                    again = fleet.instances[:opts.repair]
                    elapsed, results = fleet.run_agents(again, opts.timeout)
                    records = fleet.requests()
                    calls = sum(1 for r in records if r.get("action") == "DescribeCluster")
                    bad = {i: r["status"] for i, r in results.items() if r["status"] != 0}
                    report.check(f"repair run of {len(again)} nodes: exit 0, no DescribeCluster (persisted result)",
                                 not bad and calls == 0, f"failed agents {bad}; {calls} DescribeCluster calls")
                    aws = [r for r in records if r["endpoint"] in ("ec2", "eks", "sts")]
                    figures["repair"] = {"nodes": len(again), "describe_cluster": calls,
                                         "aws_calls": len(aws), "last_exit_s": round(elapsed, 1)}
                    report.note(f"repair: {len(aws)} AWS calls for {len(again)} nodes, {calls} DescribeCluster, "
                                f"last done after {elapsed:.1f} s")
            except (OSError, RuntimeError, AssertionError, subprocess.SubprocessError, ValueError) as error:
                report.check(f"{label}", False, f"runner: {error}")
            finally:
                if hasattr(fleet, "testbed"):
                    fleet.stop()
    finally:
        if opts.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(figures, f, indent=2, sort_keys=True)
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
