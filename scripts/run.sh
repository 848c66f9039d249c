#!/usr/bin/env bash
# make run: a whole farm on loopback, no root and no config to write.
#
#   three pushd nodes  serverA, serverB (group A), serverC (group B)
#                      at http://127.0.0.11:8080, .12, .13
#   dnsd (if built)    ns1 on 127.0.0.1:5354 (UDP and TCP), zone stream.farmlb.test
#   a demo feed        price ticks on prices.EURUSD, prices.GBPUSD, ...
#
# Everything (CA, certificates, farm.yaml, logs) lives in a temporary folder
# that Ctrl-C removes along with every process this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<USAGE
usage: scripts/run.sh [flags]   (or make run, with FARMLB_RUN_* variables)
  --addrs A,B,C     loopback addresses of serverA, serverB, serverC (default 127.0.0.11,127.0.0.12,127.0.0.13)
  --port N          HTTP port of every node (default 8080)
  --dns ADDR        where dnsd listens (default 127.0.0.1:5354)
  --service NAME    the service name (default stream.farmlb.test)
  --interval D      demo feed: time between two ticks of one symbol (default 500ms)
  --capacity N      streams per node (default 0: no limit)
  --no-feed         start no demo feed
  --no-dns          start no dnsd
  --standalone      nodes without the mesh (each a farm of one)
  --keep            keep the temporary folder on exit
The publish token is \$FARMLB_TOKEN when set, random otherwise.
USAGE
}

# Each flag's default can also come from the environment (make passes no
# arguments): FARMLB_RUN_ADDRS, FARMLB_RUN_PORT, FARMLB_RUN_DNS,
# FARMLB_RUN_SERVICE, FARMLB_RUN_INTERVAL, FARMLB_RUN_CAPACITY.
addrs=${FARMLB_RUN_ADDRS:-127.0.0.11,127.0.0.12,127.0.0.13} port=${FARMLB_RUN_PORT:-8080}
dns=${FARMLB_RUN_DNS:-127.0.0.1:5354} service=${FARMLB_RUN_SERVICE:-stream.farmlb.test}
interval=${FARMLB_RUN_INTERVAL:-500ms} capacity=${FARMLB_RUN_CAPACITY:-0}
feed=1 dnsd=1 standalone=0 keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --addrs) addrs=$2; shift ;;
    --port) port=$2; shift ;;
    --dns) dns=$2; shift ;;
    --service) service=$2; shift ;;
    --interval) interval=$2; shift ;;
    --capacity) capacity=$2; shift ;;
    --no-feed) feed=0 ;;
    --no-dns) dnsd=0 ;;
    --standalone) standalone=1 ;;
    --keep) keep=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown flag $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
IFS=, read -r addrA addrB addrC <<<"$addrs"
if [ -z "${addrC:-}" ]; then echo "run.sh: --addrs needs three addresses" >&2; exit 2; fi

for b in pushd farmctl; do
  [ -x "bin/$b" ] || { echo "run.sh: bin/$b missing: run make build" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/farmlb-run.XXXXXX")
pids=()
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "== stopping"
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$keep" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
# Ctrl-C (or SIGTERM) is how a run ends: stop everything, then exit 0.
trap 'exit 0' INT TERM

token=${FARMLB_TOKEN:-$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20)}
export FARMLB_TOKEN=$token

mesh_flag=
if [ "$standalone" = 1 ]; then
  mesh_flag=--standalone
elif bin/farmctl ca --help >/dev/null 2>&1; then
  bin/farmctl ca init "$tmp/pki" >/dev/null
  for n in serverA serverB serverC ns1; do bin/farmctl ca issue "$tmp/pki" "$n" >/dev/null; done
else
  echo "run.sh: farmctl has no ca command yet: nodes run --standalone (no mesh)" >&2
  mesh_flag=--standalone
fi

# DNSSEC: dnsd signs the zone with a key made here; the DS record and trust
# anchors for a resolver are written beside it (printed at the end).
dnssec_yaml= ds=
if [ "$dnsd" = 1 ] && bin/farmctl dnssec --help >/dev/null 2>&1; then
  bin/farmctl dnssec keygen "$service" "$tmp/dnssec" >/dev/null
  key=$(ls "$tmp"/dnssec/K*.key); key=${key%.key}
  ds=$(cat "$key.ds")
  # Unbound's trust-anchor-file takes the DS record as it is; delv (BIND)
  # wants a trust-anchors clause.
  cp "$key.ds" "$tmp/trust-anchor.ds"
  read -r _ _ _ _ tag alg dt digest <<<"$ds"
  printf 'trust-anchors {\n  %s. static-ds %s %s %s "%s";\n};\n' "$service" "$tag" "$alg" "$dt" "$digest" >"$tmp/trust-anchor.conf"
  dnssec_yaml="dns:
  dnssec:
    keys: [dnssec/$(basename "$key")]"
fi

mport() { echo $((7946 + $1)); }
cat >"$tmp/farm.yaml" <<YAML
# Written by scripts/run.sh for a local demo farm.
service: $service
tls:
  ca: pki/ca.crt
  cert: pki/{name}.crt
  key: pki/{name}.key
tokens:
  publish: "$token"
