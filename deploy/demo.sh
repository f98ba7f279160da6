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

step "continuous CDC: a workload on both sources while replicate and apply run"
pids=()
"$tributary" replicate --source qvp --config slots --log-level warning & pids+=($!)
"$tributary" replicate --source svp --config slots --log-level warning & pids+=($!)
"$tributary" apply --config slots & pids+=($!)
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
psql_on -p "$QVP_PORT" -d qvp <<'SQL'
UPDATE customers SET email = 'renamed+' || id || '@example.com' WHERE id % 10 = 0;
UPDATE policies SET status = 'lapsed' WHERE id % 7 = 0;
DELETE FROM policy_coverages WHERE coverage_code = 'GLASS' AND policy_id % 4 = 0;
INSERT INTO customers (first_name, last_name, email) SELECT 'New', 'Customer ' || i, 'new' || i || '@example.com' FROM generate_series(1, 500) i;
UPDATE claims SET adjuster_notes = 'reviewed' WHERE id % 40 = 0;  -- leaves the large descriptions untouched
SQL
psql_on -p "$SVP_PORT" -d svp <<'SQL'
UPDATE svp.contracts SET state = 'ENDED', ends_on = current_date WHERE starts_on < date '2018-06-01';
UPDATE svp.attachments SET seq = seq + 10 WHERE seq = 2 AND size_bytes % 3 = 0;  -- key changes
DELETE FROM svp.service_visits WHERE visited_on < date '2019-03-01';
INSERT INTO svp.incidents SELECT 990000 + row_number() OVER (), contract_id, now(), 100, 1, 'new incident', NULL FROM svp.contracts LIMIT 300;
SQL
applied_up_to() {
  local end
  end=$(psql_on -p "$2" -d "$1" -Atc "SELECT pg_current_wal_insert_lsn()")
  until [ "$(psql_on -p "$UNIPACC_PORT" -d unipacc -Atc "SELECT coalesce(applied_lsn >= '$end', false) FROM tributary.sources WHERE source = '$1'")" = t ]; do sleep 0.2; done
}
applied_up_to qvp "$QVP_PORT"; applied_up_to svp "$SVP_PORT"
kill -TERM "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true; trap - EXIT
psql_on -p "$UNIPACC_PORT" -d unipacc -c "SELECT source, applied_lsn, applied_commit_time, (SELECT count(*) FROM tributary.applied_batches b WHERE b.source = s.source) AS batches FROM tributary.sources s ORDER BY source"

step "tributary verify, after CDC"
"$tributary" verify --config slots

cat <<DONE

The demo clusters keep running. Look around:
  PGPASSWORD=$PGPASSWORD psql -h 127.0.0.1 -p $UNIPACC_PORT -U postgres unipacc -c '\\dt stg.*'
  ls $root/.tributary/staging/*/snapshot/*
Stop them with: deploy/demo.sh stop
DONE
