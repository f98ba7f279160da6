#!/usr/bin/env bash
# Benchmark: the replicator against pg_recvlogical on the same backlog, in the same run.
#   1. speed   a backlog of about 1M changes (mixed transaction sizes plus a pgbench tpcb-like run),
#              consumed by pg_recvlogical (same pgoutput options, output to /dev/null) and by
#              tributary replicate, each from its own slot created at the same point, to the same end LSN
#   2. memory  peak RSS of tributary replicate over one transaction of 1M wide rows
# Environment: BENCH_SCALE (pgbench scale, default 10); BENCH_ROUNDS (default 1: the consumers take
# turns, each round from fresh slots made at the same point, and each one's median counts);
# BENCH_BASELINE=<git revision> also measures tributary as of that revision, in the same rounds.
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/bench/bench-lib.sh
scale=${BENCH_SCALE:-10}; rounds=${BENCH_ROUNDS:-1}; baseline_revision=${BENCH_BASELINE:-}
work=${TMPDIR:-/tmp}/tributary-bench-replicate-$(id -u)
export PGPASSWORD=tributary PATH=/usr/lib/postgresql/15/bin:$PATH
port=55511

deploy/install-deps.sh --bench
tributary=$(build_tributary)
baseline=""
[ -n "$baseline_revision" ] && baseline=$(build_baseline "$baseline_revision" "${TMPDIR:-/tmp}/tributary-bench-baseline-$(id -u)")

trap 'deploy/tools/pg-cluster.sh stop "$work/source" || true' EXIT
deploy/tools/pg-cluster.sh stop "$work/source" 2>/dev/null || true
rm -rf "$work"; mkdir -p "$work/slots"
deploy/tools/pg-cluster.sh init "$work/source" $port --logical
sql() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $port -U postgres -d bench "$@"; }
psql -X -q -h 127.0.0.1 -p $port -U postgres -d postgres -c "CREATE DATABASE bench"
pgbench -q -i -s "$scale" -h 127.0.0.1 -p $port -U postgres bench >/dev/null 2>&1
sql <<'SQL'
ALTER TABLE pgbench_history ADD COLUMN hid bigserial PRIMARY KEY;
CREATE TABLE orders (id bigint PRIMARY KEY, customer int, amount numeric(12,2), note text, placed timestamptz);
CREATE TABLE wide (id int PRIMARY KEY, a text, b text, c numeric, d timestamptz, e jsonb);
SQL
uri="postgresql://postgres:$PGPASSWORD@127.0.0.1:$port/bench"
cat >"$work/slots/tributary.yaml" <<YAML
target:
  connection: "postgresql://postgres:$PGPASSWORD@127.0.0.1:1/none"
staging: ../staging
work_dir: ../work
batch:
  heartbeat: 1h
YAML
cat >"$work/slots/bench.yaml" <<YAML
source: bench
connection: "$uri"
tables: [{name: pgbench_accounts}, {name: pgbench_branches}, {name: pgbench_tellers}, {name: pgbench_history},
         {name: orders}, {name: wide}]
YAML
"$tributary" snapshot --config "$work/slots" --log-level warning >/dev/null
# Every consumer of every round reads the backlog from a slot of its own, all made at this point.
# Each tributary run gets a configuration naming its slot, and its own staging directory.
consumers="recvlogical tributary"; [ -n "$baseline" ] && consumers="$consumers baseline"
for round in $(seq 1 "$rounds"); do
  for consumer in $consumers; do
    sql -c "SELECT pg_create_logical_replication_slot('${consumer}_$round', 'pgoutput')" -o /dev/null
    [ "$consumer" = recvlogical ] && continue
    mkdir -p "$work/$consumer-$round"
    sed "s#\.\./staging#../$consumer-$round/staging#; s#\.\./work#../$consumer-$round/work#" "$work/slots/tributary.yaml" >"$work/$consumer-$round/tributary.yaml"
    { cat "$work/slots/bench.yaml"; echo "slot: ${consumer}_$round"; echo "publication: tributary_bench"; } >"$work/$consumer-$round/bench.yaml"
  done
done

echo "building a backlog of about 1M changes" >&2
sql <<'SQL'
-- 100 transactions of 4,000 inserts
DO $$ BEGIN FOR t IN 0..99 LOOP
  INSERT INTO orders SELECT t * 4000 + i, i % 997, i * 1.5, 'order ' || i, now() FROM generate_series(1, 4000) i;
  COMMIT;
