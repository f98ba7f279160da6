#!/usr/bin/env bash
# Benchmark: breadth, as a real migration has it. Two sources with BENCH_TABLES tables each (sizes
# from ten rows to BENCH_MAX_ROWS, a few wide, a few partitioned, keys of int, bigint, uuid, text
# and two columns, one in ten with no primary key but a unique key as replica identity) and
# BENCH_MODELS generated BL models over them; then a workload of BENCH_RATE transactions/s, each
# touching 1-5 random tables, under `tributary run`. Prints, as a table:
#   - `check` time;
#   - snapshot + apply (`snapshot --apply` of both sources) against `pgcopydb clone` of both, in
#     the same run, and the same spread over 3 processes (`snapshot --group K/3 --apply`) against one;
#   - commit → STG and commit → BL p50/p99 under the workload (probe rows, 10/s, stamped by
#     triggers on the target as they arrive);
#   - staged objects and bytes per hour, target statements per applied batch (pg_stat_statements);
#   - `status` and `status --json` time, `verify` time against `count(*)` over every table, `drain`
#     time, and the peak RSS of `tributary run`.
# Exits non-zero when a goal of issue #31 is missed (the figures decide, not a timing).
# Environment: BENCH_TABLES (per source, default 300), BENCH_MODELS (default 60), BENCH_RATE
# (default 500), BENCH_SECONDS (workload, default 120), BENCH_MAX_ROWS (default 1000000), BENCH_KEEP
# (set: the clusters are left running at the end, to look into a figure).
set -euo pipefail
cd "$(dirname "$0")/../.."
tables=${BENCH_TABLES:-300}; models=${BENCH_MODELS:-60}; rate=${BENCH_RATE:-500}; seconds=${BENCH_SECONDS:-120}
max_rows=${BENCH_MAX_ROWS:-1000000}
if [ "$tables" -lt 10 ] || [ $(( (models + 1) / 2 )) -gt "$tables" ]; then echo "BENCH_TABLES ≥ 10 and BENCH_MODELS ≤ 2 × BENCH_TABLES" >&2; exit 2; fi
work=${TMPDIR:-/tmp}/tributary-breadth-$(id -u)
export PGPASSWORD=tributary PATH=/usr/lib/postgresql/15/bin:$PATH
ports=(55701 55702); target_port=55703; metrics_port=9701
source deploy/bench/bench-lib.sh

deploy/install-deps.sh --bench
tributary=$(build_tributary)

