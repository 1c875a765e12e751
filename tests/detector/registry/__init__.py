"""Tests of pynomaly_detector.registry."""
