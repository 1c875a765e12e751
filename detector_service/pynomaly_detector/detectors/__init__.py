"""Detectors: one small interface over PyOD and scikit-learn outlier estimators.

``catalog`` names the supported algorithms and imports their modules lazily (PyOD imports
are heavy), ``fitting`` validates parameters and fits, ``fitted`` holds a fitted detector that
scores rows (higher = more anomalous) against a threshold fixed at fit time, and ``ecdf``
scores ECOD/COPOD against the fitted training distribution only.
"""
