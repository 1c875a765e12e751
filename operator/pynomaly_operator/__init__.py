"""Pynomaly operator: reconciles ``AnomalyDetector`` resources (group ``pynomaly.io``).

The plan, in the direction data flows (import-linter enforces the layers):
``specs`` (parse the CR, generate the CRD) -> ``builders`` (pure: ``desired()`` = every
object to exist) -> ``status`` (pure: observed children -> conditions and phase) ->
``reconciling`` (observe -> compute status -> apply what differs -> write status; kopf
handlers). See operator/README.md, "How it works".
"""
