#!/bin/bash -xe
# Karpenter's AL2 EC2NodeClass user data: the labels quoted inside the single-quoted extra args.
/etc/eks/bootstrap.sh 'my-cluster' --apiserver-endpoint 'https://0123456789ABCDEF0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com' --b64-cluster-ca 'Q0VSVElGSUNBVEU=' \
--container-runtime containerd \
--dns-cluster-ip '10.100.0.10' \
--use-max-pods false \
--kubelet-extra-args '--node-labels="karpenter.sh/capacity-type=on-demand,karpenter.sh/nodepool=default" --register-with-taints="dedicated=infra:NoSchedule" --max-pods=110'
