#!/usr/bin/env bash
# Fan-out latency: SUBS idle streams on one pushd node (standalone), then
# MSGS publishes, one every GAP (bench/pushdpub -timed, on one kept-alive
# connection); each message's data is its publish time (unix ns, taken just
# before the POST is sent), and every client records when it read it.
# Prints p50/p90/p99/max over all deliveries, and the CPU time the node and
# each client process used per message. CLIENT_FLAGS=-epoll=false reads
# with a goroutine per stream instead of one epoll thread per process.
#
#   SUBS=10000 MSGS=20 GAP=0.5 bench/pushd-fanout.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SUBS=${SUBS:-10000} PER=${PER:-5000} MSGS=${MSGS:-20} GAP=${GAP:-0.5} ADDR=${ADDR:-127.0.0.31:8080}
go build -o bin/ ./cmd/pushd ./bench/pushdclients ./bench/pushdpub
. bench/lib.sh
start_standalone_node "$ADDR"
# CPU time (user + system, in clock ticks) the node has used so far.
cpu() { awk '{print $14 + $15}' /proc/$node/stat; }
ucpu() { awk '{print $14}' /proc/$node/stat; }
left=$SUBS i=0 outs=()
while [ $left -gt 0 ]; do
  k=$(( left < PER ? left : PER ))
  i=$((i + 1))
  mkfifo "$tmp/c$i"
  bin/pushdclients -addr "$ADDR" -src "127.0.2.$i" -n "$k" -fanout "$MSGS" ${CLIENT_FLAGS:-} >"$tmp/c$i" &
  pids+=($!)
  exec {fd}<"$tmp/c$i"
  read -r line <&$fd
  [ "${line%% *}" = ready ] || { echo "client failed: $line" >&2; exit 1; }
  outs+=($fd)
  left=$((left - k))
done
echo "$SUBS streams open; publishing $MSGS messages, one every ${GAP}s"
cpu0=$(cpu) ucpu0=$(ucpu)
# PROFILE=FILE (with PUSHD_FLAGS=--pprof ADDR): a CPU profile of the node
# while it publishes.
if [ -n "${PROFILE:-}" ]; then
  curl -fsS -o "$PROFILE" "http://${PUSHD_FLAGS##*--pprof }/debug/pprof/profile?seconds=$(echo "$MSGS * $GAP" | bc | cut -d. -f1)" &
  prof=$!
fi
bin/pushdpub -urls "http://$ADDR" -token bench -timed "$MSGS" -gap "${GAP}s" -topic bench
cpu1=$(cpu) ucpu1=$(ucpu)
[ -z "${prof:-}" ] || wait "$prof"
hz=$(getconf CLK_TCK)
ms() { echo "$1 * 1000 / $hz / $MSGS" | bc -l | xargs printf '%.1f'; }
echo "node CPU: $(ms $((cpu1 - cpu0))) ms per message fanned out to $SUBS streams (user $(ms $((ucpu1 - ucpu0))) ms + system $(ms $((cpu1 - cpu0 - ucpu1 + ucpu0))) ms, all cores)"
for fd in "${outs[@]}"; do
  read -r line <&$fd && echo "client: $line"
done
curl -fsS "http://$ADDR/metrics" | grep -E '^farmlb_pushd_fanout_latency_seconds_(sum|count)'
