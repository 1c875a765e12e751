"""Shadow scoring: the challenger scores the champion's traffic, off the hot path.

``Shadow.offer`` is what a request pays: one dict lookup and, while a challenger is loaded
for the model and its buffer has room, a copy of the request's rows and champion scores
into the preallocated buffer (``buffer_rows`` per model). Rows offered while the buffer is
full are skipped: that is the sampling. Responses never wait for the challenger and never
change.

``run`` (a task of each worker) wakes every ``tick`` seconds, looks up challengers of the
models this worker scored (``registry.challenger``: re-read when the store changed), scores
the buffered rows with the challenger in its own single thread and adds the pairs to
``agreement.Pairs``. CPU budget: after a challenger call that took ``t`` seconds the loop
rests ``t * (1 - cpu_share) / cpu_share``, so the challenger uses at most ``cpu_share`` of
one core per worker (the rows it cannot score in time are skipped at the buffer).

Every ``publish_seconds`` each worker shares its pairs through Redis
(``caching.snapshots``, key ``challenger:{name}:{champion version}:{challenger hash}``);
``figures`` pools every live worker's pairs. With ``min_rows`` and ``min_agreement`` set
(``spec.model.promotion``), the first worker to see the pooled figures pass both promotes the
challenger (``registry.challenger.Challengers.promote``: one transaction; a second worker
finds no challenger any more and does nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pynomaly_detector import metrics
from pynomaly_detector.caching.snapshots import SharedSnapshots
from pynomaly_detector.registry.challenger import Challengers
from pynomaly_detector.registry.models import LoadedModel
from pynomaly_detector.registry.store import NothingToPromoteError, StoreUnavailableError
from pynomaly_detector.registry.versions import ModelVersion
from pynomaly_detector.scoring import agreement

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Promoted = Callable[[ModelVersion], Awaitable[None]]
"""Called after this worker promoted a challenger (announce it, drop cached scores)."""


@dataclass(slots=True)
class _State:
    """One model's shadow: its challenger, the buffer of offered rows, the pairs."""

    challenger: LoadedModel | None
    champion: ModelVersion
    buffer_rows: int
    values: FloatArray = field(init=False)
    scores: FloatArray = field(init=False)
    fill: int = 0
    pairs: agreement.Pairs = field(default_factory=agreement.Pairs)
    published: float = 0.0

    def __post_init__(self) -> None:
        rows = self.buffer_rows if self.challenger else 0
        self.values = np.empty((rows, self.champion.n_features))
        self.scores = np.empty(rows)

    @property
    def champion_version(self) -> int:
        """The champion version whose traffic is compared."""
        return self.champion.version

    @property
    def key(self) -> str:
        """Names this comparison among workers: champion version, challenger hash."""
        challenger = self.challenger
        digest = challenger.meta.content_hash[:16] if challenger is not None else "none"
        return f"{self.champion.version}:{digest}"


