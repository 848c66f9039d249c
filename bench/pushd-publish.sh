#!/usr/bin/env bash
# Sustained publishes per second across a farm of three pushd nodes on the
# real mesh (QUIC, mutual TLS), with one stream per node counting what it
# receives.
#
#   C=16 D=10s SIZE=100 bench/pushd-publish.sh
set -euo pipefail
cd "$(dirname "$0")/.."
C=${C:-16} D=${D:-10s} SIZE=${SIZE:-100}
go build -o bin/ ./cmd/pushd ./cmd/farmctl ./bench/pushdpub
. bench/lib.sh
bin/farmctl ca init "$tmp" >/dev/null
for n in p1 p2 p3; do bin/farmctl ca issue "$tmp" "$n" >/dev/null; done
cat >"$tmp/farm.yaml" <<YAML
service: bench.farmlb.test
tls: {ca: ca.crt, cert: "{name}.crt", key: "{name}.key"}
tokens: {publish: bench}
nodes:
  - {name: p1, url: "http://127.0.0.41:8080", peer: "127.0.0.41:7946"}
  - {name: p2, url: "http://127.0.0.42:8080", peer: "127.0.0.42:7946"}
  - {name: p3, url: "http://127.0.0.43:8080", peer: "127.0.0.43:7946"}
YAML
for i in 1 2 3; do
  start_server "127.0.0.4$i:8080" bin/pushd --config "$tmp/farm.yaml" --node "p$i" --log-level warn 2>"$tmp/p$i.log"
done
# Wait until every node sees the other two UP.
for _ in $(seq 100); do
  [ "$(curl -fsS 'http://127.0.0.41:8080/farm?format=text' | grep -c ' UP ')" = 3 ] && break
  sleep 0.1
done
bin/pushdpub -token bench -c "$C" -d "$D" -size "$SIZE"
