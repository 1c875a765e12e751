"""Detectors: one small interface over PyOD and scikit-learn outlier estimators.

``catalog`` names the supported algorithms and imports their modules lazily (PyOD imports
are heavy) and checks parameters against their constructors, ``fitted`` fits and holds a
fitted detector that scores rows (higher = more anomalous) against a threshold fixed at fit
time, ``forest`` is the flattened IsolationForest walk (the end of the hot path), ``ecdf``
scores ECOD/COPOD against the fitted training distribution only, and ``errors`` holds the
input errors every layer raises. The bottom layer: it imports nothing else of the service.
"""
