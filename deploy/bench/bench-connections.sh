#!/usr/bin/env bash
# Counts the connections tributary opens on the source and the target (from the servers' own
# log_connections lines) in two situations that should open none:
#   1. an idle `tributary run --metrics-port P` scraped once a second for BENCH_SECONDS (default 60);
#   2. a `tributary drain` waiting BENCH_SECONDS beside that run, while the run's applier is held up
#      by a lock an operator took on an STG table (so the drain cannot finish and ticks all along).
# BENCH_BASELINE=<git revision> measures tributary as of that revision too, in the same run.
# Prints a table: connections per window, per server, per build; exit 1 when this build opened
# any connection per scrape or per drain tick (more than BENCH_SECONDS / 10 in a window).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${BENCH_SECONDS:-60}; baseline_revision=${BENCH_BASELINE:-}
work=${TMPDIR:-/tmp}/tributary-bench-connections-$(id -u)
export PGPASSWORD=tributary PATH=/usr/lib/postgresql/15/bin:$PATH
source_port=55531; target_port=55532; metrics_port=55533
# shellcheck source=deploy/bench/bench-lib.sh
. deploy/bench/bench-lib.sh

deploy/install-deps.sh
tributary=${TRIBUTARY_BIN:-$(build_tributary)}
baseline=""
[ -n "$baseline_revision" ] && baseline=$(build_baseline "$baseline_revision" "${TMPDIR:-/tmp}/tributary-bench-baseline-$(id -u)")

on_source() { PGAPPNAME=bench psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$source_port" -U postgres -d bench "$@"; }
on_target() { PGAPPNAME=bench psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$target_port" -U postgres "$@"; }
# Connections the server authorized since byte offset $2 of its log $1 (this script's own psql
# sessions carry application_name bench and are not counted; PGAPPNAME is set for them only, as
# libpq would give it to tributary's sessions too).
authorized_since() { tail -c +"$(($2 + 1))" "$1" | grep "connection authorized" | grep -vc "application_name=bench" || true; }
log_size() { stat -c %s "$1"; }

declare -A result
measure() { # label binary
  local label=$1 binary=$2 run_pid drain_pid lock_pid source_log target_log s0 t0
  fresh_source_and_target "$work" "$source_port" "$target_port" --set log_connections=on
  deploy/tools/pg-cluster.sh stop "$work/source"
  echo "log_connections = on" >>"$work/source/data/postgresql.conf"
  deploy/tools/pg-cluster.sh start "$work/source"
  source_log=$work/source/postgres.log; target_log=$work/target/postgres.log
  on_target -d postgres -c "CREATE DATABASE unipacc"
  on_source -c "CREATE TABLE events (id bigserial PRIMARY KEY, note text)" -c "INSERT INTO events (note) SELECT 'row ' || g FROM generate_series(1, 1000) g"
  cat >"$work/slots/tributary.yaml" <<EOF
target:
  connection: "host=127.0.0.1 port=$target_port user=postgres password=tributary dbname=unipacc"
staging: ../staging
work_dir: ../work
EOF
  cat >"$work/slots/bench.yaml" <<EOF
source: bench
connection: "host=127.0.0.1 port=$source_port user=postgres password=tributary dbname=bench"
slot: tributary_bench
publication: tributary_bench
tables:
  - name: public.events
EOF
  "$binary" snapshot --config "$work/slots" --log-level warning >/dev/null
  "$binary" apply --once --config "$work/slots" --log-level warning >/dev/null
  "$binary" run --config "$work/slots" --metrics-port "$metrics_port" --log-level warning 2>"$work/run-$label.log" &
  run_pid=$!
  for _ in $(seq 1 60); do curl -sf "http://127.0.0.1:$metrics_port/readyz" >/dev/null && break; sleep 1; done
  sleep 5
  s0=$(log_size "$source_log"); t0=$(log_size "$target_log")
  for _ in $(seq 1 "$seconds"); do curl -sf "http://127.0.0.1:$metrics_port/metrics" >/dev/null || true; sleep 1; done
  result[$label,scrape,source]=$(authorized_since "$source_log" "$s0")
  result[$label,scrape,target]=$(authorized_since "$target_log" "$t0")

  # The applier held up by an operator's lock on the STG table, a change staged behind it.
  on_target -d unipacc -c "BEGIN; LOCK TABLE stg.bench_events IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep($((seconds + 30))); COMMIT" >/dev/null &
  lock_pid=$!
  sleep 1
  on_source -c "INSERT INTO events (note) VALUES ('during the drain')"
  "$binary" drain --config "$work/slots" --no-verify --timeout $((seconds + 120)) --log-level warning >"$work/drain-$label.log" 2>&1 &
  drain_pid=$!
  sleep 5
  s0=$(log_size "$source_log"); t0=$(log_size "$target_log")
  sleep "$seconds"
  result[$label,drain,source]=$(authorized_since "$source_log" "$s0")
  result[$label,drain,target]=$(authorized_since "$target_log" "$t0")
  kill -0 "$drain_pid" 2>/dev/null || { echo "bench-connections: the $label drain ended before its wait was measured:" >&2; cat "$work/drain-$label.log" >&2; exit 1; }
  wait "$lock_pid" || true
  wait "$drain_pid" || { echo "bench-connections: the $label drain failed:" >&2; tail -5 "$work/drain-$label.log" >&2; exit 1; }
  kill -TERM "$run_pid"; wait "$run_pid" || true
  deploy/tools/pg-cluster.sh stop "$work/source"; deploy/tools/pg-cluster.sh stop "$work/target"
}

[ -n "$baseline" ] && measure baseline "$baseline"
measure tributary "$tributary"

printf '\n%-44s %10s %10s\n' "new connections in ${seconds} s" source target
row() { printf '%-44s %10s %10s\n' "$1" "${result[$2,$3,source]}" "${result[$2,$3,target]}"; }
[ -n "$baseline" ] && row "idle run scraped every 1 s, $baseline_revision" baseline scrape
row "idle run scraped every 1 s, this build" tributary scrape
[ -n "$baseline" ] && row "drain waiting beside run, $baseline_revision" baseline drain
row "drain waiting beside run, this build" tributary drain
limit=$((seconds / 10))
for window in scrape drain; do
  for server in source target; do
    if [ "${result[tributary,$window,$server]}" -gt "$limit" ]; then
      echo "goal missed: $window opened ${result[tributary,$window,$server]} $server connections in $seconds s (at most $limit: none per scrape or tick)" >&2
      exit 1
    fi
  done
done
