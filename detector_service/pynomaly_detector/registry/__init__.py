"""The model registry: where fitted models live between processes and replicas.

``models`` is the registry as one process sees it (describe, load, fit, the declared model,
with the L3 lookup and L1 model caches in front of the store); ``versions`` holds the
metadata of one stored version, ``signing`` the HMAC that guards unpickling, ``store`` the
interface and its errors, ``local`` the embedded directory store, ``postgres`` the asyncpg
store (through PgBouncer), and ``anomaly_log`` the batched writer of anomalous rows.
Layer: below ``scoring`` and ``dataplane``, above ``caching`` and ``detectors``. No HTTP here.
"""
