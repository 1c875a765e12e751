"""What model version the detector service actually serves, as the service reports it.

The operator asks the service itself: ``GET <endpoint>/v1/models/<name>`` through the
detector's ClusterIP Service (the detector NetworkPolicy admits the operator's pods to the
HTTP port for this; with ``scoringAuth: token`` the request carries a token from the
generated Secret). Why this way: the answer comes from the process that serves, not from a
copy someone could write; the detector pods keep no API credentials (giving every detector
write access to pods or ConfigMaps would widen RBAC in every namespace); and the operator
needs no access to the database. Cost: one GET per ready detector per resync, none while a
rollout is in progress. Only in a cluster: a local operator (tests, the demo) cannot reach
ClusterIPs, so ``OperatorSettings.report_served_model`` turns it off there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 2.0


def summary(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``status.model`` fields from a ``GET /v1/models/<name>`` body (None if malformed)."""
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        return None
    out: dict[str, Any] = {"version": version}
    if isinstance(body.get("algorithm"), str):
        out["servedAlgorithm"] = body["algorithm"]
    threshold = body.get("threshold")
    if isinstance(threshold, int | float) and not isinstance(threshold, bool):
        out["threshold"] = float(threshold)
    if isinstance(body.get("fitted_at"), str):
        out["fittedAt"] = body["fitted_at"]
    return out


async def served_model(
    endpoint: str, name: str, *, token: str | None = None
) -> dict[str, Any] | None:
    """The served version of ``name`` at ``endpoint`` (None when the service does not say)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{endpoint}/v1/models/{name}", headers=headers) as response,
        ):
            if response.status != 200:
                return None
            body = await response.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        logger.debug("served model of %s at %s: %s", name, endpoint, exc)
        return None
    return summary(body) if isinstance(body, Mapping) else None
