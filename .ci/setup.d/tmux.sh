#!/usr/bin/env bash
# tmux for the terminal-screen tests (tests/ingest/cli/test_terminal_screens.py: what
# `terragon up --demo` and a bulk replay look like at 80 columns; they skip with a reason without
# it). Idempotent and quiet.
set -u
if command -v tmux >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != "0" ]; then
  echo "tmux: apt-get unavailable or not root; the terminal-screen tests will skip"
  exit 0
fi
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux; } >/dev/null 2>&1; then
  echo "tmux: apt-get install failed; the terminal-screen tests will skip"
fi
exit 0
