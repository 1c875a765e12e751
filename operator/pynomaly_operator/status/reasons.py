"""The status vocabulary: every condition type and every reason the operator writes.

One list, documented in operator/README.md ("Conditions and reasons"), so a new reason is
added here and there, not invented where a condition is built.
"""

from __future__ import annotations

# Condition types, in the order they appear in ``status.conditions``.
READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
DETECTOR_READY = "DetectorReady"
REDIS_READY = "RedisReady"
DATABASE_READY = "DatabaseReady"
POOLER_READY = "PoolerReady"
SCALING_ACTIVE = "ScalingActive"
STORE_TYPES = (REDIS_READY, DATABASE_READY, POOLER_READY)
CONDITION_ORDER = (READY, PROGRESSING, DEGRADED, DETECTOR_READY, *STORE_TYPES, SCALING_ACTIVE)

# Reasons.
REASON_READY = "Ready"
REASON_AS_EXPECTED = "AsExpected"
REASON_NOT_FOUND = "NotFound"
REASON_ROLLING_OUT = "RollingOut"
REASON_PROGRESSING = "Progressing"  # a store workload with fewer ready replicas than wanted
REASON_BOOTSTRAPPING = "Bootstrapping"  # Redis cluster: the bootstrap Job has not succeeded
REASON_EXTERNAL = "External"  # an external store: not checked
REASON_PENDING = "Pending"
REASON_DEADLINE = "ProgressDeadlineExceeded"
REASON_INVALID_SPEC = "InvalidSpec"
REASON_INVALID_PARAMETERS = "InvalidParameters"
REASON_TRAINING_MISSING = "TrainingDataMissing"
REASON_BUDGET = "ConnectionBudgetExceeded"
REASON_APPLY_FAILED = "ApplyFailed"
REASON_PAUSED = "Paused"
REASON_DISABLED = "Disabled"
REASON_COMPONENTS_NOT_READY = "ComponentsNotReady"
REASON_STABLE = "Stable"
# Event: a generated key's owner disagrees with its lifetime policy (a reason, not a secret).
REASON_SECRET_OWNERSHIP = "SecretOwnership"  # noqa: S105
