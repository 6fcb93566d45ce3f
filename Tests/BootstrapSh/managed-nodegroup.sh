#!/bin/bash
# EKS managed node group with a custom AMI (launch template user data, the shell part).
set -ex
/etc/eks/bootstrap.sh my-cluster \
  --b64-cluster-ca 'Q0VSVElGSUNBVEU=' \
  --apiserver-endpoint 'https://0123456789ABCDEF0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com' \
  --dns-cluster-ip '10.100.0.10' \
  --kubelet-extra-args '--node-labels=eks.amazonaws.com/nodegroup-image=ami-0123456789abcdef0,eks.amazonaws.com/capacityType=ON_DEMAND,eks.amazonaws.com/nodegroup=ng-1 --max-pods=17' \
  --use-max-pods false
