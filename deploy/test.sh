#!/usr/bin/env bash
# Runs the whole test suite: unit tests (pure logic) and integration tests against real
# PostgreSQL 15 clusters that the tests start and stop themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
swift build --build-tests
status=0
swift test --skip-build || status=$?
# What deploy/ ships for production: the systemd unit, the Kubernetes manifests, the Airflow DAGs,
# the static release build.
bash deploy/check-deploy.sh || status=1
# A crashed test process cannot stop its clusters: stop any it left behind.
for pidfile in /tmp/tributary-tests-*/*/data/postmaster.pid; do
  [ -e "$pidfile" ] || continue
  kill -0 "$(head -1 "$pidfile")" 2>/dev/null || continue  # a stale file of a cluster long gone
  deploy/pg-cluster.sh stop "$(dirname "$(dirname "$pidfile")")" || true
done
exit $status
