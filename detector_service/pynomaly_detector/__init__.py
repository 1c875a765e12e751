"""Pynomaly detector service: the scoring endpoint every ``AnomalyDetector`` runs.

The HTTP layer (``api``) is thin; detectors, scoring, caching and the model registry live in
modules with no FastAPI import so they can be tested and benchmarked alone.
"""
