"""Pure builders: parsed ``AnomalyDetector`` + ``Names`` -> manifest dicts, one module per Kind.

No client, no kopf, no globals, no mutation of the input (import-linter enforces the first
two). Namespaces, owner references, the spec-hash annotation and the field manager are
added where objects are applied (``pynomaly_operator.reconciling.applying``), not here.
"""
