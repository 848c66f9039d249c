#!/usr/bin/env bash
# Fan-out latency: SUBS idle streams on one pushd node (standalone), then
# MSGS publishes, one every GAP; each message's data is its publish time
# (unix ns, taken before the POST), and every client records when it read
# it. Prints p50/p90/p99/max over all deliveries.
#
#   SUBS=10000 MSGS=20 GAP=0.5 bench/pushd-fanout.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SUBS=${SUBS:-10000} PER=${PER:-5000} MSGS=${MSGS:-20} GAP=${GAP:-0.5} ADDR=${ADDR:-127.0.0.31:8080}
go build -o bin/ ./cmd/pushd ./bench/pushdclients
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
cat >"$tmp/farm.yaml" <<YAML
service: bench.farmlb.test
tls: {ca: ca.crt, cert: "{name}.crt", key: "{name}.key"}
tokens: {publish: bench}
nodes:
  - {name: bench, url: "http://$ADDR", peer: "${ADDR%:*}:7946"}
pushd:
  keepalive: 1h
YAML
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
bin/pushd --config "$tmp/farm.yaml" --node bench --standalone --log-level warn ${PUSHD_FLAGS:-} &
pids+=($!)
for _ in $(seq 100); do curl -fsS -o /dev/null "http://$ADDR/healthz" 2>/dev/null && break; sleep 0.1; done
left=$SUBS i=0 outs=()
while [ $left -gt 0 ]; do
  k=$(( left < PER ? left : PER ))
  i=$((i + 1))
  mkfifo "$tmp/c$i"
  bin/pushdclients -addr "$ADDR" -src "127.0.2.$i" -n "$k" -fanout "$MSGS" >"$tmp/c$i" &
  pids+=($!)
  exec {fd}<"$tmp/c$i"
  read -r line <&$fd
  [ "${line%% *}" = ready ] || { echo "client failed: $line" >&2; exit 1; }
  outs+=($fd)
  left=$((left - k))
done
echo "$SUBS streams open; publishing $MSGS messages, one every ${GAP}s"
for m in $(seq "$MSGS"); do
  curl -fsS -o /dev/null -H 'Authorization: Bearer bench' --data "$(date +%s%N)" "http://$ADDR/publish/bench"
  sleep "$GAP"
done
for fd in "${outs[@]}"; do
  read -r line <&$fd && echo "client: $line"
done
curl -fsS "http://$ADDR/metrics" | grep -E '^farmlb_pushd_fanout_latency_seconds_(sum|count)'
