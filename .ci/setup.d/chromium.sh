#!/usr/bin/env bash
# Debian's chromium for the browser tests (tests/dashboard/integration/test_dashboard_browser.py and
# tests/ingest/preview/test_preview_browser.py skip with a reason without it). Idempotent and quiet.
set -u
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != "0" ]; then
  echo "chromium: apt-get unavailable or not root; the browser test will skip"
  exit 0
fi
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1; then
  echo "chromium: apt-get install failed; the browser test will skip"
fi
exit 0
