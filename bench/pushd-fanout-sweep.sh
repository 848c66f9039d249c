#!/usr/bin/env bash
# Fan-out against its floor, for several subscriber counts: for each count
# in SWEEP, first bench/tcpfloor (the same fan-out as a bare write(2) loop
# with no server logic: what this machine's kernel alone costs), then
# bench/pushd-fanout.sh (a pushd node). Prints one table row per count.
#
#   SWEEP="1000 2500 5000 10000" MSGS=20 bench/pushd-fanout-sweep.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP=${SWEEP:-1000 2500 5000 10000} MSGS=${MSGS:-20} GAP=${GAP:-0.5}
go build -o bin/ ./bench/tcpfloor
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
pick() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" | head -1; }
echo "| streams | floor p50 | floor p99 | floor CPU/fan-out | pushd p50 | pushd p99 | pushd max | node CPU/fan-out | load avg |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for n in $SWEEP; do
  echo "[$(date +%T)] $n streams: floor" >&2
  floor=$(bin/tcpfloor -n "$n" -msgs "$MSGS" -gap "${GAP}s")
  fcpu=$(echo "$floor" | sed -n 's/writer CPU: \([0-9.]*\) ms.*/\1 ms/p')
  echo "[$(date +%T)] $n streams: pushd" >&2
  # One client process reads every stream, as tcpfloor has one reader.
  out=$(SUBS=$n PER=$n MSGS=$MSGS GAP=$GAP bench/pushd-fanout.sh 2>&1)
  ncpu=$(echo "$out" | sed -n 's/node CPU: \([0-9.]*\) ms.*/\1 ms/p')
  c=$(echo "$out" | grep '^client: ' | head -1)
  echo "| $n | $(echo "$floor" | pick p50) | $(echo "$floor" | pick p99) | $fcpu | $(echo "$c" | pick p50) | $(echo "$c" | pick p99) | $(echo "$c" | pick max) | $ncpu | $(cut -d' ' -f1 /proc/loadavg) |"
done
