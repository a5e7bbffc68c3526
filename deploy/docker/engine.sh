#!/bin/sh
# The Docker engine for `make image` / `make compose-up` and the compose test.
#   engine.sh start   use a running engine, or install Debian's docker.io and docker-compose
#                     (as root) and start dockerd in the background (state in .prognos/docker)
#   engine.sh stop    stop the dockerd this script started, and put back the host's
#                     iptables FORWARD policy and IP forwarding, which dockerd changes and
#                     does not restore when it exits
set -eu
state=${PROGNOS_DOCKER_STATE:-$(pwd)/.prognos/docker}
mkdir -p "$state"
pidfile=$state/dockerd.pid

engine_answers() { docker info >/dev/null 2>&1; }

case "${1:-}" in
start)
  if engine_answers; then echo "docker engine: running"; exit 0; fi
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker-compose >/dev/null 2>&1 \
     || ! command -v debootstrap >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      echo "docker engine: dockerd, docker-compose or debootstrap missing; as root: apt-get install docker.io docker-compose debootstrap" >&2
      exit 1
    fi
    echo "installing Debian's docker.io, docker-compose and debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      docker.io docker-compose debootstrap iptables >/dev/null
  fi
  # What dockerd will change, to put back at stop.
  iptables -S FORWARD 2>/dev/null | head -1 | awk '{print $3}' > "$state/forward-policy" || true
  cat /proc/sys/net/ipv4/ip_forward > "$state/ip-forward" 2>/dev/null || true
  nohup dockerd --data-root "${PROGNOS_DOCKER_ROOT:-/var/lib/docker}" \
    --pidfile "$pidfile" >"$state/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do
    if engine_answers; then echo "docker engine: started (log $state/dockerd.log)"; exit 0; fi
    sleep 1
  done
  echo "docker engine: dockerd did not answer within 60 s; last lines of $state/dockerd.log:" >&2
  tail -20 "$state/dockerd.log" >&2
  "$0" stop >/dev/null 2>&1 || true
  exit 1
  ;;
stop)
  # Only the dockerd this script started is stopped, and only then are the host's
  # settings it saved before starting it put back (an engine run otherwise is left alone).
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if [ -s "$state/forward-policy" ]; then iptables -P FORWARD "$(cat "$state/forward-policy")" || true; fi
    if [ -s "$state/ip-forward" ]; then cat "$state/ip-forward" > /proc/sys/net/ipv4/ip_forward || true; fi
    echo "docker engine: stopped; iptables FORWARD policy and IP forwarding put back"
  fi
  rm -f "$state/forward-policy" "$state/ip-forward" "$pidfile"
  ;;
*)
  echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
