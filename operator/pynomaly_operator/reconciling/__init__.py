"""The reconcile: observe -> compute status -> apply what differs (kopf + lightkube live here).

``observing`` turns kopf's in-memory indexes of children into per-resource lookups,
``comparing`` decides whether a child needs a patch (spec-hash + drift check),
``applying`` talks to the API server (server-side apply, owner references, events),
``reconciler`` is the one idempotent reconcile every trigger calls, and ``handlers``
registers it with kopf (indexes, events on the resource and its children, a resync loop).
"""
