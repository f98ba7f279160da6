#!/usr/bin/env bash
# Benchmark: the applier. Every figure is the median of BENCH_ROUNDS rounds (default 3), each on a
# backlog of its own, with the methods compared taking turns going first, and the target (or the
# source) checkpointed before each timed step, so no method always meets a cold cache or pays for
# another's writes.
#   1. catch-up  per round a backlog of about 1M changes (mixed transactions on an orders table,
#               then pgbench tpcb-like), caught up by native logical replication (CREATE
#               SUBSCRIPTION into a copy of the tables, enabled once the backlog is written) and by
#               tributary replicate + apply into STG; each timed until a marker row committed last
#               is visible on the target (both apply in commit order). The same backlog read by
#               tributary replicate alone (a source of its own, same tables) and by pg_recvlogical
#               (a slot made before the backlog, same pgoutput options): end to end against decoding
#               alone. Then the staged backlog alone, applied by `apply --once` one batch per
#               transaction (the next batch loaded ahead on a second connection, and with
#               `--no-load-ahead` not), each into its own copy of the snapshot; and two sources at
#               once: a second source (its own slot and publication on the same database, so the
#               same backlog twice) staged too, both applied by `apply --once` in parallel into a
#               third copy, against the one-source rate. Every copy must end equal to the live
#               pipeline's STG.
#   2. latency  pgbench -R 200 on the source with the pipeline live, and a probe table committed
#               10 times a second; a trigger on its STG table records when each row became visible.
#   3. wide rows  a table of 30 columns (about 1.5 KB a row) added to both pipelines; per round
#               BENCH_WIDE_ROWS inserts and as many updates (default 100,000 each) caught up end to
#               end by native logical replication and by tributary replicate + apply, where native
#               apply rather than decoding is the limit; both must end equal. The same backlog
#               read by pg_recvlogical (a slot made before it): how fast the source decodes it.
#               No window holds a vacuum: each copy is vacuumed outside them (printed apart).
# Every timed step also records the CPU-seconds it cost, from /proc: the source cluster's (its
# walsender, and every other process of it), the target cluster's (native's apply worker, or
# tributary's backends) and tributary's own processes'; a second table sets them per change against
# native logical replication's on the same backlog, which, unlike seconds, does not depend on how
# many cores the source, tributary and the target share here. The end of each backlog is made
# visible to a reader at once by a logical message committed right after it (a reader stopping
# at an end position otherwise learns it passed only from the next message or keepalive).
# Every timed step also records how many of the machine's cores were busy meanwhile (/proc/stat),
# and the table ends with what that allows on this machine: two sources can run at most
# cores / (cores one source kept busy) times the one-source rate; end to end can run at most
# (replicate alone's seconds) / ((CPU-seconds of replicate alone + apply alone) / cores) of
# replicate alone's rate; neither pipeline can catch up on the wide rows faster than the source
# decodes them, nor faster than its own CPU-seconds spread over the cores allow.
# Environment: BENCH_SCALE (pgbench scale, default 10), BENCH_SECONDS (latency run, default 30),
# BENCH_ROUNDS (default 3), BENCH_SHARED_BUFFERS (the target's, default 1GB: a target is sized for
# its data, and at PostgreSQL's default of 128MB the two-source line's tables, 300 MB, would not
# stay in it; native and tributary apply under the same setting), BENCH_BATCH_ROWS
# (batch.max_rows: smaller batches, as a source replicated at a modest rate stages them; default:
# tributary's own). BENCH_BASELINE=<git revision> also applies
# the staged backlog with tributary as of that revision (its own copy of the snapshot, loaded by
# it), in the same run.
set -euo pipefail
cd "$(dirname "$0")/../.."
scale=${BENCH_SCALE:-10}; seconds=${BENCH_SECONDS:-30}; rounds=${BENCH_ROUNDS:-3}; target_buffers=${BENCH_SHARED_BUFFERS:-1GB}; batch_rows=${BENCH_BATCH_ROWS:-}; baseline_revision=${BENCH_BASELINE:-}
work=${TMPDIR:-/tmp}/tributary-bench-apply-$(id -u)
export PGPASSWORD=tributary PATH=/usr/lib/postgresql/15/bin:$PATH
source_port=55521; target_port=55522

