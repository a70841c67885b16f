#!/usr/bin/env bash
# Drops and recreates database $2 on the cluster at URL $1, then loads sql/ into it.
# The cluster is a throwaway one made for pgclaim: roles left by an older install
# on it are adopted (pgclaim.adopt_existing), as sql/00_roles.sql would otherwise
# refuse roles it did not mark.
set -euo pipefail
cd "$(dirname "$0")/.."
url=$1 db=$2
psql "$url" -qX -v ON_ERROR_STOP=1 -c "drop database if exists \"$db\" with (force)" -c "create database \"$db\""
for f in $(scripts/sql_files.sh); do cat "$f"; echo; done |
    PGOPTIONS='-c client_min_messages=warning -c pgclaim.adopt_existing=on' psql "${url%/*}/$db" -qX -v ON_ERROR_STOP=1 -1
