#!/usr/bin/env bash
# Runs the pgTAP suite: a fresh database loaded from sql/, pgTAP in schema tap,
# plpgsql_check, the fixtures of tests/sql/_setup/, then pg_prove over every file.
#   scripts/pgtap.sh URL-of-the-cluster [test files...]
set -euo pipefail
cd "$(dirname "$0")/.."
url=$1; shift
db=pgclaim_tap
scripts/reload.sh "$url" "$db"
dburl="${url%/*}/$db"
psql "$dburl" -qX -v ON_ERROR_STOP=1 <<SQL
set client_min_messages = warning;
create schema tap;
create extension pgtap schema tap;
create extension plpgsql_check;
alter database $db set search_path = public, tap;
SQL
for f in tests/sql/_setup/*.sql; do
    PGOPTIONS='-c client_min_messages=warning' psql "$dburl" -qX -v ON_ERROR_STOP=1 -f "$f"
done
if [ $# -eq 0 ]; then
    mapfile -t files < <(find tests/sql -name '*.sql' -not -path '*/_setup/*' | LC_ALL=C sort)
else
    files=("$@")
fi
# pg_prove takes the connection from the environment (a URI with options is not honoured).
hostport=${url#*@}; hostport=${hostport%%/*}
export PGHOST=${hostport%:*} PGPORT=${hostport#*:} PGDATABASE=$db
export PGUSER=${url#postgresql://}; PGUSER=${PGUSER%%@*}
export PGOPTIONS='-c client_min_messages=warning'
pg_prove --ext .sql "${files[@]}"