class Shadow:
    """Shadow scoring of challengers in one worker (see the module doc)."""

    def __init__(
        self,
        challengers: Challengers,
        *,
        shared: SharedSnapshots | None,
        buffer_rows: int = 1024,
        cpu_share: float = 0.1,
        tick: float = 0.2,
        publish_seconds: float = 5.0,
        min_agreement: float = 0.0,
        min_rows: int = 0,
        on_promoted: Promoted | None = None,
    ) -> None:
        self.challengers = challengers
        self.shared = shared
        self.buffer_rows = buffer_rows
        self.cpu_share = cpu_share
        self.tick = tick
        self.publish_seconds = publish_seconds
        self.min_agreement = min_agreement
        self.min_rows = min_rows
        self.on_promoted = on_promoted
        self._states: dict[str, _State] = {}
        self._seen: dict[str, ModelVersion] = {}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="pynomaly-shadow")
        self.busy_seconds = 0.0
        """Time spent in challenger calls (what the CPU budget is held against)."""

    # the hot path ------------------------------------------------------------------------

    def offer(self, meta: ModelVersion, values: FloatArray, scores: FloatArray) -> None:
        """Offer a request's rows and champion scores (copied while there is room)."""
        state = self._states.get(meta.name)
        if state is None or state.champion_version != meta.version:
            self._seen[meta.name] = meta
            return
        if state.challenger is None:
            return
        n = len(scores)
        if state.fill + n > state.buffer_rows:
            return  # full: these rows are not compared (sampling)
        end = state.fill + n
        state.values[state.fill : end] = values
        state.scores[state.fill : end] = scores
        state.fill = end

    # the background task -----------------------------------------------------------------

    async def run(self) -> None:
        """Refresh challengers, score buffered rows, share pairs, promote; until cancelled."""
        last_publish = time.monotonic()
        while True:
            await asyncio.sleep(self.tick)
            try:
                await self._refresh()
                rest = await self._score()
                if time.monotonic() - last_publish >= self.publish_seconds:
                    last_publish = time.monotonic()
                    await self.publish()
            except Exception:  # a bug here must not stop shadowing; logged with its trace
                log.exception("shadow scoring failed")
                rest = 1.0
            if rest:
                await asyncio.sleep(rest)

    async def _refresh(self) -> None:
        for name, meta in list(self._seen.items()):
            try:
                challenger = await self.challengers.current(name)
            except StoreUnavailableError:
                continue
            except Exception as error:  # a rejected artifact: not shadowed, said once
                log.warning("challenger of %s not loaded: %s", name, error)
                challenger = None
            state = self._states.get(name)
            if (
                state is None
                or state.champion_version != meta.version
                or (state.challenger is None) != (challenger is None)
                or (
                    challenger is not None
                    and state.challenger is not None
                    and state.challenger.meta.content_hash != challenger.meta.content_hash
                )
            ):
                self._states[name] = _State(challenger, meta, self.buffer_rows)
            else:
                state.challenger = challenger
        self._seen.clear()
        # A challenger added or removed later: look again whenever the registry moved on.
        for name, state in self._states.items():
            if self.challengers.stale(name):
                self._seen.setdefault(name, state.champion)

    async def _score(self) -> float:
        spent = 0.0
        loop = asyncio.get_running_loop()
        for state in self._states.values():
            challenger = state.challenger
            if challenger is None or not state.fill:
                continue
            n, state.fill = state.fill, 0
            values = state.values[:n].copy()
            champion = state.scores[:n].copy()
            started = time.perf_counter()
            scores = await loop.run_in_executor(self._pool, challenger.detector.score, values)
            spent += time.perf_counter() - started
            state.pairs.add(champion, np.asarray(scores, dtype=np.float64))
        self.busy_seconds += spent
        return spent * (1.0 - self.cpu_share) / self.cpu_share if spent else 0.0

    # figures -----------------------------------------------------------------------------

    async def figures(self, name: str, champion: ModelVersion) -> agreement.Figures | None:
        """Agreement of the challenger of ``name`` with ``champion`` over every worker
        sharing Redis (None: this worker has no challenger loaded for it)."""
        state = self._states.get(name)
        if state is None or state.challenger is None or state.champion_version != champion.version:
            self._seen[name] = champion
            challenger = await self.challengers.current(name)
            if challenger is None:
                return None
            state = _State(challenger, champion, self.buffer_rows)
            self._states[name] = state
        return await self._pooled(name, state)

    async def _pooled(self, name: str, state: _State) -> agreement.Figures:
        challenger = state.challenger
        assert challenger is not None  # callers check
        snapshots: list[FloatArray] = []
        scope = "worker"
        if self.shared is not None:
            gathered = await self.shared.gather(f"challenger:{name}:{state.key}")
            if gathered is not None:
                scope = "cluster"
                gathered.pop(self.shared.member, None)
                snapshots.extend(gathered.values())
        if state.pairs.updated:
            snapshots.append(state.pairs.snapshot())
        return agreement.figures(
            snapshots,
            champion_threshold=state.champion.threshold,
            challenger_threshold=challenger.meta.threshold,
            scope=scope,
        )

    async def publish(self) -> None:
        """Share changed pairs; promote when ``min_rows`` and ``min_agreement`` are met."""
        for name, state in list(self._states.items()):
            if state.challenger is None or not state.pairs.updated:
                continue
            if self.shared is not None and state.published != state.pairs.updated:
                key = f"challenger:{name}:{state.key}"
                if await self.shared.publish(key, state.pairs.snapshot()):
                    state.published = state.pairs.updated
            figures = await self._pooled(name, state)
            _export(name, figures)
            if self.min_rows > 0:
                await self._maybe_promote(name, figures)

    async def _maybe_promote(self, name: str, figures: agreement.Figures) -> None:
        if figures.rows < self.min_rows or figures.spearman is None:
            return
        if figures.spearman < self.min_agreement:
            return
        try:
            meta = await self.challengers.promote(name)
        except NothingToPromoteError:
            return  # another worker or replica promoted it first
        log.info(
            "promoted the challenger of %s (Spearman %.3f over %d rows): v%d",
            name,
            figures.spearman,
            figures.rows,
            meta.version,
        )
        self._states.pop(name, None)
        if self.on_promoted is not None:
            await self.on_promoted(meta)

    async def close(self) -> None:
        """Stop the challenger's thread."""
        with contextlib.suppress(Exception):
            await self.publish()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _export(model: str, figures: agreement.Figures) -> None:
    if figures.spearman is not None:
        metrics.CHALLENGER_AGREEMENT.labels(model).set(figures.spearman)
    if figures.flagged_overlap is not None:
        metrics.CHALLENGER_FLAGGED_OVERLAP.labels(model).set(figures.flagged_overlap)
    if figures.champion_alert_rate is not None:
        metrics.CHALLENGER_ALERT_RATE.labels(model, "champion").set(figures.champion_alert_rate)
    if figures.challenger_alert_rate is not None:
        metrics.CHALLENGER_ALERT_RATE.labels(model, "challenger").set(figures.challenger_alert_rate)
    metrics.CHALLENGER_ROWS.labels(model).set(figures.rows)
