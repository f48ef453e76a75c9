#!/usr/bin/env bash
# Debian's faketime (libfaketime) for the fault campaign's clock skew (`python -m tools.chaos
# --skew 45`: one replica's clock ahead; the campaign says SKIPPED for the skew without it).
# Idempotent and quiet.
set -u
if ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != "0" ]; then
  echo "faketime: apt-get unavailable or not root; the clock-skew campaign will skip its skew"
  exit 0
fi
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime; } >/dev/null 2>&1; then
  echo "faketime: apt-get install failed; the clock-skew campaign will skip its skew"
fi
exit 0
