#!/usr/bin/env bash
# The main job end to end on the embedded default: three local PostgreSQL clusters (QVP, SVP and
# Uni PACC), demo data, then tributary check → snapshot → apply --once → verify, with the local
# filesystem as the staging store (the OCI layer).
#
#   deploy/demo.sh            run it (again: starts over from fresh clusters)
#   deploy/demo.sh stop       stop the demo clusters
#
# Environment: DEMO_SCALE (default 1), QVP_PORT/SVP_PORT/UNIPACC_PORT (54321/54322/54323).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
demo=${TMPDIR:-/tmp}/tributary-demo-$(id -u)
export QVP_PORT=${QVP_PORT:-54321} SVP_PORT=${SVP_PORT:-54322} UNIPACC_PORT=${UNIPACC_PORT:-54323}
export PGPASSWORD=${PGPASSWORD:-tributary}
# The slots/ files read passwords from the environment, never from the files themselves.
export QVP_PASSWORD=$PGPASSWORD SVP_PASSWORD=$PGPASSWORD UNIPACC_PASSWORD=$PGPASSWORD
scale=${DEMO_SCALE:-1}

stop_all() { for c in qvp svp unipacc; do deploy/pg-cluster.sh stop "$demo/$c" 2>/dev/null || true; done; }
if [ "${1:-}" = "stop" ]; then stop_all; echo "demo clusters stopped"; exit 0; fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "installing what is missing"
deploy/install-deps.sh

step "building tributary"
swift build --product tributary 2>&1 | grep -E "error|warning: |Compiling|Build complete" | grep -v "^\[" || true
tributary=$(swift build --show-bin-path)/tributary

step "starting clusters qvp:$QVP_PORT svp:$SVP_PORT unipacc:$UNIPACC_PORT in $demo"
stop_all
rm -rf "$demo" .tributary/staging .tributary/work
deploy/pg-cluster.sh init "$demo/qvp" "$QVP_PORT" --logical
deploy/pg-cluster.sh init "$demo/svp" "$SVP_PORT" --logical
deploy/pg-cluster.sh init "$demo/unipacc" "$UNIPACC_PORT"

step "loading demo data (scale $scale)"
psql_on() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres "$@"; }
psql_on -p "$QVP_PORT" -d postgres -c "CREATE DATABASE qvp"
psql_on -p "$SVP_PORT" -d postgres -c "CREATE DATABASE svp"
psql_on -p "$UNIPACC_PORT" -d postgres -c "CREATE DATABASE unipacc"
psql_on -p "$QVP_PORT" -d qvp -f deploy/demo/qvp-schema.sql
psql_on -p "$QVP_PORT" -d qvp -v scale="$scale" -o /dev/null -f deploy/demo/qvp-data.sql
psql_on -p "$SVP_PORT" -d svp -f deploy/demo/svp-schema.sql
psql_on -p "$SVP_PORT" -d svp -v scale="$scale" -o /dev/null -f deploy/demo/svp-data.sql

step "tributary check"
"$tributary" check --config slots
step "tributary snapshot"
"$tributary" snapshot --config slots
step "tributary apply --once"
"$tributary" apply --once --config slots
step "tributary verify: every source table against its STG table"
"$tributary" verify --config slots

cat <<DONE

The demo clusters keep running. Look around:
  PGPASSWORD=$PGPASSWORD psql -h 127.0.0.1 -p $UNIPACC_PORT -U postgres unipacc -c '\\dt stg.*'
  ls $root/.tributary/staging/*/snapshot/*
Stop them with: deploy/demo.sh stop
DONE
