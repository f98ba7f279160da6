#!/usr/bin/env bash
# Checks what deploy/ ships for production, with tools from Debian and PyPI only (installed here;
# the PyPI ones in a venv made once and reused):
#   systemd      systemd-analyze verify on the unit, and systemd-analyze security's score (OK or better)
#   Kubernetes   kubectl kustomize of the demo overlay, validated against Kubernetes' schemas
#                (PyPI kubernetes-validate, strict)
#   Airflow      the generated DAGs imported with Airflow 3's DagBag (PyPI apache-airflow): no import
#                error, the DAG ids and task order for slots/, the parse time
#   release      swift build -c release --static-swift-stdlib: the libraries the binary needs are only
#                libpq, libcurl, ISA-L, OpenSSL and the C/C++ runtime
# Environment: TRIBUTARY_CHECK_VENV (default /var/tmp/tributary-check-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh --deploy
venv=${TRIBUTARY_CHECK_VENV:-/var/tmp/tributary-check-venv}
if ! "$venv/bin/python" -c "import airflow, kubernetes_validate" 2>/dev/null; then
  echo "check-deploy: installing apache-airflow 3 and kubernetes-validate from PyPI into $venv (once)" >&2
  rm -rf "$venv"; python3 -m venv "$venv"
  "$venv/bin/pip" install -q "apache-airflow>=3,<4" kubernetes-validate
fi
scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT
failed=0
fail() { echo "FAIL  $*" >&2; failed=1; }

echo "== release build (static Swift runtime)" >&2
swift build -c release --static-swift-stdlib --product tributary --scratch-path .build-static >/dev/null
binary=$(swift build -c release --static-swift-stdlib --show-bin-path --scratch-path .build-static)/tributary
needed=$(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
echo "ok    release: $binary needs: $needed"
for library in $needed; do
  case "$library" in
    libpq.so.*|libcurl.so.*|libisal.so.*|libssl.so.*|libcrypto.so.*|libc.so.*|libm.so.*|libstdc++.so.*|libgcc_s.so.*|ld-linux*|libz.so.*) ;;
    *) fail "release: the static binary needs $library, which the README does not name" ;;
  esac
done
"$binary" --version >/dev/null || fail "release: the static binary does not run"

echo "== systemd unit" >&2
sed "s|/usr/local/bin/tributary|$binary|" deploy/systemd/tributary.service >"$scratch/tributary.service"
systemd-analyze verify "$scratch/tributary.service" || fail "systemd: systemd-analyze verify"
exposure=$(systemd-analyze security --offline=true "$scratch/tributary.service" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \(.*\)/\1/p')
echo "ok    systemd: systemd-analyze security: exposure $exposure"
case "$exposure" in *OK*|*SAFE*) ;; *) fail "systemd: exposure '$exposure' is worse than OK" ;; esac

echo "== Kubernetes manifests" >&2
kubectl kustomize --load-restrictor LoadRestrictionsNone deploy/k8s/overlays/demo >"$scratch/k8s.yaml"
"$venv/bin/kubernetes-validate" --strict --quiet "$scratch/k8s.yaml" || fail "k8s: kubernetes-validate"
echo "ok    k8s: $(grep -c '^kind:' "$scratch/k8s.yaml") resources valid ($(grep '^kind:' "$scratch/k8s.yaml" | sed 's/kind: //' | sort | tr '\n' ' '))"

echo "== Airflow DAGs" >&2
if AIRFLOW_HOME="$scratch/airflow" "$venv/bin/python" deploy/airflow/check_dags.py >"$scratch/airflow.out" 2>&1; then
  grep -E '^airflow DagBag' "$scratch/airflow.out" | sed 's/^/ok    /'
else
  grep -E '^(FAIL|airflow DagBag|Traceback|[A-Za-z]*Error)' "$scratch/airflow.out" >&2 || tail -20 "$scratch/airflow.out" >&2
  fail "airflow: the generated DAGs"
fi

exit $failed
