"""Pynomaly operator: reconciles ``AnomalyDetector`` resources (group ``pynomaly.io``).

Pure builders turn the parsed spec into manifests; one reconcile observes, computes status
and applies what differs. See ``../shared/DESIGN.md`` and the README for the architecture.
"""
