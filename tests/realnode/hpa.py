"""The detector's HPA on the real node: its replica timeline, its rendered policy, the check.

``Timeline`` samples the HPA's status and the Deployment while a test loads the Service;
``Policy`` is the behavior the operator rendered into the HPA (read from the cluster, never
from a test's own constants); ``violations`` says where the HPA's decisions did more than
that policy allows, in the HPA controller's own arithmetic; ``report`` is the Markdown a run
leaves in ``bench/results/``. ``violations`` and ``Policy`` are pure, so
``test_hpa_policy.py`` shows without a cluster that the check fails on a timeline that breaks
the policy.

What the check can know from outside the controller: its decisions (``status.desiredReplicas``)
as sampled here, each seen at most one sampling gap after the controller made it. Every bound
is applied so that this delay can only make it more lenient, never fail a compliant run.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from tests.support.controlplane import KubectlError, wait_until

from .stack import Load, LoadResult, Stack, fit

SYNC_PERIOD = 5.0
"""The local control plane's ``--horizontal-pod-autoscaler-sync-period`` (e2e/controlplane/
controllers.go): the HPA decides every 5 s, so a decision recorded at a sync may be up to one
period older than the status that shows it."""

API_SECONDS = 1.0
"""Between the controller recording a decision and the status showing it: its own scale and
status writes to the API server."""


@dataclasses.dataclass(frozen=True)
class Rules:
    """One direction of ``spec.behavior``: the operator renders one Percent policy each."""

    window: int
    """``stabilizationWindowSeconds``."""
    percent: int
    period: int


@dataclasses.dataclass(frozen=True)
class Policy:
    """What the rendered HPA allows: bounds, targets and the behavior in both directions."""

    min_replicas: int
    max_replicas: int
    cpu_target: int
    memory_target: int | None
    up: Rules
    down: Rules

    @classmethod
    def from_hpa(cls, spec: dict[str, Any]) -> Policy:
        """From an HPA's ``spec`` (autoscaling/v2) as the operator renders it."""

        def rules(side: str) -> Rules:
            section = spec["behavior"][side]
            assert section.get("selectPolicy", "Max") == "Max", section
            (policy,) = section["policies"]
            assert policy["type"] == "Percent", policy
            return Rules(
                window=int(section["stabilizationWindowSeconds"]),
                percent=int(policy["value"]),
                period=int(policy["periodSeconds"]),
            )

        targets = {
            m["resource"]["name"]: int(m["resource"]["target"]["averageUtilization"])
            for m in spec["metrics"]
            if m["type"] == "Resource"
        }
        return cls(
            min_replicas=int(spec["minReplicas"]),
            max_replicas=int(spec["maxReplicas"]),
            cpu_target=targets["cpu"],
            memory_target=targets.get("memory"),
            up=rules("scaleUp"),
            down=rules("scaleDown"),
        )

    def up_limit(self, start: int) -> int:
        """Most replicas one period after ``start``: the controller's ``ceil(start * (1 + p))``
        (the bounds apply on top)."""
        return math.ceil(start * (1 + self.up.percent / 100))

    def down_limit(self, start: int) -> int:
        """Fewest replicas one period after ``start``: the controller's ``int(start * (1 - p))``
        (so below 10 replicas, 10 % per 60 s is one pod per 60 s; the bounds apply on top)."""
        return int(start * (1 - self.down.percent / 100))

    def describe(self) -> str:
        return (
            f"up: +{self.up.percent} % per {self.up.period} s after a {self.up.window} s "
            f"window; down: -{self.down.percent} % per {self.down.period} s after a "
            f"{self.down.window} s window; {self.min_replicas}-{self.max_replicas} replicas"
        )


@dataclasses.dataclass(frozen=True)
class Sample:
    """One look at the HPA (``t`` seconds into the timeline) and its Deployment."""

    t: float
    current: int
    desired: int
    ready: int
    cpu: int | None
    """Average CPU utilization of the requests, percent (None before the first metrics)."""
    memory: int | None

    def at_rest(self, policy: Policy) -> bool:
        """At ``minReplicas`` with every metric below its target: the controller's last
        recommendation was ``minReplicas``."""
        return (
            self.desired == self.current == policy.min_replicas
            and self.cpu is not None
            and self.cpu <= policy.cpu_target
            and (
                policy.memory_target is None
                or (self.memory is not None and self.memory <= policy.memory_target)
            )
        )


