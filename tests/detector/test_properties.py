"""Property: a row's score is a function of the row and the model version only.

For every algorithm: the same alone, in any batch (any order, any company), from L1, from
L2 (real Redis) and freshly computed; and equal to the fitted estimator's own scoring
wherever that is batch-independent (all but ECOD/COPOD, whose service scorer is compared to
PyOD's one-row scoring in ``detectors/test_ecdf.py``).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pynomaly_detector.caching import redis_clients
from pynomaly_detector.caching.memory import TTLCache
from pynomaly_detector.caching.redis_cache import RedisScoreCache
from pynomaly_detector.detectors import catalog, fitted
from pynomaly_detector.scoring.scorer import RowScorer
from pynomaly_detector.settings import Settings
from tests.support.redis_servers import RedisServer

TRAIN = np.random.default_rng(7).normal(size=(120, 3))
SMALL = {"IForest": {"n_estimators": 15}, "IsolationForest": {"n_estimators": 15}}
DETECTORS = {
    name: fitted.fit(name, TRAIN, parameters=SMALL.get(name, {}), contamination=0.1)
    for name in catalog.NAMES
}

rows_strategy = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 12), st.just(3)),
    elements=st.floats(-6, 6, allow_nan=False, allow_infinity=False, width=32),
)


def _own_scores(detector: fitted.FittedDetector, rows: np.ndarray) -> np.ndarray:
    if catalog.lookup(detector.algorithm).family == "sklearn":
        return -np.asarray(detector.estimator.score_samples(rows))
    return np.asarray(detector.estimator.decision_function(rows))


@settings(max_examples=12, deadline=None, derandomize=True)
@given(rows=rows_strategy, seed=st.integers(0, 2**16))
def test_score_is_batch_independent_and_matches_the_estimator(rows: np.ndarray, seed: int) -> None:
    order = np.random.default_rng(seed).permutation(len(rows))
    company = np.vstack([rows[order], TRAIN[:5] * 3])
    for name, detector in DETECTORS.items():
        batch = detector.score(rows)
        alone = np.array([detector.score(row[None, :])[0] for row in rows])
        shuffled = detector.score(company)[: len(rows)]
        np.testing.assert_allclose(batch, alone, rtol=1e-9, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(shuffled, batch[order], rtol=1e-9, atol=1e-12, err_msg=name)
        if detector.ecdf is None:
            np.testing.assert_allclose(
                _own_scores(detector, rows), batch, rtol=1e-9, atol=1e-12, err_msg=name
            )


@pytest.mark.redis
@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=rows_strategy)
def test_score_is_the_same_from_every_cache_level(
    redis_server: RedisServer, rows: np.ndarray
) -> None:
    asyncio.run(_through_caches(redis_server, rows))


async def _through_caches(server: RedisServer, rows: np.ndarray) -> None:
    client = redis_clients.create(Settings(redis_mode="standalone", redis_url=server.url))
    assert client is not None
    l2 = RedisScoreCache(client, prefix="prop:", ttl_seconds=60)
    pool = ThreadPoolExecutor(2)

    def scorer(*, with_l2: bool) -> RowScorer:
        return RowScorer(
            executor=pool,
            l1=TTLCache(max_size=1000, ttl=60, level="l1"),
            l2=l2 if with_l2 else None,
            max_size=8,
            max_wait=0.001,
            max_concurrency=2,
        )

    try:
        for name, detector in DETECTORS.items():
            direct = detector.score(rows)
            first = scorer(with_l2=True)
            computed = await first.score(name, 1, detector, rows)
            from_l1 = await first.score(name, 1, detector, rows)
            await asyncio.sleep(0)  # let the background L2 writes run
            await first.close()
            from_l2 = await scorer(with_l2=True).score(name, 1, detector, rows)
            merged = await asyncio.gather(
                *[scorer(with_l2=False).score(name, 1, detector, row[None, :]) for row in rows]
            )
            np.testing.assert_allclose(computed, direct, rtol=1e-9, atol=1e-12, err_msg=name)
            np.testing.assert_array_equal(from_l1, computed, err_msg=name)
            np.testing.assert_array_equal(from_l2, computed, err_msg=name)
            np.testing.assert_allclose(
                np.concatenate(merged), direct, rtol=1e-9, atol=1e-12, err_msg=name
            )
    finally:
        await client.aclose()
        pool.shutdown()
