#!/usr/bin/env bash
# The long chaos run: the demo workload on both sources while faults land at random (SIGKILL of
# run, replicate or apply; fast and immediate restarts of each source and of the target; OCI
# 503/429, slow answers and dropped connections; connections cut by a TCP proxy; the work
# directory full), then drain and a row-for-row comparison of every STG table with its source
# and of every BL table with a full reload. Prints faults by kind, recoveries, rows compared,
# lost (0) and duplicated (0). The test suite runs the same test for 75 s.
#
#   deploy/chaos.sh [--minutes N] [--seed S]      (default: 30 minutes, a random seed)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=30; seed=""
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=${2:?--minutes needs a number}; shift ;;
    --seed) seed=${2:?--seed needs a number}; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "chaos.sh: unknown argument $1 (--minutes N, --seed S)" >&2; exit 2 ;;
  esac
  shift
done
if ! [[ "$minutes" =~ ^[0-9]+$ ]] || [ "$minutes" -eq 0 ]; then echo "chaos.sh: --minutes must be a whole number above 0" >&2; exit 2; fi
deploy/install-deps.sh
# Whatever ends this script, no cluster the round started is left running.
trap deploy/tools/stop-test-clusters.sh EXIT
swift build --build-tests
export TRIBUTARY_CHAOS_SECONDS=$((minutes * 60))
[ -n "$seed" ] && export TRIBUTARY_CHAOS_SEED=$seed
swift test --skip-build --filter ChaosTests 2>&1 | grep -v '^\['

