#!/usr/bin/env bash
# Throwaway local PostgreSQL clusters for the demo, the benchmarks and the tests.
#
#   pg-cluster.sh init  DIR PORT [--logical] [--fast] [--set NAME=VALUE]…
#                                                       initdb, configure, start
#   pg-cluster.sh start DIR
#   pg-cluster.sh stop  DIR
#   pg-cluster.sh shutdown DIR MODE SECONDS             pg_ctl stop -m MODE, failing (no fallback) if the
#                                                       server is not down within SECONDS: what a DBA sees
#
# PostgreSQL refuses to run as root: when run as root, the server runs as the `postgres` OS user.
# Password auth over TCP (user postgres, password $PGPASSWORD, default "tributary"); trust on the
# cluster's own Unix socket in DIR.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PASSWORD=${PGPASSWORD:-tributary}

as_server_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

die() { echo "pg-cluster.sh: $*" >&2; exit 1; }

cmd=${1:-}; dir=${2:-}
{ [ -n "$cmd" ] && [ -n "$dir" ]; } || die "usage: pg-cluster.sh init DIR PORT [--logical] [--fast] | start DIR | stop DIR"
[ -x "$PGBIN/postgres" ] || die "no PostgreSQL server in $PGBIN: apt-get install -y postgresql-15 (or set PGBIN)"

case "$cmd" in
  init)
    port=${3:-}; [ -n "$port" ] || die "init needs a port"
    shift 3
    logical=no; fast=no; settings=()
    while [ $# -gt 0 ]; do
      case "$1" in
        --logical) logical=yes ;;
        --fast) fast=yes ;;
        --set) { [ $# -ge 2 ] && [[ "$2" == *=* ]]; } || die "--set needs NAME=VALUE"; settings+=("${2%%=*} = '${2#*=}'"); shift ;;
        *) die "unknown flag $1" ;;
      esac
      shift
    done
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ -e "$dir/data/PG_VERSION" ] && die "$dir already holds a cluster: stop it and remove the directory first"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    pwfile=$(mktemp); printf '%s\n' "$PASSWORD" > "$pwfile"; chmod 644 "$pwfile"
    as_server_user "$PGBIN/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C.UTF-8 \
      --auth-local=trust --auth-host=scram-sha-256 --pwfile="$pwfile" >"$dir/initdb.log" 2>&1 \
      || { rm -f "$pwfile"; cat "$dir/initdb.log" >&2; die "initdb failed"; }
    rm -f "$pwfile"
    {
      echo "port = $port"
      echo "listen_addresses = '127.0.0.1'"
      echo "unix_socket_directories = '$dir'"
      echo "max_connections = 200"
      echo "max_replication_slots = 100"
      echo "max_wal_senders = 100"
      echo "wal_level = $([ $logical = yes ] && echo logical || echo replica)"
      echo "logging_collector = off"
      if [ $fast = yes ]; then
        # Test clusters: durability does not matter, speed does.
        echo "fsync = off"; echo "synchronous_commit = off"; echo "full_page_writes = off"
        echo "shared_buffers = 64MB"
      fi
      for setting in "${settings[@]}"; do echo "$setting"; done
    } | as_server_user tee -a "$dir/data/postgresql.conf" >/dev/null
    as_server_user "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null \
      || { tail -20 "$dir/postgres.log" >&2; die "server did not start"; }
    ;;
  start)
    as_server_user "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null \
      || { tail -20 "$dir/postgres.log" >&2; die "server did not start"; }
    ;;
  stop)
    [ -e "$dir/data/postmaster.pid" ] || exit 0
    as_server_user "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null || \
      as_server_user "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
    ;;
  shutdown)
    mode=${3:-fast}; seconds=${4:-60}
    [ -e "$dir/data/postmaster.pid" ] || exit 0
    as_server_user "$PGBIN/pg_ctl" -D "$dir/data" -m "$mode" -w -t "$seconds" stop >/dev/null
    ;;
  *) die "unknown command $cmd" ;;
esac
