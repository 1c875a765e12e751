"""``OperatorSettings``: the operator process's own settings, from ``PYNOMALY_OPERATOR_*`` env.

Read once at startup (``reconciling.handlers.startup``) and kept in kopf's ``memo`` with the
reconciler, never at import time, so tests and the benchmark can start operators with
different settings in one interpreter. kopf's own options (namespaces, liveness, peering)
stay on its command line.
"""

from __future__ import annotations

import pydantic
import pydantic_settings


class OperatorSettings(pydantic_settings.BaseSettings):
    """Settings of one operator process (env prefix ``PYNOMALY_OPERATOR_``)."""

    model_config = pydantic_settings.SettingsConfigDict(
        env_prefix="PYNOMALY_OPERATOR_",
        extra="ignore",
        frozen=True,
        use_attribute_docstrings=True,  # each field's docstring is its description
    )

    report_served_model: bool = True
    """Ask each ready detector which model version it serves (``status.model.version``);
    takes effect only in a cluster (a local operator cannot reach ClusterIP Services)."""

    resync_seconds: float = pydantic.Field(default=15.0, gt=0)
    """Seconds between resyncs of every known resource: a missed watch event is corrected
    and a generated Secret deleted by hand is re-created within this interval."""

    max_concurrent_reconciles: int = pydantic.Field(default=20, ge=0)
    """Reconciles running at once (0: no limit); more wait their turn in arrival order. Each
    sends one request at a time and lightkube's connection pool keeps 20 connections alive,
    so more at once only queue for a connection (up to its 10 s pool timeout) and finish
    together late instead of first come, first served."""

    pod_hint_after_seconds: float = pydantic.Field(default=60.0, gt=0)
    """A component condition False this long gets why from its pods (image pull, crash
    loop, scheduling, eviction) in its message; the pods are read (one LIST) at most once
    per this interval per resource while it stays False (``status/pods.py``)."""

    leader_election: bool = False
    """Run as one of several replicas: only the holder of a ``coordination.k8s.io`` Lease
    reconciles (``reconciling/leading.py``). Off for a single local process; the install
    manifest turns it on for its two replicas."""

    lease_name: str = pydantic.Field(default="pynomaly-operator", min_length=1)
    """Name of the Lease the replicas elect their leader on."""

    lease_namespace: str = ""
    """Namespace of the Lease; empty: the pod's own (``POD_NAMESPACE``), else ``default``."""

    identity: str = ""
    """This replica's name in the Lease's ``holderIdentity``; empty: ``POD_NAME``, else the
    host name and process id."""

    lease_seconds: float = pydantic.Field(default=10.0, gt=0)
    """How long a Lease record may stay unchanged before another replica takes it over: a
    killed leader is replaced within this plus ``retry_seconds``."""

    renew_deadline_seconds: float = pydantic.Field(default=7.0, gt=0)
    """The leader stops writing this long after its last successful renew was sent (shorter
    than ``lease_seconds``, so a cut-off leader stops before anyone may take over)."""

    retry_seconds: float = pydantic.Field(default=2.0, gt=0)
    """Seconds between attempts to acquire or renew the Lease."""

    @pydantic.model_validator(mode="after")
    def _lease_timings_nest(self) -> OperatorSettings:
        if not self.retry_seconds < self.renew_deadline_seconds < self.lease_seconds:
            raise ValueError(
                "need retry_seconds < renew_deadline_seconds < lease_seconds "
                f"(got {self.retry_seconds}, {self.renew_deadline_seconds}, {self.lease_seconds})"
            )
        return self
