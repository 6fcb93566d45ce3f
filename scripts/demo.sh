#!/usr/bin/env bash
# make demo: the agent against the built-in simulated instance and cloud (the testbed).
# 1. discovery (nodeboot facts); 2. nodeboot init --register-node from IMDS user data into ./demo-node
# (cluster endpoint and CA from DescribeCluster; the Node created in the testbed's API server through
# the node's own kubeconfig and token helper), nodeboot status, run twice (the second changes
# nothing); 3. --dry-run of a modified config, showing the diff; 4. the token helper; 5. bad input
# and fault injection; 6. the same agent under a real systemd (when the test tree is cached); 7. a pod (a network
# namespace) gets a secondary address of the instance's primary ENI from nodeboot ipamd through nodeboot-cni (root).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(swift build --show-bin-path)
work=$(mktemp -d)
node=$PWD/demo-node
trap 'kill $tb_pid 2>/dev/null; wait $tb_pid 2>/dev/null; rm -rf "$work"' EXIT

# The example NodeConfig served as the instance's user data: a MIME document with a NodeConfig
# part (cluster, kubelet drop-in, flags, containerd TOML) and a shell-script part nodeboot ignores.
cat > "$work/user-data" <<'DATA'
MIME-Version: 1.0
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
    config:
      maxPods: 110
      shutdownGracePeriod: 45s
    flags:
      - --node-labels=team=demo
  containerd:
    config: |
      [plugins."io.containerd.grpc.v1.cri".containerd]
      discard_unpacked_layers = false
--BOUNDARY
Content-Type: text/x-shellscript

#!/bin/sh
echo "a user script: cloud-init runs it, nodeboot ignores it"
--BOUNDARY--
DATA
python3 - "$work" <<'PY'
import base64, json, sys
work = sys.argv[1]
instance = json.load(open("Sources/Testbed/Resources/aemm-default-config.json"))
instance["userdata"]["values"]["userdata"] = base64.b64encode(open(f"{work}/user-data", "rb").read()).decode()
json.dump({"instance": instance}, open(f"{work}/testbed.json", "w"))
PY

echo "== starting the testbed: a simulated EC2 instance (IMDSv2, the example user data) and EC2/EKS/STS on loopback"
"$bin/nodeboot-testbed" serve --config "$work/testbed.json" > "$work/testbed.out" 2> "$work/testbed.log" &
tb_pid=$!
for _ in $(seq 100); do grep -q '^export AWS_ENDPOINT_URL=' "$work/testbed.out" 2>/dev/null && break; sleep 0.1; done
cat "$work/testbed.out"
# shellcheck disable=SC1090
source <(grep '^export ' "$work/testbed.out")
kube=$(sed -n 's/^kube: *//p' "$work/testbed.out")
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_REGION AWS_DEFAULT_REGION

echo
echo "== nodeboot facts: what the agent sees (credentials come from the instance role via IMDS)"
"$bin/nodeboot" facts

# What a machine image bakes in: version files, the ECR credential provider, (here) a 2-CPU sysfs.
rm -rf "$node"
mkdir -p "$node/etc/eks/image-credential-provider" "$node/sys/devices/system/cpu/cpu0" "$node/sys/devices/system/cpu/cpu1"
echo "Kubernetes v1.33.4-eks-1234567" > "$node/etc/eks/kubelet-version.txt"
echo "containerd github.com/containerd/containerd v1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da" > "$node/etc/eks/containerd-version.txt"
echo "0-1" > "$node/sys/devices/system/cpu/online"
touch "$node/etc/eks/image-credential-provider/ecr-credential-provider"

echo
echo "== nodeboot init --register-node --root ./demo-node   (config from the IMDS user data; endpoint and CA from"
echo "   DescribeCluster; under --root this machine's services are not touched; the Node is created in the API server)"
"$bin/nodeboot" init --register-node --root "$node"

echo
echo "== nodeboot status --root ./demo-node   (/run/nodeboot/status.json, for a person)"
"$bin/nodeboot" status --root "$node"

echo
echo "== the Node in the testbed's API server, read with the node's own token and CA"
python3 - "$bin/nodeboot" "$node" "$kube" <<'PY'
import json, ssl, subprocess, sys, urllib.request
nodeboot, node, kube = sys.argv[1:]
token = json.loads(subprocess.check_output([nodeboot, "token", "--cluster-name", "my-cluster"]))["status"]["token"]
context = ssl.create_default_context(cafile=f"{node}/etc/kubernetes/pki/ca.crt")
request = urllib.request.Request(f"{kube}/api/v1/nodes", headers={"Authorization": f"Bearer {token}"})
for item in json.load(urllib.request.urlopen(request, context=context))["items"]:
    print(f"  {item['metadata']['name']}  providerID={item['spec']['providerID']}")
    for key, value in sorted(item["metadata"]["labels"].items()):
        print(f"    {key}={value}")
    print("    addresses: " + ", ".join(f"{a['type']}={a['address']}" for a in item["status"]["addresses"]))
    print(f"    capacity: {item['status']['capacity']}")
