#!/usr/bin/env bash
# dnsd against NSD, side by side in one run: the same queries to each server
# serving the same records (NSD loads the zone that `dnsd --print-zone`
# writes), alternating servers, RUNS times per query mix, in two settings:
#
#   - response rate limiting off, queries from one address (dnsperf);
#   - response rate limiting on in both at the same limits (200 responses/s
#     per /24 or /56 and kind of answer, slip 2: NSD's defaults and dnsd's),
#     queries from SOURCES addresses (bench/dnsload, one address per /24 of
#     127.0.0.0/8), so that no client goes over its limit and neither server
#     limits the benchmark (the script prints the truncated and lost replies
#     to show it).
#
# Prints queries/s, latency, the ratio dnsd/NSD and each server's own CPU time
# per query (from /proc/<pid>/stat of the process and every process below it,
# as NSD forks its servers; the load generator's CPU does not count).
#
#   bench/dnsd.sh                 # 3 runs x 10 s per mix and server
#   RUNS=3 SECONDS_PER_RUN=15 bench/dnsd.sh
#   DNSSEC=1 bench/dnsd.sh        # signed: dnsd signing with a key farmctl made,
#                                 # NSD serving the same records signed offline
#                                 # by ldns-signzone, every query with the DO bit
#
# Environment: RUNS (3), SECONDS_PER_RUN (10), CLIENTS (dnsperf -c, 8),
# THREADS (dnsperf -T, 2), OUTSTANDING (dnsperf -q, 500), SERVERS (farm size, 4),
# DNSD_GOMAXPROCS (dnsd's GOMAXPROCS and UDP sockets; default: one per core),
# SOURCES (source addresses with RRL on, 4096), RRL_MIXES (mixes run with RRL
# on, "A TXT MIX"; "" skips them), DNSSEC (0; 1 signs the zone and sets DO on
# every query, with RRL off and on).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECS=${SECONDS_PER_RUN:-10}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
OUTSTANDING=${OUTSTANDING:-500}
SERVERS=${SERVERS:-4}
DNSSEC=${DNSSEC:-0}
SOURCES=${SOURCES:-4096}
RRL_MIXES=${RRL_MIXES-A TXT MIX}
ZONE=stream.farmlb.test
export PATH=/usr/local/go/bin:$PATH

# The tools, installed here too so the script runs on its own.
need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v nsd >/dev/null || need+=(nsd)
[ "$DNSSEC" = 1 ] && { command -v ldns-signzone >/dev/null || need+=(ldnsutils); }
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }
fi

work=$(mktemp -d /tmp/dnsd-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
  rm -rf "$work"
}
trap cleanup EXIT

go build -trimpath -o "$work/dnsd" ./cmd/dnsd
go build -trimpath -o "$work/dnsload" ./bench/dnsload

# DNSSEC: one combined signing key (ECDSA P-256) made by farmctl, for dnsd
# to sign with and for ldns-signzone to sign NSD's zone file with.
signing=() dnsperf_do=() dnsload_do=()
if [ "$DNSSEC" = 1 ]; then
  go build -trimpath -o "$work/farmctl" ./cmd/farmctl
  "$work/farmctl" dnssec keygen "$ZONE" "$work/keys" >/dev/null
  key=$(ls "$work"/keys/K*.key); key=${key%.key}
  signing=(--dnssec-key "$key")
  dnsperf_do=(-D) dnsload_do=(-D)
fi

# The farm: SERVERS servers in group A, all UP but the last.
{
  echo "# farm service=$ZONE"
  for i in $(seq 1 "$SERVERS"); do
    st=UP; [ "$i" -eq "$SERVERS" ] && st=DOWN
    echo "http://server$i.$ZONE:8080 $st $((1000 * i)) A addrs=127.0.0.$((10 + i))"
  done
} >"$work/farm.txt"

. "$(dirname "$0")/dnslib.sh"
DNSD_PORT=$(free_port)
NSD_PORT=$(free_port)
DNSD_RRL_PORT=$(free_port)
NSD_RRL_PORT=$(free_port)

# The same records for NSD (signed offline with the same key when DNSSEC=1).
"$work/dnsd" --zone "$ZONE" --list "$work/farm.txt" --listen "127.0.0.1:$DNSD_PORT" --print-zone 2>/dev/null >"$work/$ZONE.zone"
if [ "$DNSSEC" = 1 ]; then
  ldns-signzone -f "$work/$ZONE.signed" "$work/$ZONE.zone" "$key"
  mv "$work/$ZONE.signed" "$work/$ZONE.zone"
