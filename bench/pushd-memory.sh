#!/usr/bin/env bash
# RSS per idle SSE stream of one pushd node (standalone: no mesh).
# The node runs alone in its process; the clients (bin/pushdclients) run in
# several processes of at most PER streams each, since a process may hold at
# most 20,000 descriptors. RSS is read from /proc/PID/status after each step.
# PROTO=h2 opens HTTP/2 streams instead (h2c, prior knowledge), PERCONN of
# them multiplexed over each connection (at most the node's
# SETTINGS_MAX_CONCURRENT_STREAMS, Go's default 250).
#
#   STREAMS=19000 PER=4750 STEP=4750 bench/pushd-memory.sh
#   PROTO=h2 PERCONN=100 STREAMS=19000 bench/pushd-memory.sh
#
# TLS=1 serves and connects with TLS (a self-signed certificate made with
# openssl): HTTP/1.1 over TLS, or HTTP/2 by ALPN with PROTO=h2.
#
# SERVER=nethttp measures bench/nethttpsse instead, the plainest net/http
# SSE server (each stream keeps its handler goroutine), as a yardstick.
set -euo pipefail
cd "$(dirname "$0")/.."
STREAMS=${STREAMS:-19000} PER=${PER:-4750} STEP=${STEP:-$PER} ADDR=${ADDR:-127.0.0.31:8080}
SETTLE=${SETTLE:-5} PROTO=${PROTO:-h1} PERCONN=${PERCONN:-100} TLS=${TLS:-}
case $PROTO in
  h1) proto_flags=() ;;
  h2) proto_flags=(-h2 -streams-per-conn "$PERCONN") ;;
  *) echo "PROTO must be h1 or h2" >&2; exit 2 ;;
esac
scheme=http
go build -o bin/ ./cmd/pushd ./bench/pushdclients ./bench/nethttpsse
. bench/lib.sh
if [ -n "$TLS" ]; then
  [ "${SERVER:-pushd}" = pushd ] || { echo "TLS=1 needs SERVER=pushd" >&2; exit 2; }
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench \
    -addext "subjectAltName=IP:${ADDR%:*}" -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null
  PUSHD_FLAGS="${PUSHD_FLAGS:-} --tls-cert $tmp/tls.crt --tls-key $tmp/tls.key"
  proto_flags+=(-tls)
  scheme=https
fi
case ${SERVER:-pushd} in
  pushd) start_standalone_node "$ADDR"; streams_metric=farmlb_pushd_streams ;;
  nethttp) start_nethttp_sse "$ADDR"; streams_metric=nethttpsse_streams ;;
  *) echo "SERVER must be pushd or nethttp" >&2; exit 2 ;;
esac
rss() { awk '/VmRSS/ {print $2}' /proc/$node/status; }
metric() { curl -kfsS "$scheme://$ADDR/metrics" | awk -v m="$1" '$1 == m {printf "%d", $2}'; }
sleep 1
base=$(rss)
echo "server: ${SERVER:-pushd}; protocol: $PROTO${TLS:+ over TLS}${proto_flags:+ ($PERCONN streams per connection)}; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "node idle RSS: ${base} KiB (go heap in use $(($(metric go_memstats_heap_inuse_bytes)/1024)) KiB, stacks $(($(metric go_memstats_stack_inuse_bytes)/1024)) KiB)"
printf "%8s %10s %14s %10s %10s %11s %12s %6s\n" streams rss_KiB KiB_per_stream heap_KiB stack_KiB goroutines node_streams load1
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
    bin/pushdclients -addr "$ADDR" -src "127.0.1.$i" -n "$k" "${proto_flags[@]}" >"$fifo" &
    pids+=($!)
    read -r line <"$fifo"
    [ "${line%% *}" = ready ] || { echo "client failed: $line" >&2; exit 1; }
    left=$((left - k))
  done
  open=$((open + n))
  sleep "$SETTLE"
  r=$(rss)
  printf "%8d %10d %14.2f %10d %10d %11d %12d %6s\n" "$open" "$r" "$(echo "($r - $base) / $open" | bc -l)" "$(($(metric go_memstats_heap_inuse_bytes)/1024))" "$(($(metric go_memstats_stack_inuse_bytes)/1024))" "$(metric go_goroutines)" "$(metric $streams_metric)" "$(cut -d' ' -f1 /proc/loadavg)"
done
echo "streams reported by the node: $(metric $streams_metric); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
