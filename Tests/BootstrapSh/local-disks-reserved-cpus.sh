#!/usr/bin/env bash
# Instance store RAID0, static CPU manager with reserved CPUs, an outpost's local cluster.
set -euo pipefail
CLUSTER=outpost-cluster
/etc/eks/bootstrap.sh "$CLUSTER" \
  --b64-cluster-ca Q0VSVElGSUNBVEU= \
  --apiserver-endpoint https://10.0.4.7 \
  --enable-local-outpost true \
  --cluster-id 0a1b2c3d-4e5f-6789-abcd-ef0123456789 \
  --service-ipv4-cidr 10.100.0.0/16 \
  --local-disks raid0 \
  --kubelet-extra-args "--cpu-manager-policy=static --reserved-cpus=0-1 --kube-reserved=cpu=250m,memory=1Gi"
