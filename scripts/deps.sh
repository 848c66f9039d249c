#!/usr/bin/env bash
# Installs the Debian packages that the build and the tests use (with the
# argument "run": only what make run uses), only when a command is missing,
# so that a machine that has them pays nothing. Each component lists what it
# needs in scripts/deps.d/<component>.sh as lines
#   want COMMAND DEBIAN-PACKAGE
set -euo pipefail
need=()
want() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
if [ "${1:-}" = run ]; then
  # make run: what scripts/run.sh and the commands it suggests use.
  want curl curl
  want dig dnsutils
else
  want column bsdextrautils
  want dig dnsutils
  for f in "$(dirname "$0")"/deps.d/*.sh; do
    [ -e "$f" ] && . "$f"
  done
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  if ! $SUDO apt-get install -y -qq "${need[@]}" >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi
