#!/usr/bin/env bash
# 10-minute no-false-DOWN soak of a 5-member mesh, idle and then with both
# cores kept busy by two CPU hogs. Takes 20+ minutes; prints one line each.
#   bench/peerlink-soak.sh [DURATION]      (default 10m)
set -euo pipefail
cd "$(dirname "$0")/.."
d=${1:-10m}
bin=$(mktemp -d)/peerlink-bench
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./bench/peerlink
"$bin" soak -members 5 -duration "$d"
"$bin" soak -members 5 -duration "$d" -busy
