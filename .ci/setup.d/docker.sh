#!/usr/bin/env bash
# Docker for the `docker` sandbox provider's tests (tests/docker/): Debian's docker.io, and a
# dockerd started here when none answers. Idempotent. Where dockerd cannot run (not root, no
# apt-get, no cgroups), it prints why and the docker tests skip with that reason.
# The dockerd started here is left running for the test session; stop it by its pid
# (/run/terragon-ci-dockerd.pid).
set -u
SOCK=/var/run/docker.sock
PIDFILE=/run/terragon-ci-dockerd.pid
LOG=/var/log/terragon-ci-dockerd.log

answers() { curl -sf --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }

if answers; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "docker: dockerd is not answering on $SOCK and this is not root; the docker tests will skip"
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "docker: no dockerd and no apt-get; the docker tests will skip"
    exit 0
  fi
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io; } >/dev/null 2>&1; then
    echo "docker: apt-get install docker.io failed; the docker tests will skip"
    exit 0
  fi
fi
# Not through systemd (CI containers have none): dockerd in its own session, so that no signal
# meant for this script or the test run reaches it.
setsid dockerd --host "unix://$SOCK" --pidfile "$PIDFILE" >>"$LOG" 2>&1 </dev/null &
for _ in $(seq 1 60); do
  if answers; then
    echo "docker: started dockerd (pid $(cat "$PIDFILE" 2>/dev/null || echo '?'), log $LOG)"
    exit 0
  fi
  sleep 0.5
done
echo "docker: dockerd did not answer within 30 s (see $LOG: $(tail -n 3 "$LOG" 2>/dev/null | tr '\n' ' ')); the docker tests will skip"
exit 0
