# shellcheck shell=bash
# Shared by the benchmark scripts (sourced, not run).

# Builds this checkout's tributary in release mode; prints the binary's path.
build_tributary() {
  echo "building tributary (release)" >&2
  swift build -c release --product tributary >/dev/null || { echo "bench: the release build failed" >&2; return 1; }
  echo "$(swift build -c release --show-bin-path)/tributary"
}

# Builds tributary as of git revision $1 in $2 (a scratch directory outside the checkout), for a
# before/after comparison in one run; prints the binary's path.
build_baseline() {
  local revision=$1 directory=$2
  echo "building the baseline tributary at $revision (release)" >&2
  rm -rf "$directory/src"; mkdir -p "$directory/src"
  git archive "$revision" | tar -x -C "$directory/src"
  swift build -c release --product tributary --package-path "$directory/src" --scratch-path "$directory/build" >/dev/null \
    || { echo "bench: the release build of $revision failed" >&2; return 1; }
  echo "$directory/build/release/tributary"
}

# The median of the numbers given as arguments.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The machine's CPU time so far in clock ticks, busy and in all (from /proc/stat's first line:
# user, nice, system, irq and softirq are busy; idle, iowait and steal are not).
cpu_ticks() { awk '/^cpu / { busy = $2 + $3 + $4 + $7 + $8; print busy, busy + $5 + $6 + $9 }' /proc/stat; }
# How many cores were busy on average since the cpu_ticks reading given as $1 ("busy all"): on a
# machine where every process of a measurement shares the cores, the most a second, parallel
# stream of the same work can add is what the first left idle.
cores_busy_since() {
  local busy all since_busy since_all
  read -r since_busy since_all <<<"$1"; read -r busy all < <(cpu_ticks)
  echo "scale=2; ($busy - $since_busy) * $(nproc) / ($all - $since_all)" | bc
}

# A fresh source (wal_level=logical) and target cluster under $1 on ports $2 and $3, with an empty
# $1/slots, and a database "bench" on the source; whatever an earlier run left there is stopped.
# Further arguments (--set NAME=VALUE) go to the target's init.
fresh_source_and_target() {
  local work=$1 source_port=$2 target_port=$3; shift 3
  deploy/tools/pg-cluster.sh stop "$work/source" 2>/dev/null || true; deploy/tools/pg-cluster.sh stop "$work/target" 2>/dev/null || true
  rm -rf "$work"; mkdir -p "$work/slots"
  deploy/tools/pg-cluster.sh init "$work/source" "$source_port" --logical
  deploy/tools/pg-cluster.sh init "$work/target" "$target_port" "$@"
  psql -X -q -h 127.0.0.1 -p "$source_port" -U postgres -d postgres -c "CREATE DATABASE bench"
}

# CPU-seconds so far of the PostgreSQL cluster under $1 (pg-cluster.sh's directory): its postmaster,
# its live processes, and those that exited (the postmaster's reaped children, in its cutime and
# cstime). A backend or apply worker that connects and leaves between two readings is counted, so
# the difference of two readings is what the cluster spent meanwhile, whichever process spent it.
cluster_cpu() {
  local postmaster; postmaster=$(head -1 "$1/data/postmaster.pid")
  { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$postmaster/stat"
    for child in $(ps -o pid= --ppid "$postmaster"); do awk '{ print $14 + $15 }' "/proc/$child/stat" 2>/dev/null || true; done
  } | awk -v hz="$(getconf CLK_TCK)" '{ ticks += $1 } END { printf "%.2f\n", ticks / hz }'
}
# cluster_cpu once the cluster under $1 has settled: a backend that has left pg_stat_activity is
# still exiting, and its CPU reaches the postmaster's only when it is reaped (read too early, a
# whole apply's backend time was missing: 1.49 CPU-s, then 3.83 a second later). Reads until two
# readings 0.2 s apart agree (within the background processes' ticks), at most 5 s.
cluster_cpu_settled() {
  local previous current tries=0
  previous=$(cluster_cpu "$1")
  while :; do
    sleep 0.2; current=$(cluster_cpu "$1"); tries=$((tries + 1))
    if [ "$(echo "$current - $previous <= 0.02" | bc)" = 1 ] || [ $tries -ge 25 ]; then echo "$current"; return; fi
    previous=$current
  done
}
# CPU-seconds so far of the live processes $@ (each with all its threads).
processes_cpu() {
  local pid
  for pid in "$@"; do awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || true; done \
    | awk -v hz="$(getconf CLK_TCK)" '{ ticks += $1 } END { printf "%.2f\n", ticks / hz }'
}
# CPU-seconds so far of this shell's waited-for children (bash's `times`, second line). Run in the
# shell itself, not a subshell, whose children are its own: writes to the file $1.
children_cpu_to() {
  times >"$1"
  awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.2f\n", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$1" >"$1.seconds"
}
