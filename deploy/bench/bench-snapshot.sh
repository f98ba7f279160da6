#!/usr/bin/env bash
# Benchmark: snapshot + load of a pgbench scale-20 database plus a wide 500k-row table of mixed
# types, four ways, on the same clusters in the same run:
#   1. psql pipe   COPY TO STDOUT | COPY FROM STDIN per table, schema and indexes via pg_dump sections
#   2. pgcopydb    pgcopydb clone (the closest peer)
#   3. tributary   tributary snapshot, then tributary apply --once (through gzip files in a staging dir)
#   4. tributary   tributary snapshot --apply: the same, loading parts while the snapshot runs, with
#                  its peak RSS and the most local disk its work directory held
#   5. resume      tributary snapshot --apply killed once half its parts are stored, once half are
#                  loaded, and stopped by SIGTERM once half are loaded, each time then the rerun
#                  that resumes it, against a whole snapshot --apply
# Prints a table of wall times and ratios, and per method the cores it kept busy and the
# CPU-seconds that makes (machine-wide, from /proc/stat): on two cores shared by both servers
# and the client, a method is faster either by spending less CPU or by keeping both cores busier.
# Environment: BENCH_SIZE (1: pgbench scale 20 and a 500k-row wide table, the default; 10: scale
# 200 and 2M rows, about ten times the data),
# BENCH_SCALE and BENCH_WIDE_ROWS (to set either alone), BENCH_JOBS (default 2), BENCH_ROUNDS
# (default 5 at size 1, 1 at size 10: the methods take turns, and each one's median counts),
# BENCH_VARIANT (settings for the snapshot section, e.g. "range_size: 8GiB": snapshot --apply
# runs once more per round with them, an A/B within the same run).
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${BENCH_SIZE:-1}
case "$size" in
  1) scale=${BENCH_SCALE:-20}; wide_rows=${BENCH_WIDE_ROWS:-500000}; rounds=${BENCH_ROUNDS:-5} ;;
  10) scale=${BENCH_SCALE:-200}; wide_rows=${BENCH_WIDE_ROWS:-2000000}; rounds=${BENCH_ROUNDS:-1} ;;
  *) echo "BENCH_SIZE is 1 or 10" >&2; exit 2 ;;
esac
jobs=${BENCH_JOBS:-2}
variant=${BENCH_VARIANT:-}
work=${TMPDIR:-/tmp}/tributary-bench-$(id -u)
export PGPASSWORD=tributary PATH=/usr/lib/postgresql/15/bin:$PATH
source_port=55501; target_port=55502
source deploy/bench/bench-lib.sh

deploy/install-deps.sh --bench
echo "building tributary (release)" >&2
swift build -c release --product tributary >/dev/null
tributary=$(swift build -c release --show-bin-path)/tributary

cleanup() { deploy/tools/pg-cluster.sh stop "$work/source" || true; deploy/tools/pg-cluster.sh stop "$work/target" || true; }
trap cleanup EXIT
cleanup; rm -rf "$work"; mkdir -p "$work"
deploy/tools/pg-cluster.sh init "$work/source" $source_port --logical
deploy/tools/pg-cluster.sh init "$work/target" $target_port
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

mkdir -p "$work/slots"
write_config() { # database [snapshot settings]
  cat >"$work/slots/tributary.yaml" <<YAML
target:
  connection: "$(target_uri "$1")"
staging: ../staging-$1
work_dir: ../work
snapshot:
  jobs: $jobs
${2:+  $2}
YAML
}
{
  echo "source: bench"; echo "connection: \"$source_uri\""; echo "tables:"
  for table in pgbench_accounts pgbench_branches pgbench_tellers wide; do echo "  - name: public.$table"; done
} >"$work/slots/bench.yaml"

# Each method loads into a fresh database of its own; the previous round's copy is dropped first.
fresh_database() {
  on_target -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1"
  rm -rf "$work/staging-$1" "$work/pgcopydb"
  settle
}

