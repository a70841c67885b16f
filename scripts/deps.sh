#!/usr/bin/env bash
# Installs the system packages pgclaim's tests need, when missing: the PostgreSQL
# server, pgTAP, pg_prove, plpgsql_check, and iptables and iproute2 (ip) for the
# network-namespace faults of the chaos suite, pg_cron for the scheduled maintenance
# test, Node.js for the example of examples/node, pgbouncer for the test behind a
# pooler, and chromium and chromium-driver for the dashboard's browser test. apt-get
# when root; else says what to run.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v psql >/dev/null || need+=(postgresql-client)
ls /usr/share/postgresql/*/extension/pgtap.control >/dev/null 2>&1 || need+=(postgresql-15-pgtap)
command -v pg_prove >/dev/null || need+=(libtap-parser-sourcehandler-pgtap-perl)
ls /usr/share/postgresql/*/extension/plpgsql_check.control >/dev/null 2>&1 || need+=(postgresql-15-plpgsql-check)
# Network namespaces need root anyway: without root these two are only worth a note.
optional=()
has() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
has iptables || optional+=(iptables)
has ip || optional+=(iproute2)
ls /usr/share/postgresql/15/extension/pg_cron.control >/dev/null 2>&1 || optional+=(postgresql-15-cron)
command -v node >/dev/null || optional+=(nodejs)
command -v npm >/dev/null || optional+=(npm)
# PgBouncer, for the test of workers and producers behind a pooler in transaction mode.
has pgbouncer || optional+=(pgbouncer)
# The dashboard's browser test (tests/python/test_dashboard.py skips, naming them, without).
command -v chromium >/dev/null || optional+=(chromium)
command -v chromedriver >/dev/null || optional+=(chromium-driver)
[ ${#need[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ] && exit 0
all=("${need[@]}" "${optional[@]}")
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "deps: installing ${all[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${all[@]}" >/dev/null
elif [ ${#need[@]} -gt 0 ]; then
    echo "deps: missing ${all[*]}; install them with:" >&2
    echo "  sudo apt-get install -y ${all[*]}" >&2
    exit 1
else
    echo "deps: ${optional[*]} missing: the tests that need them (network-namespace chaos rows," \
        "pg_cron maintenance, the Node.js example, PgBouncer, the dashboard's browser test)" \
        "will be skipped" >&2
fi
