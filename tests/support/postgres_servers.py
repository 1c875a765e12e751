"""Fixtures for real postgres_servers processes (filled in by its owner)."""
