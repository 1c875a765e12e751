"""postgresql.conf, pg_hba.conf and the first-start init script of managed Postgres.

Pure renderers from ``PostgresSpec``. The StatefulSet mounts the text from a ConfigMap and
starts ``postgres -c config_file=... -c hba_file=...``; the tests start a local postmaster
from the same text with a local port and socket directory. Credentials never appear here:
the official image's entrypoint reads them from Secret-backed env, and the init script
takes the application role's password from env too.
"""

from __future__ import annotations

from pynomaly_operator.builders import pods
from pynomaly_operator.specs.postgres import PostgresSpec

CONFIG_KEY = "postgresql.conf"
HBA_KEY = "pg_hba.conf"
INIT_SCRIPT_KEY = "10-create-app-database.sh"
SYNC_PASSWORDS_KEY = "sync-passwords.sh"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    return _quote(str(value))


def postgresql_conf(
    spec: PostgresSpec,
    *,
    port: int = pods.POSTGRES_PORT,
    listen_addresses: str = "*",
    unix_socket_directories: str = "/var/run/postgresql",
) -> str:
    """postgresql.conf with the guide's tuning (``spec.config``) and ``extra`` parameters."""
    c = spec.config
    settings: list[tuple[str, object]] = [
        ("listen_addresses", listen_addresses),
        ("port", port),
        ("unix_socket_directories", unix_socket_directories),
        ("password_encryption", "scram-sha-256"),
        ("max_connections", c.max_connections),
        ("superuser_reserved_connections", c.superuser_reserved_connections),
        ("shared_buffers", c.shared_buffers),
        ("effective_cache_size", c.effective_cache_size),
        ("maintenance_work_mem", c.maintenance_work_mem),
        ("work_mem", c.work_mem),
        ("checkpoint_completion_target", c.checkpoint_completion_target),
        ("checkpoint_timeout", c.checkpoint_timeout),
        ("max_wal_size", c.max_wal_size),
        ("min_wal_size", c.min_wal_size),
        ("random_page_cost", c.random_page_cost),
        ("effective_io_concurrency", c.effective_io_concurrency),
        ("default_statistics_target", c.default_statistics_target),
        ("autovacuum_max_workers", c.autovacuum_max_workers),
        ("autovacuum_vacuum_scale_factor", c.autovacuum_vacuum_scale_factor),
        ("autovacuum_analyze_scale_factor", c.autovacuum_analyze_scale_factor),
        ("log_destination", "stderr"),
        ("logging_collector", False),
        ("log_min_duration_statement", 1000),
    ]
    settings += sorted((p.name, p.value) for p in c.extra)
    lines = ["# Rendered by pynomaly-operator from spec.postgres.config."]
    lines += [f"{name} = {_value(value)}" for name, value in settings]
    return "\n".join(lines) + "\n"


def pg_hba_conf(spec: PostgresSpec) -> str:
    """Local socket trusted for the entrypoint; every network login must use SCRAM."""
    del spec  # one policy for every spec today; kept for a uniform renderer signature
    return (
        "# Rendered by pynomaly-operator.\n"
        "local all all trust\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
        "host all all 0.0.0.0/0 scram-sha-256\n"
        "host all all ::/0 scram-sha-256\n"
    )


# Runs once, on an empty data directory (docker-entrypoint-initdb.d), as the superuser.
# Environment: APP_USER, APP_PASSWORD, APP_DB; POSTGRES_USER and PG* connection variables.
INIT_SCRIPT = r"""#!/bin/sh
# Create the application role and database (first start only). psql quotes the values.
set -eu
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v app_user="$APP_USER" -v app_password="$APP_PASSWORD" -v app_db="$APP_DB" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'app_user', :'app_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'app_user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') \gexec
SQL
"""


# Runs at every container start (postStart hook): the roles' passwords follow the Secret.
# Needed when a retained volume meets a re-created Secret (detector deleted and re-created):
# the init script does not run on a non-empty data directory. Never fails the container.
# Environment: POSTGRES_USER, POSTGRES_PASSWORD, APP_USER, APP_PASSWORD; PG* for the socket.
SYNC_PASSWORDS_SCRIPT = r"""#!/bin/sh
# Set the superuser's and the application role's passwords from the Secret-backed env.
set -u
tries=0
until pg_isready -h 127.0.0.1 -p "${PGPORT:-5432}" -U "${POSTGRES_USER:-postgres}" >/dev/null 2>&1
do
  tries=$((tries + 1))
  if [ "$tries" -ge 300 ]; then
    echo "postgres not ready; passwords not synchronised" >&2
    exit 0
  fi
  sleep 1
done
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v su="${POSTGRES_USER:-postgres}" -v su_password="$POSTGRES_PASSWORD" \
  -v app_user="$APP_USER" -v app_password="$APP_PASSWORD" <<'SQL' || echo "password sync failed" >&2
SELECT format('ALTER ROLE %I PASSWORD %L', :'su', :'su_password') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'app_user', :'app_password')
WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \gexec
SQL
exit 0
"""
