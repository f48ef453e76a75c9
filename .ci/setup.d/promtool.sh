#!/usr/bin/env bash
# promtool for the alert-rule tests (tests/ingest/telemetry/test_archive_alert_rules.py skips without it).
set -u
if ! command -v apt-get >/dev/null 2>&1; then
  echo "promtool: apt-get not available; the alert-rule tests will skip"
  exit 0
fi
bash "$(dirname "$0")/../../tools/alerts/get-promtool.sh" >/dev/null \
  || echo "promtool: download failed; the alert-rule tests will skip"
exit 0
