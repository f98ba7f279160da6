#!/usr/bin/env bash
# Soak: the demo's pipeline (QVP and SVP into Uni PACC, its six BL models) under `tributary run`
# with a steady workload for N minutes, to show what grows over the weeks before a cutover. Every
# few minutes one line: lag, changes/s, tributary's RSS and open fds, the target's catalog
# (pg_class, pg_attribute, pg_type, pg_depend: size and dead tuples), STG and change-log sizes,
# control-table rows, staged objects and bytes, WAL the slots retain. At the end, the slope of
# each per hour; then the sources go read-only, `tributary drain` and `tributary verify`.
#
#   deploy/soak.sh [--minutes N] [--rate TX_PER_S] [--tables N] [--every MINUTES] [--retention DURATION]
#
#   --minutes    how long the workload runs (default 60)
#   --rate       transactions per second over both sources (default 200)
#   --tables     N more tables on each source beside the demo's, each workload transaction
#                touching 1-5 of them too (default 0)
#   --every      minutes between lines (default 5)
#   --retention  staging.retention (default 10m, so the store and the control state reach their
#                steady size within the soak; production keeps 7d)
#
# Exits non-zero when a goal of issue #31 is missed: at the end, the catalog's size and dead tuples,
# the RSS, the fds, the control rows and the staged objects at most 1.2x their value at minute 10
# (or half-time in a shorter soak); the lag never above 2 s (sampled every 10 s); the drain and the
# verify identical. The figures, not a timing, decide.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=60; rate=200; extra=0; every=5; retention=10m
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift ;;
    --rate) rate=$2; shift ;;
    --tables) extra=$2; shift ;;
    --every) every=$2; shift ;;
    --retention) retention=$2; shift ;;
    *) echo "soak.sh: unknown option $1 (see the head of the script)" >&2; exit 2 ;;
  esac
  shift
done
for number in "$minutes" "$rate" "$extra" "$every"; do
  [[ "$number" =~ ^[0-9]+$ ]] || { echo "soak.sh: $number is not a whole number" >&2; exit 2; }
done
if [ "$minutes" -lt 2 ] || [ "$every" -lt 1 ] || [ "$rate" -lt 2 ]; then echo "soak.sh: --minutes ≥ 2, --every ≥ 1, --rate ≥ 2" >&2; exit 2; fi

soak=${TMPDIR:-/tmp}/tributary-soak-$(id -u)
export QVP_PORT=55611 SVP_PORT=55612 UNIPACC_PORT=55613
export PGPASSWORD=${PGPASSWORD:-tributary} PATH=/usr/lib/postgresql/15/bin:$PATH
export QVP_PASSWORD=$PGPASSWORD SVP_PASSWORD=$PGPASSWORD UNIPACC_PASSWORD=$PGPASSWORD
metrics_port=9611

source deploy/bench/bench-lib.sh
deploy/install-deps.sh --bench
tributary=$(build_tributary)

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for c in qvp svp unipacc; do deploy/tools/pg-cluster.sh stop "$soak/$c" 2>/dev/null || true; done
}
trap cleanup EXIT
cleanup; rm -rf "$soak"; mkdir -p "$soak"
deploy/tools/pg-cluster.sh init "$soak/qvp" $QVP_PORT --logical
deploy/tools/pg-cluster.sh init "$soak/svp" $SVP_PORT --logical
deploy/tools/pg-cluster.sh init "$soak/unipacc" $UNIPACC_PORT
on() { local port=$1 db=$2; shift 2; psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"; }
value() { on "$@" -At; }
on $QVP_PORT postgres -c "CREATE DATABASE qvp"; on $SVP_PORT postgres -c "CREATE DATABASE svp"; on $UNIPACC_PORT postgres -c "CREATE DATABASE unipacc"
on $QVP_PORT qvp -f deploy/demo/qvp-schema.sql; on $QVP_PORT qvp -v scale=1 -o /dev/null -f deploy/demo/qvp-data.sql
on $SVP_PORT svp -f deploy/demo/svp-schema.sql; on $SVP_PORT svp -v scale=1 -o /dev/null -f deploy/demo/svp-data.sql

# The configuration: the demo's, with this soak's directories, retention and the extra tables.
cp -r slots "$soak/slots"
sed -i "s|\.\./\.tributary/|$soak/|g" "$soak"/slots/*.yaml
sed -i "s|^staging: .*|staging: {url: $soak/staging, retention: $retention, gc_interval: 1m}|" "$soak/slots/tributary.yaml"
mkdir -p "$soak/buckets/qvp-docs" "$soak/buckets/svp-files"
add_tables() { # port db yaml schema
  [ "$extra" -gt 0 ] || return 0
  on "$1" "$2" -c "DO \$\$ BEGIN FOR i IN 1..$extra LOOP
      EXECUTE format('CREATE TABLE $4.soak_%s (id bigint PRIMARY KEY, n integer NOT NULL, note text, at timestamptz NOT NULL DEFAULT now())', i);
      EXECUTE format('INSERT INTO $4.soak_%s (id, n, note) SELECT g, g, md5(g::text) FROM generate_series(1, 50 + %s * 7 %% 950) g', i, i);
    END LOOP; END \$\$"
  awk -v extra="$extra" -v schema="$4" '{ print } /^tables:/ { for (i = 1; i <= extra; i++) printf "  - name: %s.soak_%d\n", schema, i }' \
    "$3" >"$3.new" && mv "$3.new" "$3"
}
add_tables $QVP_PORT qvp "$soak/slots/qvp.yaml" public
add_tables $SVP_PORT svp "$soak/slots/svp.yaml" svp

echo "snapshot, load and the first BL run" >&2
"$tributary" snapshot --apply --config "$soak/slots" --log-level warning >"$soak/snapshot.out"
"$tributary" transform --config "$soak/slots" --log-level warning >/dev/null
"$tributary" run --config "$soak/slots" --log-level warning --metrics-port $metrics_port 2>"$soak/run.log" & run_pid=$!
pids+=("$run_pid")
sleep 3

# The workload: pgbench in simple-query mode (so a table's number can be part of its name), half
# the rate on each source. Each transaction changes a few demo rows and adds one, and touches 1-5
# of the extra tables.
extra_statements() { # schema
  [ "$extra" -gt 0 ] || return 0
  printf '\\set k random(1, 5)\n'
  for step in 1 2 3 4 5; do
    printf '\\set t%s random(1, %s)\n\\set r%s random(1, 50)\n\\if :k >= %s\nUPDATE %s.soak_:t%s SET n = n + 1, at = now() WHERE id = :r%s;\n\\endif\n' \
      "$step" "$extra" "$step" "$step" "$1" "$step" "$step"
  done
}
on $SVP_PORT svp -c "CREATE SEQUENCE soak_incident_ids START 100000000"
customers=$(value $QVP_PORT qvp -c "SELECT max(id) FROM customers"); policies=$(value $QVP_PORT qvp -c "SELECT max(id) FROM policies")
{
  printf '\\set c random(1, %s)\n\\set p random(1, %s)\nBEGIN;\n' "$customers" "$policies"
  printf "UPDATE customers SET email = 'soak' || :c || '.' || (random() * 1000)::int || '@example.com' WHERE id = :c;\n"
  printf "UPDATE policies SET issued_at = now() WHERE id = :p;\n"
  printf "INSERT INTO customers (first_name, last_name, email) VALUES ('Soak', 'Customer', 'soak@example.com');\n"
  extra_statements public
  printf 'END;\n'
} >"$soak/qvp.pgbench"
{
  printf 'BEGIN;\n'
  printf "UPDATE svp.contracts SET monthly_fee = monthly_fee + 1 WHERE contract_id = (SELECT contract_id FROM svp.contracts TABLESAMPLE SYSTEM (1) LIMIT 1);\n"
  printf "INSERT INTO svp.incidents SELECT nextval('soak_incident_ids'), contract_id, now(), 10, 1, 'soak', NULL FROM svp.contracts LIMIT 1;\n"
  extra_statements svp
  printf 'END;\n'
} >"$soak/svp.pgbench"
seconds=$((minutes * 60))
for source in qvp svp; do
  port=$QVP_PORT; [ $source = svp ] && port=$SVP_PORT
  pgbench -n -M simple -c 2 -j 1 -R $((rate / 2)) -T "$seconds" -h 127.0.0.1 -p "$port" -U postgres -f "$soak/$source.pgbench" $source \
    >"$soak/$source.pgbench.out" 2>&1 & pids+=("$!")
done

# Figures. Control rows are counted exactly (query_to_xml runs the count per table).
catalog="('pg_class', 'pg_attribute', 'pg_type', 'pg_depend')"
sample_target() {
  value $UNIPACC_PORT unipacc -F ' ' -c "SELECT
      (SELECT sum(pg_total_relation_size(('pg_catalog.' || r)::regclass)) FROM unnest(ARRAY$(tr "()'" "[]'" <<<"$catalog")) r),
      (SELECT sum(n_dead_tup) FROM pg_stat_sys_tables WHERE schemaname = 'pg_catalog' AND relname IN $catalog),
      (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c WHERE c.relnamespace = 'stg'::regnamespace AND c.relkind = 'r'),
      (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c WHERE c.relnamespace = 'tributary_bl'::regnamespace
         AND c.relkind = 'r' AND c.relname LIKE '%\\_\\_changes'),
      (SELECT sum((xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM tributary.%I', tablename), false, true, '')))[1]::text::bigint)
         FROM pg_tables WHERE schemaname = 'tributary'),
      (SELECT coalesce(sum(rows), 0) FROM tributary.applied_batches WHERE applied_at > now() - interval '60 seconds')"
}
retained_wal() {
  local total=0 bytes
  for port in $QVP_PORT $SVP_PORT; do
    bytes=$(value "$port" postgres -c "SELECT coalesce(sum(pg_current_wal_lsn() - restart_lsn), 0)::bigint FROM pg_replication_slots")
    total=$((total + bytes))
  done
  echo $total
}
lag_now() { curl -sf "http://127.0.0.1:$metrics_port/metrics" | awk '/^tributary_lag_seconds/ { if ($NF > max) max = $NF } END { printf "%.2f", max + 0 }'; }

header="minute lag_s changes_per_s rss_mib fds catalog_mib catalog_dead stg_mib changelog_mib control_rows objects object_mib retained_wal_mib"
printf '%s\n' "$header" | tee "$soak/samples" >&2
: >"$soak/lag"  # every 10-s lag reading: seconds since the start, lag
max_lag=0; lag_over=0
sample() { # minute
  local catalog_bytes dead stg changelogs control recent rss fds objects bytes
  read -r catalog_bytes dead stg changelogs control recent <<<"$(sample_target)"
  rss=$(awk '/^VmRSS/ { print int($2 / 1024) }' "/proc/$run_pid/status")
  fds=$(find "/proc/$run_pid/fd" -mindepth 1 2>/dev/null | wc -l)
  # gc removes batches while these walk the store: a vanished file is not an error here.
  objects=$(find "$soak/staging" -type f 2>/dev/null | wc -l || true); bytes=$(du -sb "$soak/staging" 2>/dev/null | cut -f1 || true)
  printf '%s %s %.0f %s %s %.1f %s %.1f %.1f %s %s %.1f %.1f\n' "$1" "$(lag_now)" "$(echo "$recent / 60" | bc -l)" "$rss" "$fds" \
    "$(echo "$catalog_bytes / 1048576" | bc -l)" "$dead" "$(echo "$stg / 1048576" | bc -l)" "$(echo "$changelogs / 1048576" | bc -l)" \
    "$control" "$objects" "$(echo "$bytes / 1048576" | bc -l)" "$(echo "$(retained_wal) / 1048576" | bc -l)" | tee -a "$soak/samples" >&2
}
started=$(date +%s)
sample 0
next=$every
while [ $(( $(date +%s) - started )) -lt "$seconds" ]; do
  sleep 10
  kill -0 "$run_pid" 2>/dev/null || { echo "soak.sh: tributary run stopped; its log:" >&2; tail -20 "$soak/run.log" >&2; exit 1; }
  # Once the workload is over, the lag of an idle source grows until its next heartbeat: not lag.
  workload_running=no
  for pid in "${pids[@]:1}"; do if kill -0 "$pid" 2>/dev/null; then workload_running=yes; fi; done
  [ "$workload_running" = yes ] || break
  lag=$(lag_now)
  echo "$(( $(date +%s) - started )) $lag" >>"$soak/lag"
  if [ "$(echo "$lag > $max_lag" | bc)" = 1 ]; then max_lag=$lag; fi
  if [ "$(echo "$lag > 2" | bc)" = 1 ]; then lag_over=$((lag_over + 1)); fi
  elapsed=$(( ($(date +%s) - started) / 60 ))
  if [ "$elapsed" -ge "$next" ]; then sample "$next"; next=$((next + every)); fi
done
[ $((next - every)) -eq "$minutes" ] || sample "$minutes"
for pid in "${pids[@]:1}"; do wait "$pid" || true; done
tps=$(cat "$soak"/*.pgbench.out | awk '/^tps/ { sum += $3 } END { printf "%.0f", sum }')

# The slope of each figure per hour (least squares over every line), and the goals.
baseline=$(( minutes / 2 < 10 ? minutes / 2 : 10 ))
baseline=$(( baseline / every * every ))
echo >&2
awk -v baseline="$baseline" -v max_lag="$max_lag" -v over="$lag_over" -v tps="$tps" '
  NR == 1 { for (i = 1; i <= NF; i++) name[i] = $i; next }
  { n++; x[n] = $1; for (i = 2; i <= NF; i++) y[n, i] = $i; if ($1 == baseline) base = n; last = n }
  END {
    printf "soak: %d lines, %s transactions/s done; the lag peaked at %s s (%d samples of 10 s above 2 s)\n", n, tps, max_lag, over
    printf "%-18s %12s %12s %12s %14s\n", "figure", "minute " baseline, "end", "end/base", "slope per hour"
    split("rss_mib fds catalog_mib catalog_dead control_rows objects", goal, " ")
    for (g in goal) bounded[goal[g]] = 1
    missed = 0
    for (i = 2; i <= NF; i++) {
      sx = sy = sxx = sxy = 0
      for (k = 1; k <= n; k++) { sx += x[k]; sy += y[k, i]; sxx += x[k] * x[k]; sxy += x[k] * y[k, i] }
      slope = (n * sxx - sx * sx) > 0 ? (n * sxy - sx * sy) / (n * sxx - sx * sx) * 60 : 0
      ratio = y[base, i] > 0 ? y[last, i] / y[base, i] : 0
      mark = ""
      if (name[i] in bounded && y[base, i] > 0 && ratio > 1.2) { mark = "  MISSED (goal <= 1.2x)"; missed = 1 }
      printf "%-18s %12s %12s %11.2fx %14.1f%s\n", name[i], y[base, i], y[last, i], ratio, slope, mark
    }
    if (over > 0) { print "lag above 2 s: MISSED"; missed = 1 }
    exit missed
  }' "$soak/samples" >&2 && goals=met || goals=missed

echo "switchover: sources read-only, drain, verify" >&2
on $QVP_PORT postgres -c "ALTER DATABASE qvp SET default_transaction_read_only = on"
on $SVP_PORT postgres -c "ALTER DATABASE svp SET default_transaction_read_only = on"
drained=yes; "$tributary" drain --config "$soak/slots" --timeout 600 --log-level warning >"$soak/drain.out" 2>&1 || drained=no
tail -3 "$soak/drain.out" >&2
verified=yes; "$tributary" verify --config "$soak/slots" --log-level warning >"$soak/verify.out" 2>&1 || verified=no
tail -1 "$soak/verify.out" >&2
echo "goals: $goals; drain ${drained/yes/done}; verify ${verified/yes/identical}" >&2
[ "$goals" = met ] && [ "$drained" = yes ] && [ "$verified" = yes ]
