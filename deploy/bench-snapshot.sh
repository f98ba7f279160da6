#!/usr/bin/env bash
# Benchmark: snapshot + load of a pgbench scale-20 database plus a wide 500k-row table of mixed
# types, three ways, on the same clusters in the same run:
#   1. psql pipe   COPY TO STDOUT | COPY FROM STDIN per table, schema and indexes via pg_dump sections
#   2. pgcopydb    pgcopydb clone (the closest peer)
#   3. tributary   tributary snapshot, then tributary apply --once (through gzip files in a staging dir)
#   4. tributary   tributary snapshot --apply: the same, loading parts while the snapshot runs
# Prints a table of wall times and ratios. Environment: BENCH_SCALE (pgbench scale, default 20),
# BENCH_WIDE_ROWS (default 500000), BENCH_JOBS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${BENCH_SCALE:-20}; wide_rows=${BENCH_WIDE_ROWS:-500000}; jobs=${BENCH_JOBS:-2}
work=${TMPDIR:-/tmp}/tributary-bench-$(id -u)
export PGPASSWORD=tributary PATH=/usr/lib/postgresql/15/bin:$PATH
source_port=55501; target_port=55502

deploy/install-deps.sh --bench
echo "building tributary (release)" >&2
swift build -c release --product tributary >/dev/null
tributary=$(swift build -c release --show-bin-path)/tributary

cleanup() { deploy/pg-cluster.sh stop "$work/source" || true; deploy/pg-cluster.sh stop "$work/target" || true; }
trap cleanup EXIT
cleanup; rm -rf "$work"; mkdir -p "$work"
deploy/pg-cluster.sh init "$work/source" $source_port --logical
deploy/pg-cluster.sh init "$work/target" $target_port
on_source() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $source_port -U postgres "$@"; }
on_target() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $target_port -U postgres "$@"; }
# Autovacuum would work on one method's fresh tables while the next method is timed; every method
# runs its own ANALYZE (pgcopydb and the pipe a VACUUM ANALYZE), so it is off for all of them.
for run in on_source on_target; do $run -d postgres -c "ALTER SYSTEM SET autovacuum = off" -c "SELECT pg_reload_conf()" -o /dev/null; done
source_uri="postgresql://postgres:$PGPASSWORD@127.0.0.1:$source_port/bench"
target_uri() { echo "postgresql://postgres:$PGPASSWORD@127.0.0.1:$target_port/$1"; }

echo "generating: pgbench scale $scale and wide ($wide_rows rows)" >&2
on_source -d postgres -c "CREATE DATABASE bench"
pgbench -q -i -s "$scale" -h 127.0.0.1 -p $source_port -U postgres bench >/dev/null 2>&1
on_source -d bench <<SQL
CREATE TABLE wide (
    id bigint PRIMARY KEY, small integer, big bigint, amount numeric(12,2), ratio double precision,
    label text, code varchar(64), happened timestamptz, day date, flag boolean, attributes jsonb,
    scores integer[], ref uuid, blob bytea, took interval, note text);
INSERT INTO wide
SELECT i, i % 1000, i::bigint * 7919, (i % 100000) / 100.0, i / 3.0,
       'label ' || md5(i::text), 'C' || lpad((i % 99999)::text, 8, '0'),
       '2020-01-01'::timestamptz + i * interval '17 seconds', date '2000-01-01' + i % 9000, i % 3 = 0,
       jsonb_build_object('k', i, 'tags', jsonb_build_array('a', i % 7), 'ok', i % 2 = 0),
       ARRAY[i % 10, i % 100, NULL], md5(i::text)::uuid, decode(md5(i::text), 'hex'),
       (i % 10000) * interval '1 second', CASE WHEN i % 5 = 0 THEN NULL ELSE repeat('x', i % 200) END
FROM generate_series(1, $wide_rows) i;
VACUUM ANALYZE;
SQL
size=$(on_source -d bench -Atc "SELECT pg_size_pretty(sum(pg_table_size(relid))) FROM pg_stat_user_tables")
rows=$(on_source -d bench -Atc "SELECT sum(n_live_tup) FROM pg_stat_user_tables")
tables="pgbench_accounts pgbench_branches pgbench_tellers pgbench_history wide"
now() { date +%s.%N; }
# Each method starts from a clean slate: no checkpoint owed for an earlier method's WAL.
settle() { on_source -d postgres -c "CHECKPOINT"; on_target -d postgres -c "CHECKPOINT"; sync; }

