"""The reconcile: observe -> compute status -> apply what differs -> write status.

The only layer that talks to the API server (kopf + lightkube live here):
``observing`` gathers one ``Observed`` (children from kopf's in-memory indexes, generated
Secrets' UIDs, the training ConfigMap), ``comparing`` decides whether a child needs a patch
(spec-hash + drift check), ``applying`` writes (server-side apply, owner references,
events), ``reconciler`` is the one idempotent reconcile every trigger calls, and
``handlers`` registers it with kopf (indexes, events on the resource and its children, a
resync loop; settings and the reconciler kept in kopf's ``memo``).
"""