def violations(
    samples: list[Sample], policy: Policy, *, rest_seen: float | None
) -> tuple[list[str], float]:
    """Where the HPA's decisions (``desired``) broke ``policy``; and the timing slack used.

    ``rest_seen``: when a sample last showed the HPA at rest before the load started; its
    recommendation then was ``minReplicas``, made at a sync up to two sync periods earlier
    (the controller's work queue can run a sync late on a loaded machine).
    The slack: a decision is seen at most one sampling gap (the longest between two samples)
    plus ``API_SECONDS`` after the controller recorded it. Checked, with the controller's
    arithmetic:
    - every step up stays within ``up_limit`` of the count one up-period earlier, and none
      after the rest comes before ``rest_seen`` + the up window;
    - every step down stays within ``down_limit`` of the count one down-period earlier, and
      none goes below an earlier step up's count before that step + the down window;
    - every count within ``minReplicas..maxReplicas``.
    Each bound uses the slack so that it can only be more lenient than the controller.
    """
    decided = [s for s in samples if s.desired > 0]  # 0: the HPA has not decided yet
    if len(decided) < 2:
        return [], 0.0
    slack = API_SECONDS + max(b.t - a.t for a, b in itertools.pairwise(samples))

    def count_at(t: float) -> int:
        before = [s.desired for s in decided if s.t <= t]
        return before[-1] if before else decided[0].desired

    found: list[str] = []
    ups: list[tuple[float, int]] = []
    for prev, cur in itertools.pairwise(decided):
        t, n, was = cur.t, cur.desired, prev.desired
        if n != was and not policy.min_replicas <= n <= policy.max_replicas:
            found.append(
                f"{t:.0f}s: {n} replicas outside {policy.min_replicas}-{policy.max_replicas}"
            )
        if n > was:
            start = count_at(t - policy.up.period + slack)
            if n > policy.up_limit(start):
                found.append(
                    f"{t:.0f}s: {was}->{n} exceeds +{policy.up.percent} % per "
                    f"{policy.up.period} s of {start} (at most {policy.up_limit(start)})"
                )
            if (
                rest_seen is not None
                and rest_seen < t < rest_seen + policy.up.window - 2 * SYNC_PERIOD
            ):
                found.append(
                    f"{t:.0f}s: {was}->{n} before the {policy.up.window} s up window had passed "
                    f"since the HPA was last seen at rest ({rest_seen:.0f}s)"
                )
            ups.append((t, n))
        elif n < was:
            start = count_at(t - policy.down.period + slack)
            if n < policy.down_limit(start):
                found.append(
                    f"{t:.0f}s: {was}->{n} exceeds -{policy.down.percent} % per "
                    f"{policy.down.period} s of {start} (at least {policy.down_limit(start)})"
                )
            for up_t, up_n in ups:
                if up_n > n and t < up_t - slack + policy.down.window:
                    found.append(
                        f"{t:.0f}s: {was}->{n} within the {policy.down.window} s down window "
                        f"after the step up to {up_n} at {up_t:.0f}s"
                    )
    return found, slack


