#!/usr/bin/env bash
# make run: a whole farm on loopback, no root and no config to write.
#
#   three pushd nodes  serverA, serverB (group A), serverC (group B)
#                      at http://127.0.0.11:8080, .12, .13
#   dnsd (if built)    ns1 on 127.0.0.1:5354 (UDP and TCP), zone stream.farmlb.test
#   a demo feed        price ticks on prices.EURUSD, prices.GBPUSD, ...
#
# It keeps the farm going: a process that exits is reported and started
# again after --restart seconds, and the farm's status changes are printed as
# the mesh sees them, so that a failure can be watched. bin/farmctl local
# kills, hangs, resumes and restarts the processes on purpose; it finds this
# run through the link $TMPDIR/farmlb-run-$UID.
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
  --restart SECONDS start a process that exited again after SECONDS (default 5; 0: at once;
                    off: never, until bin/farmctl local start NAME)
  --keep            keep the temporary folder on exit
The publish token is \$FARMLB_TOKEN when set, random otherwise; \$FARMLB_BIN is where the
binaries are (default bin).
USAGE
}

# Each flag's default can also come from the environment (make passes no
# arguments): FARMLB_RUN_ADDRS, FARMLB_RUN_PORT, FARMLB_RUN_DNS,
# FARMLB_RUN_SERVICE, FARMLB_RUN_INTERVAL, FARMLB_RUN_CAPACITY,
# FARMLB_RUN_RESTART. FARMLB_BIN is where the binaries are (default bin).
addrs=${FARMLB_RUN_ADDRS:-127.0.0.11,127.0.0.12,127.0.0.13} port=${FARMLB_RUN_PORT:-8080}
dns=${FARMLB_RUN_DNS:-127.0.0.1:5354} service=${FARMLB_RUN_SERVICE:-stream.farmlb.test}
interval=${FARMLB_RUN_INTERVAL:-500ms} capacity=${FARMLB_RUN_CAPACITY:-0}
restart=${FARMLB_RUN_RESTART:-5} bin=${FARMLB_BIN:-bin}
feed=1 dnsd=1 standalone=0 keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --addrs) addrs=$2; shift ;;
    --port) port=$2; shift ;;
    --dns) dns=$2; shift ;;
    --service) service=$2; shift ;;
    --interval) interval=$2; shift ;;
    --capacity) capacity=$2; shift ;;
    --restart) restart=$2; shift ;;
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
case "$restart" in
  off) ;;
  *[!0-9]*|'') echo "run.sh: --restart wants a number of seconds or off, not \"$restart\"" >&2; exit 2 ;;
esac