deploy/install-deps.sh --bench
echo "building tributary (release)" >&2
swift build -c release --product tributary >/dev/null
tributary=$(swift build -c release --show-bin-path)/tributary
source deploy/bench/bench-lib.sh
baseline=""
[ -n "$baseline_revision" ] && baseline=$(build_baseline "$baseline_revision" "${TMPDIR:-/tmp}/tributary-bench-baseline-$(id -u)")

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  deploy/tools/pg-cluster.sh stop "$work/source" || true; deploy/tools/pg-cluster.sh stop "$work/target" || true
}
trap cleanup EXIT
fresh_source_and_target "$work" $source_port $target_port --set shared_buffers="$target_buffers"
on_source() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $source_port -U postgres -d bench "$@"; }
on_target() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $target_port -U postgres "$@"; }
pgbench -q -i -s "$scale" -h 127.0.0.1 -p $source_port -U postgres bench >/dev/null 2>&1
on_source <<'SQL'
ALTER TABLE pgbench_history ADD COLUMN hid bigserial PRIMARY KEY;
CREATE TABLE orders (id bigint PRIMARY KEY, customer int, amount numeric(12,2), note text, placed timestamptz);
CREATE TABLE marker (id int PRIMARY KEY, at timestamptz);
CREATE TABLE latency_probe (id bigserial PRIMARY KEY, committed_at timestamptz NOT NULL);
CREATE PUBLICATION native_pub FOR TABLE pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history, orders, marker;
SQL
tables="pgbench_accounts pgbench_branches pgbench_tellers pgbench_history orders marker latency_probe"
source_conninfo="host=127.0.0.1 port=$source_port dbname=bench user=postgres password=$PGPASSWORD"

