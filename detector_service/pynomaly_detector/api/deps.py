"""Dependencies as ``Annotated`` aliases: what a route needs, taken from the lifespan state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from pynomaly_detector.dataplane import DataPlane
from pynomaly_detector.settings import Settings


@dataclass(slots=True)
class Health:
    """What /readyz reports besides the data plane's own readiness."""

    draining: bool = False
    """Set on SIGTERM: readiness fails first, in-flight requests still finish."""
    preparing_error: str | None = None
    """Why warm-up / the declared model is not loaded yet (retried in the background)."""


def plane_of(request: Request) -> DataPlane:
    """The data plane, for hot routes that skip dependency solving."""
    plane: DataPlane = request.state.plane
    return plane


async def _plane(request: Request) -> DataPlane:
    return plane_of(request)


async def _settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


async def _health(request: Request) -> Health:
    health: Health = request.state.health
    return health


Plane = Annotated[DataPlane, Depends(_plane)]
AppSettings = Annotated[Settings, Depends(_settings)]
AppHealth = Annotated[Health, Depends(_health)]
