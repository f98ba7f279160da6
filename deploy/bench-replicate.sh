#!/usr/bin/env bash
# Benchmark: the replicator against pg_recvlogical on the same backlog, in the same run.
#   1. speed   a backlog of about 1M changes (mixed transaction sizes plus a pgbench tpcb-like run),
#              consumed by pg_recvlogical (same pgoutput options, output to /dev/null) and by
#              tributary replicate, each from its own slot created at the same point, to the same end LSN
#   2. memory  peak RSS of tributary replicate over one transaction of 1M wide rows
# Environment: BENCH_SCALE (pgbench scale, default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${BENCH_SCALE:-10}
work=${TMPDIR:-/tmp}/tributary-bench-replicate-$(id -u)
export PGPASSWORD=tributary PATH=/usr/lib/postgresql/15/bin:$PATH
port=55511

deploy/install-deps.sh --bench
echo "building tributary (release)" >&2
swift build -c release --product tributary >/dev/null
tributary=$(swift build -c release --show-bin-path)/tributary

trap 'deploy/pg-cluster.sh stop "$work/source" || true' EXIT
deploy/pg-cluster.sh stop "$work/source" 2>/dev/null || true
rm -rf "$work"; mkdir -p "$work/slots"
deploy/pg-cluster.sh init "$work/source" $port --logical
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
# pg_recvlogical reads the backlog once before tributary and once after, so neither order favours it.
sql -c "SELECT pg_create_logical_replication_slot('recvlogical_1', 'pgoutput')" -c "SELECT pg_create_logical_replication_slot('recvlogical_2', 'pgoutput')" -o /dev/null

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
recvlogical() {
  pg_recvlogical -d "$uri" --slot "$1" --start --endpos "$end" -f /dev/null --no-loop \
    -o proto_version=2 -o publication_names=tributary_bench -o messages=true -o streaming=on
}
echo "pg_recvlogical to $end" >&2
start=$(now); recvlogical recvlogical_1; recv1_seconds=$(echo "$(now) - $start" | bc)

echo "tributary replicate to $end" >&2
start=$(now)
"$tributary" replicate --source bench --end-lsn "$end" --config "$work/slots" --log-level warning >"$work/replicate.out"
tributary_seconds=$(echo "$(now) - $start" | bc)
changes=$(sed -E 's/.*transactions, ([0-9,]+) rows.*/\1/' "$work/replicate.out" | tr -d ,)

echo "pg_recvlogical again to $end" >&2
start=$(now); recvlogical recvlogical_2; recv2_seconds=$(echo "$(now) - $start" | bc)
recv_seconds=$(echo "($recv1_seconds + $recv2_seconds) / 2" | bc -l)

echo "memory: one transaction of 1M wide rows" >&2
sql -c "INSERT INTO wide SELECT i, repeat(md5(i::text), 4), md5((i * 7)::text), i / 3.0, now(), jsonb_build_object('i', i, 'tags', jsonb_build_array('x', 'y')) FROM generate_series(1, 1000000) i"
end2=$(sql -Atc "SELECT pg_current_wal_insert_lsn()")
/usr/bin/time -f "%M" -o "$work/rss" "$tributary" replicate --source bench --end-lsn "$end2" --config "$work/slots" --log-level warning >/dev/null
rss_mib=$(( $(cat "$work/rss") / 1024 ))
wide_bytes=$(du -sb "$work/staging/bench/cdc" | cut -f1)

printf '\nreplication of %s row changes (backlog of mixed transactions plus pgbench tpcb-like, scale %s)\n' "$changes" "$scale"
printf '%-28s %10s %16s %12s\n' "consumer" "seconds" "changes/s" "ratio"
printf '%-28s %10.1f %16.0f %12s\n' "pg_recvlogical (before)" "$recv1_seconds" "$(echo "$changes / $recv1_seconds" | bc -l)" ""
printf '%-28s %10.1f %16.0f %12s\n' "pg_recvlogical (after)" "$recv2_seconds" "$(echo "$changes / $recv2_seconds" | bc -l)" ""
printf '%-28s %10.1f %16.0f %12s\n' "pg_recvlogical (mean)" "$recv_seconds" "$(echo "$changes / $recv_seconds" | bc -l)" "1.00x"
printf '%-28s %10.1f %16.0f %12s\n' "tributary replicate" "$tributary_seconds" "$(echo "$changes / $tributary_seconds" | bc -l)" \
  "$(echo "scale=2; $recv_seconds / $tributary_seconds" | bc)x"
printf '\npeak RSS of tributary replicate over one 1,000,000-row transaction of wide rows: %s MiB (goal: under 256 MiB)\n' "$rss_mib"