echo "native: a subscription with its initial copy, then paused" >&2
on_target -d postgres -c "CREATE DATABASE native" -c "CREATE DATABASE tributary" -c "CREATE DATABASE single" -c "CREATE DATABASE serial" -c "CREATE DATABASE baseline" -c "CREATE DATABASE double"
on_target -d postgres -c "ALTER SYSTEM SET wal_receiver_status_interval = '1s'" -c "SELECT pg_reload_conf()" -o /dev/null
table_options=(); for t in $tables; do table_options+=(-t "$t"); done
pg_dump -s -h 127.0.0.1 -p "$source_port" -U postgres "${table_options[@]}" bench | on_target -d native -o /dev/null
on_target -d native -c "CREATE SUBSCRIPTION native_sub CONNECTION '$source_conninfo' PUBLICATION native_pub"
until [ "$(on_target -d native -Atc "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'")" = 0 ]; do sleep 0.5; done
on_target -d native -c "ALTER SUBSCRIPTION native_sub DISABLE"

echo "tributary: snapshot and load" >&2
cat >"$work/slots/tributary.yaml" <<YAML
target:
  connection: "host=127.0.0.1 port=$target_port dbname=tributary user=postgres password=$PGPASSWORD"
staging: ../staging
work_dir: ../work
YAML
[ -n "$batch_rows" ] && printf 'batch:\n  max_rows: %s\n' "$batch_rows" >>"$work/slots/tributary.yaml"
{ echo "source: bench"; echo "connection: \"$source_conninfo\""; echo "tables:"
  for t in $tables; do echo "  - name: public.$t"; done; } >"$work/slots/bench.yaml"
"$tributary" snapshot --apply --config "$work/slots" --log-level warning >/dev/null
# A second target loads the same snapshot now, and later the staged backlog alone, batch by batch:
# the apply stage without the source's decoding in front of it.
mkdir -p "$work/single-slots"
sed "s/dbname=tributary/dbname=single/" "$work/slots/tributary.yaml" >"$work/single-slots/tributary.yaml"
cp "$work/slots/bench.yaml" "$work/single-slots/"
"$tributary" apply --once --config "$work/single-slots" --log-level warning >/dev/null
# And a third, batch by batch with each batch loaded on the merging connection (no load ahead).
mkdir -p "$work/serial-slots"
sed "s/dbname=tributary/dbname=serial/" "$work/slots/tributary.yaml" >"$work/serial-slots/tributary.yaml"
cp "$work/slots/bench.yaml" "$work/serial-slots/"
"$tributary" apply --once --config "$work/serial-slots" --log-level warning >/dev/null
# And a fourth, with a second source on the same database (its own slot, taken now): two backlogs.
mkdir -p "$work/double-slots"
sed "s/dbname=tributary/dbname=double/" "$work/slots/tributary.yaml" >"$work/double-slots/tributary.yaml"
cp "$work/slots/bench.yaml" "$work/double-slots/"
sed "s/^source: bench$/source: bench2/" "$work/slots/bench.yaml" >"$work/double-slots/bench2.yaml"
"$tributary" snapshot --source bench2 --config "$work/double-slots" --log-level warning >/dev/null
"$tributary" apply --once --config "$work/double-slots" --log-level warning >/dev/null
if [ -n "$baseline" ]; then
  mkdir -p "$work/baseline-slots"
  sed "s/dbname=tributary/dbname=baseline/" "$work/slots/tributary.yaml" >"$work/baseline-slots/tributary.yaml"
  cp "$work/slots/bench.yaml" "$work/baseline-slots/"
  "$baseline" apply --once --config "$work/baseline-slots" --log-level warning >/dev/null
fi
on_target -d tributary <<'SQL'
CREATE TABLE latency_seen (id bigint PRIMARY KEY, visible_at timestamptz NOT NULL);
CREATE FUNCTION record_visible() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO latency_seen VALUES (NEW.id, clock_timestamp()) ON CONFLICT DO NOTHING; RETURN NULL; END $$;
CREATE TRIGGER record_visible AFTER INSERT ON stg.bench_latency_probe FOR EACH ROW EXECUTE FUNCTION record_visible();
SQL

# A source of its own on the same tables (slot and publication tributary_alone), replicated to a
# staging store of its own and never applied: decoding alone, on each round's backlog.
mkdir -p "$work/alone-slots"
sed "s/dbname=tributary/dbname=alone/; s#\.\./staging#../alone-staging#; s#\.\./work#../alone-work#" "$work/slots/tributary.yaml" >"$work/alone-slots/tributary.yaml"
sed "s/^source: bench$/source: alone/" "$work/slots/bench.yaml" >"$work/alone-slots/alone.yaml"
on_target -d postgres -c "CREATE DATABASE alone"
"$tributary" snapshot --source alone --config "$work/alone-slots" --log-level warning >/dev/null

now() { date +%s.%N; }
# Waits in one session, not a connection per look: each psql start cost the target a backend,
# and polling so 20 times a second was 0.13 CPU-s of the target's per second, charged to whichever
# method's window it was (1.2-1.3 CPU-s of a wide-row window of 14). COMMIT ends each look's
# transaction, so no snapshot is held past it (HOT pruning and vacuum see no old xmin).
wait_for_marker() {
  on_target -d "$1" -c "DO \$\$ BEGIN WHILE NOT EXISTS (SELECT 1 FROM $2 WHERE id = $3) LOOP COMMIT; PERFORM pg_sleep(0.05); END LOOP; END \$\$"
}
applied_rows() { on_target -d "$1" -Atc "SELECT coalesce(sum(rows), 0) FROM tributary.applied_batches"; }
# Enables the native subscription until it has applied marker $1, then disables it: seconds in
# $elapsed, cores busy meanwhile in $busy.
native_catch_up() {
  local start ticks; ticks=$(cpu_ticks); clusters_cpu_start; start=$(now)
  on_target -d native -c "ALTER SUBSCRIPTION native_sub ENABLE"
  wait_for_marker native marker "$1"
  elapsed=$(echo "$(now) - $start" | bc); busy=$(cores_busy_since "$ticks"); clusters_cpu_since; client_cpu=0
  on_target -d native -c "ALTER SUBSCRIPTION native_sub DISABLE"
}
# The source and target clusters' CPU-seconds since clusters_cpu_start, in $source_cpu and $target_cpu,
# each read once it has settled (the sessions of a command that ended may still be exiting).
clusters_cpu_start() { source_cpu_start=$(cluster_cpu_settled "$work/source"); target_cpu_start=$(cluster_cpu_settled "$work/target"); }
clusters_cpu_since() {
  source_cpu=$(echo "$(cluster_cpu_settled "$work/source") - $source_cpu_start" | bc)
  target_cpu=$(echo "$(cluster_cpu_settled "$work/target") - $target_cpu_start" | bc)
}
# Runs tributary replicate + apply until STG has marker $1, then stops them: seconds in $elapsed,
# cores busy meanwhile in $busy.
tributary_catch_up() {
  local start ticks; ticks=$(cpu_ticks); clusters_cpu_start; start=$(now)
  "$tributary" replicate --source bench --config "$work/slots" --log-level warning >/dev/null & pids+=($!)
  "$tributary" apply --config "$work/slots" --log-level warning >/dev/null & pids+=($!)
  wait_for_marker tributary stg.bench_marker "$1"
  elapsed=$(echo "$(now) - $start" | bc); busy=$(cores_busy_since "$ticks"); clusters_cpu_since; client_cpu=$(processes_cpu "${pids[@]}")
  stop_pipeline
}
stop_pipeline() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
timed() { # command...: seconds in $elapsed, cores busy meanwhile in $busy, CPU-seconds of the command
  # in $client_cpu and of the clusters in $source_cpu and $target_cpu; the target checkpointed first
  on_target -d postgres -c "CHECKPOINT"
  local start ticks client_start; ticks=$(cpu_ticks); clusters_cpu_start; children_cpu_to "$work/times"; client_start=$(cat "$work/times.seconds")
  start=$(now)
  "$@" >/dev/null
  elapsed=$(echo "$(now) - $start" | bc); busy=$(cores_busy_since "$ticks"); clusters_cpu_since
  children_cpu_to "$work/times"; client_cpu=$(echo "$(cat "$work/times.seconds") - $client_start" | bc)
}
# The round's backlog: orders with keys of its own (inserts, updates, deletes), pgbench, a marker.
build_backlog() {
  local base=$(( ($1 - 1) * 1000000 ))
  on_source <<SQL
DO \$\$ BEGIN FOR t IN 0..99 LOOP
  INSERT INTO orders SELECT $base + t * 4000 + i, i % 997, i * 1.5, 'order ' || i, now() FROM generate_series(1, 4000) i; COMMIT;
END LOOP; END \$\$;
DO \$\$ BEGIN FOR t IN 0..1999 LOOP
  UPDATE orders SET amount = amount + 1 WHERE id > $base + t * 100 AND id <= $base + t * 100 + 100; COMMIT;
END LOOP; END \$\$;
DO \$\$ BEGIN FOR t IN 0..99 LOOP
  DELETE FROM orders WHERE id > $base + 200000 + t * 1000 AND id <= $base + 200000 + t * 1000 + 1000; COMMIT;
END LOOP; END \$\$;
SQL
  pgbench -n -b tpcb-like -c 4 -j 2 -t 25000 -h 127.0.0.1 -p $source_port -U postgres bench >/dev/null 2>&1
  on_source -c "INSERT INTO marker VALUES ($2, now())" -c "CHECKPOINT"
}
# The backlog's end (the WAL written so far), in $end, made visible to a reader at once: a logical
# message committed right after it is the next thing every reader receives.
mark_end() {
  end=$(on_source -Atc "SELECT pg_current_wal_insert_lsn()")
  on_source -c "SELECT pg_logical_emit_message(true, 'bench-end', '')" -o /dev/null
}

declare -A times
record() { times[$1]="${times[$1]:-} $2"; }
# A timed method's seconds, the cores it kept busy (as "<method>-busy") and its CPU-seconds
# ("<method>-client", "-source", "-target").
record_timed() {
  record "$1" "$elapsed"; record "$1-busy" "$busy"
  record "$1-client" "$client_cpu"; record "$1-source" "$source_cpu"; record "$1-target" "$target_cpu"
}
for round in $(seq "$rounds"); do
  echo "round $round of $rounds: building a backlog of about 1M changes" >&2
  on_source -c "SELECT pg_create_logical_replication_slot('recv_$round', 'pgoutput')" -o /dev/null
  marker=$((100 + round))
  build_backlog "$round" "$marker"
  mark_end
  before=$(applied_rows tributary)
  if [ $((round % 2)) = 1 ]; then order="native tributary"; else order="tributary native"; fi
  for method in $order; do
    echo "  $method catching up" >&2
    on_target -d postgres -c "CHECKPOINT"
    if [ "$method" = native ]; then native_catch_up "$marker"; else tributary_catch_up "$marker"; fi
    record_timed "$method"
  done
  record changes $(( $(applied_rows tributary) - before ))
  if [ $((round % 2)) = 1 ]; then order="alone recvlogical"; else order="recvlogical alone"; fi
  for method in $order; do
    echo "  $method reading the same backlog" >&2
    on_source -c "CHECKPOINT"
    if [ "$method" = alone ]; then
      timed "$tributary" replicate --source alone --end-lsn "$end" --config "$work/alone-slots" --log-level warning
    else
      timed pg_recvlogical -d "host=127.0.0.1 port=$source_port dbname=bench user=postgres" --slot "recv_$round" --start --endpos "$end" \
        -f /dev/null --no-loop -o proto_version=2 -o publication_names=tributary_bench -o messages=true -o streaming=on
    fi
    record_timed "$method"
  done
  on_source -c "SELECT pg_drop_replication_slot('recv_$round')" -o /dev/null
  echo "  apply --once alone on the staged backlog: batch by batch, loading ahead and not" >&2
  case $((round % 2)) in 1) order="single serial";; *) order="serial single";; esac
  for method in $order; do
    before=$(applied_rows "$method")
    if [ "$method" = single ]; then
      timed "$tributary" apply --once --config "$work/single-slots" --log-level warning
    else
      timed "$tributary" apply --once --no-load-ahead --config "$work/serial-slots" --log-level warning
    fi
    record_timed "$method"; record "$method-changes" $(( $(applied_rows "$method") - before ))
  done
  if [ -n "$baseline" ]; then
    timed "$baseline" apply --once --config "$work/baseline-slots" --log-level warning
    record_timed baseline
  fi
  echo "  two sources: the second source's backlog staged, then both applied by apply --once" >&2
  "$tributary" replicate --source bench2 --end-lsn "$end" --config "$work/double-slots" --log-level warning >/dev/null
  before=$(applied_rows double)
  timed "$tributary" apply --once --config "$work/double-slots" --log-level warning
  record_timed double; record double-changes $(( $(applied_rows double) - before ))