fi
nsd_conf nsd "$NSD_PORT" 0
nsd_conf nsd-rrl "$NSD_RRL_PORT" 200

GOMAXPROCS=${DNSD_GOMAXPROCS:-} "$work/dnsd" --zone "$ZONE" --list "$work/farm.txt" --listen "127.0.0.1:$DNSD_PORT" "${signing[@]}" --rrl-rate 0 --log-level warn 2>"$work/dnsd.log" &
pids+=($!)
DNSD_PID=$!
nsd -d -c "$work/nsd.conf" 2>"$work/nsd.log" &
pids+=($!)
NSD_PID=$!
# The same with response rate limiting on: dnsd's defaults, NSD's at the same.
GOMAXPROCS=${DNSD_GOMAXPROCS:-} "$work/dnsd" --zone "$ZONE" --list "$work/farm.txt" --listen "127.0.0.1:$DNSD_RRL_PORT" "${signing[@]}" --rrl-rate 200 --rrl-slip 2 --log-level warn 2>"$work/dnsd-rrl.log" &
pids+=($!)
DNSD_RRL_PID=$!
nsd -d -c "$work/nsd-rrl.conf" 2>"$work/nsd-rrl.log" &
pids+=($!)
NSD_RRL_PID=$!

# Wait until all answer.
for port in "$DNSD_PORT" "$NSD_PORT" "$DNSD_RRL_PORT" "$NSD_RRL_PORT"; do
  for _ in $(seq 1 100); do
    dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" SOA "$ZONE" 2>/dev/null | grep -q . && break
    sleep 0.1
  done
  dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" SOA "$ZONE" | grep -q . || { echo "server on port $port does not answer" >&2; cat "$work"/*.log >&2; exit 1; }
done

# Query mixes.
printf '%s A\n' "$ZONE" >"$work/q-A"
printf '_farm.%s TXT\n' "$ZONE" >"$work/q-TXT"
{
  for i in $(seq 1 200); do
    echo "$ZONE A"
    echo "_farm.$ZONE TXT"
    echo "_farmlb._tcp.$ZONE SRV"
    echo "nx$i.$ZONE A"
  done
} >"$work/q-MIX"

HZ=$(getconf CLK_TCK)

results="$work/results"
: >"$results"
echo "load before: $(cat /proc/loadavg)" >&2
for run in $(seq 1 "$RUNS"); do
  # Odd runs ask dnsd first, even runs NSD first, so that a load that
  # drifts during a pair favours neither.
  order="dnsd nsd"; [ $((run % 2)) -eq 0 ] && order="nsd dnsd"
  for mix in A TXT MIX; do
    for server in $order; do
      if [ "$server" = dnsd ]; then port=$DNSD_PORT pid=$DNSD_PID; else port=$NSD_PORT pid=$NSD_PID; fi
      c0=$(cpu_ticks "$pid")
      out=$(dnsperf -s 127.0.0.1 -p "$port" -d "$work/q-$mix" -l "$SECS" -c "$CLIENTS" -T "$THREADS" -q "$OUTSTANDING" "${dnsperf_do[@]}" 2>&1)
      c1=$(cpu_ticks "$pid")
      qps=$(awk '/Queries per second:/ {print $4}' <<<"$out")
      done_q=$(awk '/Queries completed:/ {print $3}' <<<"$out")
      lost=$(awk '/Queries lost:/ {print $3}' <<<"$out")
      lat=$(awk '/Average Latency/ {print $4}' <<<"$out")
      cpu_us=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v n="$done_q" 'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "nan" }')
      echo "$mix $server $run $qps $lat $cpu_us $lost" >>"$results"
      printf 'run %d %-3s %-4s %10.0f q/s  latency %8.3f ms  cpu %6s us/query  lost %s\n' "$run" "$mix" "$server" "$qps" "$(awk -v l="$lat" 'BEGIN{print l*1000}')" "$cpu_us" "$lost" >&2
    done
  done
  # RRL on, from SOURCES addresses: dnsload keeps OUTSTANDING queries
  # outstanding in all, as dnsperf -q does, over THREADS sockets.
  for mix in $RRL_MIXES; do
    for server in $order; do
      if [ "$server" = dnsd ]; then port=$DNSD_RRL_PORT pid=$DNSD_RRL_PID; else port=$NSD_RRL_PORT pid=$NSD_RRL_PID; fi
      c0=$(cpu_ticks "$pid")
      out=$("$work/dnsload" -s "127.0.0.1:$port" -d "$work/q-$mix" -l "${SECS}s" -sources "$SOURCES" -c "$THREADS" -q "$((OUTSTANDING / THREADS))" "${dnsload_do[@]}" 2>&1)
      c1=$(cpu_ticks "$pid")
      get() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$out"; }
      qps=$(get qps) done_q=$(get received) lost=$(get lost) trunc=$(get truncated)
      lat=$(awk -v l="$(get latency_ms)" 'BEGIN{print l/1000}')
      cpu_us=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v n="$done_q" 'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "nan" }')
      echo "RRL-$mix $server $run $qps $lat $cpu_us $lost $trunc" >>"$results"
      printf 'run %d %-3s %-4s %10.0f q/s  latency %8.3f ms  cpu %6s us/query  lost %s  truncated %s  (RRL on, %d sources)\n' "$run" "$mix" "$server" "$qps" "$(get latency_ms)" "$cpu_us" "$lost" "$trunc" "$SOURCES" >&2
    done
  done
