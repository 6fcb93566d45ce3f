#!/bin/bash
# Self-managed nodes (the AWS documentation's launch template example): values in variables.
set -ex
B64_CLUSTER_CA=Q0VSVElGSUNBVEU=
API_SERVER_URL=https://0123456789ABCDEF0123456789ABCDEF.yl4.us-west-2.eks.amazonaws.com
K8S_CLUSTER_DNS_IP=172.20.0.10
/etc/eks/bootstrap.sh my-cluster --kubelet-extra-args '--node-labels=eks.amazonaws.com/nodegroup-image=ami-0abcdef1234567890,eks.amazonaws.com/capacityType=ON_DEMAND,eks.amazonaws.com/nodegroup=workers' --b64-cluster-ca $B64_CLUSTER_CA --apiserver-endpoint $API_SERVER_URL --dns-cluster-ip $K8S_CLUSTER_DNS_IP --use-max-pods false
