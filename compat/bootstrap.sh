#!/bin/sh
# /etc/eks/bootstrap.sh for nodeboot images: AL2's bootstrap script, kept so that AL2-era user data
# (`/etc/eks/bootstrap.sh my-cluster --b64-cluster-ca … --apiserver-endpoint … --kubelet-extra-args '…'`)
# keeps working. nodeboot translates the flags into a NodeConfig in /etc/eks/nodeadm.d/ and runs
# `nodeboot init`; the table of flags and every difference is in nodeboot's docs/compat.md.
#   /etc/eks/bootstrap.sh --help        the flags
#   /etc/eks/bootstrap.sh --dry-run …   print the NodeConfig and the init command, change nothing
exec nodeboot bootstrap-sh "$@"
