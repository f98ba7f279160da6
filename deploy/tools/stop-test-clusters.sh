#!/usr/bin/env bash
# Stops every throwaway cluster the tests started and left running (a crashed or killed test
# process cannot stop its own). Run at the exit of the test and chaos commands, whatever ended them.
# Clusters of a test process that still runs (another checkout's suite, say) are its own to stop.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
for pidfile in /tmp/tributary-tests-*/*/data/postmaster.pid; do
  [ -e "$pidfile" ] || continue
  kill -0 "$(head -1 "$pidfile")" 2>/dev/null || continue  # a stale file of a cluster long gone
  cluster=$(dirname "$(dirname "$pidfile")")
  root=$(dirname "$cluster")
  owner=${root##*/tributary-tests-}
  if [ -n "$owner" ] && [ -d "/proc/$owner" ] && grep -qa TributaryPackageTests "/proc/$owner/cmdline" 2>/dev/null; then continue; fi
  deploy/tools/pg-cluster.sh stop "$cluster" || echo "stop-test-clusters: could not stop $cluster" >&2
done