done
batches=$(on_target -d single -Atc "SELECT count(*) FROM tributary.applied_batches")
for db in single serial double; do
  for t in pgbench_accounts orders; do
    [ "$(on_target -d $db -Atc "SELECT count(*), sum(hashtext(t::text)) FROM stg.bench_$t t WHERE NOT _deleted")" = \
      "$(on_target -d tributary -Atc "SELECT count(*), sum(hashtext(t::text)) FROM stg.bench_$t t WHERE NOT _deleted")" ] \
      || { echo "$db: stg.bench_$t differs from the live pipeline's" >&2; exit 1; }
  done
done
for t in pgbench_accounts orders; do
  # Each source's snapshot has its own point: rows since untouched differ in _lsn only.
  [ "$(on_target -d double -Atc "SELECT count(*), sum(hashtext((to_jsonb(t) - '_lsn')::text)) FROM stg.bench2_$t t WHERE NOT _deleted")" = \
    "$(on_target -d tributary -Atc "SELECT count(*), sum(hashtext((to_jsonb(t) - '_lsn')::text)) FROM stg.bench_$t t WHERE NOT _deleted")" ] \
    || { echo "double: stg.bench2_$t differs from the live pipeline's stg.bench_$t" >&2; exit 1; }
done
[ "$(on_target -d native -Atc "SELECT count(*), sum(hashtext(to_jsonb(t)::text)) FROM orders t")" = \
  "$(on_target -d tributary -Atc "SELECT count(*), sum(hashtext((to_jsonb(t) - '_lsn' - '_deleted')::text)) FROM stg.bench_orders t WHERE NOT _deleted")" ] \
  || { echo "orders: STG differs from native's copy" >&2; exit 1; }

