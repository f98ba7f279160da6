#!/usr/bin/env bash
# Benchmark: the object sync (tributary sync-objects), all in one run, against baselines measured
# beside it:
#   1. full      BENCH_OBJECTS small objects (2 KiB) and BENCH_BIG multipart objects of
#                BENCH_BIG_MIB MiB, bucket to bucket on the OCI emulator (one profile: server-side
#                CopyObject), tributary against a sync written with the OCI Python SDK (PyPI `oci`)
#   2. 1%        1% of the small objects rewritten (same size) and 1% deleted, then a pass of each
#                (goal: tributary in <= 0.5x the SDK sync's time, with fewer requests)
#   3. streamed  the big objects through this host (two profiles, so no server-side copy) against
#                curl downloading and uploading the same bytes, with the same signature scheme
#                (goal: >= 0.9x curl's throughput)
#   4. rclone    the small objects between two local directories, tributary against
#                `rclone sync --checksum` (Debian's rclone 1.60 has no Oracle Object Storage
#                backend: it came in 1.61, so it cannot be pointed at the emulator), full and 1%
#   5. memory    peak RSS of a pass over BENCH_OBJECTS and over BENCH_LISTED objects (both sides
#                listed, nothing to copy): flat in the number of objects is the goal
# Wall time and peak RSS from /usr/bin/time, requests from the emulator's counter.
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/bench/bench-lib.sh
objects=${BENCH_OBJECTS:-20000}; big=${BENCH_BIG:-3}; big_mib=${BENCH_BIG_MIB:-100}; listed=${BENCH_LISTED:-200000}
work=${TMPDIR:-/tmp}/tributary-bench-sync-$(id -u)
venv=${TMPDIR:-/tmp}/tributary-bench-venv
keys=$PWD/Tests/TributaryCoreTests/Fixtures/oci
export PGPASSWORD=tributary PATH=/usr/lib/postgresql/15/bin:$PATH
port=55551

deploy/install-deps.sh --bench
tributary=$(build_tributary)
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import oci" 2>/dev/null; then
  echo "installing the OCI Python SDK (PyPI oci) into $venv" >&2
  python3 -m venv "$venv"; "$venv/bin/pip" install -q oci
fi

