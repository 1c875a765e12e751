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
