#!/bin/bash
# User data of an AL2 node group, unchanged: a script that calls /etc/eks/bootstrap.sh with the cluster's name and
# the old flags. cloud-init runs it in its final stage; the image's /etc/eks/bootstrap.sh (compat/bootstrap.sh, when
# the image was built with it) turns the flags into a drop-in for nodeboot and runs nodeboot init. The config unit
# finds nothing for nodeboot in this user data and says so (cloud-init/README.md, "Legacy user data").
# (Deliberately free of the words nodeboot looks for to take a lone user data document as its own configuration.)
set -o xtrace
/etc/eks/bootstrap.sh my-cluster \
  --apiserver-endpoint https://example.com \
  --b64-cluster-ca Y2VydGlmaWNhdGVBdXRob3JpdHk= \
  --kubelet-extra-args '--node-labels=team=legacy'