emulator_pid=""
cleanup() {
  [ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null
  deploy/tools/pg-cluster.sh stop "$work/unipacc" 2>/dev/null || true
}
trap cleanup EXIT
cleanup; rm -rf "$work"; mkdir -p "$work/data"
deploy/tools/pg-cluster.sh init "$work/unipacc" $port
psql -X -q -h 127.0.0.1 -p $port -U postgres -d postgres -c "CREATE DATABASE unipacc"

# A second profile with the same key: to tributary another set of credentials, so it streams.
sed "s|key_file=key.pem|key_file=$keys/key.pem|" "$keys/config" >"$work/oci-config"; printf '\n[COPIER]\n' >>"$work/oci-config"
chmod 600 "$work/oci-config"
buckets=(src dst-t dst-s big-src big-t big-c l-small-src l-small-dst l-large-src l-large-dst)
bucket_options=(); for bucket in "${buckets[@]}"; do bucket_options+=(--bucket "$bucket"); done
/usr/bin/python3 deploy/tools/oci-emulator.py --oci-config "$work/oci-config" --namespace bench --data "$work/data" \
  "${bucket_options[@]}" >"$work/emulator.out" 2>&1 &
emulator_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/emulator.out" && break; sleep 0.1; done
endpoint=$(sed -n 's/^listening on //p' "$work/emulator.out")
control() { curl -sf -X POST --data "$2" "$endpoint/_emulator/$1" >/dev/null; }
requests() { curl -sf "$endpoint/_emulator/stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["requests"])'; }

# One configuration directory per measurement: a mapping from one bucket (or directory) to another.
configure() { # name from to [extra mapping lines]
  mkdir -p "$work/$1"
  cat >"$work/$1/tributary.yaml" <<YAML
target:
  connection: "host=127.0.0.1 port=$port dbname=unipacc user=postgres password=$PGPASSWORD"
staging: ../staging
work_dir: ../work
oci:
  config_file: $work/oci-config
  endpoint: $endpoint
sync:
  connections: 8
  multipart_threshold: 64MiB
  part_size: 16MiB
YAML
  printf 'source: bench\nconnection: "host=127.0.0.1 dbname=unused"\ntables:\n  - name: public.unused\nobjects:\n  - from: %s\n    to: %s\n    delete: true\n    max_delete: 100000000\n%s' \
    "$2" "$3" "${4:-}" >"$work/$1/bench.yaml"
}
configure full oci://bench/src/ oci://bench/dst-t/
configure streamed oci://bench/big-src/ oci://bench/big-t/ "    to_profile: COPIER
"
configure files "$work/files/src" "$work/files/dst-t"
configure list-small oci://bench/l-small-src/ oci://bench/l-small-dst/
configure list-large oci://bench/l-large-src/ oci://bench/l-large-dst/
# Uploads the big objects into a bucket in parts, as a big file usually arrives.
mkdir -p "$work/put"
printf 'target:\n  connection: "host=127.0.0.1 dbname=unused"\nstaging: oci://bench/src\nwork_dir: ../work\noci:\n  config_file: %s\n  endpoint: %s\n  multipart_threshold: 32MiB\n  part_size: 32MiB\n' \
  "$work/oci-config" "$endpoint" >"$work/put/tributary.yaml"
printf 'source: bench\nconnection: "host=127.0.0.1 dbname=unused"\ntables:\n  - name: public.unused\n' >"$work/put/bench.yaml"

declare -A wall rss reqs
measure() { # label command...: wall seconds, peak RSS (MiB) and emulator requests of one command
  local label=$1; shift
  local before; before=$(requests)
  /usr/bin/time -f "%e %M" -o "$work/time.out" "$@" >"$work/$label.out" 2>"$work/$label.err" || {
    local status=$?; [ $status = 99 ] || { echo "$label failed ($status):" >&2; tail -n 5 "$work/$label.out" "$work/$label.err" >&2; exit 1; }
  }
  # The last line: before it, time says when the command exited non-zero (99: nothing to do).
  read -r "wall[$label]" "rss[$label]" < <(tail -n 1 "$work/time.out")
  rss[$label]=$(( rss[$label] / 1024 ))
  reqs[$label]=$(( $(requests) - before - 1 ))
}
# Commands, not functions: /usr/bin/time runs programs.
T=("$tributary" sync-objects --log-level warning --config)
S=("$venv/bin/python" deploy/bench/bench-sync-sdk.py --config "$work/oci-config" --endpoint "$endpoint" --namespace bench --connections 8)

echo "populating: $objects small objects and $big of $big_mib MiB" >&2
control populate "{\"bucket\": \"src\", \"prefix\": \"docs/\", \"count\": $objects, \"size\": 2048, \"seed\": 1}"
head -c $((big_mib << 20)) /dev/urandom >"$work/big.bin"
for i in $(seq "$big"); do "$tributary" objects put --config "$work/put" --log-level warning "$work/big.bin" "big/$i.bin" >/dev/null; done
# The streamed measurement's source: the same big objects in a bucket of their own.
sed -i 's|staging: oci://bench/src|staging: oci://bench/big-src|' "$work/put/tributary.yaml"
for i in $(seq "$big"); do "$tributary" objects put --config "$work/put" --log-level warning "$work/big.bin" "$i.bin" >/dev/null; done

echo "1/5 full pass, server-side copies: tributary, then the SDK sync" >&2
measure full_t "${T[@]}" "$work/full"
measure full_s "${S[@]}" src dst-s
echo "2/5 1% rewritten (same size), 1% deleted: a pass of each" >&2
changed=$(( objects / 100 ))
control populate "{\"bucket\": \"src\", \"prefix\": \"docs/\", \"start\": 0, \"count\": $changed, \"size\": 2048, \"seed\": 2}"
control populate "{\"bucket\": \"src\", \"prefix\": \"docs/\", \"start\": $changed, \"count\": $changed, \"delete\": true}"
measure inc_t "${T[@]}" "$work/full"
measure inc_s "${S[@]}" src dst-s
measure again_t "${T[@]}" "$work/full"
measure again_s "${S[@]}" src dst-s

echo "3/5 streamed: $big x $big_mib MiB through this host, tributary and curl" >&2
measure stream_t "${T[@]}" "$work/streamed"
# curl's side, as a script (/usr/bin/time runs programs): GET each object to a file and PUT it back,
# the objects in parallel, each request signed just before (python3-cryptography, the same key and
# scheme as tributary's).
cat >"$work/curl-copy.sh" <<'SH'
set -euo pipefail
endpoint=$1 config=$2 work=$3 count=$4
sign() { # method path -> curl -H arguments, one per line
  /usr/bin/python3 deploy/tools/oci-sign.py "$1" "$2" "$endpoint" "$config"
}
copy() { # object number
  local get=() put=()
  while IFS= read -r line; do get+=(-H "$line"); done <<<"$(sign GET "/n/bench/b/big-src/o/$1.bin")"
  while IFS= read -r line; do put+=(-H "$line"); done <<<"$(sign PUT "/n/bench/b/big-c/o/$1.bin")"
  curl -sf -o "$work/curl-$1.bin" "${get[@]}" "$endpoint/n/bench/b/big-src/o/$1.bin"
  curl -sf -T "$work/curl-$1.bin" -H "Expect:" "${put[@]}" "$endpoint/n/bench/b/big-c/o/$1.bin" >/dev/null
  rm -f "$work/curl-$1.bin"
}
for i in $(seq "$count"); do copy "$i" & done
wait
SH
measure stream_c bash "$work/curl-copy.sh" "$endpoint" "$work/oci-config" "$work" "$big"

echo "4/5 between directories: tributary and rclone sync --checksum" >&2
python3 - "$work/files/src" "$objects" <<'PY'
import os, random, sys
root, count = sys.argv[1], int(sys.argv[2])
for index in range(count):
    directory = os.path.join(root, "docs", f"{index % 100:02d}")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"{index:08d}"), "wb") as handle:
        handle.write(random.Random(index).randbytes(2048))
