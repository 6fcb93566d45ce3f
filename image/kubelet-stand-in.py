#!/usr/bin/python3
# /usr/bin/kubelet in the nodeboot node image is this stand-in, not a kubelet: Debian packages no Kubernetes node
# binaries and the image is built from Debian packages only, with nothing downloaded. It plays the kubelet's part of the
# boot, so the boot is exercised end to end as on a real node: kubelet.service starts it with the flags nodeboot wrote
# (/etc/eks/kubelet/environment); it checks that the files those flags name exist (a real kubelet fails without them
# too), logs its command line, then registers the Node the way the kubelet does: with the credentials of its
# --kubeconfig (the exec plugin nodeboot wrote: `nodeboot token`, the IAM authenticator's token), POST /api/v1/nodes
# named by --hostname-override, with the kubelet's default labels and --node-labels, retrying with backoff until the API
# server takes it (an existing Node is the kubelet's own from an earlier boot: fine). `nodeboot init` waits for exactly
# that Node. It runs no pods and reports no status (the Node stays NotReady); `ctr run --cni` starts containers.
# A real image installs the EKS kubelet here (image/README.md). Python's standard library only (cloud-init's python3).
import json
import os
import platform
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

VERSION = "v1.31.2-eks-standin"


def log(text):
    print(f"kubelet stand-in: {text}", file=sys.stderr, flush=True)


def flags(argv):
    """--name=value and --name value (the kubelet's flag syntax), last one wins; bare --name is true."""
    found, index = {}, 0
    while index < len(argv):
        arg = argv[index]
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if not eq and index + 1 < len(argv) and not argv[index + 1].startswith("--"):
                value, index = argv[index + 1], index + 1
            found[name] = value if (eq or value) else "true"
        index += 1
    return found


def kubeconfig(path):
    """server, certificate-authority and the exec plugin (command, args, env) of the kubeconfig nodeboot writes: one
    cluster, one user; a small reader for that layout (no YAML library in the image's python)."""
    server = ca = command = None
    args, env, section = [], {}, None
    for raw in open(path):
        line = raw.split(" #")[0].rstrip()
        text = line.strip()
        if not text or text == "---":
            continue
        key, _, value = text.partition(":")
        value = value.strip().strip('"')
        if text.startswith("- ") and section == "args":
            args.append(text[2:].strip().strip('"'))
            continue
        if text.startswith("- name:") and section == "env":
            env_name = text[len("- name:"):].strip().strip('"')
            env[env_name] = ""
            continue
        if key == "value" and section == "env" and env:
            env[list(env)[-1]] = value
            continue
        section = key if key in ("args", "env") else None
        if key == "server":
            server = value
        elif key == "certificate-authority":
            ca = value
        elif key == "command":
            command = value
    if not server or not command:
        raise ValueError(f"{path}: no server or no exec command")
    return server, ca, [command] + args, env


def token(argv, env):
    info = {"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
            "spec": {"interactive": False}}
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, **env, KUBERNETES_EXEC_INFO=json.dumps(info)))
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {result.returncode}: {result.stderr.strip()[:300]}")
    return json.loads(result.stdout)["status"]["token"]


def node_object(name, given):
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
              "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch}
    for item in filter(None, given.get("node-labels", "").split(",")):
        key, _, value = item.partition("=")
        labels[key] = value
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": {}}
    if given.get("cloud-provider") == "external":  # the kubelet's taint until the cloud controller initializes it
        node["spec"]["taints"] = [{"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true",
                                   "effect": "NoSchedule"}]
    if given.get("node-ip"):
        node["status"] = {"addresses": [{"type": "InternalIP", "address": given["node-ip"].split(",")[0]}]}
    return node


def register(given):
    server, ca, argv, env = kubeconfig(given["kubeconfig"])
    name = given.get("hostname-override") or platform.node().lower()
    context = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    body = json.dumps(node_object(name, given)).encode()
    delay = 0.5
    while True:
        try:
            request = urllib.request.Request(server.rstrip("/") + "/api/v1/nodes", data=body, method="POST",
                                             headers={"Content-Type": "application/json",
                                                      "Authorization": "Bearer " + token(argv, env)})
            with urllib.request.urlopen(request, context=context, timeout=30) as response:
                log(f"registered node {name} ({response.status})")
                return
        except urllib.error.HTTPError as error:
            if error.code == 409:
                log(f"node {name} already registered (409)")
                return
            log(f"registering node {name}: HTTP {error.code} {error.read()[:200]!r}; retrying in {delay:.1f} s")
        except Exception as error:  # the network, the token helper, TLS: the kubelet retries them all
            log(f"registering node {name}: {error}; retrying in {delay:.1f} s")
        time.sleep(delay)
        delay = min(delay * 2, 7)


def main(argv):
    if argv[:1] == ["--version"]:
        print(f"Kubernetes {VERSION}")
        return 0
    given = flags(argv)
    for name in ("config", "kubeconfig"):
        if name in given and not os.path.isfile(given[name]):
            log(f"--{name} {given[name]}: no such file")
            return 1
    print(f"kubelet stand-in (no kubelet binary in this image) started with {len(argv)} flags: {' '.join(argv)}",
          flush=True)
    if given.get("register-node", "true") != "false" and "kubeconfig" in given:
        try:
            register(given)
        except (OSError, ValueError) as error:
            log(f"cannot register: {error}")
    else:
        log("not registering (--register-node=false or no --kubeconfig)")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