echo "1/3 psql COPY pipe" >&2
settle
on_target -d postgres -c "CREATE DATABASE pipe"
start=$(now)
pg_dump -h 127.0.0.1 -p $source_port -U postgres --section=pre-data bench | on_target -d pipe -o /dev/null
for table in $tables; do
  on_source -d bench -c "COPY $table TO STDOUT" | on_target -d pipe -c "COPY $table FROM STDIN"
done
pg_dump -h 127.0.0.1 -p $source_port -U postgres --section=post-data bench | on_target -d pipe -o /dev/null
on_target -d pipe -c "VACUUM ANALYZE"
pipe_seconds=$(echo "$(now) - $start" | bc)

echo "2/3 pgcopydb clone" >&2
settle
on_target -d postgres -c "CREATE DATABASE pgcopydb"
start=$(now)
pgcopydb clone --source "$source_uri" --target "$(target_uri pgcopydb)" --table-jobs "$jobs" --index-jobs "$jobs" \
  --dir "$work/pgcopydb" --no-owner >"$work/pgcopydb.log" 2>&1 || { tail -20 "$work/pgcopydb.log" >&2; exit 1; }
pgcopydb_seconds=$(echo "$(now) - $start" | bc)

echo "3/4 tributary snapshot, then apply --once" >&2
settle
on_target -d postgres -c "CREATE DATABASE tributary"
mkdir -p "$work/slots"
write_config() {
  cat >"$work/slots/tributary.yaml" <<YAML
target:
  connection: "$(target_uri "$1")"
staging: ../staging-$1
work_dir: ../work
snapshot:
  jobs: $jobs
YAML
}
write_config tributary
{
  echo "source: bench"; echo "connection: \"$source_uri\""; echo "tables:"
  for table in pgbench_accounts pgbench_branches pgbench_tellers wide; do echo "  - name: public.$table"; done
} >"$work/slots/bench.yaml"
start=$(now)
"$tributary" snapshot --config "$work/slots" --log-level warning >/dev/null
snapshot_seconds=$(echo "$(now) - $start" | bc)
"$tributary" apply --once --config "$work/slots" --log-level warning >/dev/null
tributary_seconds=$(echo "$(now) - $start" | bc)
staged=$(du -sh "$work/staging-tributary" | cut -f1)
"$tributary" verify --config "$work/slots" | tail -1 | sed 's/^/  /' >&2

echo "4/4 tributary snapshot --apply (load while copying)" >&2
settle
on_target -d postgres -c "CREATE DATABASE pipelined"
write_config pipelined
start=$(now)
"$tributary" snapshot --apply --restart --config "$work/slots" --log-level warning >/dev/null
pipelined_seconds=$(echo "$(now) - $start" | bc)
"$tributary" verify --config "$work/slots" | tail -1 | sed 's/^/  /' >&2

ratio() { echo "scale=2; $1 / $pgcopydb_seconds" | bc; }
printf '\nsnapshot + load of %s rows (%s of tables): pgbench scale %s + wide %s rows, %s jobs\n' "$rows" "$size" "$scale" "$wide_rows" "$jobs"
printf '%-38s %10s %14s\n' "method" "seconds" "vs pgcopydb"
printf '%-38s %10.1f %14s\n' "psql COPY TO | COPY FROM pipe" "$pipe_seconds" "$(ratio "$pipe_seconds")x"
printf '%-38s %10.1f %14s\n' "pgcopydb clone" "$pgcopydb_seconds" "1.00x"
printf '%-38s %10.1f %14s\n' "tributary snapshot, apply --once" "$tributary_seconds" "$(ratio "$tributary_seconds")x"
printf '%-38s %10.1f %14s\n' "  of which snapshot (staged $staged)" "$snapshot_seconds" ""
printf '%-38s %10.1f %14s\n' "tributary snapshot --apply" "$pipelined_seconds" "$(ratio "$pipelined_seconds")x"
