"""Scoring: turning request rows into scores fast.

``rows`` validates rows with numpy (no per-row pydantic) and hashes them for the caches,
``batching`` merges concurrent requests into one model call run in a thread pool, and
``scorer`` puts the L1 and L2 row caches in front of the batcher: L1 row cache ->
micro-batcher -> L2 Redis -> the model (the flattened forest for IsolationForest). Layer:
below ``dataplane``, above ``registry``, ``caching`` and ``detectors``. No HTTP here.
"""
