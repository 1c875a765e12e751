"""pgbouncer.ini and the script that builds PgBouncer's userlist from a Secret at start.

Pure renderer from ``PostgresSpec.pgbouncer``. The ini names the auth file but never holds
a password: the start script writes ``userlist.txt`` into an emptyDir from Secret-backed
env, so SCRAM works end to end (PgBouncer needs the plain secret to authenticate to the
server with SCRAM). Tests start a local PgBouncer from the same text.
"""

from __future__ import annotations

from pynomaly_operator.builders import pods
from pynomaly_operator.specs.postgres import PostgresSpec

CONFIG_KEY = "pgbouncer.ini"
START_SCRIPT_KEY = "pgbouncer-start.sh"
RUN_DIR = "/etc/pgbouncer-run"


def pgbouncer_ini(
    spec: PostgresSpec,
    *,
    server_host: str,
    server_port: int = pods.POSTGRES_PORT,
    listen_addr: str = "0.0.0.0",  # noqa: S104 - pods listen on their own IP
    listen_port: int = pods.PGBOUNCER_PORT,
    auth_file: str = f"{RUN_DIR}/userlist.txt",
    unix_socket_dir: str = "",
) -> str:
    """pgbouncer.ini routing ``spec.database`` to ``server_host`` with the guide's pool sizes."""
    b = spec.pgbouncer
    lines = [
        "; Rendered by pynomaly-operator from spec.postgres.pgbouncer.",
        "[databases]",
        f"{spec.database} = host={server_host} port={server_port} dbname={spec.database}",
        "",
        "[pgbouncer]",
        f"listen_addr = {listen_addr}",
        f"listen_port = {listen_port}",
        f"unix_socket_dir = {unix_socket_dir}",
        "auth_type = scram-sha-256",
        f"auth_file = {auth_file}",
        f"pool_mode = {b.pool_mode}",
        f"max_client_conn = {b.max_client_conn}",
        f"default_pool_size = {b.default_pool_size}",
        f"reserve_pool_size = {b.reserve_pool_size}",
        f"reserve_pool_timeout = {b.reserve_pool_timeout}",
        f"server_lifetime = {b.server_lifetime}",
        f"server_idle_timeout = {b.server_idle_timeout}",
        f"server_login_retry = {b.server_login_retry}",
        # asyncpg sets these at connect; PgBouncer would otherwise refuse the login.
        "ignore_startup_parameters = extra_float_digits,search_path",
        "server_reset_query = DISCARD ALL",
        "server_check_query = select 1",
        f"stats_users = {spec.user}",
        "log_connections = 0",
        "log_disconnections = 0",
        "",
    ]
    return "\n".join(lines)


# Environment: APP_USER, APP_PASSWORD (Secret), INI (the rendered pgbouncer.ini),
# AUTH_FILE (where the ini expects the userlist).
START_SCRIPT = r"""#!/bin/sh
# Build the userlist from the Secret (quotes doubled as PgBouncer expects), then run.
set -eu
umask 077
printf '"%s" "%s"\n' "$(printf '%s' "$APP_USER" | sed 's/"/""/g')" \
  "$(printf '%s' "$APP_PASSWORD" | sed 's/"/""/g')" > "$AUTH_FILE"
exec pgbouncer "$INI"
"""
