"""Errors the detector layer raises for bad requests; the HTTP layer maps them to 4xx."""

from __future__ import annotations


class DetectorError(ValueError):
    """A request the detectors cannot serve; the message says why (maps to 422)."""


class UnknownAlgorithmError(DetectorError):
    """The algorithm is not in the catalog."""


class InvalidParametersError(DetectorError):
    """Parameters the estimator does not accept, or values it rejects at fit time."""


class InvalidInputError(DetectorError):
    """Rows that cannot be scored: NaN/inf, wrong width, empty, not numbers."""
