#!/usr/bin/env bash
# Runs the whole test suite: shellcheck over deploy/'s scripts, unit tests (pure logic) and
# integration tests against real PostgreSQL 15 clusters that the tests start and stop themselves,
# then the checks of what deploy/ ships (systemd, Kubernetes, Airflow, the static release build).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh --test
# Whatever ends this script, no cluster a test started is left running.
trap deploy/tools/stop-test-clusters.sh EXIT
echo "== shellcheck deploy/" >&2
shellcheck --external-sources deploy/*.sh deploy/*/*.sh
swift build --build-tests
status=0
swift test --skip-build || status=$?
bash deploy/check-deploy.sh || status=1
exit $status
