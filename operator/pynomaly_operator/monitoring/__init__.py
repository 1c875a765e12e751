"""Operations content that is data, not Kubernetes plumbing: the Prometheus alert and
recording rules (``rules``) and the Grafana dashboard model (``dashboard``).

Both are pure functions of a label selector, so the operator renders them per detector and
``scripts/monitoring-manifests.py`` writes the cluster-wide copies in ``manifests/monitoring/``
from the same code. Metric names are plain strings here (the operator never imports the
detector service); ``tests/ops`` checks every one against a live ``/metrics`` scrape.
"""
