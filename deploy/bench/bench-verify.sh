#!/usr/bin/env bash
# The cutover gate under load: the demo's QVP and SVP take a pgbench write load of BENCH_RATE
# transactions a second each (default 200, so 400 in all) touching most of their tables, while
# `tributary run` replicates them and `tributary verify` runs BENCH_RUNS times in a row (default
# 10), each comparing every source at one point with its STG held there. Then the same with one
# STG row changed by hand, one deleted and one extra (customers below 1000, which the load never
# writes): every run must report that table, with a key range around the row, and no other.
# Prints a table: per run the result, the tables differing, and per source the time STG was
# held and what was staged past the point meanwhile. Exit 1 when a run reports what it must not.
set -euo pipefail
cd "$(dirname "$0")/../.."
rate=${BENCH_RATE:-200}; runs=${BENCH_RUNS:-10}
work=${TMPDIR:-/tmp}/tributary-bench-verify-$(id -u)
export QVP_PORT=55541 SVP_PORT=55542 UNIPACC_PORT=55543 PGPASSWORD=tributary PATH=/usr/lib/postgresql/15/bin:$PATH
export QVP_PASSWORD=$PGPASSWORD SVP_PASSWORD=$PGPASSWORD UNIPACC_PASSWORD=$PGPASSWORD
# shellcheck source=deploy/bench/bench-lib.sh
. deploy/bench/bench-lib.sh

deploy/install-deps.sh --bench
tributary=${TRIBUTARY_BIN:-$(build_tributary)}
stop_all() { for c in qvp svp unipacc; do deploy/tools/pg-cluster.sh stop "$work/$c" 2>/dev/null || true; done; }
run_pid=""
cleanup() { [ -n "$run_pid" ] && kill "$run_pid" 2>/dev/null; stop_all; }
trap cleanup EXIT
stop_all
rm -rf "$work"; mkdir -p "$work"
deploy/tools/pg-cluster.sh init "$work/qvp" "$QVP_PORT" --logical
deploy/tools/pg-cluster.sh init "$work/svp" "$SVP_PORT" --logical
deploy/tools/pg-cluster.sh init "$work/unipacc" "$UNIPACC_PORT"
psql_on() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres "$@"; }
psql_on -p "$QVP_PORT" -d postgres -c "CREATE DATABASE qvp"
psql_on -p "$SVP_PORT" -d postgres -c "CREATE DATABASE svp"
psql_on -p "$UNIPACC_PORT" -d postgres -c "CREATE DATABASE unipacc"
for source in qvp svp; do
  port=$QVP_PORT; [ "$source" = svp ] && port=$SVP_PORT
  psql_on -p "$port" -d "$source" -f "deploy/demo/$source-schema.sql"
  psql_on -p "$port" -d "$source" -v scale=1 -o /dev/null -f "deploy/demo/$source-data.sql"
done
# The demo's configuration, its staging and work directories in the bench's own.
mkdir -p "$work/slots"
cp -r slots/bl slots/qvp.yaml slots/svp.yaml "$work/slots/"
sed -e "s|^staging: .*|staging: $work/staging|" -e "s|^work_dir: .*|work_dir: $work/work|" slots/tributary.yaml >"$work/slots/tributary.yaml"
sed -i '/^objects:/,/^[a-z]/{/^objects:/d;/^  /d}' "$work/slots/qvp.yaml" "$work/slots/svp.yaml"
sed -i '/^sync:/,/^[a-z]/{/^sync:/d;/^  /d}' "$work/slots/tributary.yaml"
"$tributary" snapshot --apply --config "$work/slots" --log-level warning >/dev/null
"$tributary" transform --config "$work/slots" --log-level warning >/dev/null

# pgbench scripts: a transaction touches one table, rows picked at random (customers from 1000).
cat >"$work/qvp.pgbench" <<'SQL'
\set customer random(1000, 2000)
\set policy random(1, 3000)
\set kind random(1, 6)
\if :kind = 1
UPDATE customers SET email = 'load' || random() || '@example.com' WHERE id = :customer;
\elif :kind = 2
UPDATE vehicles SET mileage_km = mileage_km + 10 WHERE vin = (SELECT vin FROM vehicles WHERE customer_id = :customer LIMIT 1);
\elif :kind = 3
UPDATE policies SET issued_at = now() WHERE id = :policy AND customer_id >= 1000;
\elif :kind = 4
UPDATE policy_coverages SET deductible = deductible + 1 WHERE policy_id = :policy AND coverage_code = 'LIAB';
\elif :kind = 5
INSERT INTO claims (policy_id, reported_at, amount, description) VALUES (:policy, now(), 100, 'load');
\else
UPDATE documents SET uploaded_at = now() WHERE id = (SELECT id FROM documents WHERE policy_id = :policy LIMIT 1);
\endif
SQL
cat >"$work/svp.pgbench" <<'SQL'
\set asset random(1, 1500)
\set kind random(1, 5)
\if :kind = 1
UPDATE svp.clients SET mobile = 'load ' || random() WHERE client_no = (SELECT client_no FROM svp.assets WHERE asset_id = :asset);
\elif :kind = 2
UPDATE svp.assets SET odometer = odometer + 1 WHERE asset_id = :asset;
\elif :kind = 3
UPDATE svp.contracts SET monthly_fee = monthly_fee + 1 WHERE contract_id = (SELECT contract_id FROM svp.contracts WHERE asset_id = :asset LIMIT 1);
\elif :kind = 4
INSERT INTO svp.incidents (incident_id, contract_id, occurred, cost_estimate, report)
  SELECT 900000000 + (random() * 99999999)::bigint, contract_id, now(), 10, 'load' FROM svp.contracts WHERE asset_id = :asset LIMIT 1
  ON CONFLICT DO NOTHING;
