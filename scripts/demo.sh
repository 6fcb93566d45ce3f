#!/usr/bin/env bash
# make demo: the agent against the built-in simulated instance and cloud (the testbed).
# What it shows today (issue 2): discovery. `nodeboot init` (config, render, apply, services,
# registration) joins the demo as those issues land.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(swift build --show-bin-path)
work=$(mktemp -d)
trap 'kill $tb_pid 2>/dev/null; wait $tb_pid 2>/dev/null; rm -rf "$work"' EXIT

echo "== starting the testbed: a simulated EC2 instance (IMDSv2) and EC2/EKS/STS on loopback"
"$bin/nodeboot-testbed" serve > "$work/testbed.out" 2> "$work/testbed.log" &
tb_pid=$!
for _ in $(seq 100); do grep -q '^export AWS_ENDPOINT_URL=' "$work/testbed.out" 2>/dev/null && break; sleep 0.1; done
cat "$work/testbed.out"
# shellcheck disable=SC1090
source <(grep '^export ' "$work/testbed.out")
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_REGION AWS_DEFAULT_REGION

echo
echo "== nodeboot facts: what the agent sees (credentials come from the instance role via IMDS)"
"$bin/nodeboot" facts

echo
echo "== the same as JSON (first lines)"
"$bin/nodeboot" facts --output json | head -n 12

echo
echo "== fault injection: EC2 throttles the first 3 DescribeInstances calls; the agent retries with backoff"
curl -s -X PUT "$AWS_ENDPOINT_URL/_testbed/faults" \
  -d '[{"endpoint":"ec2","action":"DescribeInstances","throttle":true,"count":3}]' >/dev/null
"$bin/nodeboot" facts | grep -E 'private dns name|discovered in'
echo "testbed log of those calls:"
grep -E 'DescribeInstances' "$work/testbed.log" | tail -n 4

echo
echo "== fault injection: the metadata service never answers; the agent gives up within --imds-timeout"
curl -s -X PUT "$AWS_ENDPOINT_URL/_testbed/faults" -d '[{"endpoint":"imds","blackhole":true}]' >/dev/null
set +e
"$bin/nodeboot" facts --imds-timeout 3
echo "exit status: $?"
set -e
echo
echo "demo done. Not shown yet: nodeboot init (issues 3-5)."