PY

echo
echo "== the files written (mode, size, path)"
(cd "$node" && find etc var -type f -newer etc/eks/kubelet-version.txt -printf '%m %6s /%p\n' | sort -k3)

echo
echo "== /etc/kubernetes/kubelet/config.json (excerpt): maxPods and kubeReserved from m4.xlarge, 2 CPUs"
grep -E '"(maxPods|cpu|memory|providerID)"' "$node/etc/kubernetes/kubelet/config.json"
echo "== the user's kubelet config, as a drop-in (config.json.d/40-nodeadm.conf)"
cat "$node/etc/kubernetes/kubelet/config.json.d/40-nodeadm.conf"; echo
echo "== /var/lib/kubelet/kubeconfig (users section): the exec plugin is nodeboot's token helper"
sed -n '/^users:/,$p' "$node/var/lib/kubelet/kubeconfig"
echo "== /etc/eks/kubelet/environment"
cat "$node/etc/eks/kubelet/environment"; echo

echo
echo "== second run, same inputs: nothing is written (every file unchanged), the Node is left as it is"
"$bin/nodeboot" init --register-node --root "$node" | grep -E 'apply|register' | head -n 4

echo
echo "== --dry-run of a modified config (maxPodsExpression, a nameserver): the diff, nothing written"
cat > "$work/extra.yaml" <<'YAML'
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  kubelet:
    maxPodsExpression: "max_pods < 30 ? max_pods : 30"
  instance:
    network:
      nameservers: [10.0.0.2]
YAML
"$bin/nodeboot" init --skip run --root "$node" -c imds://user-data -c "file://$work/extra.yaml" --dry-run | sed -n '/^updated\|^created/,$p'

echo
echo "== the token helper, as the kubelet runs it: an ExecCredential with a k8s-aws-v1 token (instance role from IMDS)"
"$bin/nodeboot" token --cluster-name my-cluster --region us-west-2 | cut -c1-150
echo "   ... (the same binary answers as /usr/local/bin/aws-iam-authenticator: $(readlink "$node/usr/local/bin/aws-iam-authenticator"))"

echo
echo "== bad input: a typo and a bad CIDR are reported with their place and a fix; exit 2, nothing written"
cat > "$work/bad.yaml" <<'YAML'
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  clustr:
    name: my-cluster
  cluster:
    cidr: 10.100.0.0/33
YAML
set +e
"$bin/nodeboot" init --skip run --root "$node" -c "file://$work/bad.yaml"
echo "exit status: $?"
set -e

echo
echo "== fault injection: the metadata service never answers; the agent gives up within --imds-timeout"
curl -s -X PUT "$AWS_ENDPOINT_URL/_testbed/faults" -d '[{"endpoint":"imds","blackhole":true}]' >/dev/null
set +e
"$bin/nodeboot" facts --imds-timeout 3
echo "exit status: $?"
set -e

echo
if [ "$(id -u)" = 0 ] && [ -f /var/cache/nodeboot/bookworm-systemd/etc/nodeboot-test-tree.recipe ] && command -v systemd-nspawn >/dev/null; then
    echo "== the same agent under a real systemd 252 (systemd-nspawn, the cached bookworm tree): containerd really"
    echo "   started with the written config, the kubelet unit started, the Node registered, a repair run that changes"
    echo "   nothing, the shipped boot units (nodeboot-run.service pulling in nodeboot-config.service), and a broken"
    echo "   containerd config reported with its journal lines"
    python3 scripts/systemd-test.py --bin-dir "$bin" | grep -E '^(ok|FAIL|      note)|passed' | sed -n '8,60p'
else
    echo "== (the real-systemd scenario runs in make test: scripts/systemd-test.py builds its tree once, as root)"
fi
echo
echo "== a pod gets its VPC address (nodeboot ipamd + nodeboot-cni through go-cni, as containerd runs them; root only)"
python3 scripts/cni-harness.py --bin-dir "$bin" --demo
echo
echo "demo done: the node's files are in ./demo-node (nodeboot status --root ./demo-node shows the last run)."