PY
measure files_t "${T[@]}" "$work/files"
measure files_r rclone sync --checksum --transfers 8 --checkers 8 "$work/files/src" "$work/files/dst-r"
python3 - "$work/files/src" "$objects" <<'PY'
import os, random, sys
root, count = sys.argv[1], int(sys.argv[2])
changed = count // 100
for index in range(changed):
    with open(os.path.join(root, "docs", f"{index % 100:02d}", f"{index:08d}"), "wb") as handle:
        handle.write(random.Random(f"changed {index}").randbytes(2048))
for index in range(changed, 2 * changed):
    os.unlink(os.path.join(root, "docs", f"{index % 100:02d}", f"{index:08d}"))
PY
measure files_inc_t "${T[@]}" "$work/files"
measure files_inc_r rclone sync --checksum --transfers 8 --checkers 8 "$work/files/src" "$work/files/dst-r"

echo "5/5 memory: a pass over $objects and over $listed objects on each side, nothing to copy" >&2
for side in src dst; do
  control populate "{\"bucket\": \"l-small-$side\", \"prefix\": \"n/\", \"count\": $objects, \"size\": 64, \"seed\": 3}"
  control populate "{\"bucket\": \"l-large-$side\", \"prefix\": \"n/\", \"count\": $listed, \"size\": 64, \"seed\": 3}"
done
measure list_small "${T[@]}" "$work/list-small"
measure list_large "${T[@]}" "$work/list-large"

# Every sync ended with exactly the source's objects.
for config in full streamed list-large; do
  "${T[@]}" "$work/$config" --dry-run | grep -q "would copy 0 (0 B), replace 0 (0 B), delete 0" || { echo "$config: the target differs from the source" >&2; exit 1; }
done
diff -r -q -x .tributary-incoming "$work/files/src" "$work/files/dst-t" || { echo "tributary's directory differs" >&2; exit 1; }
diff -r -q "$work/files/src" "$work/files/dst-r" || { echo "rclone's directory differs" >&2; exit 1; }

ratio() { echo "scale=2; $1 / $2" | bc; }
row() { printf '%-44s %9s %9s %9s %8s %8s\n' "$@"; }
printf '\nobject sync: %s objects of 2 KiB and %s of %s MiB (multipart), emulator on loopback, 8 connections\n' "$objects" "$big" "$big_mib"
row "measurement" "wall s" "requests" "RSS MiB" "ratio" ""
for pair in "full:first full pass (server-side copies)" "inc:after 1% rewritten, 1% deleted" "again:nothing changed"; do
  IFS=: read -r key label <<<"$pair"
  row "$label, tributary" "${wall[${key}_t]}" "${reqs[${key}_t]}" "${rss[${key}_t]}" "$(ratio "${wall[${key}_t]}" "${wall[${key}_s]}")x" "of SDK"
  row "$label, OCI Python SDK sync" "${wall[${key}_s]}" "${reqs[${key}_s]}" "${rss[${key}_s]}" "1.00x" ""
done
mib=$(( big * big_mib ))
row "streamed $mib MiB, tributary (MiB/s)" "${wall[stream_t]}" "${reqs[stream_t]}" "${rss[stream_t]}" "$(ratio "$(ratio "$mib" "${wall[stream_t]}")" "$(ratio "$mib" "${wall[stream_c]}")")x" "of curl"
row "streamed $mib MiB, curl GET then PUT" "${wall[stream_c]}" "${reqs[stream_c]}" "-" "1.00x" "(goal >= 0.90x)"
row "directories, full, tributary" "${wall[files_t]}" "-" "${rss[files_t]}" "$(ratio "${wall[files_t]}" "${wall[files_r]}")x" "of rclone"
row "directories, full, rclone sync --checksum" "${wall[files_r]}" "-" "${rss[files_r]}" "1.00x" ""
row "directories, 1%, tributary" "${wall[files_inc_t]}" "-" "${rss[files_inc_t]}" "$(ratio "${wall[files_inc_t]}" "${wall[files_inc_r]}")x" "of rclone"
row "directories, 1%, rclone sync --checksum" "${wall[files_inc_r]}" "-" "${rss[files_inc_r]}" "1.00x" ""
row "pass over $objects objects a side, tributary" "${wall[list_small]}" "${reqs[list_small]}" "${rss[list_small]}" "" ""
row "pass over $listed objects a side, tributary" "${wall[list_large]}" "${reqs[list_large]}" "${rss[list_large]}" "$(ratio "${rss[list_large]}" "${rss[list_small]}")x" "RSS (goal: flat)"
printf '\ngoals: the 1%% pass in <= 0.5x the SDK sync'"'"'s time with fewer requests; streamed >= 0.9x curl; RSS flat in the objects listed\n'
