#!/usr/bin/env bash
# Prints the files of sql/ in load order (path order).
cd "$(dirname "$0")/.." && find sql -name '*.sql' | LC_ALL=C sort
