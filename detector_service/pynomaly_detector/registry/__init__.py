"""The model registry: where fitted models live between processes and replicas.

``versions`` holds the metadata of one stored version, ``signing`` the HMAC that guards
unpickling, ``store`` the interface and its errors, ``local`` the embedded directory store,
``postgres`` the asyncpg store (through PgBouncer), and ``anomaly_log`` the batched writer of
anomalous rows. No HTTP here.
"""
