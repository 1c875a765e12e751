"""The connection budget: can the detector fleet, PgBouncer and Postgres all fit together?

Two inequalities, checked on the spec alone (pure):
1. clients: ``maxReplicas x workers x pool.maxSize`` asyncpg connections, spread over the
   PgBouncer replicas, must fit into ``pgbouncer.replicas x max_client_conn``. (A Service
   balances connections, not perfectly: each PgBouncer must hold its share, so the check
   is per replica with the share rounded up.)
2. servers: every PgBouncer replica opens up to ``default_pool_size + reserve_pool_size``
   server connections for the one database/user pair; together that must fit into
   ``max_connections - superuser_reserved_connections``.
A violation is reported as a sentence with the numbers; the reconcile folds it into the
``Degraded`` condition rather than refusing the spec, because it is a capacity warning
that only bites under peak load.
"""

from __future__ import annotations

import math

from pynomaly_operator.specs import detector as specs


def max_detector_pods(detector: specs.AnomalyDetector) -> int:
    scaling = detector.spec.autoscaling
    return scaling.max_replicas if scaling.enabled else scaling.min_replicas


def client_connections(detector: specs.AnomalyDetector) -> int:
    """asyncpg connections the whole detector fleet may open at its largest."""
    return (
        max_detector_pods(detector)
        * detector.spec.server.workers
        * detector.spec.postgres.pool.max_size
    )


def budget_problems(detector: specs.AnomalyDetector) -> list[str]:
    """Human-readable budget violations (empty when everything fits)."""
    pg = detector.spec.postgres
    problems: list[str] = []
    pods = max_detector_pods(detector)
    workers = detector.spec.server.workers
    pool = pg.pool.max_size
    clients = client_connections(detector)
    bouncer = pg.pgbouncer
    uses_bouncer = pg.mode == "managed" and bouncer.enabled
    if uses_bouncer:
        share = math.ceil(clients / bouncer.replicas)
        if share > bouncer.max_client_conn:
            problems.append(
                f"client connections exceed PgBouncer capacity: {pods} pods x {workers} workers x "
                f"pool {pool} = {clients} over {bouncer.replicas} PgBouncer replicas = {share} "
                f"per replica > max_client_conn {bouncer.max_client_conn}"
            )
    if pg.mode == "managed":
        available = pg.config.max_connections - pg.config.superuser_reserved_connections
        if uses_bouncer:
            per_bouncer = bouncer.default_pool_size + bouncer.reserve_pool_size
            servers = bouncer.replicas * per_bouncer
            if servers > available:
                problems.append(
                    f"PgBouncer server pools exceed Postgres connections: {bouncer.replicas} "
                    f"replicas x (default_pool_size {bouncer.default_pool_size} + "
                    f"reserve_pool_size {bouncer.reserve_pool_size}) = {servers} > "
                    f"max_connections {pg.config.max_connections} - superuser_reserved "
                    f"{pg.config.superuser_reserved_connections} = {available}"
                )
        elif clients > available:
            problems.append(
                f"client connections exceed Postgres connections: {pods} pods x {workers} "
                f"workers x pool {pool} = {clients} > {available} available"
            )
    return problems