done
echo "load after: $(cat /proc/loadavg)" >&2

# Medians.
python3 - "$results" "$RUNS" "$SECS" "$CLIENTS" "$THREADS" "$OUTSTANDING" "$SERVERS" "${DNSD_GOMAXPROCS:-}" "$SOURCES" "$DNSSEC" <<'EOF'
import statistics, sys
path, runs, secs, clients, threads, outstanding, servers, procs, sources, dnssec = sys.argv[1:]
rows = [l.split() for l in open(path)]
def med(mix, server, col):
    return statistics.median(float(r[col]) for r in rows if r[0] == mix and r[1] == server)
def pair_ratio(mix):
    # The two servers of one run ran back to back, under the same load: the
    # median of the per-run ratios is steadier than the ratio of medians on a
    # shared machine.
    q = {(r[1], r[2]): float(r[3]) for r in rows if r[0] == mix}
    return statistics.median(q[("dnsd", run)] / q[("nsd", run)] for (s, run) in q if s == "dnsd")
signed = "; signed zones (dnsd online, NSD from ldns-signzone), DO on every query" if dnssec == "1" else ""
print(f"dnsd vs NSD: medians of {runs} runs x {secs} s; a farm of {servers} servers; dnsd GOMAXPROCS={procs or 'default'}{signed}")
print()
print(f"Response rate limiting off, one source: dnsperf -c {clients} -T {threads} -q {outstanding}{' -D' if dnssec == '1' else ''}")
print()
print("| queries | dnsd q/s | NSD q/s | dnsd/NSD (median of per-run ratios) | dnsd latency | NSD latency | dnsd CPU/query | NSD CPU/query |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
names = {"A": "A of the service name", "TXT": "TXT of _farm", "MIX": "mix: A, TXT, SRV, NXDOMAIN"}
def table(mixes, prefix=""):
    for mix in mixes:
        m = prefix + mix
        d, n = med(m, "dnsd", 3), med(m, "nsd", 3)
        print(f"| {names[mix]} | {d:,.0f} | {n:,.0f} | {pair_ratio(m):.2f} | {med(m,'dnsd',4)*1e3:.2f} ms | {med(m,'nsd',4)*1e3:.2f} ms | {med(m,'dnsd',5):.1f} µs | {med(m,'nsd',5):.1f} µs |")
table(("A", "TXT", "MIX"))
rrl = [m for m in ("A", "TXT", "MIX") if any(r[0] == "RRL-" + m for r in rows)]
if rrl:
    print()
    print(f"Response rate limiting on in both (200/s per /24 and kind, slip 2), {sources} sources: bench/dnsload, {outstanding} outstanding over {threads} sockets{', DO set (-D)' if dnssec == '1' else ''}")
    print()
    print("| queries | dnsd q/s | NSD q/s | dnsd/NSD (median of per-run ratios) | dnsd latency | NSD latency | dnsd CPU/query | NSD CPU/query |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    table(rrl, "RRL-")
    t = {s: sum(int(r[7]) for r in rows if r[0].startswith("RRL-") and r[1] == s) for s in ("dnsd", "nsd")}
    l = {s: sum(int(r[6]) for r in rows if r[0].startswith("RRL-") and r[1] == s) for s in ("dnsd", "nsd")}
    print()
    print(f"replies truncated by RRL's slip over all RRL runs: dnsd {t['dnsd']}, NSD {t['nsd']}; queries lost: dnsd {l['dnsd']}, NSD {l['nsd']}")
EOF
