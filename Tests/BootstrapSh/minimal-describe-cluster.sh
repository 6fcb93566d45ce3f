#!/bin/bash
# The shortest form: the cluster name only; the endpoint, CA and service CIDR come from DescribeCluster.
/etc/eks/bootstrap.sh my-cluster
