#!/usr/bin/env bash
# RSS per idle SSE stream of one pushd node (standalone: no mesh).
# The node runs alone in its process; the clients (bin/pushdclients) run in
# several processes of at most PER streams each, since a process may hold at
# most 20,000 descriptors. RSS is read from /proc/PID/status after each step.
#
#   STREAMS=19000 PER=4750 STEP=4750 bench/pushd-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
STREAMS=${STREAMS:-19000} PER=${PER:-4750} STEP=${STEP:-$PER} ADDR=${ADDR:-127.0.0.31:8080}
SETTLE=${SETTLE:-5}
go build -o bin/ ./cmd/pushd ./bench/pushdclients
. bench/lib.sh
start_standalone_node "$ADDR"
rss() { awk '/VmRSS/ {print $2}' /proc/$node/status; }
metric() { curl -fsS "http://$ADDR/metrics" | awk -v m="$1" '$1 == m {printf "%d", $2}'; }
sleep 1
base=$(rss)
echo "pushd idle RSS: ${base} KiB (go heap in use $(($(metric go_memstats_heap_inuse_bytes)/1024)) KiB)"
printf "%8s %10s %14s %14s %12s\n" streams rss_KiB KiB_per_stream heap_KiB goroutines
open=0 i=0
while [ $open -lt "$STREAMS" ]; do
  n=$STEP
  [ $((open + n)) -gt "$STREAMS" ] && n=$((STREAMS - open))
  left=$n
  while [ $left -gt 0 ]; do
    k=$(( left < PER ? left : PER ))
    i=$((i + 1))
    fifo="$tmp/c$i"
    mkfifo "$fifo"
    bin/pushdclients -addr "$ADDR" -src "127.0.1.$i" -n "$k" >"$fifo" &
    pids+=($!)
    read -r line <"$fifo"
    [ "${line%% *}" = ready ] || { echo "client failed: $line" >&2; exit 1; }
    left=$((left - k))
  done
  open=$((open + n))
  sleep "$SETTLE"
  r=$(rss)
  printf "%8d %10d %14.2f %14d %12d\n" "$open" "$r" "$(echo "($r - $base) / $open" | bc -l)" "$(($(metric go_memstats_heap_inuse_bytes)/1024))" "$(metric go_goroutines)"
done
echo "streams reported by the node: $(metric farmlb_pushd_streams)"
