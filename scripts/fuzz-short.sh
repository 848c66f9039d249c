#!/usr/bin/env bash
# Runs every `go test -fuzz` target in the module for FUZZTIME each.
set -euo pipefail
FUZZTIME=${FUZZTIME:-5s}
go=${GO:-go}
n=0
fuzz_one() { $go test -run '^$' -fuzz "^$2\$" -fuzztime "$FUZZTIME" "$1" >/tmp/fuzz-$$.log 2>&1; }
for pkg in $($go list ./...); do
  dir=$($go list -f '{{.Dir}}' "$pkg")
  for t in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz: $pkg $t ($FUZZTIME)"
    if ! fuzz_one "$pkg" "$t"; then
      # Go 1.26's coordinator can report a bare "context deadline exceeded"
      # when -fuzztime ends while a starved worker is mid-call
      # (go.dev/issue/75804, fixed in Go 1.27): no input failed. That, and
      # only that, is run once more; a real finding writes a reproducer.
      if grep -q 'context deadline exceeded' /tmp/fuzz-$$.log && ! grep -q 'Failing input written' /tmp/fuzz-$$.log; then
        echo "fuzz: $t hit go.dev/issue/75804 (no failing input); running it again"
        fuzz_one "$pkg" "$t" || { cat /tmp/fuzz-$$.log; rm -f /tmp/fuzz-$$.log; exit 1; }
      else
        cat /tmp/fuzz-$$.log; rm -f /tmp/fuzz-$$.log; exit 1
      fi
    fi
    n=$((n+1))
  done
done
rm -f /tmp/fuzz-$$.log
echo "fuzz: $n targets passed"