run_pipe() {
  fresh_database pipe
  local start ticks; ticks=$(cpu_ticks); start=$(now)
  pg_dump -h 127.0.0.1 -p $source_port -U postgres --section=pre-data bench | on_target -d pipe -o /dev/null
  for table in $tables; do
    on_source -d bench -c "COPY $table TO STDOUT" | on_target -d pipe -c "COPY $table FROM STDIN"
  done
  pg_dump -h 127.0.0.1 -p $source_port -U postgres --section=post-data bench | on_target -d pipe -o /dev/null
  on_target -d pipe -c "VACUUM ANALYZE"
  pipe_times+=("$(echo "$(now) - $start" | bc)"); pipe_busy+=("$(cores_busy_since "$ticks")")
}

run_pgcopydb() {
  fresh_database pgcopydb
  local start ticks; ticks=$(cpu_ticks); start=$(now)
  pgcopydb clone --source "$source_uri" --target "$(target_uri pgcopydb)" --table-jobs "$jobs" --index-jobs "$jobs" \
    --dir "$work/pgcopydb" --no-owner >"$work/pgcopydb.log" 2>&1 || { tail -20 "$work/pgcopydb.log" >&2; exit 1; }
  pgcopydb_times+=("$(echo "$(now) - $start" | bc)"); pgcopydb_busy+=("$(cores_busy_since "$ticks")")
  start=$(now); on_target -d pgcopydb -c "VACUUM (FREEZE)"; pgcopydb_debt+=("$(echo "$(now) - $start" | bc)")
}

run_tributary() {
  fresh_database tributary
  write_config tributary
  local start ticks; ticks=$(cpu_ticks); start=$(now)
  "$tributary" snapshot --restart --config "$work/slots" --log-level warning >/dev/null
  snapshot_times+=("$(echo "$(now) - $start" | bc)")
  "$tributary" apply --once --config "$work/slots" --log-level warning >/dev/null
  tributary_times+=("$(echo "$(now) - $start" | bc)"); tributary_busy+=("$(cores_busy_since "$ticks")")
  staged=$(du -sh "$work/staging-tributary" | cut -f1)
  "$tributary" verify --config "$work/slots" | tail -1 | sed 's/^/    /' >&2
}

# The most the work directory holds while a command runs (part files, the hand-off to the load).
disk_watch() { # pid file
  local most=0 bytes
  while kill -0 "$1" 2>/dev/null; do
    bytes=$(du -sb "$work/work" 2>/dev/null | cut -f1 || echo 0)
    [ "${bytes:-0}" -gt "$most" ] && most=$bytes
    sleep 0.2
  done
  echo "$most" >"$2"
}

run_pipelined() { # pipelined, or variant (with $variant's settings)
  local name=${1:-pipelined}
  local -n times=${name}_times busy=${name}_busy rss=${name}_rss disk=${name}_disk debt=${name}_debt
  local settings=""; [ "$name" = pipelined ] || settings=$variant
  fresh_database "$name"
  write_config "$name" "$settings"
  rm -rf "$work/work"
  local start ticks; ticks=$(cpu_ticks); start=$(now)
  /usr/bin/time -f "%M" -o "$work/rss" "$tributary" snapshot --apply --restart --config "$work/slots" --log-level warning >/dev/null &
  local pid=$!
  disk_watch $pid "$work/disk" & local watcher=$!
  wait $pid; wait $watcher
  times+=("$(echo "$(now) - $start" | bc)"); busy+=("$(cores_busy_since "$ticks")")
  rss+=("$(( $(tail -n 1 "$work/rss") / 1024 ))"); disk+=("$(( $(cat "$work/disk") >> 20 ))")
  # What the load leaves to vacuum (untimed above): rows not loaded frozen are frozen, and their
  # pages marked all-visible, by a later (auto)vacuum that reads and rewrites them.
  start=$(now); on_target -d "$name" -c "VACUUM (FREEZE)"; debt+=("$(echo "$(now) - $start" | bc)")
  "$tributary" verify --config "$work/slots" | tail -1 | sed 's/^/    /' >&2
}