for b in pushd farmctl; do
  [ -x "$bin/$b" ] || { echo "run.sh: $bin/$b missing: run make build" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/farmlb-run.XXXXXX")
# bin/farmctl local finds the newest run through this link.
link=${TMPDIR:-/tmp}/farmlb-run-$(id -u)
names=()            # every process, in the order started
declare -A pid=()   # name -> pid while it runs
declare -A died=()  # name -> when it exited (seconds since the epoch)
declare -A now_again=() # name -> start it again without the wait
stopping=0 errlog=
stamp() { date +%H:%M:%S; }
say() { echo "$(stamp) run.sh: $*"; }

cleanup() {
  trap - EXIT INT TERM
  stopping=1
  if [ -n "$errlog" ]; then
    exec 2>&4
    grep -v -E 'run\.sh: line [0-9]+: +[0-9]+ (Killed|Terminated|Quit|Aborted|Hangup)' "$errlog" >&2 || true
  fi
  echo
  echo "== stopping"
  local p left
  # A hung (SIGSTOPped) process takes no signal but SIGKILL until it is continued.
  for p in "${pid[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -INT "$p" 2>/dev/null || true; done
  for _ in $(seq 100); do
    left=0
    for p in "${pid[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for p in "${pid[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${pid[@]}"; do wait "$p" 2>/dev/null || true; done
  [ "$(readlink "$link" 2>/dev/null)" = "$tmp" ] && rm -f "$link"
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
else
  "$bin/farmctl" ca init "$tmp/pki" >/dev/null
  for n in serverA serverB serverC ns1; do "$bin/farmctl" ca issue "$tmp/pki" "$n" >/dev/null; done
fi

# DNSSEC: dnsd signs the zone with a key made here; the DS record and trust
# anchors for a resolver are written beside it (printed at the end).
dnssec_yaml= ds=
if [ "$dnsd" = 1 ] && "$bin/farmctl" dnssec --help >/dev/null 2>&1; then
  "$bin/farmctl" dnssec keygen "$service" "$tmp/dnssec" >/dev/null
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

dnshost=${dns%:*} dnsport=${dns##*:}
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
  - {name: ns1, peer: "$dnshost:7950", dns: "$dns"}
pushd:
  drain_window: 10s
$dnssec_yaml
YAML

# What bin/farmctl local reads: who supervises, each process's pid, the
# token, and a FIFO on which it tells this script what to do.
mkdir "$tmp/procs"
echo $$ >"$tmp/run.pid"
(umask 077 && echo "$token" >"$tmp/token")
mkfifo "$tmp/control"
exec 3<>"$tmp/control"
ln -sfn "$tmp" "$link"

urls=("http://$addrA:$port" "http://$addrB:$port" "http://$addrC:$port")
start() {
  local n=$1
  case "$n" in
    server?) "$bin/pushd" --config "$tmp/farm.yaml" --node "$n" $mesh_flag >>"$tmp/$n.log" 2>&1 & ;;
    ns1) "$bin/dnsd" --config "$tmp/farm.yaml" --name ns1 >>"$tmp/ns1.log" 2>&1 & ;;
    feed) "$bin/pushd" demo-feed --url "$(IFS=,; echo "${urls[*]}")" --interval "$interval" >>"$tmp/feed.log" 2>&1 & ;;
    # The farm's status changes, as the mesh sees them, on this terminal.
    watch) "$bin/farmctl" status --changes --watch 500ms --timeout 400ms \
             --url "${urls[0]}/farm" --url "${urls[1]}/farm" --url "${urls[2]}/farm" 2>>"$tmp/watch.log" & ;;
  esac
  pid[$n]=$!
  echo "${pid[$n]}" >"$tmp/procs/$n.pid"
  unset "died[$n]"
  case " ${names[*]} " in *" $n "*) ;; *) names+=("$n") ;; esac
}

echo "== farm in $tmp"
for n in serverA serverB serverC; do start "$n"; done

ready() { curl -fsS -o /dev/null --max-time 1 "$1/healthz" 2>/dev/null; }
for u in "${urls[@]}"; do
  for _ in $(seq 100); do
    ready "$u" && break
    for p in "${pid[@]}"; do kill -0 "$p" 2>/dev/null || { echo "run.sh: a node exited; its log:" >&2; tail -n 20 "$tmp"/server*.log >&2; exit 1; }; done
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

have_dns=0
if [ "$dnsd" = 1 ] && [ -x "$bin/dnsd" ] && [ -z "$mesh_flag" ]; then
  start ns1
  have_dns=1
fi
[ "$feed" = 1 ] && start feed

procs_extra=
[ "$have_dns" = 1 ] && procs_extra+=" ns1"
[ "$feed" = 1 ] && procs_extra+=" feed"
case "$restart" in
  off) again="they stay down until: $bin/farmctl local start NAME" ;;
  0) again="make run starts it again at once" ;;
  *) again="make run starts it again after ${restart}s" ;;
esac
cat <<MSG

farmlb is running: serverA ${urls[0]}  serverB ${urls[1]}  (group A)   serverC ${urls[2]}  (group B)

  dashboard       ${urls[0]}/
  demo page       ${urls[2]}/demo/   (live prices through farmlb.js, with failover)
  the farm list   curl -s ${urls[0]}/farm?format=text
  a stream        curl -N '${urls[1]}/stream?topic=prices.EURUSD&topic=prices.GBPUSD'
  publish         curl -H 'Authorization: Bearer $token' -d 'hello' ${urls[2]}/publish/news

  farmctl, in another terminal (finds this farm and its token by itself):
                  $bin/farmctl status
                  $bin/farmctl subscribe -v prices.EURUSD prices.GBPUSD
                  $bin/farmctl publish news 'hello'
                  curl -s ${urls[0]}/farm | $bin/farmctl pick --list - --explain

  break and mend it (processes: serverA serverB serverC$procs_extra):
                  $bin/farmctl local kill serverB      SIGKILL; $again
                  $bin/farmctl local kill --hold serverB   ... and keep it down
                  $bin/farmctl local hang serverB      SIGSTOP: alive, silent; the mesh marks it DOWN
                  $bin/farmctl local resume serverB    SIGCONT
                  $bin/farmctl local restart serverB   stop it and start it again at once
                  $bin/farmctl local start serverB     start one that is held down
                  $bin/farmctl drain serverA   /   $bin/farmctl undrain serverA
                  $bin/farmctl local status            what runs, what is hung, held, restarted
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
  echo "  DNS             (no dnsd: $bin/dnsd not built, or --no-dns/--standalone)"
