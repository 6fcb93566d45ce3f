#!/bin/bash
set -ex
/etc/eks/bootstrap.sh my-cluster --kubelet-extra-args '--max-pods=20'
