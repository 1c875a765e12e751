"""Why a spec that passed the CRD schema still cannot be applied (pure).

Each problem becomes ``Degraded=True`` with its reason, one Warning Event, and blocks every
apply until it is fixed (the running workload stays as it is): an algorithm parameter the
algorithm does not accept, a training ConfigMap or key that does not exist (as observed),
and a connection budget that cannot hold (``budget``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from pynomaly_operator import algorithms
from pynomaly_operator.specs import detector as specs
from pynomaly_operator.status import budget, reasons


class Problem(TypedDict):
    """A reason the spec cannot be applied as is (sets Degraded, blocks applies)."""

    reason: str
    message: str


def problems(
    detector: specs.AnomalyDetector, *, training: Mapping[str, Any] | None
) -> list[Problem]:
    """Every problem of ``detector``; ``training``: the observed training ConfigMap (None
    when it does not exist or none is configured)."""
    found: list[Problem] = []
    model = detector.spec.model
    found.extend(_parameters("spec.model.parameters", model.algorithm, model.parameters))
    challenger = model.challenger
    if challenger is not None:
        found.extend(
            _parameters(
                "spec.model.challenger.parameters", challenger.algorithm, challenger.parameters
            )
        )
    ref = model.training.config_map_ref
    if ref is not None:
        where = f"spec.model.training.configMapRef: ConfigMap {ref.name}"
        if training is None:
            found.append(
                {"reason": reasons.REASON_TRAINING_MISSING, "message": f"{where} not found"}
            )
        elif ref.key not in (training.get("data") or {}) and ref.key not in (
            training.get("binaryData") or {}
        ):
            found.append(
                {
                    "reason": reasons.REASON_TRAINING_MISSING,
                    "message": f"{where} has no key {ref.key}",
                }
            )
    found.extend(
        {"reason": reasons.REASON_BUDGET, "message": text}
        for text in budget.budget_problems(detector)
    )
    return found


def _parameters(field: str, algorithm: str, parameters: Mapping[str, Any]) -> list[Problem]:
    """The problem of parameters ``algorithm`` does not accept, if any (at ``field``)."""
    unknown = algorithms.unknown_parameters(algorithm, parameters)
    if not unknown:
        return []
    known = ", ".join(sorted(algorithms.PARAMETERS[algorithm]))
    return [
        {
            "reason": reasons.REASON_INVALID_PARAMETERS,
            "message": f"{field}: {algorithm} does not accept {', '.join(unknown)} "
            f"(accepted: {known})",
        }
    ]
