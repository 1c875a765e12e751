"""Kubernetes Events derived from two statuses: every phase change and every store
failover the operator observes, with fixed reasons users can alert on.

Pure: ``transitions(previous, new)`` compares the stored status with the one just computed;
the reconciler posts what it returns once the new status is written. A store "failover" is
what the operator can see of one: a store condition (``RedisReady``, ``DatabaseReady``,
``PoolerReady``) going from True to False (its pods lost readiness: a Redis master or the
database went away) and back to True (served again, by the promoted replica or the
restarted pod).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pynomaly_operator.status import reasons

PHASE_CHANGED = "PhaseChanged"
"""Normal Event: the phase moved (message ``Progressing -> Ready: <Ready message>``)."""
PHASE_DEGRADED = "PhaseDegraded"
"""Warning Event: the phase moved to Degraded or Failed."""
STORE_FAILOVER = "StoreFailover"
"""Warning Event: a store condition went from True to False."""
STORE_RECOVERED = "StoreRecovered"
"""Normal Event: that store condition is True again."""
MONITORING_UNAVAILABLE = "MonitoringUnavailable"
"""Warning Event: spec.monitoring asks for objects whose CRDs the API server does not serve."""


@dataclasses.dataclass(frozen=True)
class Event:
    """One core/v1 Event to post about the resource."""

    type: str
    reason: str
    message: str


def _conditions(status: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("type")): c for c in (status or {}).get("conditions") or []}


def transitions(previous: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[Event]:
    """Events for what changed from ``previous`` (the stored status, None at first) to
    ``new``."""
    events = []
    old_phase = (previous or {}).get("phase")
    phase = new.get("phase")
    if phase and phase != old_phase:
        ready = _conditions(new).get(reasons.READY) or {}
        detail = str(ready.get("message") or "")
        message = f"{old_phase or 'None'} -> {phase}" + (f": {detail}" if detail else "")
        if phase in ("Degraded", "Failed"):
            degraded = _conditions(new).get(reasons.DEGRADED) or {}
            why = f"{degraded.get('reason', '')}: {degraded.get('message', '')}".strip(": ")
            events.append(
                Event("Warning", PHASE_DEGRADED, f"{old_phase or 'None'} -> {phase}: {why}")
            )
        else:
            events.append(Event("Normal", PHASE_CHANGED, message))
    before, after = _conditions(previous), _conditions(new)
    for store in reasons.STORE_TYPES:
        was, now = before.get(store), after.get(store)
        if was is None or now is None:
            continue
        if was.get("status") == "True" and now.get("status") == "False":
            events.append(
                Event(
                    "Warning",
                    STORE_FAILOVER,
                    f"{store} True -> False ({now.get('reason')}): {now.get('message', '')}",
                )
            )
        elif was.get("status") == "False" and now.get("status") == "True":
            events.append(
                Event("Normal", STORE_RECOVERED, f"{store} False -> True: {now.get('message', '')}")
            )
    return events
