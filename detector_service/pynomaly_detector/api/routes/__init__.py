"""Routers: ``scoring`` (hot path), ``models`` (/v1), ``inference`` (OIP v2), ``health``."""
