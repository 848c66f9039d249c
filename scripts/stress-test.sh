#!/usr/bin/env bash
# Runs the whole test suite (-race) RUNS times while HOGS busy loops keep
# the CPUs loaded, as a shared CI host would be, and reports each run's
# failures. Timing faults that a quiet machine never shows come out here:
# it found five in one evening. Logs go to OUT (default build/stress).
#   RUNS=8 HOGS=3 PKGS=./... scripts/stress-test.sh
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-8}
HOGS=${HOGS:-3}
PKGS=${PKGS:-./...}
OUT=${OUT:-build/stress}
mkdir -p "$OUT"
hogs=()
for _ in $(seq 1 "$HOGS"); do
  (while :; do :; done) &
  hogs+=($!)
done
trap 'kill "${hogs[@]}" 2>/dev/null' EXIT
failed=0
for i in $(seq 1 "$RUNS"); do
  start=$(date +%s)
  log="$OUT/run$i.log"
  if go test -race -count=1 -timeout 20m $PKGS >"$log" 2>&1; then
    echo "run $i/$RUNS: ok ($(( $(date +%s) - start )) s, load $(cut -d' ' -f1 /proc/loadavg))"
  else
    failed=$((failed + 1))
    echo "run $i/$RUNS: FAILED ($(( $(date +%s) - start )) s; $log):"
    grep -E '^(--- FAIL|FAIL|panic)' "$log" | sed 's/^/    /'
  fi
done
echo "stress: $failed of $RUNS runs failed with $HOGS CPU hogs"
[ "$failed" -eq 0 ]