echo "latency: pgbench -R 200 for $seconds s with the pipeline live" >&2
"$tributary" replicate --source bench --config "$work/slots" --log-level warning >/dev/null & pids+=($!)
"$tributary" apply --config "$work/slots" --log-level warning >/dev/null & pids+=($!)
sleep 3
echo "INSERT INTO latency_probe (committed_at) VALUES (clock_timestamp());" > "$work/probe.sql"
pgbench -n -b tpcb-like -R 200 -T "$seconds" -c 2 -j 2 -h 127.0.0.1 -p $source_port -U postgres bench >/dev/null 2>&1 &
load=$!
pgbench -n -f "$work/probe.sql" -R 10 -T "$seconds" -c 1 -h 127.0.0.1 -p $source_port -U postgres bench >/dev/null 2>&1
wait $load || true
sleep 3
read -r p50 p95 p99 probes < <(on_target -d tributary -Atc "
  SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY l)::numeric, 3), round(percentile_cont(0.95) WITHIN GROUP (ORDER BY l)::numeric, 3),
         round(percentile_cont(0.99) WITHIN GROUP (ORDER BY l)::numeric, 3), count(*)
  FROM (SELECT extract(epoch FROM s.visible_at - p.committed_at) AS l FROM latency_seen s JOIN stg.bench_latency_probe p USING (id)) x" | tr '|' ' ')

echo "wide rows: a table of 30 columns (numeric, timestamptz, jsonb, text; about 1.5 KB a row), both pipelines end to end" >&2
wide_rows=${BENCH_WIDE_ROWS:-100000}
on_source <<'SQL'
CREATE TABLE wide (id bigint PRIMARY KEY,
  n1 numeric(14,4), n2 numeric(14,4), n3 numeric(14,4), n4 numeric(14,4), n5 numeric(14,4), n6 numeric(14,4), n7 numeric(14,4),
  t1 timestamptz, t2 timestamptz, t3 timestamptz, t4 timestamptz, t5 timestamptz, t6 timestamptz,
  j1 jsonb, j2 jsonb, j3 jsonb, j4 jsonb,
  s1 text, s2 text, s3 text, s4 text, s5 text, s6 text, s7 text, s8 text, s9 text, s10 text, s11 text, s12 text)
  WITH (autovacuum_enabled = off);
ALTER PUBLICATION native_pub ADD TABLE wide;
INSERT INTO marker VALUES (2, now());
SQL
pg_dump -s -t wide -h 127.0.0.1 -p $source_port -U postgres bench | on_target -d native -o /dev/null
# Autovacuum is off on the wide table, on the source and in both copies: a vacuum of a round's
# updated rows would otherwise run in whichever window came next and be charged to it (the
# source's in the first method's, native's in odd rounds; on the target, one copy's in the other
# method's window, as the order alternates), 2.0-2.5 CPU-s each. The source's copy is vacuumed
# before the windows, each target copy right after its own, and that CPU printed on its own.
on_target -d native -c "ALTER TABLE wide SET (autovacuum_enabled = off)"
on_target -d native -c "ALTER SUBSCRIPTION native_sub ENABLE"
wait_for_marker native marker 2
on_target -d native -c "ALTER SUBSCRIPTION native_sub REFRESH PUBLICATION WITH (copy_data = false)" -c "ALTER SUBSCRIPTION native_sub DISABLE"
# tributary's live pipeline (still running) reaches marker 2, takes the new table in by a table
# snapshot, and stops: both pipelines then start from the same point.
wait_for_marker tributary stg.bench_marker 2
echo "  - name: public.wide" >>"$work/slots/bench.yaml"
"$tributary" snapshot --source bench --table public.wide --apply --config "$work/slots" --log-level warning >/dev/null
on_target -d tributary -c "ALTER TABLE stg.bench_wide SET (autovacuum_enabled = off)"
stop_pipeline
per=$((wide_rows / 100))
for round in $(seq "$rounds"); do
  echo "wide rows, round $round of $rounds" >&2
  base=$(( (round - 1) * wide_rows ))
  marker=$((200 + round))
  on_source -c "SELECT pg_create_logical_replication_slot('wide_recv_$round', 'pgoutput')" -o /dev/null
  on_source <<SQL