class Timeline:
    """Samples of the detector's HPA and Deployment, and notes (load started/stopped)."""

    def __init__(self, stack: Stack, name: str) -> None:
        self.stack = stack
        self.name = name
        self.t0 = time.monotonic()
        self.samples: list[Sample] = []
        self.notes: list[tuple[float, str]] = []

    def now(self) -> float:
        return time.monotonic() - self.t0

    def sample(self) -> Sample:
        """A new sample; the last one again when the API server did not answer (a gap the
        slack of ``violations`` then covers)."""
        try:
            hpa = self.stack.get("hpa", self.name).get("status", {})
            t = self.now()  # the HPA's status as of now; the Deployment only adds readiness
            deployment = self.stack.get("deployment", self.name).get("status", {})
        except (KubectlError, subprocess.TimeoutExpired):
            if not self.samples:
                raise
            return self.samples[-1]
        utilization: dict[str, int] = {}
        for metric in hpa.get("currentMetrics") or []:
            resource = metric.get("resource") or {}
            current = resource.get("current") or {}
            if "averageUtilization" in current:
                utilization[resource.get("name", "")] = int(current["averageUtilization"])
        sample = Sample(
            t=t,
            current=int(hpa.get("currentReplicas", 0)),
            desired=int(hpa.get("desiredReplicas", 0)),
            ready=int(deployment.get("readyReplicas", 0)),
            cpu=utilization.get("cpu"),
            memory=utilization.get("memory"),
        )
        self.samples.append(sample)
        return sample

    def note(self, text: str) -> float:
        t = self.now()
        self.notes.append((t, text))
        return t

    def rows(self) -> list[str]:
        """Markdown table rows: each sample that differs from the one before, and the notes."""
        rows: list[tuple[float, str]] = []
        last: tuple[Any, ...] | None = None
        for s in self.samples:
            key = (s.current, s.desired, s.ready, s.cpu, s.memory)
            if key != last:
                rows.append(
                    (
                        s.t,
                        f"| {s.t:6.1f} | {s.current} | {s.desired} | {s.ready} | "
                        f"{_pct(s.cpu)} | {_pct(s.memory)} |",
                    )
                )
                last = key
        rows.extend((t, f"| {t:6.1f} | | | | {text} | |") for t, text in self.notes)
        return [row for _, row in sorted(rows, key=lambda r: r[0])]

    def diagnostics(self) -> str:
        """``kubectl top`` of the detector pods and the HPA's conditions, as text."""
        top = self.stack.cp.kubectl(
            "-n", self.stack.ns, "top", "pod", "-l",
            f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component=detector",
            check=False,
        )  # fmt: skip
        try:
            status = self.stack.get("hpa", self.name).get("status", {})
        except (KubectlError, subprocess.TimeoutExpired) as exc:
            status = {"conditions": [{"type": "unavailable", "message": str(exc)[:300]}]}
        conditions = status.get("conditions") or []
        lines = [
            f"{c.get('type')}={c.get('status')} {c.get('reason')}: {c.get('message')}"
            for c in conditions
        ]
        return (
            "kubectl top pod (detector):\n"
            + (top.stdout.strip() or top.stderr.strip())
            + "\nHPA conditions:\n"
            + "\n".join(lines)
        )


@dataclasses.dataclass
class Run:
    """One up-and-down run: what was seen, and the first thing that went wrong (if any)."""

    policy: Policy
    timeline: Timeline
    rest_seen: float | None = None
    load: LoadResult | None = None
    load_started: float = 0.0
    load_stopped: float = 0.0
    error: str | None = None

    def violations(self) -> tuple[list[str], float]:
        return violations(self.timeline.samples, self.policy, rest_seen=self.rest_seen)

    def steps(self) -> str:
        """The decisions as ``1→2 (70s), ...``."""
        out: list[str] = []
        prev = 0
        for s in self.timeline.samples:
            if s.desired > 0 and s.desired != prev:
                if prev:
                    out.append(f"{prev}→{s.desired} at {s.t:.0f}s")
                prev = s.desired
        return ", ".join(out) or "no change"


