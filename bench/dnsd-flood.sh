#!/usr/bin/env bash
# dnsd and NSD under a reflection flood, side by side, with response rate
# limiting on (both at 200 responses/s per /24 and kind of answer, slip 2) and
# off. For each server in turn, an attacker floods TXT _farm.<zone> from one
# forged source (127.9.0.1) as fast as it goes, while a resolver
# (127.0.200.1) asks 100 queries a second of mixed names. Prints, per server:
# the attacker's bytes received / bytes sent (the amplification its victim
# suffers), the share of the resolver's queries answered, the server's CPU
# (all its processes: NSD forks) and its peak RSS. Then dnsd alone against a
# flood from FORGED distinct forged sources (one /24 each as far as 127/8
# goes) of mixed names: its RSS against the stated cap, the RRL buckets in
# use, and the resolver still served.
#
#   bench/dnsd-flood.sh                  # 10 s per flood
#   SECONDS_PER_RUN=20 bench/dnsd-flood.sh
#
# Environment: SECONDS_PER_RUN (10), SERVERS (farm size, 10: the _farm TXT
# answer is about 14x its query), FORGED (100000), DNSD_GOMAXPROCS, DNSD_FLAGS
# (more dnsd flags, e.g. "--udp-sockets 8"), ONLY (the servers to flood, of
# "dnsd-rrl nsd-rrl dnsd-off nsd-off"), FORGED_ON ("dnsd-rrl nsd-rrl"; "" skips).
#
# The flood comes from bench/dnsload rather than dnsperf -a: dnsperf keeps a
# slot for each query until its answer or its timeout, so a server that drops
# answers throttles it, and it is no longer a flood.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECONDS_PER_RUN:-10}
DNSD_FLAGS=${DNSD_FLAGS:-}
ONLY=${ONLY:-dnsd-rrl nsd-rrl dnsd-off nsd-off}
FORGED_ON=${FORGED_ON-dnsd-rrl nsd-rrl}
SERVERS=${SERVERS:-10}
FORGED=${FORGED:-100000}
ZONE=stream.farmlb.test
export PATH=/usr/local/go/bin:$PATH

command -v nsd >/dev/null || {
  echo "installing nsd" >&2
  apt-get install -y -qq nsd >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nsd >/dev/null; }
}

work=$(mktemp -d /tmp/dnsd-flood.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
  rm -rf "$work"
}
trap cleanup EXIT

go build -trimpath -o "$work/dnsd" ./cmd/dnsd
go build -trimpath -o "$work/dnsload" ./bench/dnsload

{
  echo "# farm service=$ZONE"
  for i in $(seq 1 "$SERVERS"); do
    echo "http://server$i.$ZONE:8080 UP $((100 * i)) A addrs=127.0.0.$((10 + i))"
  done
} >"$work/farm.txt"

. "$(dirname "$0")/dnslib.sh"

"$work/dnsd" --zone "$ZONE" --list "$work/farm.txt" --print-zone 2>/dev/null >"$work/$ZONE.zone"

