#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo run for real: Redis (with sentinel),
# PostgreSQL 15, PgBouncer and a Lua interpreter (for the Argo CD health check tests).
# Idempotent: does nothing when every binary is already there. Needs root (or sudo).
set -euo pipefail

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-sentinel >/dev/null || need+=(redis-sentinel)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v pgbouncer >/dev/null || need+=(pgbouncer)
command -v lua5.4 >/dev/null || need+=(lua5.4)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)   # make demo talks to the service with curl

if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root or sudo to install: ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing Debian packages: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The packages start system-wide daemons; the tests run their own on loopback ports instead.
for svc in redis-server redis-sentinel postgresql pgbouncer; do
  $sudo service "$svc" stop >/dev/null 2>&1 || true
done
echo "system packages: installed ${need[*]}"