\else
INSERT INTO svp.service_visits (asset_id, visited_on, notes) VALUES (:asset, current_date, 'load');
\endif
SQL

"$tributary" run --config "$work/slots" --log-level warning >"$work/run.log" 2>&1 & run_pid=$!
sleep 5
load_seconds=100000
commits_on() { psql_on -p "$1" -d "$2" -Atc "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"; }
load_start=$(date +%s)
qvp_commits=$(commits_on "$QVP_PORT" qvp); svp_commits=$(commits_on "$SVP_PORT" svp)
pgbench -n -h 127.0.0.1 -p "$QVP_PORT" -U postgres -c 2 -j 2 -R "$rate" -T "$load_seconds" -f "$work/qvp.pgbench" qvp >"$work/qvp-load.log" 2>&1 &
qvp_load=$!
pgbench -n -h 127.0.0.1 -p "$SVP_PORT" -U postgres -c 2 -j 2 -R "$rate" -T "$load_seconds" -f "$work/svp.pgbench" svp >"$work/svp-load.log" 2>&1 &
svp_load=$!
sleep 10

failed=0
printf '\nverify under pgbench -R %s on each source (%s tx/s in all), %s runs a case\n' "$rate" "$((rate * 2))" "$runs"
printf '%-10s %4s %-8s %-44s %-22s %s\n' case run result "differing (table: ranges)" "qvp held/staged past" "svp held/staged past"
# A run's JSON: "<ok|WRONG>|<differing tables and ranges>|<qvp held/staged> <svp held/staged>"; right
# when nothing differs (expected "none"), or only public.customers, in one range around the key.
judge() {
  python3 -c '
import json, re, sys
expected = sys.argv[1]
d = json.load(sys.stdin)
bad = [t for t in d["tables"] if not t["match"]]
def around(text, key):
    numbers = [int(n) for n in re.findall(r"-?\d+", text)]
    if "<=" in text and " < " in text: return numbers[0] <= key < numbers[1]
    if ">=" in text: return key >= numbers[0]
    if "<" in text: return key < numbers[0]
    return text == "all keys"
if expected == "none":
    right = not bad
else:
    right = len(bad) == 1 and bad[0]["table"] == "public.customers" and len(bad[0]["differing_ranges"]) == 1 \
        and around(bad[0]["differing_ranges"][0], int(expected))
differing = "; ".join(t["table"] + ": " + ", ".join(t["differing_ranges"]) for t in bad) or "none"
points = " ".join("%.1fs/%dKB" % (p.get("held_seconds") or 0, (p.get("lag_bytes") or 0) // 1024) for p in d["points"])
print(("ok" if right else "WRONG") + "|" + differing + "|" + points)
' "$1"
}
verify_runs() { # case expected-key-or-none
  local label=$1 expected=$2 run output verdict result differing points qvp_point svp_point
  for run in $(seq 1 "$runs"); do
    output=$("$tributary" verify --config "$work/slots" --json --log-level warning 2>>"$work/verify.log" || true)
    verdict=$(judge "$expected" <<<"$output" || echo "WRONG|no JSON|")
    IFS='|' read -r result differing points <<<"$verdict"
    read -r qvp_point svp_point <<<"$points"
    [ "$result" = ok ] || failed=1
    printf '%-10s %4s %-8s %-44s %-22s %s\n' "$label" "$run" "$result" "${differing:0:44}" "${qvp_point:-}" "${svp_point:-}"
  done
}
on_target() { psql_on -p "$UNIPACC_PORT" -d unipacc "$@"; }
# The saved row goes through a psql variable, quoted by psql (a name like O'Brien is in the data).
restore() {
  on_target -v id="$1" -v row="$2" <<'SQL'
DELETE FROM stg.qvp_customers WHERE id = :id;
INSERT INTO stg.qvp_customers SELECT (jsonb_populate_record(NULL::stg.qvp_customers, :'row'::jsonb)).*;
SQL
}
verify_runs identical none
saved505=$(on_target -Atc "SELECT to_jsonb(c) FROM stg.qvp_customers c WHERE id = 505")
saved606=$(on_target -Atc "SELECT to_jsonb(c) FROM stg.qvp_customers c WHERE id = 606")
on_target -c "UPDATE stg.qvp_customers SET first_name = 'tampered' WHERE id = 505"
verify_runs changed 505
restore 505 "$saved505"
on_target -c "DELETE FROM stg.qvp_customers WHERE id = 606"
verify_runs missing 606
restore 606 "$saved606"
on_target -c "INSERT INTO stg.qvp_customers SELECT (jsonb_populate_record(c, '{\"id\": 707070}')).* FROM stg.qvp_customers c WHERE id = 707"
verify_runs extra 707070
on_target -c "DELETE FROM stg.qvp_customers WHERE id = 707070"
verify_runs identical none

load_end=$(date +%s)
qvp_commits_end=$(commits_on "$QVP_PORT" qvp); svp_commits_end=$(commits_on "$SVP_PORT" svp)
kill "$qvp_load" "$svp_load" 2>/dev/null || true
wait "$qvp_load" "$svp_load" 2>/dev/null || true
# pgbench stopped by a signal prints no summary: the rate is the sources' own commit count.
printf '\nload: qvp %s tx/s, svp %s tx/s over %s s (pg_stat_database.xact_commit)\n' \
  "$(((qvp_commits_end - qvp_commits) / (load_end - load_start)))" "$(((svp_commits_end - svp_commits) / (load_end - load_start)))" \
  "$((load_end - load_start))"
[ "$failed" = 0 ] || { echo "goal missed: a verify reported what it must not (runs marked WRONG)" >&2; exit 1; }
