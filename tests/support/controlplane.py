"""Fixtures for real controlplane processes (filled in by its owner)."""
