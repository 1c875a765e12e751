"""Pure builders: parsed ``AnomalyDetector`` + ``Names`` -> manifest dicts, by component.

``desired.desired()`` is the entry point: every generated Secret and every other object one
resource needs, in apply order. Each component is a package of functions named for the Kind
they return (``redis.stateful_set``, ``pgbouncer.deployment``, ``detector.deployment``...),
with its config renderer beside it; ``pods`` holds what all pods share (uid, security
contexts, ports, probes, env, volumes, NetworkPolicy and Service shapes).

No client, no kopf, no globals, no mutation of the input (import-linter enforces the first
two). Namespaces, owner references, the spec-hash annotation and the field manager are
added where objects are applied (``pynomaly_operator.reconciling.applying``), not here.
"""