nodes:
  - {name: serverA, url: "http://$addrA:$port", peer: "$addrA:7946", priority: A, capacity: $capacity}
  - {name: serverB, url: "http://$addrB:$port", peer: "$addrB:7946", priority: A, capacity: $capacity}
  - {name: serverC, url: "http://$addrC:$port", peer: "$addrC:7946", priority: B, capacity: $capacity}
observers:
  - {name: ns1, peer: "127.0.0.1:7950", dns: "$dns"}
pushd:
  drain_window: 10s
$dnssec_yaml
YAML

echo "== farm in $tmp"
for n in serverA serverB serverC; do
  bin/pushd --config "$tmp/farm.yaml" --node "$n" $mesh_flag >"$tmp/$n.log" 2>&1 &
  pids+=($!)
done

urls=("http://$addrA:$port" "http://$addrB:$port" "http://$addrC:$port")
ready() { curl -fsS -o /dev/null --max-time 1 "$1/healthz" 2>/dev/null; }
for u in "${urls[@]}"; do
  for _ in $(seq 100); do
    ready "$u" && break
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "run.sh: a node exited; its log:" >&2; tail -n 20 "$tmp"/server*.log >&2; exit 1; }; done
    sleep 0.1
  done
  ready "$u" || { echo "run.sh: $u did not answer /healthz" >&2; tail -n 20 "$tmp"/server*.log >&2; exit 1; }
done

# The mesh joins within a second: wait until serverA sees all three UP.
if [ -z "$mesh_flag" ]; then
  for _ in $(seq 50); do
    [ "$(curl -fsS "${urls[0]}/farm?format=text" 2>/dev/null | grep -c ' UP ')" = 3 ] && break
    sleep 0.1
  done
fi

have_dns=0 dns_pid=
if [ "$dnsd" = 1 ] && [ -x bin/dnsd ] && [ -z "$mesh_flag" ]; then
  bin/dnsd --config "$tmp/farm.yaml" --name ns1 >"$tmp/ns1.log" 2>&1 &
  dns_pid=$! dns_pid_started=$!
  pids+=($dns_pid)
  have_dns=1
fi
if [ "$feed" = 1 ]; then
  bin/pushd demo-feed --url "$(IFS=,; echo "${urls[*]}")" --interval "$interval" >"$tmp/feed.log" 2>&1 &
  pids+=($!)
fi

dnshost=${dns%:*} dnsport=${dns##*:}
cat <<MSG

farmlb is running: serverA ${urls[0]}  serverB ${urls[1]}  (group A)   serverC ${urls[2]}  (group B)

  dashboard       ${urls[0]}/
  demo page       ${urls[2]}/demo/   (live prices through farmlb.js, with failover)
  the farm list   curl -s ${urls[0]}/farm?format=text
  a stream        curl -N '${urls[1]}/stream?topic=prices.EURUSD&topic=prices.GBPUSD'
  publish         curl -H 'Authorization: Bearer $token' -d 'hello' ${urls[2]}/publish/news
  drain serverA   curl -X POST -H 'Authorization: Bearer $token' ${urls[0]}/admin/drain
  undrain         curl -X POST -H 'Authorization: Bearer $token' ${urls[0]}/admin/undrain

  farmctl (finds this farm with no flags; FARMLB_TOKEN is the token above):
                  bin/farmctl status
                  bin/farmctl subscribe -v prices.EURUSD prices.GBPUSD
                  bin/farmctl publish news 'hello'
                  bin/farmctl drain serverA   /   bin/farmctl undrain serverA
                  curl -s ${urls[0]}/farm | bin/farmctl pick --list - --explain
MSG
if [ "$have_dns" = 1 ]; then
  cat <<MSG
  DNS             dig @$dnshost -p $dnsport $service A +short
                  dig @$dnshost -p $dnsport _farm.$service TXT
                  dig @$dnshost -p $dnsport _farmlb._tcp.$service SRV
MSG
  if [ -n "$ds" ]; then
    cat <<MSG
  DNSSEC          the zone is signed; its DS record for a parent zone:
                  $ds
                  trust anchor for a resolver: $tmp/trust-anchor.ds (Unbound's trust-anchor-file)
                  dig @$dnshost -p $dnsport $service A +dnssec
                  delv @$dnshost -p $dnsport -a $tmp/trust-anchor.conf +root=$service $service A
MSG
  fi
else
  echo "  DNS             (no dnsd: bin/dnsd not built, or --no-dns/--standalone)"
fi
cat <<MSG

  publish token   $token   (export FARMLB_TOKEN to choose it)
  config, logs    $tmp
Ctrl-C stops everything and removes $tmp.
MSG

# Wait until Ctrl-C or until a process dies (dnsd is optional: a dnsd that
# exits is reported and the farm goes on).
while :; do
  if [ -n "$dns_pid" ] && ! kill -0 "$dns_pid" 2>/dev/null; then
    echo "run.sh: dnsd exited (the farm goes on without DNS):" >&2
    tail -n 3 "$tmp/ns1.log" >&2
    dns_pid=
  fi
  for p in "${pids[@]}"; do
    if [ "$p" != "${dns_pid_started:-}" ] && ! kill -0 "$p" 2>/dev/null; then
      echo "run.sh: process $p exited; last logs:" >&2
      tail -n 5 "$tmp"/*.log >&2
      exit 1
    fi
  done
  sleep 1
done
