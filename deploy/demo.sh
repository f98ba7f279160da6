#!/usr/bin/env bash
# The main job end to end on the embedded default: three local PostgreSQL clusters (QVP, SVP and
# Uni PACC), demo data, then tributary check → snapshot → apply --once → verify, then CDC under
# tributary run with a workload, status, pause/resume, drain at switchover and verify, with the
# local filesystem as the staging store (the OCI layer) and local directories as the buckets whose
# object files the object sync copies (.tributary/buckets/qvp-docs, svp-files → unipacc).
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

stop_all() { for c in qvp svp unipacc; do deploy/tools/pg-cluster.sh stop "$demo/$c" 2>/dev/null || true; done; }
if [ "${1:-}" = "stop" ]; then stop_all; echo "demo clusters stopped"; exit 0; fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "installing what is missing"
deploy/install-deps.sh

step "building tributary"
# Its output is kept aside and shown when the build fails: the demo never runs a stale binary.
build_log=$(mktemp)
if ! swift build --product tributary >"$build_log" 2>&1; then
  grep -E "error|warning: " "$build_log" >&2 || tail -20 "$build_log" >&2
  rm -f "$build_log"
  echo "demo: the build failed" >&2
  exit 1
fi
rm -f "$build_log"
tributary=$(swift build --show-bin-path)/tributary

step "starting clusters qvp:$QVP_PORT svp:$SVP_PORT unipacc:$UNIPACC_PORT in $demo"
stop_all
rm -rf "$demo" .tributary/staging .tributary/work .tributary/buckets
deploy/tools/pg-cluster.sh init "$demo/qvp" "$QVP_PORT" --logical
deploy/tools/pg-cluster.sh init "$demo/svp" "$SVP_PORT" --logical
deploy/tools/pg-cluster.sh init "$demo/unipacc" "$UNIPACC_PORT"

step "loading demo data (scale $scale)"
psql_on() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres "$@"; }
psql_on -p "$QVP_PORT" -d postgres -c "CREATE DATABASE qvp"
psql_on -p "$SVP_PORT" -d postgres -c "CREATE DATABASE svp"
psql_on -p "$UNIPACC_PORT" -d postgres -c "CREATE DATABASE unipacc"
psql_on -p "$QVP_PORT" -d qvp -f deploy/demo/qvp-schema.sql
psql_on -p "$QVP_PORT" -d qvp -v scale="$scale" -o /dev/null -f deploy/demo/qvp-data.sql
psql_on -p "$SVP_PORT" -d svp -f deploy/demo/svp-schema.sql
psql_on -p "$SVP_PORT" -d svp -v scale="$scale" -o /dev/null -f deploy/demo/svp-data.sql

step "object files: the documents' and attachments' files in the QVP and SVP buckets (local directories)"
# Named as the rows name them: QVP documents.object_key 'qvp-docs/<n>/scan_<i>.pdf' is object
# '<n>/scan_<i>.pdf' in bucket qvp-docs; SVP attachments.bucket_object 'svp-files/<contract>/<seq>'.
make_files() { # bucket directory, then keys on stdin (the bucket's name first)
  local bucket=$1 keys
  keys=$(cat)
  sed -E 's|^[^/]*/||; s|/[^/]*$||' <<<"$keys" | sort -u | (cd "$(mkdir -p "$bucket" && echo "$bucket")" && xargs mkdir -p)
  while read -r key; do printf 'demo file %s\n' "$key" >"$bucket/${key#*/}"; done <<<"$keys"
}
psql_on -p "$QVP_PORT" -d qvp -At -c "SELECT object_key FROM documents" | make_files .tributary/buckets/qvp-docs
psql_on -p "$SVP_PORT" -d svp -At -c "SELECT bucket_object FROM svp.attachments" | make_files .tributary/buckets/svp-files
echo "$(find .tributary/buckets/qvp-docs -type f | wc -l) files in qvp-docs, $(find .tributary/buckets/svp-files -type f | wc -l) in svp-files"

step "tributary check"
"$tributary" check --config slots
step "tributary snapshot"
"$tributary" snapshot --config slots
step "tributary apply --once"
"$tributary" apply --once --config slots
step "tributary sync-objects: new and changed files of each source bucket into the Uni PACC bucket"
"$tributary" sync-objects --config slots
step "tributary transform: the Uni PACC model (BL) from STG, each model in dependency order"
"$tributary" transform --config slots
bl_counts() {
  psql_on -p "$UNIPACC_PORT" -d unipacc -c "SELECT 'party' AS bl_table, count(*) FROM bl.party UNION ALL SELECT 'insured_asset', count(*) FROM bl.insured_asset
    UNION ALL SELECT 'contract', count(*) FROM bl.contract UNION ALL SELECT 'claim', count(*) FROM bl.claim
    UNION ALL SELECT 'document', count(*) FROM bl.document UNION ALL SELECT 'service_visit', count(*) FROM bl.service_visit"
}
bl_counts
psql_on -p "$UNIPACC_PORT" -d unipacc -c "SELECT contract_id, source_system, source_id, party_id, status, annual_premium, coverages FROM bl.contract ORDER BY contract_id LIMIT 4"
step "BL documents point at their files in the Uni PACC bucket"
psql_on -p "$UNIPACC_PORT" -d unipacc -At -F ' ' -c "(SELECT source_system, name, object_key FROM bl.document WHERE source_system = 'qvp' LIMIT 2)
  UNION ALL (SELECT source_system, name, object_key FROM bl.document WHERE source_system = 'svp' LIMIT 2)" |
  while read -r system name key; do printf '%s %-14s %-36s %s\n' "$system" "$name" "$key" "$(cat ".tributary/buckets/unipacc/$key")"; done
