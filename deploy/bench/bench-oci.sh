#!/usr/bin/env bash
# Benchmark: upload and download throughput to the OCI emulator on loopback, tributary's client
# (`tributary objects put|get`, multipart above the threshold, Content-MD5 on every upload) beside curl sending the same bytes to
# the same emulator with a request signed beforehand, in the same run. Both include their process start.
# Environment: BENCH_SMALL_COUNT (1 MiB objects per tool, default 50), BENCH_LARGE_MIB (default 1024).
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${BENCH_SMALL_COUNT:-50}; large_mib=${BENCH_LARGE_MIB:-1024}
work=${TMPDIR:-/tmp}/tributary-bench-oci-$(id -u)
keys=$PWD/Tests/TributaryCoreTests/Fixtures/oci

deploy/install-deps.sh
echo "building tributary (release)" >&2
swift build -c release --product tributary >/dev/null
tributary=$(swift build -c release --show-bin-path)/tributary

emulator_pid=""
cleanup() { [ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
rm -rf "$work"; mkdir -p "$work/slots" "$work/data" "$work/files"
/usr/bin/python3 deploy/tools/oci-emulator.py --oci-config "$keys/config" --namespace tributary --bucket bench \
  --data "$work/data" > "$work/emulator.out" 2>&1 &
emulator_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/emulator.out" && break; sleep 0.1; done
endpoint=$(sed -n 's/^listening on //p' "$work/emulator.out")
cat > "$work/slots/tributary.yaml" <<YAML
target:
  connection: "host=127.0.0.1 dbname=unused"
staging: oci://tributary/bench/run
work_dir: $work/work
oci:
  config_file: $keys/config
  endpoint: $endpoint
YAML
# The loader wants a source; this one is never contacted.
printf 'source: bench\nconnection: "host=127.0.0.1 dbname=unused"\ntables:\n  - name: public.unused\n' > "$work/slots/bench.yaml"
# The same with multipart off, to compare one PutObject stream with curl's.
mkdir -p "$work/single"; cp "$work/slots/bench.yaml" "$work/single/"
sed 's/^oci:$/oci:\n  multipart_threshold: 4GiB/' "$work/slots/tributary.yaml" > "$work/single/tributary.yaml"

# curl's side: the same signature scheme, made with python3-cryptography from the same key.
sign() { # method path -> curl -H arguments, one per line
  /usr/bin/python3 deploy/tools/oci-sign.py "$1" "$2" "$endpoint" "$keys/config"
}
# Signed ahead of the clock (a signature stays valid for 5 minutes), so curl's time is the transfer's.
declare -A signed
presign() { signed["$1 $2"]=$(sign "$1" "/n/tributary/b/bench/o/$2"); }
curl_call() { # method name file
  local path="/n/tributary/b/bench/o/$2" headers=()
  while IFS= read -r line; do headers+=(-H "$line"); done <<< "${signed["$1 $2"]}"
  if [ "$1" = PUT ]; then
    curl -sf -T "$3" -H "Expect:" "${headers[@]}" "$endpoint$path" >/dev/null
  else
    curl -sf -o "$3" "${headers[@]}" "$endpoint$path"
  fi
}
seconds() { local start=$1; echo "$(date +%s.%N) - $start" | bc; }
mibps() { echo "scale=1; $1 / $2" | bc; }

echo "writing test files (1 MiB and $large_mib MiB of random bytes)" >&2
head -c $((1 << 20)) /dev/urandom > "$work/files/small"
head -c $((large_mib << 20)) /dev/urandom > "$work/files/large"

declare -A result
# Writing a GiB costs this VM more the more file data it already caches, so whichever tool runs
# later would pay for the other's files: each measurement runs twice, the tools alternating, the
# previous download removed and the page cache flushed first, and the faster run counts.
run() { # label command...
  local label=$1; shift
  rm -f "$work"/files/back*; sync
  local start; start=$(date +%s.%N)
  "$@"
  local took; took=$(seconds "$start")
  if [ -z "${result[$label]:-}" ] || [ "$(echo "$took < ${result[$label]}" | bc)" = 1 ]; then result[$label]=$took; fi
}
# Each tool moves the small objects in one process (curl with --next per URL, tributary with
# FILE KEY pairs), so connection reuse counts and process start-up does not dominate.
curl_many() { # method: one curl for all small objects
  local arguments=() first=1
  for i in $(seq "$count"); do
    local path="/n/tributary/b/bench/o/run/small-c-$i"
    [ $first = 1 ] || arguments+=(--next); first=0
    while IFS= read -r line; do arguments+=(-H "$line"); done <<< "${signed["$1 run/small-c-$i"]}"
    if [ "$1" = PUT ]; then arguments+=(-sf -T "$work/files/small" -H "Expect:" -o /dev/null "$endpoint$path")
    else arguments+=(-sf -o "$work/files/back-$i" "$endpoint$path"); fi
  done
  curl "${arguments[@]}"
}
small_put_curl() { curl_many PUT; }
small_get_curl() { curl_many GET; }
small_put_tributary() {
  local pairs=(); for i in $(seq "$count"); do pairs+=("$work/files/small" "small-t-$i"); done
  "$tributary" objects put --config "$work/slots" "${pairs[@]}" >/dev/null
}
small_get_tributary() {
  local pairs=(); for i in $(seq "$count"); do pairs+=("small-t-$i" "$work/files/back-$i"); done
  "$tributary" objects get --config "$work/slots" "${pairs[@]}" >/dev/null
}

for i in $(seq "$count"); do presign PUT "run/small-c-$i"; presign GET "run/small-c-$i"; done
presign PUT run/large-c; presign GET run/large-c
echo "1 MiB objects, $count each, twice" >&2
for _ in 1 2; do
  run small_put_curl small_put_curl
  run small_put_tributary small_put_tributary
  run small_get_tributary small_get_tributary
  run small_get_curl small_get_curl
done
echo "$large_mib MiB object, twice" >&2
for _ in 1 2; do
  run large_put_curl curl_call PUT run/large-c "$work/files/large"
  run large_single_tributary "$tributary" objects put --config "$work/single" "$work/files/large" large-s
  run large_put_tributary "$tributary" objects put --config "$work/slots" "$work/files/large" large-t
  run large_get_tributary "$tributary" objects get --config "$work/slots" large-t "$work/files/back"
  cmp -s "$work/files/large" "$work/files/back" || { echo "tributary download differs" >&2; exit 1; }
  run large_get_curl curl_call GET run/large-c "$work/files/back"
  cmp -s "$work/files/large" "$work/files/back" || { echo "curl download differs" >&2; exit 1; }
done

small_total=$count
printf "\n%-28s %12s %12s %8s\n" "transfer" "curl MiB/s" "tributary" "ratio"
for row in "small_put:1 MiB upload:$small_total" "small_get:1 MiB download:$small_total" \
           "large_single:$large_mib MiB upload (one PUT):$large_mib" "large_put:$large_mib MiB upload (multipart):$large_mib" \
           "large_get:$large_mib MiB download:$large_mib"; do
  IFS=: read -r key label mib <<< "$row"
  curl_key=${key}_curl; [ "$key" = large_single ] && curl_key=large_put_curl
  c=$(mibps "$mib" "${result[$curl_key]}"); t=$(mibps "$mib" "${result[${key}_tributary]}")
  printf "%-28s %12s %12s %7sx\n" "$label" "$c" "$t" "$(echo "scale=2; $t / $c" | bc)"
done
