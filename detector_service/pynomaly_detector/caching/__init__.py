"""Caching: L1 in process (``memory``), L2 Redis (``redis_cache`` via ``redis_clients``).

The L3 query cache of registry lookups is a ``memory.TTLCache`` owned by ``registry.models``;
``invalidation`` drops its entries in every process over Redis pub/sub when a model changes.
Layer: below ``registry`` and ``scoring``, above ``detectors``; nothing here imports the
HTTP layer; every level counts hits and misses by level.
"""
