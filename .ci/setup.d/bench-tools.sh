#!/usr/bin/env bash
# wrk (the benchmarks' load generator) from Debian's packages. Idempotent and quiet; the
# benchmarks and the tests that need it skip with a reason when it is missing.
set -u
if command -v wrk >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "bench-tools: apt-get not available; skipping wrk (tools/bench will say so)"
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "bench-tools: not root; skipping wrk install (tools/bench will say so)"
  exit 0
fi
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } >/dev/null 2>&1; then
  echo "bench-tools: apt-get install wrk failed; tools/bench will skip the HTTP benchmarks"
fi
exit 0