fi
cat <<MSG

  publish token   $token   (export FARMLB_TOKEN to choose it)
  config, logs    $tmp
This terminal shows what happens to the farm. Ctrl-C stops everything and removes $tmp.

MSG
[ -z "$mesh_flag" ] && start watch

# bash itself reports a background process killed by a signal on stderr
# ("run.sh: line 87: 4242 Killed  ..."), which run.sh says better: while it
# supervises, its stderr goes to a file, and what else is there is shown
# when it stops.
errlog=$tmp/run.sh.err
exec 4>&2 2>>"$errlog"

# Supervise until Ctrl-C: report a process that exits and start it again;
# carry out what bin/farmctl local asks on the control FIFO.
exited() {
  local n=$1 rc=0 how
  wait "${pid[$n]}" 2>/dev/null || rc=$?
  unset "pid[$n]"
  rm -f "$tmp/procs/$n.pid"
  died[$n]=$(date +%s)
  if [ "$rc" -gt 128 ]; then how="killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))"; else how="exit status $rc"; fi
  if [ -n "${now_again[$n]:-}" ]; then
    say "$n exited ($how); starting it again"
  elif [ -e "$tmp/procs/$n.hold" ]; then
    say "$n exited ($how); held down until: $bin/farmctl local start $n"
  elif [ "$restart" = off ]; then
    : >"$tmp/procs/$n.hold" # so that farmctl local status says it stays down
    say "$n exited ($how); it stays down until: $bin/farmctl local start $n"
  else
    say "$n exited ($how); starting it again in ${restart}s"
  fi
  # An exit of its own with an error: its log says why.
  if [ "$rc" -gt 0 ] && [ "$rc" -le 128 ] && [ "$n" != watch ]; then tail -n 3 "$tmp/$n.log" 2>/dev/null | sed 's/^/    /'; fi
}
control() {
  local verb=$1 n=${2:-} rest=${3:-}
  case "$verb" in
    note) say "$n${rest:+ $rest}" ;;
    start)
      if [ -n "${pid[$n]:-}" ]; then say "$n runs already (pid ${pid[$n]})"; return; fi
      start "$n"; say "$n started (pid ${pid[$n]})" ;;
    restart)
      if [ -z "${pid[$n]:-}" ]; then start "$n"; say "$n started (pid ${pid[$n]})"; return; fi
      now_again[$n]=1
      say "restarting $n (SIGINT, then start)"
      kill -CONT "${pid[$n]}" 2>/dev/null || true
      kill -INT "${pid[$n]}" 2>/dev/null || true ;;
  esac
}
# (No read -t with a timeout: bash 5.2 can crash when Ctrl-C's trap ends the
# script inside one. read -t 0 only polls, and a sleep paces the loop.)
while :; do
  while read -r -t 0 <&3 && read -r verb name rest <&3; do
    case " ${names[*]} " in
      *" $name "*) control "$verb" "$name" "$rest" ;;
      *) [ "$verb" = note ] && control note "$name" "$rest" ;;
    esac
  done
  for n in "${names[@]}"; do
    if [ -n "${pid[$n]:-}" ] && ! kill -0 "${pid[$n]}" 2>/dev/null; then exited "$n"; fi
    [ -n "${pid[$n]:-}" ] || [ -z "${died[$n]:-}" ] && continue
    if [ -n "${now_again[$n]:-}" ]; then
      unset "now_again[$n]"
      start "$n"; say "$n started again (pid ${pid[$n]})"
    elif [ ! -e "$tmp/procs/$n.hold" ] && [ "$restart" != off ] && [ $(($(date +%s) - died[$n])) -ge "$restart" ]; then
      start "$n"; say "$n started again (pid ${pid[$n]})"
    fi
  done
  sleep 0.3
done
