#!/usr/bin/env bash
# Install promtool without running Prometheus: Debian's `prometheus` package, unpacked (no root,
# nothing installed system-wide). Prints the promtool path. Idempotent.
#   PROMTOOL_DIR  where to unpack (default: <repo>/.data/promtool)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
dir="${PROMTOOL_DIR:-$repo/.data/promtool}"
bin="$dir/usr/bin/promtool"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
if command -v promtool >/dev/null 2>&1; then
  command -v promtool
  exit 0
fi
mkdir -p "$dir/deb"
(cd "$dir/deb" && apt-get download prometheus >&2)
dpkg-deb -x "$dir"/deb/prometheus_*.deb "$dir"
rm -rf "$dir/deb"
"$bin" --version >&2
echo "$bin"