# snapshot --apply killed (SIGKILL) at half of its parts, then a plain rerun, which keeps the
# tables and ranges stored whole (and what was loaded and committed) and does the rest (with
# $variant's settings when given as "variant"). "Half" is counted two ways: parts stored, which the
# copy reaches long before half the work is done (it runs far ahead of the load), and parts loaded
# (from the debug log's "part loaded"), which is half the work. "stopped": at half loaded too, but
# by SIGTERM (systemd's or Kubernetes' stop, Ctrl-C), on which the load commits its frozen runs.
run_resume() { # stored|loaded|stopped, pipelined|variant
  local by=$1 name=${2:-pipelined} settings=""; [ "$name" = pipelined ] || settings=$variant
  local manifests=("$work"/staging-"$name"/bench/snapshot/*/manifest.json) total
  total=$(grep -o '"key"' "${manifests[-1]}" | wc -l)
  fresh_database resumed
  write_config resumed "$settings"
  local first; first=$(now)
  "$tributary" snapshot --apply --restart --config "$work/slots" --log-level debug >/dev/null 2>"$work/killed.log" &
  local pid=$!
  halfway() {
    if [ "$by" = stored ]; then find "$work/staging-resumed" -name '*.csv.gz' 2>/dev/null | wc -l
    else grep -c 'part loaded' "$work/killed.log" || true; fi
  }
  until [ "$(halfway)" -ge $((total / 2)) ] || ! kill -0 $pid 2>/dev/null; do sleep 0.1; done
  if [ "$by" = stopped ]; then kill -TERM $pid 2>/dev/null || true; else kill -9 $pid 2>/dev/null || true; fi
  wait $pid 2>/dev/null || true
  declare -g "${name}_${by}_killed_after=$(echo "$(now) - $first" | bc)"
  local start; start=$(now)
  "$tributary" snapshot --apply --config "$work/slots" --log-level warning >"$work/resume.out"
  declare -g "${name}_${by}_resume_seconds=$(echo "$(now) - $start" | bc)"
  declare -g "${name}_${by}_resume_said=$(grep -o 'resumed a snapshot.*gzip)' "$work/resume.out" | head -1 || true)"
  "$tributary" verify --config "$work/slots" | tail -1 | sed 's/^/    /' >&2
}

# The machine's noise (about ±10% on a small VM) is as large as the differences measured, so the
# methods take turns over several rounds and the median of each counts.
# shellcheck disable=SC2034 # read by name in cpu() (local -n)
declare -a pipe_busy=() pgcopydb_busy=() tributary_busy=() pipelined_busy=() variant_busy=()
pipe_times=(); pgcopydb_times=(); pgcopydb_debt=(); snapshot_times=(); tributary_times=(); pipelined_times=(); pipelined_rss=(); pipelined_disk=(); pipelined_debt=()
variant_times=(); variant_rss=(); variant_disk=(); variant_debt=()
for round in $(seq 1 "$rounds"); do
  echo "round $round/$rounds: psql COPY pipe" >&2; run_pipe
  echo "round $round/$rounds: pgcopydb clone" >&2; run_pgcopydb
  echo "round $round/$rounds: tributary snapshot --apply (load while copying)" >&2; run_pipelined
  if [ -n "$variant" ]; then echo "round $round/$rounds: tributary snapshot --apply with $variant" >&2; run_pipelined variant; fi
  echo "round $round/$rounds: tributary snapshot, then apply --once" >&2; run_tributary
  echo "round $round/$rounds seconds: pipe ${pipe_times[-1]} pgcopydb ${pgcopydb_times[-1]}" \
    "snapshot --apply ${pipelined_times[-1]}${variant:+ with $variant ${variant_times[-1]}} snapshot+apply ${tributary_times[-1]}" >&2
done

for by in stored loaded stopped; do
  echo "resume: snapshot --apply killed or stopped at half its parts ($by), then the rerun" >&2; run_resume $by
  if [ -n "$variant" ]; then echo "resume with $variant" >&2; run_resume $by variant; fi
done

spread() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.1f-%.1f", lo, hi }'; }
pipe_seconds=$(median "${pipe_times[@]}"); pgcopydb_seconds=$(median "${pgcopydb_times[@]}")
snapshot_seconds=$(median "${snapshot_times[@]}"); tributary_seconds=$(median "${tributary_times[@]}")
pipelined_seconds=$(median "${pipelined_times[@]}")

ratio() { printf '%.2f' "$(echo "scale=4; $1 / $pgcopydb_seconds" | bc)"; }
# A method's median cores busy, and the CPU-seconds of its median round: "cores CPU-s".
# shellcheck disable=SC2178 # names of the arrays above
cpu() { local -n times=$1_times busy=$1_busy; local cores; cores=$(median "${busy[@]}"); printf '%5.2f %7.1f' "$cores" "$(echo "$cores * $(median "${times[@]}")" | bc -l)"; }
printf '\nsnapshot + load of %s rows (%s of tables): pgbench scale %s + wide %s rows, %s jobs; median of %s rounds\n' \
  "$rows" "$size" "$scale" "$wide_rows" "$jobs" "$rounds"
printf '%-38s %10s %12s %14s %s\n' "method" "seconds" "range" "vs pgcopydb" " cores   CPU-s (of $(nproc) cores, machine-wide)"
printf '%-38s %10.1f %12s %14s %s\n' "psql COPY TO | COPY FROM pipe" "$pipe_seconds" "$(spread "${pipe_times[@]}")" "$(ratio "$pipe_seconds")x" "$(cpu pipe)"
printf '%-38s %10.1f %12s %14s %s\n' "pgcopydb clone" "$pgcopydb_seconds" "$(spread "${pgcopydb_times[@]}")" "1.00x" "$(cpu pgcopydb)"
printf '%-38s %10.1f %12s\n' "  then VACUUM (FREEZE) (s, untimed)" "$(median "${pgcopydb_debt[@]}")" "$(spread "${pgcopydb_debt[@]}")"
printf '%-38s %10.1f %12s %14s %s\n' "tributary snapshot, apply --once" "$tributary_seconds" "$(spread "${tributary_times[@]}")" "$(ratio "$tributary_seconds")x" "$(cpu tributary)"
printf '%-38s %10.1f %12s %14s\n' "  of which snapshot (staged $staged)" "$snapshot_seconds" "$(spread "${snapshot_times[@]}")" ""
printf '%-38s %10.1f %12s %14s %s\n' "tributary snapshot --apply" "$pipelined_seconds" "$(spread "${pipelined_times[@]}")" "$(ratio "$pipelined_seconds")x" "$(cpu pipelined)"
printf '%-38s %10s %12s\n' "  its peak RSS, most local disk (MiB)" "$(median "${pipelined_rss[@]}")" "$(median "${pipelined_disk[@]}")"
printf '%-38s %10.1f %12s\n' "  then VACUUM (FREEZE) (s, untimed)" "$(median "${pipelined_debt[@]}")" "$(spread "${pipelined_debt[@]}")"
if [ -n "$variant" ]; then
  variant_seconds=$(median "${variant_times[@]}")
  printf '%-38s %10.1f %12s %14s %s\n' "  the same with $variant" "$variant_seconds" "$(spread "${variant_times[@]}")" "$(ratio "$variant_seconds")x" "$(cpu variant)"
  printf '%-38s %10s %12s\n' "  its peak RSS, most local disk (MiB)" "$(median "${variant_rss[@]}")" "$(median "${variant_disk[@]}")"
  printf '%-38s %10.1f %12s\n' "  then VACUUM (FREEZE) (s, untimed)" "$(median "${variant_debt[@]}")" "$(spread "${variant_debt[@]}")"
fi
# A rerun that redoes nothing takes the whole run less what the killed one did: "redone" is the
# part of a whole run done twice (killed share + rerun - 1).
resume_line() { # name, by, label, whole seconds
  local -n seconds=$1_$2_resume_seconds said=$1_$2_resume_said killed=$1_$2_killed_after
  printf '%-38s %10.1f %12s %14s\n' "$3" "$seconds" "" "$(printf '%.2f' "$(echo "scale=4; $seconds / $4" | bc)")x of a whole snapshot --apply"
  printf '  killed %.1f s into its run (%.2f of a whole one); redone %.2f of a whole run\n' "$killed" \
    "$(echo "scale=4; $killed / $4" | bc)" "$(echo "scale=4; ($killed + $seconds) / $4 - 1" | bc)"
  if [ -n "$said" ]; then printf '  %s\n' "$said"; fi
}
resume_label() { case $1 in stored|loaded) echo "resume after a kill at half $1" ;; stopped) echo "resume after SIGTERM at half loaded" ;; esac; }
for by in stored loaded stopped; do
  resume_line pipelined $by "$(resume_label $by)" "$pipelined_seconds"
  if [ -n "$variant" ]; then resume_line variant $by "  the same with $variant" "$variant_seconds"; fi
done
