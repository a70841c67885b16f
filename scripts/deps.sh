#!/usr/bin/env bash
# Installs the system packages pgclaim's tests need, when missing: the PostgreSQL
# server, pgTAP, pg_prove and plpgsql_check. apt-get when root; else says what to run.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v psql >/dev/null || need+=(postgresql-client)
ls /usr/share/postgresql/*/extension/pgtap.control >/dev/null 2>&1 || need+=(postgresql-15-pgtap)
command -v pg_prove >/dev/null || need+=(libtap-parser-sourcehandler-pgtap-perl)
ls /usr/share/postgresql/*/extension/plpgsql_check.control >/dev/null 2>&1 || need+=(postgresql-15-plpgsql-check)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "deps: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
else
    echo "deps: missing ${need[*]}; install them with:" >&2
    echo "  sudo apt-get install -y ${need[*]}" >&2
    exit 1
fi