def up_and_down(
    stack: Stack,
    model: str,
    *,
    threads: int,
    rest_timeout: float,
    up_timeout: float,
    down_timeout: float,
) -> Run:
    """Fit ``model``; wait until the HPA is at rest; load the Service until the Deployment is
    at ``maxReplicas`` (or ``up_timeout``); stop the load; wait until it is back at
    ``minReplicas``.

    Never raises for what the HPA did: a run that timed out is a result too, so the caller
    reports the timeline first and then fails on ``Run.error``.
    """
    policy = Policy.from_hpa(stack.get("hpa", stack.name)["spec"])
    # The load scores this model; its fit's CPU is over before the rest. The first fit in a
    # fresh pod also starts the worker's fit fork server, which on a loaded machine can exceed
    # the service's 30 s request deadline (504): a client retries, so does this.
    wait_until(
        lambda: _fitted(stack, model),
        timeout=240,
        what=f"a fit of {model} through the Service",
        interval=5,
    )
    timeline = Timeline(stack, stack.name)
    run = Run(policy=policy, timeline=timeline)
    lo, hi = policy.min_replicas, policy.max_replicas
    try:
        wait_until(
            lambda: timeline.sample().at_rest(policy),
            timeout=rest_timeout,
            what=f"the HPA at rest ({lo} replica(s), CPU and memory below target)",
            interval=1,
        )
        run.rest_seen = timeline.samples[-1].t
        load = Load(stack, model, threads=threads, max_seconds=up_timeout + 30).start()
        run.load_started = timeline.note("load started")
        try:
            wait_until(
                lambda: timeline.sample().current >= hi,
                timeout=up_timeout,
                what=f"the HPA to reach {hi} replicas under load",
                interval=1,
            )
        except AssertionError as exc:  # short of maxReplicas: still watch the way back down
            run.error = str(exc)
        finally:
            run.load = load.stop()
            run.load_stopped = timeline.note("load stopped")
        wait_until(
            lambda: (s := timeline.sample()).current == s.desired == lo,
            timeout=down_timeout,
            what=f"the HPA back at {lo} replica(s)",
            interval=1,
        )
    except (AssertionError, KubectlError, subprocess.TimeoutExpired) as exc:
        run.error = "; ".join(e for e in (run.error, str(exc)) if e)
    return run


def _fitted(stack: Stack, model: str) -> bool:
    try:
        fit(stack, model, timeout=60)
    except (AssertionError, OSError) as exc:
        print(f"fit {model}: {exc}; retrying")
        return False
    return True


def _pct(value: int | None) -> str:
    return "?" if value is None else f"{value}%"


def report(run: Run, *, title: str, intro: str, hpa_spec: dict[str, Any]) -> str:
    """The Markdown of one run: setup, the rendered behavior, the timeline, the verdict."""
    behavior = yaml.safe_dump(hpa_spec.get("behavior", {}), sort_keys=False).strip()
    loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = "\n".join(run.timeline.rows())
    found, slack = run.violations()
    load = run.load.summary() if run.load else "no load ran"
    rest = "never seen" if run.rest_seen is None else f"{run.rest_seen:.0f}s"
    verdict = (
        "\n".join(f"- {v}" for v in found) if found else "none: every decision within the policy"
    )
    outcome = f"FAILED: {run.error}" if run.error else "back at minReplicas"
    if found:
        outcome += f"; {len(found)} policy violation(s)"
    return f"""# {title} ({when})

{intro.strip()}

Load: {load}. Machine load average at the end: {loadavg} (2 cores, shared).

Rendered behavior (`kubectl get hpa -o yaml`, `.spec.behavior`), i.e. {run.policy.describe()}:

```yaml
{behavior}
```

| t (s) | current | desired | ready | CPU (avg of requests) | memory |
|---:|---:|---:|---:|---|---|
{rows}

Decisions (`desired`): {run.steps()}. At rest (every metric below its target) last seen at
{rest}; load from {run.load_started:.0f}s to {run.load_stopped:.0f}s.

Checked against the rendered policy with the HPA controller's arithmetic (`tests/realnode/hpa.py`:
up at most `ceil(n * {1 + run.policy.up.percent / 100:g})` of the count {run.policy.up.period} s
earlier and not before the {run.policy.up.window} s window after rest; down at least
`int(n * {1 - run.policy.down.percent / 100:g})` of the count {run.policy.down.period} s earlier
and not below a step up's count within {run.policy.down.window} s of it; timing slack
{slack:.1f} s: the longest gap between two samples plus 1 s). Violations: {verdict}

At the end:

```
{run.timeline.diagnostics()}
```

Outcome: {outcome}
"""


__all__ = [
    "API_SECONDS",
    "SYNC_PERIOD",
    "Policy",
    "Rules",
    "Run",
    "Sample",
    "Timeline",
    "report",
    "up_and_down",
    "violations",
]