pids=()
at_exit=
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$at_exit" ] && [ -n "${BENCH_KEEP:-}" ]; then echo "clusters left running in $work (ports ${ports[*]} $target_port)" >&2; return; fi
  for cluster in qvp svp target; do deploy/tools/pg-cluster.sh stop "$work/$cluster" 2>/dev/null || true; done
}
trap 'at_exit=1; cleanup' EXIT
cleanup; rm -rf "$work"; mkdir -p "$work/slots/bl"
deploy/tools/pg-cluster.sh init "$work/qvp" "${ports[0]}" --logical
deploy/tools/pg-cluster.sh init "$work/svp" "${ports[1]}" --logical
deploy/tools/pg-cluster.sh init "$work/target" $target_port --set shared_preload_libraries=pg_stat_statements
on() { local port=$1 db=$2; shift 2; psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

# One table per number: its key type by number % 5, wide every 50th, partitioned every 75th, a
# unique key instead of a primary key every 10th. Sizes: one of BENCH_MAX_ROWS, four of a tenth,
# 25 of 10,000, the rest 10 to 1,000.
echo "generating $tables tables on each source" >&2
for index in 0 1; do
  db=$([ "$index" = 0 ] && echo qvp || echo svp)
  on "${ports[$index]}" postgres -c "CREATE DATABASE $db"
  on "${ports[$index]}" "$db" <<SQL
DO \$\$
DECLARE
  key_types text[] := ARRAY['integer', 'bigint', 'uuid', 'text', 'pair'];
  kind text; columns text; key text; rows integer; wide text := '';
BEGIN
  FOR i IN 1..$tables LOOP
    kind := key_types[i % 5 + 1];
    IF i % 75 = 11 THEN kind := 'integer'; END IF;
    rows := CASE WHEN i = 1 THEN $max_rows WHEN i <= 5 THEN $max_rows / 10 WHEN i <= 30 THEN 10000 ELSE 10 + (i * 7919) % 990 END;
    columns := CASE kind WHEN 'pair' THEN 'a integer NOT NULL, b integer NOT NULL' ELSE 'id ' || kind || ' NOT NULL' END;
    key := CASE kind WHEN 'pair' THEN 'a, b' ELSE 'id' END;
    wide := CASE WHEN i % 50 = 7 THEN ', ' || (SELECT string_agg(format('w%s %s', c, (ARRAY['numeric(12,2)', 'timestamptz', 'jsonb', 'text', 'double precision'])[c % 5 + 1]), ', ')
                                             FROM generate_series(1, 26) c) ELSE '' END;
    EXECUTE format('CREATE TABLE t_%s (%s, row_no integer NOT NULL, n integer NOT NULL, note text, at timestamptz NOT NULL DEFAULT now()%s%s)%s',
                   i, columns, wide, CASE WHEN i % 10 = 3 THEN '' ELSE format(', PRIMARY KEY (%s)', key) END,
                   CASE WHEN i % 75 = 11 THEN ' PARTITION BY RANGE (id)' ELSE '' END);
    IF i % 75 = 11 THEN
      FOR p IN 0..3 LOOP
        EXECUTE format('CREATE TABLE t_%s_p%s PARTITION OF t_%s FOR VALUES FROM (%s) TO (%s)', i, p, i, p * (rows / 4 + 1), (p + 1) * (rows / 4 + 1));
      END LOOP;
    END IF;
    IF i % 10 = 3 THEN
      EXECUTE format('CREATE UNIQUE INDEX t_%s_key ON t_%s (%s)', i, i, key);
      EXECUTE format('ALTER TABLE t_%s REPLICA IDENTITY USING INDEX t_%s_key', i, i);
    END IF;
    EXECUTE format('CREATE INDEX t_%s_row_no ON t_%s (row_no)', i, i);
    EXECUTE format('INSERT INTO t_%s SELECT %s, g, g, md5(g::text), now()%s FROM generate_series(1, %s) g', i,
                   CASE kind WHEN 'pair' THEN 'g / 100, g % 100' WHEN 'uuid' THEN 'md5(g::text)::uuid' WHEN 'text' THEN '''k'' || g'
                             ELSE 'g' END,
                   CASE WHEN i % 50 = 7 THEN ', ' || (SELECT string_agg(CASE c % 5 WHEN 0 THEN 'g * 1.5' WHEN 1 THEN 'now()' WHEN 2 THEN 'jsonb_build_object(''g'', g)'
                                                                WHEN 3 THEN 'repeat(md5(g::text), 4)' ELSE 'g / 7.0' END, ', ' ORDER BY c)
                                             FROM generate_series(1, 26) c) ELSE '' END, rows);
  END LOOP;
END \$\$;
CREATE TABLE probe (id bigserial PRIMARY KEY, committed_at timestamptz NOT NULL);
ANALYZE;
SQL
done
key_of() { case $(( $1 % 5 )) in 4) echo "a::text || '/' || b::text" ;; *) echo "id::text" ;; esac; }

# The configuration: both sources, every table; models over the first tables of each.
cat >"$work/slots/tributary.yaml" <<YAML
target:
  connection: "host=127.0.0.1 port=$target_port dbname=unipacc user=postgres password=\${PGPASSWORD}"
staging: $work/staging
work_dir: $work/work
YAML
for index in 0 1; do
  db=$([ "$index" = 0 ] && echo qvp || echo svp)
  { echo "source: $db"
    echo "connection: \"host=127.0.0.1 port=${ports[$index]} dbname=$db user=postgres password=\${PGPASSWORD}\""
    echo "slot: tributary_$db"; echo "publication: tributary_$db"; echo "create_publication: true"; echo "tables:"
    for i in $(seq 1 "$tables"); do echo "  - name: public.t_$i"; done
    echo "  - name: public.probe"; } >"$work/slots/$db.yaml"
done
for m in $(seq 1 "$models"); do
  db=$([ $((m % 2)) = 1 ] && echo qvp || echo svp); i=$(( (m + 1) / 2 ))
  printf 'key: [source_id]\ninputs:\n  - table: stg.%s_t_%s\n    keys: ["%s"]\n' "$db" "$i" "$(key_of "$i")" >"$work/slots/bl/m_$m.yaml"
  printf "SELECT %s AS source_id, n, note, at FROM stg.%s_t_%s WHERE NOT _deleted\n" "$(key_of "$i")" "$db" "$i" >"$work/slots/bl/m_$m.sql"
done
printf 'key: [id]\ninputs:\n  - table: stg.qvp_probe\n    keys: ["id"]\n' >"$work/slots/bl/probe.yaml"
echo "SELECT id, committed_at FROM stg.qvp_probe WHERE NOT _deleted" >"$work/slots/bl/probe.sql"

echo "tributary check" >&2
on $target_port postgres -c "CREATE DATABASE unipacc"
start=$(now); "$tributary" check --config "$work/slots" --log-level warning >"$work/check.out"; check_seconds=$(since "$start")

echo "pgcopydb clone of both sources" >&2
start=$(now)
for index in 0 1; do
  db=$([ "$index" = 0 ] && echo qvp || echo svp)
  on $target_port postgres -c "CREATE DATABASE pgcopydb_$db"
  pgcopydb clone --source "postgresql://postgres:$PGPASSWORD@127.0.0.1:${ports[$index]}/$db" \
    --target "postgresql://postgres:$PGPASSWORD@127.0.0.1:$target_port/pgcopydb_$db" --table-jobs 2 --index-jobs 2 \
    --dir "$work/pgcopydb-$db" --no-owner >"$work/pgcopydb-$db.log" 2>&1 || { tail -20 "$work/pgcopydb-$db.log" >&2; exit 1; }
done
pgcopydb_seconds=$(since "$start")
for db in qvp svp; do on $target_port postgres -c "DROP DATABASE pgcopydb_$db"; done

echo "tributary snapshot --apply of both sources, then the first run of the models" >&2
start=$(now); "$tributary" snapshot --apply --config "$work/slots" --log-level warning >"$work/snapshot.out"; snapshot_seconds=$(since "$start")

# The same bulk spread over 3 processes (`snapshot --group K/3 --apply`, each a work directory of
# its own as on separate machines) into a second target database, under slots of their own;
# verified against the sources (still idle), then dropped.
echo "tributary snapshot --group K/3 --apply in 3 processes at once, into a second target database" >&2
on $target_port postgres -c "CREATE DATABASE unipacc_spread"
for k in 1 2 3; do
  mkdir -p "$work/slots-spread-$k"
  sed -e "s|dbname=unipacc |dbname=unipacc_spread |; s|^staging: .*|staging: $work/staging-spread|; s|^work_dir: .*|work_dir: $work/work-spread-$k|" \
    "$work/slots/tributary.yaml" >"$work/slots-spread-$k/tributary.yaml"
  for db in qvp svp; do sed "s|^slot: .*|slot: tributary_spread_$db|" "$work/slots/$db.yaml" >"$work/slots-spread-$k/$db.yaml"; done
done
start=$(now); spread_pids=()
for k in 1 2 3; do
  "$tributary" snapshot --group "$k/3" --apply --config "$work/slots-spread-$k" --log-level warning >"$work/spread-$k.out" 2>&1 & spread_pids+=("$!")
done
spread_failed=0
for pid in "${spread_pids[@]}"; do wait "$pid" || spread_failed=1; done
spread_seconds=$(since "$start")
[ $spread_failed = 0 ] || { cat "$work"/spread-*.out >&2; echo "a spread process failed" >&2; exit 1; }
spread_identical=yes
"$tributary" verify --no-hold --config "$work/slots-spread-1" --log-level warning >"$work/verify-spread.out" 2>&1 || spread_identical=no
for db in qvp svp; do
  on "${ports[$([ $db = qvp ] && echo 0 || echo 1)]}" postgres -Atc "SELECT pg_drop_replication_slot('tributary_spread_$db')" >/dev/null
done
on $target_port postgres -c "DROP DATABASE unipacc_spread"
rm -rf "$work/staging-spread" "$work"/work-spread-*

start=$(now); "$tributary" transform --config "$work/slots" --log-level warning >/dev/null; transform_seconds=$(since "$start")
on $target_port unipacc <<'SQL'
CREATE EXTENSION pg_stat_statements;
CREATE TABLE probe_seen (layer text, id bigint, seen_at timestamptz NOT NULL, PRIMARY KEY (layer, id));
CREATE FUNCTION record_seen() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO probe_seen VALUES (TG_ARGV[0], NEW.id, clock_timestamp()) ON CONFLICT DO NOTHING; RETURN NULL; END $$;
CREATE TRIGGER record_seen AFTER INSERT ON stg.qvp_probe FOR EACH ROW EXECUTE FUNCTION record_seen('stg');
CREATE TRIGGER record_seen AFTER INSERT ON bl.probe FOR EACH ROW EXECUTE FUNCTION record_seen('bl');
SQL

echo "workload: $rate transactions/s for $seconds s over both sources under tributary run" >&2
"$tributary" run --config "$work/slots" --log-level warning --metrics-port $metrics_port 2>"$work/run.log" & run_pid=$!
pids+=("$run_pid")
sleep 5
{
  printf '\\set k random(1, 5)\nBEGIN;\n'
  for step in 1 2 3 4 5; do
    printf '\\set t%s random(1, %s)\n\\set r%s random(1, 10)\n\\if :k >= %s\nUPDATE t_:t%s SET n = n + 1, at = now() WHERE row_no = :r%s;\n\\endif\n' \
      "$step" "$tables" "$step" "$step" "$step" "$step"
  done
  printf 'END;\n'
} >"$work/workload.pgbench"
echo "INSERT INTO probe (committed_at) VALUES (clock_timestamp());" >"$work/probe.pgbench"
objects_before=$(find "$work/staging" -type f | wc -l); bytes_before=$(du -sb "$work/staging" | cut -f1)
on $target_port unipacc -c "SELECT pg_stat_statements_reset()" -o /dev/null
batches_before=$(on $target_port unipacc -Atc "SELECT count(*) FROM tributary.applied_batches")
apply_transactions() { # the target transactions that applied batches (a backlog merges several in one), from run's metrics
  python3 -c '
import sys, urllib.request
text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1]).read().decode()
print(int(sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith("tributary_apply_transactions_total{"))))' $metrics_port
}
transactions_before=$(apply_transactions)
load=()
for index in 0 1; do
  db=$([ "$index" = 0 ] && echo qvp || echo svp)
  pgbench -n -M simple -c 4 -j 2 -R $((rate / 2)) -T "$seconds" -h 127.0.0.1 -p "${ports[$index]}" -U postgres -f "$work/workload.pgbench" "$db" \
    >"$work/workload-$db.out" 2>&1 & load+=("$!")
done
pgbench -n -f "$work/probe.pgbench" -R 10 -T "$seconds" -c 1 -h 127.0.0.1 -p "${ports[0]}" -U postgres qvp >/dev/null 2>&1
for pid in "${load[@]}"; do wait "$pid" || true; done
# STG catches up on what the workload left staged before status and verify are timed: verify
# compares at a point, and waiting for STG to reach it would time the applier, not the verify.
ends=()
for index in 0 1; do ends+=("$(on "${ports[$index]}" postgres -Atc "SELECT pg_current_wal_lsn()")"); done
start=$(now)
until "$tributary" status --json --config "$work/slots" 2>/dev/null | python3 -c '
import json, sys
lsn = lambda text: int(text.split("/")[0], 16) << 32 | int(text.split("/")[1], 16)
ends = dict(zip(["qvp", "svp"], sys.argv[1:]))
sources = json.load(sys.stdin)["sources"]
sys.exit(0 if all(s.get("applied_lsn") and lsn(s["applied_lsn"]) >= lsn(ends[s["source"]]) for s in sources) else 1)' "${ends[@]}"; do
  if [ "$(echo "$(since "$start") > 900" | bc)" = 1 ]; then echo "STG did not catch up within 15 minutes of the workload's end" >&2; exit 1; fi
  sleep 0.5
done
catchup_seconds=$(since "$start")
done_tps=$(cat "$work"/workload-*.out | awk '/^tps/ { sum += $3 } END { printf "%.0f", sum }')
objects_per_hour=$(( ($(find "$work/staging" -type f | wc -l) - objects_before) * 3600 / seconds ))
mib_per_hour=$(echo "($(du -sb "$work/staging" | cut -f1) - $bytes_before) * 3600 / $seconds / 1048576" | bc)
batches=$(( $(on $target_port unipacc -Atc "SELECT count(*) FROM tributary.applied_batches") - batches_before ))
statements=$(on $target_port unipacc -Atc "SELECT sum(calls) FROM pg_stat_statements")
transactions=$(( $(apply_transactions) - transactions_before ))
latency() { # layer: p50 p99 count
  on $target_port unipacc -Atc "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY l)::numeric, 3), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY l)::numeric, 3), count(*)
    FROM (SELECT extract(epoch FROM s.seen_at - p.committed_at) AS l FROM probe_seen s JOIN stg.qvp_probe p USING (id) WHERE s.layer = '$1') x" | tr '|' ' '
}
read -r stg_p50 stg_p99 stg_probes < <(latency stg)
read -r bl_p50 bl_p99 bl_probes < <(latency bl)

echo "status, verify, count(*)" >&2
start=$(now); "$tributary" status --config "$work/slots" >/dev/null; status_seconds=$(since "$start")
start=$(now); "$tributary" status --json --config "$work/slots" >/dev/null; status_json_seconds=$(since "$start")
rss_mib=$(( $(awk '/^VmHWM/ { print $2 }' "/proc/$run_pid/status") / 1024 ))
start=$(now)
for index in 0 1; do
  db=$([ "$index" = 0 ] && echo qvp || echo svp)
  for i in $(seq 1 "$tables"); do echo "SELECT count(*) FROM t_$i;"; done | on "${ports[$index]}" "$db" -o /dev/null
done
count_seconds=$(since "$start")
start=$(now); verified=yes; "$tributary" verify --config "$work/slots" --log-level warning >"$work/verify.out" 2>&1 || verified=no
verify_seconds=$(since "$start")
echo "drain" >&2
for index in 0 1; do
  db=$([ "$index" = 0 ] && echo qvp || echo svp)
  on "${ports[$index]}" postgres -c "ALTER DATABASE $db SET default_transaction_read_only = on"
done
start=$(now); drained=yes; "$tributary" drain --config "$work/slots" --timeout 600 --log-level warning >"$work/drain.out" 2>&1 || drained=no
drain_seconds=$(since "$start")

goal() { # met?, text
  if [ "$1" = 1 ]; then echo "met"; else echo "MISSED ($2)"; fi
}
ratio() { printf '%.2f' "$(echo "scale=4; $1 / $2" | bc)"; }
snapshot_ratio=$(ratio "$snapshot_seconds" "$pgcopydb_seconds"); verify_ratio=$(ratio "$verify_seconds" "$count_seconds")
{
printf '\nbreadth: 2 sources x %s tables (largest %s rows), %s models; workload %s tx/s asked, %s done, for %s s\n' \
  "$tables" "$max_rows" "$models" "$rate" "$done_tps" "$seconds"
printf '%-44s %12s  %s\n' "figure" "value" "goal"
printf '%-44s %12.2f  %s\n' "check (s)" "$check_seconds" "$(goal "$(echo "$check_seconds <= 15" | bc)" "<= 15 s")"
printf '%-44s %12.1f\n' "pgcopydb clone of both (s)" "$pgcopydb_seconds"
printf '%-44s %12.1f  %s\n' "snapshot --apply of both (s)" "$snapshot_seconds" \
  "${snapshot_ratio}x pgcopydb: $(goal "$(echo "$snapshot_ratio <= 1.0" | bc)" "<= 1.0x")"
spread_ratio=$(ratio "$spread_seconds" "$snapshot_seconds")
printf '%-44s %12.1f  %s\n' "the same in 3 processes at once (s)" "$spread_seconds" \
  "${spread_ratio}x one process: $(goal "$(echo "$spread_ratio <= 1.0" | bc)" "<= 1.0x")"
printf '%-44s %12s  %s\n' "3 processes' result identical" "$spread_identical" "$(goal "$([ $spread_identical = yes ] && echo 1 || echo 0)" "identical")"
printf '%-44s %12.1f\n' "first run of the models (s)" "$transform_seconds"
printf '%-44s %12s  %s\n' "commit -> STG p50 / p99 (s, $stg_probes probes)" "$stg_p50 / $stg_p99" "$(goal "$(echo "$stg_p99 <= 1" | bc)" "p99 <= 1 s")"
printf '%-44s %12s  %s\n' "commit -> BL p50 / p99 (s, $bl_probes probes)" "$bl_p50 / $bl_p99" "$(goal "$(echo "$bl_p99 <= 2" | bc)" "p99 <= 2 s")"
printf '%-44s %12.1f\n' "STG caught up after the workload's end (s)" "$catchup_seconds"
printf '%-44s %12s\n' "staged objects per hour" "$objects_per_hour"
printf '%-44s %12s\n' "staged MiB per hour" "$mib_per_hour"
printf '%-44s %12s\n' "target statements per applied batch" "$(( batches > 0 ? statements / batches : 0 )) ($statements over $batches)"
printf '%-44s %12s\n' "apply transactions (batches each)" "$transactions ($(ratio "$batches" "$(( transactions > 0 ? transactions : 1 ))"))"
printf '%-44s %12.2f  %s\n' "status (s)" "$status_seconds" "$(goal "$(echo "$status_seconds <= 1" | bc)" "<= 1 s")"
printf '%-44s %12.2f  %s\n' "status --json (s)" "$status_json_seconds" "$(goal "$(echo "$status_json_seconds <= 1" | bc)" "<= 1 s")"
printf '%-44s %12.2f\n' "count(*) over every source table (s)" "$count_seconds"
printf '%-44s %12.2f  %s\n' "verify (s)" "$verify_seconds" "${verify_ratio}x count(*): $(goal "$(echo "$verify_ratio <= 1.5" | bc)" "<= 1.5x")"
printf '%-44s %12s  %s\n' "verify identical" "$verified" "$(goal "$([ $verified = yes ] && echo 1 || echo 0)" "identical")"
printf '%-44s %12.1f  %s\n' "drain (s)" "$drain_seconds" "$(goal "$([ $drained = yes ] && echo 1 || echo 0)" "done")"
printf '%-44s %12s\n' "peak RSS of tributary run (MiB)" "$rss_mib"
} | tee "$work/figures"
! grep -q MISSED "$work/figures"
