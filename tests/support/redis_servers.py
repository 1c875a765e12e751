"""Fixtures for real redis_servers processes (filled in by its owner)."""