DO \$\$ BEGIN FOR t IN 0..99 LOOP
  INSERT INTO wide SELECT i, random() * 1e6, random() * 1e6, random() * 1e6, random() * 1e6, random() * 1e6, random() * 1e6, random() * 1e6,
    now() - random() * interval '900 days', now() - random() * interval '900 days', now() - random() * interval '900 days',
    now() - random() * interval '900 days', now() - random() * interval '900 days', now() - random() * interval '900 days',
    jsonb_build_object('id', i, 'tags', jsonb_build_array(md5(i::text), md5((i + 1)::text)), 'score', random()),
    jsonb_build_object('a', md5((i * 3)::text), 'b', i % 97, 'c', jsonb_build_array(1, 2, 3)),
    jsonb_build_object('note', repeat(md5((i * 5)::text), 2), 'ok', i % 2 = 0),
    jsonb_build_object('k', i, 'v', md5((i * 7)::text)),
    repeat(md5(i::text), 2), repeat(md5((i + 2)::text), 2), repeat(md5((i + 3)::text), 2), repeat(md5((i + 4)::text), 2),
    repeat(md5((i + 5)::text), 2), repeat(md5((i + 6)::text), 2), repeat(md5((i + 7)::text), 2), repeat(md5((i + 8)::text), 2),
    repeat(md5((i + 9)::text), 2), repeat(md5((i + 10)::text), 2), repeat(md5((i + 11)::text), 2), repeat(md5((i + 12)::text), 2)
  FROM generate_series($base + t * $per + 1, $base + (t + 1) * $per) i;
  COMMIT;
END LOOP; END \$\$;
DO \$\$ BEGIN FOR t IN 0..99 LOOP
  UPDATE wide SET n1 = n1 + 1, s1 = md5(s1), j1 = j1 || '{"seen": true}', t1 = now() WHERE id > $base + t * $per AND id <= $base + (t + 1) * $per;
  COMMIT;
END LOOP; END \$\$;
INSERT INTO marker VALUES ($marker, now());
VACUUM (ANALYZE) wide;
CHECKPOINT;
SQL
  mark_end
  if [ $((round % 2)) = 1 ]; then order="native tributary recvlogical"; else order="recvlogical tributary native"; fi
  for method in $order; do
    echo "  $method catching up on the wide rows" >&2
    on_target -d postgres -c "CHECKPOINT"
    if [ "$method" = native ]; then native_catch_up "$marker"
    elif [ "$method" = tributary ]; then tributary_catch_up "$marker"
    else
      on_source -c "CHECKPOINT"
      timed pg_recvlogical -d "host=127.0.0.1 port=$source_port dbname=bench user=postgres" --slot "wide_recv_$round" --start --endpos "$end" \
        -f /dev/null --no-loop -o proto_version=2 -o publication_names=tributary_bench -o messages=true -o streaming=on
    fi
    record_timed "wide-$method"
    if [ "$method" != recvlogical ]; then
      vacuum_start=$(cluster_cpu_settled "$work/target")
      if [ "$method" = native ]; then on_target -d native -c "VACUUM (ANALYZE) wide"; else on_target -d tributary -c "VACUUM (ANALYZE) stg.bench_wide"; fi
      record "wide-$method-vacuum" "$(echo "$(cluster_cpu_settled "$work/target") - $vacuum_start" | bc)"
    fi
  done
  on_source -c "SELECT pg_drop_replication_slot('wide_recv_$round')" -o /dev/null
done
wide_changes=$((per * 200))
[ "$(on_target -d native -Atc "SELECT count(*), sum(hashtext(to_jsonb(t)::text)) FROM wide t")" = \
  "$(on_target -d tributary -Atc "SELECT count(*), sum(hashtext((to_jsonb(t) - '_lsn' - '_deleted')::text)) FROM stg.bench_wide t WHERE NOT _deleted")" ] \
  || { echo "wide: stg.bench_wide differs from native's copy" >&2; exit 1; }

