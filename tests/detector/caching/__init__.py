"""Tests of pynomaly_detector.caching."""