END LOOP; END $$;
-- 2,000 transactions of 100 updates
DO $$ BEGIN FOR t IN 0..1999 LOOP
  UPDATE orders SET amount = amount + 1 WHERE id > t * 100 AND id <= t * 100 + 100;
  COMMIT;
END LOOP; END $$;
-- 100,000 deletes in 100 transactions
DO $$ BEGIN FOR t IN 0..99 LOOP
  DELETE FROM orders WHERE id > 200000 + t * 1000 AND id <= 200000 + t * 1000 + 1000;
  COMMIT;
END LOOP; END $$;
SQL
pgbench -n -b tpcb-like -c 4 -j 2 -t 25000 -h 127.0.0.1 -p $port -U postgres bench >/dev/null 2>&1
end=$(sql -Atc "SELECT pg_current_wal_insert_lsn()")
sql -c "CHECKPOINT"

now() { date +%s.%N; }
consume() {  # consumer round: prints seconds
  local start; start=$(now)
  case "$1" in
    recvlogical)
      pg_recvlogical -d "$uri" --slot "recvlogical_$2" --start --endpos "$end" -f /dev/null --no-loop \
        -o proto_version=2 -o publication_names=tributary_bench -o messages=true -o streaming=on ;;
    tributary|baseline)
      local binary=$tributary; [ "$1" = baseline ] && binary=$baseline
      "$binary" replicate --source bench --end-lsn "$end" --config "$work/$1-$2" --log-level warning >"$work/$1-$2/replicate.out" ;;
  esac
  echo "$(now) - $start" | bc
}
declare -A times
for round in $(seq 1 "$rounds"); do
  # The order turns each round, so no consumer always reads a cold or a warm cache.
  order=$consumers; [ $((round % 2)) = 0 ] && order=$(echo "$consumers" | tr ' ' '\n' | tac | tr '\n' ' ')
  for consumer in $order; do
    echo "round $round: $consumer to $end" >&2
    times[$consumer]="${times[$consumer]:-} $(consume "$consumer" "$round")"
  done
done
changes=$(sed -E 's/.*transactions, ([0-9,]+) rows.*/\1/' "$work/tributary-1/replicate.out" | tr -d ,)

echo "memory: one transaction of 1M wide rows" >&2
sql -c "INSERT INTO wide SELECT i, repeat(md5(i::text), 4), md5((i * 7)::text), i / 3.0, now(), jsonb_build_object('i', i, 'tags', jsonb_build_array('x', 'y')) FROM generate_series(1, 1000000) i"
end2=$(sql -Atc "SELECT pg_current_wal_insert_lsn()")
/usr/bin/time -f "%M" -o "$work/rss" "$tributary" replicate --source bench --end-lsn "$end2" --config "$work/tributary-1" --log-level warning >/dev/null
rss_mib=$(( $(cat "$work/rss") / 1024 ))
if [ -n "$baseline" ]; then
  /usr/bin/time -f "%M" -o "$work/rss-baseline" "$baseline" replicate --source bench --end-lsn "$end2" --config "$work/baseline-1" --log-level warning >/dev/null
  baseline_rss_mib=$(( $(cat "$work/rss-baseline") / 1024 ))
fi

printf '\nreplication of %s row changes (backlog of mixed transactions plus pgbench tpcb-like, scale %s), %s round(s)\n' "$changes" "$scale" "$rounds"
printf '%-36s %10s %16s %12s   %s\n' "consumer" "seconds" "changes/s" "ratio" "rounds (s)"
# shellcheck disable=SC2086 # each method's rounds, space-separated
recv_seconds=$(median ${times[recvlogical]})
row() {  # label consumer
  local seconds
  # shellcheck disable=SC2086
  seconds=$(median ${times[$2]})
  printf '%-36s %10.1f %16.0f %12s   %s\n' "$1" "$seconds" "$(echo "$changes / $seconds" | bc -l)" \
    "$(echo "scale=2; $recv_seconds / $seconds" | bc)x" "${times[$2]}"
}
row "pg_recvlogical (median)" recvlogical
row "tributary replicate" tributary
[ -n "$baseline" ] && row "tributary replicate at $baseline_revision" baseline
printf '\npeak RSS of tributary replicate over one 1,000,000-row transaction of wide rows: %s MiB (goal: under 256 MiB)\n' "$rss_mib"
[ -n "$baseline" ] && printf 'the same at %s: %s MiB\n' "$baseline_revision" "$baseline_rss_mib"
exit 0
