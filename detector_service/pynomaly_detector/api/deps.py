"""Dependencies as ``Annotated`` aliases: what a route needs, taken from the lifespan state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pynomaly_detector.dataplane import DataPlane
from pynomaly_detector.settings import Settings


def plane_of(request: Request) -> DataPlane:
    """The data plane, for hot routes that skip dependency solving."""
    # The lifespan state dict itself: ``request.state`` builds a wrapper object per request.
    plane: DataPlane = request.scope["state"]["plane"]
    return plane


async def _plane(request: Request) -> DataPlane:
    return plane_of(request)


async def _settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


Plane = Annotated[DataPlane, Depends(_plane)]
AppSettings = Annotated[Settings, Depends(_settings)]
