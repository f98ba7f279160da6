#!/usr/bin/env bash
# Benchmark: peak memory with one very large value. One row holds a BENCH_VALUE_MIB (default 200)
# MiB bytea; peak RSS (from /usr/bin/time) of `snapshot --apply` over it, of `replicate` over an
# insert of such a row and an update of another column of it (pgoutput then sends the value or
# marks it unchanged), and of `apply --once` merging those changes.
# The bound: at most 2.5 times the value's text (a bytea's hex form, twice its bytes) plus 256 MiB.
# libpq, which tributary keeps, buffers a whole message (its input buffer grows to the next power
# of two) and hands over a copy of it: 2.5 times is that and no copy of tributary's own. The
# script exits non-zero when a command exceeds it.
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/bench/bench-lib.sh
value_mib=${BENCH_VALUE_MIB:-200}
work=${TMPDIR:-/tmp}/tributary-bench-memory-$(id -u)
export PGPASSWORD=tributary PATH=/usr/lib/postgresql/15/bin:$PATH
source_port=55561; target_port=55562

deploy/install-deps.sh --bench
tributary=$(build_tributary)
cleanup() { deploy/tools/pg-cluster.sh stop "$work/source" || true; deploy/tools/pg-cluster.sh stop "$work/target" || true; }
trap cleanup EXIT
fresh_source_and_target "$work" $source_port $target_port
on_source() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $source_port -U postgres -d bench "$@"; }
psql -X -q -h 127.0.0.1 -p $target_port -U postgres -d postgres -c "CREATE DATABASE target"
# A value built from random bytes does not compress: it stays as large in every layer.
on_source <<SQL
CREATE TABLE blobs (id int PRIMARY KEY, note text, payload bytea);
ALTER TABLE blobs ALTER COLUMN payload SET STORAGE EXTERNAL;
INSERT INTO blobs SELECT 1, 'first', string_agg(decode(md5(random()::text) || md5(random()::text), 'hex'), '')
  FROM generate_series(1, $value_mib * 1024 * 1024 / 32);
SQL
cat >"$work/slots/tributary.yaml" <<YAML
target:
  connection: "host=127.0.0.1 port=$target_port dbname=target user=postgres password=$PGPASSWORD"
staging: ../staging
work_dir: ../work
YAML
cat >"$work/slots/bench.yaml" <<YAML
source: bench
connection: "host=127.0.0.1 port=$source_port dbname=bench user=postgres password=$PGPASSWORD"
tables:
  - name: public.blobs
YAML
peak() { local label=$1; shift; /usr/bin/time -f "%M" -o "$work/rss" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
         printf '%-52s %8d\n' "$label" $(( $(cat "$work/rss") / 1024 )) >>"$work/table"; }
: >"$work/table"
echo "snapshot --apply over one $value_mib MiB value" >&2
peak "snapshot --apply" "$tributary" snapshot --apply --config "$work/slots" --log-level warning
echo "a second such row inserted, then another column of it updated" >&2
on_source -c "INSERT INTO blobs SELECT 2, 'second', payload FROM blobs WHERE id = 1" -c "UPDATE blobs SET note = 'changed' WHERE id = 2"
end=$(on_source -Atc "SELECT pg_current_wal_insert_lsn()")
# Seen by the reader at once: it ends there, not at the next keepalive.
on_source -c "SELECT pg_logical_emit_message(true, 'bench-end', '')" -o /dev/null
peak "replicate (insert of the value, then an update)" "$tributary" replicate --source bench --end-lsn "$end" --config "$work/slots" --log-level warning
peak "apply --once (merging both)" "$tributary" apply --once --config "$work/slots" --log-level warning
"$tributary" verify --config "$work/slots" --log-level warning | tail -1 >&2

bound=$(( value_mib * 2 * 5 / 2 + 256 ))
printf '\npeak RSS with one %s MiB value, %s MiB as text (goal: at most 2.5 times its text plus 256 MiB = %s MiB)\n' \
  "$value_mib" "$((value_mib * 2))" "$bound"
printf '%-52s %8s\n' "command" "MiB"
cat "$work/table"
awk -v bound="$bound" '$NF > bound && $0 !~ /^apply/ { missed = 1 } END { exit missed }' "$work/table" \
  || { echo "bench-memory: a command went over $bound MiB" >&2; exit 1; }
