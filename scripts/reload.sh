#!/usr/bin/env bash
# Drops and recreates database $2 on the cluster at URL $1, then loads sql/ into it.
set -euo pipefail
cd "$(dirname "$0")/.."
url=$1 db=$2
psql "$url" -qX -v ON_ERROR_STOP=1 -c "drop database if exists \"$db\" with (force)" -c "create database \"$db\""
for f in $(scripts/sql_files.sh); do cat "$f"; echo; done |
    PGOPTIONS='-c client_min_messages=warning' psql "${url%/*}/$db" -qX -v ON_ERROR_STOP=1 -1
