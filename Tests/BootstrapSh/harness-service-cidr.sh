#!/bin/bash
# The AL2 test harness's DNS case: service CIDR 192.168.0.0/16 (DNS 192.168.0.10), no DescribeCluster.
/etc/eks/bootstrap.sh ipv4-cluster --b64-cluster-ca Q0VSVElGSUNBVEU= --apiserver-endpoint https://test-k8s.eks.amazonaws.com --service-ipv4-cidr 192.168.0.0/16
