# Sourced by the bench/pushd-*.sh scripts: a temporary folder and a list of
# child processes, both removed on exit, and a standalone pushd node (or the
# plain net/http server that pushd's figures are measured against).

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# start_standalone_node ADDR: one pushd node with no mesh, on ADDR, with a
# keep-alive too long to show in the figures; sets $node to its pid and
# returns once it answers /healthz. PUSHD=PATH runs another pushd binary
# (to compare two builds).
start_standalone_node() {
  local addr=$1
  cat >"$tmp/farm.yaml" <<YAML
service: bench.farmlb.test
tls: {ca: ca.crt, cert: "{name}.crt", key: "{name}.key"}
tokens: {publish: bench}
nodes:
  - {name: bench, url: "http://$addr", peer: "${addr%:*}:7946"}
pushd:
  keepalive: 1h
YAML
  start_server "$addr" "${PUSHD:-bin/pushd}" --config "$tmp/farm.yaml" --node bench --standalone --log-level warn ${PUSHD_FLAGS:-}
}

# start_nethttp_sse ADDR: bench/nethttpsse, the plainest net/http SSE
# server (the yardstick), on ADDR; sets $node to its pid.
start_nethttp_sse() {
  start_server "$1" bin/nethttpsse -addr "$1"
}

# start_server ADDR COMMAND...: runs COMMAND in the background with as
# many descriptors as allowed, sets $node to its pid and returns once
# ADDR answers /healthz.
start_server() {
  local addr=$1
  shift
  ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  "$@" &
  node=$!
  pids+=($node)
  for _ in $(seq 100); do { curl -fsS -o /dev/null "http://$addr/healthz" || curl -kfsS -o /dev/null "https://$addr/healthz"; } 2>/dev/null && break; sleep 0.1; done
}
