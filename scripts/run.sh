#!/usr/bin/env bash
# make run: what exists so far. This grows into a whole local farm as pushd
# and dnsd land.
set -euo pipefail
echo "== farmctl pick --explain on the patent's example list (farm/testdata/patent.txt)"
bin/farmctl pick --list farm/testdata/patent.txt --explain --policy inverse-share
echo
echo "== the same list under farmlb's default policy"
bin/farmctl pick --list farm/testdata/patent.txt --explain