# rss_kib PID: resident set of PID and its descendants, KiB (NSD's forked
# servers share pages with their parent, so its sum overstates it).
rss_kib() {
  local total=0 p
  for p in $1 $(descendants "$1"); do
    [ -r "/proc/$p/status" ] && total=$((total + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")))
  done
  echo "$total"
}
HZ=$(getconf CLK_TCK)

wait_answer() {
  for _ in $(seq 1 100); do
    dig +short +time=1 +tries=1 @127.0.0.1 -p "$1" SOA "$ZONE" 2>/dev/null | grep -q . && return 0
    sleep 0.1
  done
  echo "server on port $1 does not answer" >&2
  cat "$work"/*.log >&2
  exit 1
}

# start NAME: starts one server, sets PORT and PID.
start() {
  PORT=$(free_port)
  case $1 in
  dnsd-rrl) GOMAXPROCS=${DNSD_GOMAXPROCS:-} "$work/dnsd" --zone "$ZONE" --list "$work/farm.txt" --listen "127.0.0.1:$PORT" --metrics "127.0.0.1:$METRICS_PORT" --log-level warn $DNSD_FLAGS 2>"$work/$1.log" & ;;
  dnsd-off) GOMAXPROCS=${DNSD_GOMAXPROCS:-} "$work/dnsd" --zone "$ZONE" --list "$work/farm.txt" --listen "127.0.0.1:$PORT" --rrl-rate 0 --log-level warn $DNSD_FLAGS 2>"$work/$1.log" & ;;
  nsd-rrl) nsd_conf "$1" "$PORT" 200 >/dev/null; nsd -d -c "$work/$1.conf" 2>"$work/$1.log" & ;;
  nsd-off) nsd_conf "$1" "$PORT" 0 >/dev/null; nsd -d -c "$work/$1.conf" 2>"$work/$1.log" & ;;
  esac
  PID=$!
  pids+=("$PID")
  wait_answer "$PORT"
}
stop() {
  kill "$PID"
  while kill -0 "$PID" 2>/dev/null; do sleep 0.05; done
}

printf '_farm.%s TXT\n' "$ZONE" >"$work/q-attack"
{
  for i in $(seq 1 50); do
    echo "$ZONE A"
    echo "$ZONE AAAA"
    echo "_farm.$ZONE TXT"
    echo "_farmlb._tcp.$ZONE SRV"
    echo "server$(((i % SERVERS) + 1)).$ZONE A"
    echo "nx$i.$ZONE A"
    echo "$ZONE NS"
  done
} >"$work/q-resolver"
{
  for i in $(seq 1 1000); do
    echo "_farm.$ZONE TXT"
    echo "$ZONE A"
    echo "r$i.$ZONE A"
  done
} >"$work/q-forged"

get() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }
METRICS_PORT=$(free_port)

# flood NAME: the attacker and the resolver against server NAME; appends a
# line of figures to $work/results.
flood() {
  start "$1"
  local c0 c1 peak=0 r a
  c0=$(cpu_ticks "$PID")
  "$work/dnsload" -s "127.0.0.1:$PORT" -d "$work/q-resolver" -l "${SECS}s" -src 127.0.200.1 -c 1 -rate 100 -e >"$work/resolver.out" &
  local rpid=$!
  "$work/dnsload" -s "127.0.0.1:$PORT" -d "$work/q-attack" -l "${SECS}s" -src 127.9.0.1 -c 1 -rate 0 -e >"$work/attack.out" &
  local apid=$!
  while kill -0 "$apid" 2>/dev/null; do
    local rss
    rss=$(rss_kib "$PID")
    [ "$rss" -gt "$peak" ] && peak=$rss
    sleep 0.2
  done
  wait "$apid" "$rpid"
  c1=$(cpu_ticks "$PID")
  a=$(cat "$work/attack.out") r=$(cat "$work/resolver.out")
  echo "$1 $(get sent "$a") $(get received "$a") $(get amplification "$a") $(get truncated "$a") $(get sent "$r") $(get received "$r") $((c1 - c0)) $peak" >>"$work/results"
  printf '%-9s attacker: %s\n          resolver: %s\n          cpu %s ticks, peak rss %s KiB\n' "$1" "$a" "$r" "$((c1 - c0))" "$peak" >&2
  stop
}

: >"$work/results"
echo "load before: $(cat /proc/loadavg)" >&2
for s in $ONLY; do flood "$s"; done

# forged NAME: a flood from FORGED distinct forged sources of mixed names
# against server NAME (RRL on), with the resolver; appends its figures.
forged() {
  start "$1"
  local idle c0 c1 peak=0 inuse=0 rss n a r table=0
  idle=$(rss_kib "$PID")
  c0=$(cpu_ticks "$PID")
  "$work/dnsload" -s "127.0.0.1:$PORT" -d "$work/q-resolver" -l "${SECS}s" -src 127.0.200.1 -c 1 -rate 100 -e >"$work/resolver.out" &
  local rpid=$!
  "$work/dnsload" -s "127.0.0.1:$PORT" -d "$work/q-forged" -l "${SECS}s" -sources "$FORGED" -c 1 -rate 0 -e >"$work/attack.out" &
  local apid=$!
  while kill -0 "$apid" 2>/dev/null; do
    rss=$(rss_kib "$PID")
    [ "$rss" -gt "$peak" ] && peak=$rss
    if [ "$1" = dnsd-rrl ]; then
      n=$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk '/^farmlb_dnsd_rrl_buckets_in_use / {print $2}')
      [ -n "$n" ] && [ "${n%.*}" -gt "$inuse" ] && inuse=${n%.*}
    fi
    sleep 0.2
  done
  wait "$apid" "$rpid"
  c1=$(cpu_ticks "$PID")
  if [ "$1" = dnsd-rrl ]; then
    table=$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk '/^farmlb_dnsd_rrl_buckets / {print $2}')
  fi
  a=$(cat "$work/attack.out") r=$(cat "$work/resolver.out")
  printf '%-9s forged: %s\n          resolver: %s\n' "$1" "$a" "$r" >&2
  echo "$1 $(get sources "$a") $(get sent "$a") $(get received "$a") $(get sent "$r") $(get received "$r") $((c1 - c0)) $idle $peak $inuse ${table%.*}" >>"$work/forged"
  stop
}
: >"$work/forged"
for s in $FORGED_ON; do forged "$s"; done
echo "load after: $(cat /proc/loadavg)" >&2

python3 - "$work/results" "$SECS" "$HZ" "$SERVERS" <<'EOF'
import sys
path, secs, hz, servers = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
rows = {l.split()[0]: l.split()[1:] for l in open(path)}
label = {"dnsd-rrl": "dnsd, RRL on", "nsd-rrl": "NSD, RRL on", "dnsd-off": "dnsd, RRL off", "nsd-off": "NSD, RRL off"}
cols = [c for c in label if c in rows]
print(f"Reflection flood, {secs:.0f} s per server: attacker TXT _farm from one source as fast as it goes; resolver 100 q/s of mixed names; a farm of {servers} servers")
print()
print("| | " + " | ".join(label[c] for c in cols) + " |")
print("| --- |" + " ---: |" * len(cols))
def row(name, f):
    print(f"| {name} | " + " | ".join(f(rows[c]) for c in cols) + " |")
row("attacker queries sent/s", lambda r: f"{int(r[0]) / secs:,.0f}")
row("attacker replies/s (of which truncated)", lambda r: f"{int(r[1]) / secs:,.0f} ({int(r[3]) / secs:,.0f})")
row("amplification: bytes received / sent", lambda r: f"{float(r[2]):.2f}")
row("resolver queries answered", lambda r: f"{int(r[5])}/{int(r[4])} = {100 * int(r[5]) / max(1, int(r[4])):.1f} %")
row("server CPU (share of one core)", lambda r: f"{int(r[6]) / hz / secs * 100:.0f} %")
row("server RSS, peak (NSD: its processes summed)", lambda r: f"{int(r[7]) / 1024:.1f} MiB")
print()
f = {l.split()[0]: l.split()[1:] for l in open(path.replace("results", "forged"))}
fc = [c for c in ("dnsd-rrl", "nsd-rrl") if c in f]
if fc:
    x = f[fc[0]]
    print(f"Forged flood, RRL on: {int(x[0]):,} distinct sources (one /24 each as far as 127/8 goes), mixed names, as fast as it goes, {secs:.0f} s")
    print()
    print("| | " + " | ".join("dnsd" if c == "dnsd-rrl" else "NSD" for c in fc) + " |")
    print("| --- |" + " ---: |" * len(fc))
    def frow(name, fn):
        print(f"| {name} | " + " | ".join(fn(f[c], c) for c in fc) + " |")
    frow("forged queries sent/s", lambda d, c: f"{int(d[1]) / secs:,.0f}")
    frow("replies/s", lambda d, c: f"{int(d[2]) / secs:,.0f}")
    frow("resolver queries answered", lambda d, c: f"{d[4]}/{d[3]} = {100 * int(d[4]) / max(1, int(d[3])):.1f} %")
    frow("server CPU (share of one core)", lambda d, c: f"{int(d[5]) / hz / secs * 100:.0f} %")
    frow("RSS idle → peak", lambda d, c: f"{int(d[6]) / 1024:.1f} → {int(d[7]) / 1024:.1f} MiB" + (" (cap 64 MiB)" if c == "dnsd-rrl" else ""))
    frow("RRL buckets in use, at most", lambda d, c: f"{int(d[8]):,} of {int(d[9]):,} (fixed)" if c == "dnsd-rrl" else "")
EOF
