#!/bin/bash
# An IPv6 cluster's nodes (eksctl-style): the family and the IPv6 service CIDR given.
set -o errexit
set -o pipefail
/etc/eks/bootstrap.sh ipv6-cluster --b64-cluster-ca Q0VSVElGSUNBVEU= --apiserver-endpoint https://ABCDEF.gr7.eu-west-1.eks.amazonaws.com --ip-family ipv6 --service-ipv6-cidr fd29:f02a:7c5f::/108
