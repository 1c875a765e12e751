#!/usr/bin/env python3
"""The demo's backing stores on 127.0.0.1: redis-server, PostgreSQL 15 and PgBouncer.

    demo_stores.py --dir .demo/stores --env-file .demo/stores.env

Starts them with the same helpers the tests use (tests/support), creates the application
database, writes the detector service's settings for them (PYNOMALY_REDIS_*,
PYNOMALY_DATABASE_*) to ``--env-file`` once everything answers, then waits for SIGTERM/SIGINT
and stops all three. ``make demo-down`` sends that signal.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.postgres_servers import start_stack  # noqa: E402  (needs ROOT on sys.path)
from tests.support.redis_servers import RedisServer  # noqa: E402

DATABASE = "pynomaly"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="working directory for Redis")
    parser.add_argument("--env-file", type=Path, required=True, help="settings to write")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    (args.dir / "redis").mkdir(exist_ok=True)
    redis = RedisServer(workdir=args.dir / "redis").start()
    print(f"redis-server on {redis.address}", flush=True)
    try:
        stack = start_stack()
        try:
            stack.postgres.create_database(DATABASE, owner=stack.user)
            print(
                f"postgres on 127.0.0.1:{stack.postgres.port}, "
                f"pgbouncer on 127.0.0.1:{stack.pgbouncer.port}",
                flush=True,
            )
            settings = {
                "PYNOMALY_REDIS_MODE": "standalone",
                "PYNOMALY_REDIS_URL": redis.url,
                "PYNOMALY_REDIS_SENTINELS": "",
                "PYNOMALY_DATABASE_URL": stack.dsn(DATABASE),
                "PYNOMALY_DATABASE_PASSWORD": stack.password,
            }
            partial = args.env_file.with_suffix(".tmp")
            partial.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in settings.items()))
            partial.replace(args.env_file)  # appears whole: demo.sh waits for it
            stop.wait()
        finally:
            stack.pgbouncer.cleanup()
            stack.postgres.cleanup()
    finally:
        redis.cleanup()
        args.env_file.unlink(missing_ok=True)
        print("stores stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
