#!/usr/bin/env bash
# A throwaway local PostgreSQL cluster for the demo, the tests and the benchmarks.
#   scripts/cluster.sh start   start it (or reuse the running one); prints its URL
#   scripts/cluster.sh url     print the URL of the running cluster
#   scripts/cluster.sh stop    stop it and delete its data
# State lives in .cluster/ (ignored by git); data in a fresh /tmp folder owned by
# the user the server runs as: postgres when we are root (PostgreSQL refuses root).
set -euo pipefail
cd "$(dirname "$0")/.."
state=.cluster/env

bindir() {
    local d
    if command -v pg_config >/dev/null && d=$(pg_config --bindir) && [ -x "$d/initdb" ]; then
        echo "$d"; return
    fi
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] && [ -x "$d/initdb" ] || {
        echo "cluster: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
        exit 1
    }
    echo "$d"
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

running() {
    [ -f "$state" ] || return 1
    # shellcheck disable=SC1090
    . "$state"
    [ -d "$PGCLAIM_PGDATA" ] && as_owner "$(bindir)/pg_ctl" status -D "$PGCLAIM_PGDATA" >/dev/null 2>&1
}

url() {
    . "$state"
    echo "postgresql://$PGCLAIM_PGUSER@127.0.0.1:$PGCLAIM_PGPORT/postgres"
}

start() {
    if running; then url; return; fi
    local bin base data port user
    bin=$(bindir)
    base=$(mktemp -d /tmp/pgclaim-cluster.XXXXXX)
    data="$base/data"
    if [ "$(id -u)" = 0 ]; then user=postgres; chown postgres: "$base"; else user=$(id -un); fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/initdb" -D "$data" -U "$user" --auth=trust -E UTF8 --no-instructions >"$base/initdb.log" 2>&1 || {
        cat "$base/initdb.log" >&2; exit 1; }
    cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$base'
max_connections = 250
shared_preload_libraries = 'pg_stat_statements'
CONF
    as_owner "$bin/pg_ctl" -D "$data" -l "$base/server.log" -w -t 60 start >/dev/null || {
        cat "$base/server.log" >&2; exit 1; }
    mkdir -p .cluster
    printf 'PGCLAIM_PGDATA=%s\nPGCLAIM_PGPORT=%s\nPGCLAIM_PGUSER=%s\nPGCLAIM_BASE=%s\n' \
        "$data" "$port" "$user" "$base" >"$state"
    url
}

stop() {
    if running; then
        as_owner "$(bindir)/pg_ctl" -D "$PGCLAIM_PGDATA" -m fast -w stop >/dev/null || true
    fi
    if [ -f "$state" ]; then
        . "$state"
        case "$PGCLAIM_BASE" in /tmp/pgclaim-cluster.*) rm -rf "$PGCLAIM_BASE" ;; esac
        rm -f "$state"
    fi
}

case "${1:-}" in
    start) start ;;
    url) running && url || { echo "cluster: not running (scripts/cluster.sh start)" >&2; exit 1; } ;;
    stop) stop ;;
    *) echo "usage: $0 start|url|stop" >&2; exit 2 ;;
esac
