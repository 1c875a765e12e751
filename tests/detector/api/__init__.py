"""Tests of pynomaly_detector.api."""