# Per method: the median of its seconds and its rounds; a ratio is the median of the rounds' ratios
# (each round's methods ran on the same backlog, one after the other).
# times[] holds each method's rounds as one space-separated string: split on purpose.
# shellcheck disable=SC2086
m() { median ${times[$1]}; }
# shellcheck disable=SC2086
rounds_of() { printf '%.1f ' ${times[$1]}; }
# ratio A B [C D]: the median over rounds of A/B (seconds), or of (C/A)/(D/B) (rates, C and D changes).
ratio() {
  local a b values=() i c d
  read -ra a <<<"${times[$1]}"; read -ra b <<<"${times[$2]}"
  for i in "${!a[@]}"; do
    if [ $# = 4 ]; then read -ra c <<<"${times[$3]}"; read -ra d <<<"${times[$4]}"; values+=("$(echo "(${c[$i]} / ${a[$i]}) / (${d[$i]} / ${b[$i]})" | bc -l)")
    else values+=("$(echo "${a[$i]} / ${b[$i]}" | bc -l)"); fi
  done
  printf '%.2f' "$(median "${values[@]}")"
}
row() { # label seconds changes ratio-text rounds [method: its cores busy]
  printf '%-40s %9.1f %12.0f  %-58s %-16s %s\n' "$1" "$2" "$(echo "$3 / $2" | bc -l)" "$4" "$5" "${6:+$(m "$6-busy")}"
}
cores=$(nproc)
changes=$(m changes)
printf '\ncatching up on a backlog of %s row changes (pgbench scale %s plus mixed transactions), medians of %s rounds\n' "$changes" "$scale" "$rounds"
printf '%-40s %9s %12s  %-58s %-16s %s\n' "method" "seconds" "changes/s" "ratio (median of the rounds' ratios)" "rounds (s)" "cores busy (of $cores)"
row "native logical replication" "$(m native)" "$changes" "1.00x" "$(rounds_of native)" native
row "tributary replicate + apply (STG)" "$(m tributary)" "$changes" "$(ratio native tributary)x native" "$(rounds_of tributary)" tributary
row "tributary replicate alone" "$(m alone)" "$changes" "end to end $(ratio alone tributary)x of its rate (goal >= 0.95x)" "$(rounds_of alone)" alone
row "pg_recvlogical" "$(m recvlogical)" "$changes" "replicate alone $(ratio recvlogical alone)x of its rate" "$(rounds_of recvlogical)" recvlogical
row "tributary apply alone, batch by batch" "$(m single)" "$(m single-changes)" "$(ratio native single)x native (goal >= 2.0x)" "$(rounds_of single)" single
row "  the same, not loading ahead" "$(m serial)" "$(m serial-changes)" "$(ratio native serial)x native; loading ahead $(ratio serial single)x of it" "$(rounds_of serial)" serial
row "tributary apply alone, two sources" "$(m double)" "$(m double-changes)" \
  "$(ratio double single double-changes single-changes)x one source, batch by batch (goal >= 1.6x)" "$(rounds_of double)" double
[ -n "$baseline" ] && row "tributary apply alone at $baseline_revision" "$(m baseline)" "$changes" "$(ratio native baseline)x native" "$(rounds_of baseline)"
printf '  (%s batches staged in all)\n' "$batches"
printf '\nwide rows end to end: %s changes a round to a table of 30 columns (numeric, timestamptz, jsonb, text; about 1.5 KB a row)\n' "$wide_changes"
row "native logical replication" "$(m wide-native)" "$wide_changes" "1.00x" "$(rounds_of wide-native)" wide-native
row "tributary replicate + apply (STG)" "$(m wide-tributary)" "$wide_changes" "$(ratio wide-native wide-tributary)x native (goal >= 1.5x)" "$(rounds_of wide-tributary)" wide-tributary
row "pg_recvlogical (decoding alone)" "$(m wide-recvlogical)" "$wide_changes" "$(ratio wide-native wide-recvlogical)x native: no pipeline catches up faster" "$(rounds_of wide-recvlogical)" wide-recvlogical
printf '\nwhat %s cores allow, from the cores each step kept busy (medians):\n' "$cores"
printf '  two sources: at most %.2fx one source (one source alone kept %s cores busy; goal 1.6x)\n' \
  "$(echo "$cores / $(m single-busy)" | bc -l)" "$(m single-busy)"
alone_cpu=$(echo "$(m alone) * $(m alone-busy)" | bc -l); apply_cpu=$(echo "$(m single) * $(m single-busy)" | bc -l)
printf '  end to end: at most %.2fx the rate of replicate alone (its %.1f CPU-s plus apply alone'"'"'s %.1f, on %s cores, against its %.1f s; goal 0.95x)\n' \
  "$(echo "$(m alone) / (($alone_cpu + $apply_cpu) / $cores)" | bc -l)" "$alone_cpu" "$apply_cpu" "$cores" "$(m alone)"
printf '  wide rows: at most %sx native end to end (the source decodes them no faster than pg_recvlogical reads them; goal 1.5x)\n' \
  "$(ratio wide-native wide-recvlogical)"
wide_cpu=$(echo "$(m wide-tributary) * $(m wide-tributary-busy)" | bc -l); native_cpu=$(echo "$(m wide-native) * $(m wide-native-busy)" | bc -l)
printf '  wide rows: tributary end to end spent %.1f CPU-s (native %.1f), so on %s cores it cannot take less than %.1f s: at most %.2fx native\n' \
  "$wide_cpu" "$native_cpu" "$cores" "$(echo "$wide_cpu / $cores" | bc -l)" "$(echo "$(m wide-native) / ($wide_cpu / $cores)" | bc -l)"
# CPU-seconds per change: the median over rounds of each part, in microseconds a change.
per_change() { echo "$(m "$1") * 1000000 / $2" | bc -l; }
# cpu METHOD [PARTS]: the median over rounds of the sum of the method's parts (default: all three).
cpu() {
  local method=$1 parts=${2:-"client source target"} values=() i part total
  local -a rounds_seen; read -ra rounds_seen <<<"${times[$method]}"
  for i in "${!rounds_seen[@]}"; do
    total=0
    for part in $parts; do local -a v; read -ra v <<<"${times[$method-$part]}"; total=$(echo "$total + ${v[$i]}" | bc -l); done
    values+=("$total")
  done
  median "${values[@]}"
}
# cpu_ratios A B [PARTS_A [PARTS_B]]: each round's ratio of A's CPU-seconds over B's (same backlog).
cpu_ratios() {
  local first=$1 second=$2 parts_a=${3:-"client source target"} parts_b=${4:-${3:-"client source target"}} values=() i part ta tb
  local -a rounds_seen; read -ra rounds_seen <<<"${times[$first]}"
  for i in "${!rounds_seen[@]}"; do
    ta=0; tb=0
    for part in $parts_a; do local -a v; read -ra v <<<"${times[$first-$part]}"; ta=$(echo "$ta + ${v[$i]}" | bc -l); done
    for part in $parts_b; do local -a w; read -ra w <<<"${times[$second-$part]}"; tb=$(echo "$tb + ${w[$i]}" | bc -l); done
    values+=("$(echo "$ta / $tb" | bc -l)")
  done
  echo "${values[@]}"
}
# cpu_ratio A B [PARTS_A [PARTS_B]]: the median over rounds of A's CPU-seconds over B's.
# shellcheck disable=SC2046
cpu_ratio() { printf '%.2f' "$(median $(cpu_ratios "$@"))"; }
# The rounds' ratios, as "0.91 0.98 1.04".
# shellcheck disable=SC2046
cpu_ratio_rounds() { printf '%.2f ' $(cpu_ratios "$@"); }
cpu_row() { # label method changes ratio-text
  printf '%-40s %10.1f %10.1f %10.1f %10.1f %12.1f  %s\n' "$1" "$(m "$2-source")" "$(m "$2-client")" "$(m "$2-target")" "$(cpu "$2")" \
    "$(echo "$(cpu "$2") * 1000000 / $3" | bc -l)" "$4"
}
printf '\nCPU-seconds from /proc (medians of %s rounds): the source cluster (walsender), tributary'"'"'s processes, the target cluster (apply worker or backends)\n' "$rounds"
printf '%-40s %10s %10s %10s %10s %12s  %s\n' "method" "source" "tributary" "target" "total" "CPU-us/chg" "ratio (median of the rounds' ratios)"
cpu_row "native logical replication" native "$changes" "1.00x"
cpu_row "tributary replicate + apply (STG)" tributary "$changes" \
  "$(cpu_ratio tributary native)x native (goal <= 1.0x); target $(cpu_ratio tributary native target)x native's (goal <= 0.8x)"
cpu_row "tributary replicate alone" alone "$changes" "$(cpu_ratio alone recvlogical)x pg_recvlogical"
cpu_row "pg_recvlogical" recvlogical "$changes" ""
cpu_row "tributary apply alone, batch by batch" single "$(m single-changes)" "target $(cpu_ratio single native target)x native's apply"
[ -n "$baseline" ] && cpu_row "tributary apply alone at $baseline_revision" baseline "$(m single-changes)" \
  "this checkout $(cpu_ratio single baseline)x of it; target $(cpu_ratio single baseline target)x"
cpu_row "wide rows: native" wide-native "$wide_changes" "1.00x"
cpu_row "wide rows: tributary replicate + apply" wide-tributary "$wide_changes" \
  "$(cpu_ratio wide-tributary wide-native)x native (goal <= 1.0x); target $(cpu_ratio wide-tributary wide-native target)x native's (goal <= 0.8x)"
printf '  rounds: %sagainst native; target %sagainst native'"'"'s\n' "$(cpu_ratio_rounds wide-tributary wide-native)" \
  "$(cpu_ratio_rounds wide-tributary wide-native target)"
cpu_row "wide rows: pg_recvlogical" wide-recvlogical "$wide_changes" ""
printf '  then VACUUM (ANALYZE) of its copy of the table, after the window (target CPU-s): native %.1f, tributary %.1f\n' \
  "$(m wide-native-vacuum)" "$(m wide-tributary-vacuum)"

printf '\ncommit-to-visible-in-STG latency under pgbench -R 200 (%s probes, default settings): p50 %s s, p95 %s s, p99 %s s (goal p50 <= 0.3, p99 <= 0.7)\n' "$probes" "$p50" "$p95" "$p99"
