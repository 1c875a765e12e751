#!/usr/bin/env bash
# The official postgres image's entrypoint contract, in fewer lines:
# - arguments starting with `-` are options for `postgres`;
# - started as root, it owns PGDATA and the socket directory and drops to `postgres`;
# - on an empty PGDATA: initdb (superuser POSTGRES_USER, password POSTGRES_PASSWORD, SCRAM),
#   a temporary server on the socket only, the scripts in /docker-entrypoint-initdb.d
#   (*.sh run or sourced, *.sql through psql), then that server stops;
# - an arbitrary uid without a passwd entry gets one through nss_wrapper (files in /tmp).
set -Eeo pipefail

if [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi

if [ "$1" != 'postgres' ]; then
  exec "$@"
fi

: "${PGDATA:?PGDATA must be set}"
if [ "$(id -u)" = '0' ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

mkdir -p "$PGDATA"
chmod 700 "$PGDATA" 2>/dev/null || true

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != 'trust' ]; then
    echo 'error: the database is uninitialized and POSTGRES_PASSWORD is not set' >&2
    exit 1
  fi
  if ! getent passwd "$(id -u)" >/dev/null; then
    wrapper=/usr/lib/x86_64-linux-gnu/libnss_wrapper.so
    [ -e "$wrapper" ] || wrapper=$(find /usr/lib -name libnss_wrapper.so | head -n1)
    NSS_WRAPPER_PASSWD=$(mktemp)
    NSS_WRAPPER_GROUP=$(mktemp)
    export LD_PRELOAD="$wrapper" NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
    printf 'postgres:x:%s:%s:PostgreSQL:%s:/bin/false\n' "$(id -u)" "$(id -g)" "$PGDATA" > "$NSS_WRAPPER_PASSWD"
    printf 'postgres:x:%s:\n' "$(id -g)" > "$NSS_WRAPPER_GROUP"
  fi
  export POSTGRES_USER="${POSTGRES_USER:-postgres}"
  export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
  # shellcheck disable=SC2086
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 ${POSTGRES_INITDB_ARGS:-}
  printf '\nhost all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >> "$PGDATA/pg_hba.conf"
  unset LD_PRELOAD NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP

  export PGPASSWORD="$POSTGRES_PASSWORD"
  # The temporary server takes the same options as the real one (config_file, hba_file),
  # but listens on the socket only.
  pg_ctl -D "$PGDATA" -w start \
    -o "$(printf '%q ' "${@:2}") -c listen_addresses='' -p ${PGPORT:-5432}"
  if [ "$POSTGRES_DB" != 'postgres' ]; then
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres --set db="$POSTGRES_DB" \
      -tAc "SELECT 1 FROM pg_database WHERE datname = :'db'" | grep -q 1 \
      || psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres --set db="$POSTGRES_DB" \
        -c 'CREATE DATABASE :"db"'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then echo "running $f"; "$f"; else echo "sourcing $f"; . "$f"; fi ;;
      *.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f "$f" ;;
      *) [ -e "$f" ] && echo "ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  unset PGPASSWORD
  echo 'PostgreSQL init process complete; ready for start up.'
fi

exec "$@"
