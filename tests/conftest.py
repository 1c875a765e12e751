"""Test-suite wiring: the fixtures that start real services live in ``tests/support``.

Each support module owns one kind of real dependency (the control plane, Redis topologies,
PostgreSQL with PgBouncer) and starts it from the same binaries and rendered configuration
that users run. Nothing here fakes a server that can run on this machine.
"""

pytest_plugins = [
    "tests.support.controlplane",
    "tests.support.redis_servers",
    "tests.support.redis_topologies",
    "tests.support.postgres_servers",
    "tests.support.argocd",
]
