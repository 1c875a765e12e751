"""CRD models: the AnomalyDetector spec and status (pydantic), the source of the CRD schema.

The bottom layer: ``builders``, ``status`` and ``reconciling`` read parsed specs; nothing
here imports them. ``base`` holds the shared model base and the one ``Quantity`` type.
"""
