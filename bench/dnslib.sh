# Sourced by bench/dnsd.sh and bench/dnsd-flood.sh, after they set $work
# (their temporary folder) and $ZONE: what both need to run NSD beside dnsd
# and to measure a server's whole process tree.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# nsd_conf NAME PORT RATE: an NSD configuration serving $ZONE from
# $work/$ZONE.zone; RATE 0 turns its response rate limiting off (Debian
# builds NSD with it on at 200/s per client network).
nsd_conf() {
  cat >"$work/$1.conf" <<CONF
server:
  ip-address: 127.0.0.1@$2
  server-count: 2
  reuseport: yes
  minimal-responses: yes
  username: ""
  chroot: ""
  zonesdir: "$work"
  database: ""
  zonelistfile: "$work/$1.zone.list"
  xfrdfile: "$work/$1.xfrd.state"
  xfrdir: "$work"
  pidfile: "$work/$1.pid"
  verbosity: 0
  hide-version: yes
  rrl-ratelimit: $3
  rrl-slip: 2
  rrl-ipv4-prefix-length: 24
  rrl-ipv6-prefix-length: 56
  rrl-whitelist-ratelimit: $((2 * $3))
remote-control:
  control-enable: no
zone:
  name: $ZONE
  zonefile: $ZONE.zone
CONF
  nsd-checkconf "$work/$1.conf"
}

# descendants PID: every process below PID.
descendants() {
  local p
  for p in $(pgrep -P "$1" || true); do echo "$p"; descendants "$p"; done
}

# cpu_ticks PID: user+system clock ticks of PID and every process below it
# (NSD serves from forked grandchildren: xfrd -> main -> server N).
cpu_ticks() {
  local total=0 p
  for p in $1 $(descendants "$1"); do
    if [ -r "/proc/$p/stat" ]; then
      # fields after the command name: utime is 14, stime 15 overall.
      total=$((total + $(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat")))
    fi
  done
  echo "$total"
}
