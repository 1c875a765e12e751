"""The whole ``AnomalyDetector`` status, computed in one place from what was observed.

- ``reasons``     the vocabulary: condition types and every reason the operator writes;
- ``conditions``  one pure function per component condition (DetectorReady, RedisReady,
                  DatabaseReady, PoolerReady, ScalingActive);
- ``problems``    why a spec that passed the CRD cannot be applied (Degraded, blocks applies),
                  with the connection ``budget`` check;
- ``reporting``   ``compute()``: conditions + problems -> Ready, Progressing, Degraded, phase,
                  replicas, endpoint, model; ``invalid()`` for a spec that does not parse.

The reconcile computes the status once per run, before it applies anything, and writes it
only when it differs from the stored one. The names below are the package's public surface.
"""

from __future__ import annotations

from pynomaly_operator.status.conditions import Condition
from pynomaly_operator.status.problems import Problem
from pynomaly_operator.status.reasons import (
    CONDITION_ORDER,
    DEGRADED,
    DETECTOR_READY,
    PROGRESSING,
    READY,
    REASON_APPLY_FAILED,
    REASON_AS_EXPECTED,
    REASON_BUDGET,
    REASON_COMPONENTS_NOT_READY,
    REASON_DEADLINE,
    REASON_DISABLED,
    REASON_INVALID_PARAMETERS,
    REASON_INVALID_SPEC,
    REASON_NOT_FOUND,
    REASON_PAUSED,
    REASON_PENDING,
    REASON_READY,
    REASON_ROLLING_OUT,
    REASON_SECRET_OWNERSHIP,
    REASON_STABLE,
    REASON_TRAINING_MISSING,
    SCALING_ACTIVE,
    STORE_TYPES,
)
from pynomaly_operator.status.reporting import compute, invalid, replicas

__all__ = [
    "CONDITION_ORDER",
    "DEGRADED",
    "DETECTOR_READY",
    "PROGRESSING",
    "READY",
    "REASON_APPLY_FAILED",
    "REASON_AS_EXPECTED",
    "REASON_BUDGET",
    "REASON_COMPONENTS_NOT_READY",
    "REASON_DEADLINE",
    "REASON_DISABLED",
    "REASON_INVALID_PARAMETERS",
    "REASON_INVALID_SPEC",
    "REASON_NOT_FOUND",
    "REASON_PAUSED",
    "REASON_PENDING",
    "REASON_READY",
    "REASON_ROLLING_OUT",
    "REASON_SECRET_OWNERSHIP",
    "REASON_STABLE",
    "REASON_TRAINING_MISSING",
    "SCALING_ACTIVE",
    "STORE_TYPES",
    "Condition",
    "Problem",
    "compute",
    "invalid",
    "replicas",
]
