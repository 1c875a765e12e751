"""Tests of pynomaly_detector.detectors."""
