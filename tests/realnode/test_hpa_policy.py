"""The real-node HPA tests' policy check (``hpa.violations``) on made-up timelines.

No cluster: these run in ``make check``. They show that the check the real-node HPA tests
rely on passes what the HPA controller may do under the operator's rendered behavior and
fails each kind of step the behavior forbids, so a passing real-node run means something.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any

import yaml

from .hpa import Policy, Sample, violations

GOLDEN = pathlib.Path(__file__).parents[1] / "operator" / "golden" / "defaults"


def defaults(min_replicas: int = 1, max_replicas: int = 4) -> Policy:
    """The behavior the operator renders for a CR that sets none (its golden file)."""
    hpa: dict[str, Any] = yaml.safe_load((GOLDEN / "HorizontalPodAutoscaler.yaml").read_text())
    spec = {**hpa["spec"], "minReplicas": min_replicas, "maxReplicas": max_replicas}
    return Policy.from_hpa(spec)


def timeline(steps: Sequence[tuple[float, int]], end: float, every: float = 1.0) -> list[Sample]:
    """A sample every ``every`` s until ``end``; ``desired`` changes at each ``(t, n)``."""
    samples: list[Sample] = []
    t = 0.0
    while t <= end:
        n = [count for at, count in steps if at <= t][-1]
        samples.append(Sample(t=t, current=n, desired=n, ready=n, cpu=10, memory=20))
        t += every
    return samples


# The defaults, 1-4 replicas: load at 0 s (rest last seen at 0 s), 1→2 after the 60 s window
# and a few syncs, 2→3 and 3→4 one 15 s period apart; 4→3 300 s after the last step up,
# then one pod per 60 s period (+ a 5 s sync).
COMPLIANT = [(0, 1), (72, 2), (87, 3), (102, 4), (405, 3), (470, 2), (535, 1)]


def test_the_guides_defaults_are_read_from_the_rendered_hpa() -> None:
    policy = defaults()
    assert (policy.up.window, policy.up.percent, policy.up.period) == (60, 50, 15)
    assert (policy.down.window, policy.down.percent, policy.down.period) == (300, 10, 60)
    assert (policy.cpu_target, policy.memory_target) == (70, 80)
    # The controller's arithmetic: 10 % of 4 or fewer replicas still allows one pod down.
    assert [policy.down_limit(n) for n in (4, 3, 2)] == [3, 2, 1]
    assert [policy.up_limit(n) for n in (1, 2, 3)] == [2, 3, 5]  # 5: above the bound


def test_a_timeline_within_the_default_policy_passes() -> None:
    found, slack = violations(timeline(COMPLIANT, 600), defaults(), rest_seen=0.0)
    assert found == []
    assert slack == 2.0  # 1 s between samples + 1 s for the controller's own API writes


def test_a_step_up_larger_than_50_percent_fails() -> None:
    steps = [(0, 1), (72, 3), (102, 4), (405, 3), (470, 2), (535, 1)]
    found, _ = violations(timeline(steps, 600), defaults(), rest_seen=0.0)
    assert found == ["72s: 1->3 exceeds +50 % per 15 s of 1 (at most 2)"]


def test_two_steps_up_within_one_15s_period_fail() -> None:
    steps = [(0, 1), (72, 2), (80, 3), (102, 4), (405, 3), (470, 2), (535, 1)]
    found, _ = violations(timeline(steps, 600), defaults(), rest_seen=0.0)
    assert found == ["80s: 2->3 exceeds +50 % per 15 s of 1 (at most 2)"]


def test_a_step_up_before_the_60s_window_fails() -> None:
    steps = [(0, 1), (30, 2), (87, 3), (102, 4), (405, 3), (470, 2), (535, 1)]
    found, _ = violations(timeline(steps, 600), defaults(), rest_seen=0.0)
    assert found == [
        "30s: 1->2 before the 60 s up window had passed since the HPA was last seen at rest (0s)"
    ]


def test_a_step_down_inside_the_300s_window_fails() -> None:
    steps = [(0, 1), (72, 2), (87, 3), (102, 4), (300, 3), (470, 2), (535, 1)]
    found, _ = violations(timeline(steps, 600), defaults(), rest_seen=0.0)
    assert found == ["300s: 4->3 within the 300 s down window after the step up to 4 at 102s"]


def test_two_steps_down_within_one_60s_period_fail() -> None:
    # One sync period short of 60 s: the controller would have waited for the next sync.
    steps = [(0, 1), (72, 2), (87, 3), (102, 4), (405, 3), (460, 2), (535, 1)]
    found, _ = violations(timeline(steps, 600), defaults(), rest_seen=0.0)
    assert found == ["460s: 3->2 exceeds -10 % per 60 s of 4 (at least 3)"]


def test_sampling_gaps_make_the_check_lenient_not_stricter() -> None:
    # Sampled every 4 s: a compliant run seen late still passes.
    found, slack = violations(timeline(COMPLIANT, 600, every=4.0), defaults(), rest_seen=0.0)
    assert (found, slack) == ([], 5.0)


def test_counts_outside_the_bounds_fail() -> None:
    steps = [(0, 1), (72, 2), (87, 3), (102, 4), (117, 5)]
    found, _ = violations(timeline(steps, 200), defaults(), rest_seen=0.0)
    assert found == ["117s: 5 replicas outside 1-4"]
