"""Tests of pynomaly_detector.scoring."""
