"""CRD models: the AnomalyDetector spec and status (pydantic), source of the CRD schema."""
