#!/usr/bin/env bash
# Runs every `go test -fuzz` target in the module for FUZZTIME each.
set -euo pipefail
FUZZTIME=${FUZZTIME:-5s}
go=${GO:-go}
n=0
for pkg in $($go list ./...); do
  dir=$($go list -f '{{.Dir}}' "$pkg")
  for t in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz: $pkg $t ($FUZZTIME)"
    $go test -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/fuzz-$$.log 2>&1 || { cat /tmp/fuzz-$$.log; rm -f /tmp/fuzz-$$.log; exit 1; }
    n=$((n+1))
  done
done
rm -f /tmp/fuzz-$$.log
echo "fuzz: $n targets passed"