step "tributary verify: every source table against its STG table, the key indicators (STG and BL), the files"
"$tributary" verify --config slots

step "tributary run: a replicator per source, the applier and the BL models, in one supervised process"
"$tributary" run --config slots --log-level warning --metrics-port "${METRICS_PORT:-9187}" & run_pid=$!
trap 'kill "$run_pid" 2>/dev/null || true' EXIT
echo "the status page, while run runs: http://127.0.0.1:${METRICS_PORT:-9187}/"
sleep 3
step "a workload on both sources while the pipeline runs"
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
# New and replaced files; run's object sync copies them on its next pass (sync.interval).
mkdir -p .tributary/buckets/qvp-docs/new
for i in 1 2 3; do printf 'a new scan %s\n' "$i" >.tributary/buckets/qvp-docs/new/scan_$i.pdf; done
echo "replaced" >"$(find .tributary/buckets/svp-files -type f | head -1)"
sleep 3
step "tributary status: lag at a glance, sources, BL models and object files"
"$tributary" status --config slots
step "BL rows arrived under the workload (the lapsed policies, the ended SVP contracts)"
psql_on -p "$UNIPACC_PORT" -d unipacc -c "SELECT source_system, status, count(*) FROM bl.contract GROUP BY 1, 2 ORDER BY 1, 2"
step "tributary pause svp: its slot is released and retains WAL; qvp goes on"
"$tributary" pause --config slots svp
sleep 1  # the replicator finishes the batch in hand and releases the slot within a second
psql_on -p "$SVP_PORT" -d svp -c "UPDATE svp.incidents SET severity = 2 WHERE incident_id % 50 = 0" -o /dev/null
sleep 1
"$tributary" status --config slots
step "tributary resume svp"
"$tributary" resume --config slots svp
step "tributary verify while run goes on: each source compared at one point, its STG held there meanwhile"
# run copies the new and replaced files on its next object pass (sync.interval); one pass now, so
# the verify meets them in place (exit 99: nothing left to copy).
"$tributary" sync-objects --config slots --log-level warning || [ $? -eq 99 ]
"$tributary" verify --config slots
step "metrics (Prometheus text, a few lines)"
curl -sf "http://127.0.0.1:${METRICS_PORT:-9187}/metrics" | grep -E '^tributary_(source_lag_bytes|lag_seconds|batches_applied_total)' || true

step "switchover: sources read-only, then tributary drain (a last object pass, sequences carried over, then it verifies)"
psql_on -p "$QVP_PORT" -d postgres -c "ALTER DATABASE qvp SET default_transaction_read_only = on"
psql_on -p "$SVP_PORT" -d postgres -c "ALTER DATABASE svp SET default_transaction_read_only = on"
"$tributary" drain --config slots --timeout 300 --require-read-only --log-level notice --report .tributary/cutover
step "the go/no-go report (.tributary/cutover.md; .tributary/cutover.json for tools)"
cat .tributary/cutover.md
kill -TERM "$run_pid"; wait "$run_pid" 2>/dev/null || true; trap - EXIT
psql_on -p "$UNIPACC_PORT" -d unipacc -c "SELECT source, state, drain_lsn, applied_lsn, applied_commit_time, (SELECT count(*) FROM tributary.applied_batches b WHERE b.source = s.source) AS batches FROM tributary.sources s ORDER BY source"

step "tributary verify, after the drain: tables, key indicators, files"
"$tributary" verify --config slots
step "tributary gc --dry-run: what retention would remove from the staging store (staging.retention, 7 days by default)"
"$tributary" gc --dry-run --config slots --log-level warning
step "the BL tables equal a full reload of their models"
"$tributary" transform --config slots --check
bl_counts
# The demo sources stay usable afterwards.
psql_on -p "$QVP_PORT" -d postgres -c "ALTER DATABASE qvp RESET default_transaction_read_only"
psql_on -p "$SVP_PORT" -d postgres -c "ALTER DATABASE svp RESET default_transaction_read_only"

cat <<DONE

The demo clusters keep running. Look around:
  PGPASSWORD=$PGPASSWORD psql -h 127.0.0.1 -p $UNIPACC_PORT -U postgres unipacc -c '\\dt stg.*'
  ls $root/.tributary/staging/*/snapshot/*
  find $root/.tributary/buckets/unipacc -type f | head
Stop them with: deploy/demo.sh stop
DONE
