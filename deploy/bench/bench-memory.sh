#!/usr/bin/env bash
# Benchmark: peak memory with one very large value (the reliability issue's memory bound: at most
# the largest single value plus 256 MiB). One row holds a BENCH_VALUE_MIB (default 200) MiB bytea;
# peak RSS (from /usr/bin/time) of `snapshot --apply` over it, of `replicate` over an insert of such
# a row and an update of another column of it (pgoutput then sends the value or marks it unchanged),
# and of `apply --once` merging those changes.
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
peak "replicate (insert of the value, then an update)" "$tributary" replicate --source bench --end-lsn "$end" --config "$work/slots" --log-level warning
peak "apply --once (merging both)" "$tributary" apply --once --config "$work/slots" --log-level warning
"$tributary" verify --config "$work/slots" --log-level warning | tail -1 >&2

printf '\npeak RSS with one %s MiB value (goal: at most the value plus 256 MiB = %s MiB)\n' "$value_mib" "$((value_mib + 256))"
printf '%-52s %8s\n' "command" "MiB"
cat "$work/table"
