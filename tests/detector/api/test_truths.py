"""Small leaks and truths of the HTTP layer: no lock file per unknown name, 404 for the
anomaly log of an unknown model, JSON booleans refused at any depth of a v2 tensor, and the
OpenAPI document's statuses for a declared model that is not fitted yet."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.detector.conftest import service, training_rows

pytestmark = pytest.mark.http


async def test_deleting_unknown_names_leaves_no_lock_files(tmp_path: Path) -> None:
    async with service(tmp_path) as client:
        for index in range(50):
            response = await client.delete(f"/v1/models/never-{index}")
            assert response.status_code == 404
        locks = tmp_path / "models" / ".locks"
        assert not locks.exists() or list(locks.iterdir()) == []


async def test_anomaly_log_of_an_unknown_model_is_404(tmp_path: Path) -> None:
    async with service(tmp_path, anomaly_log_enabled=True) as client:
        response = await client.get("/v1/models/ghost/anomalies")
        assert response.status_code == 404
        assert response.json()["error"] == "model_not_found"
        await client.put(
            "/v1/models/real", json={"algorithm": "ECOD", "instances": training_rows()}
        )
        assert (await client.get("/v1/models/real/anomalies")).status_code == 200


@pytest.mark.parametrize(
    "data",
    [
        [[[0.5, True, 1.0]]],
        [[0.5, 1.0, [False]]],
        [[[[1.0]], [[2.0]], [[True]]]],
    ],
)
async def test_v2_booleans_are_refused_at_any_depth(tmp_path: Path, data: list[object]) -> None:
    async with service(tmp_path) as client:
        await client.put("/v1/models/m", json={"algorithm": "ECOD", "instances": training_rows()})
        body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 3], "data": data}]}
        response = await client.post("/v2/models/m/infer", json=body)
        assert response.status_code in (400, 422), response.text
        assert response.status_code != 200


NOT_FITTED_CALLS = [
    ("post", "/v1/models/payments/detect", {"instances": [[0.0, 0.0]]}),
    (
        "post",
        "/v2/models/payments/infer",
        {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [0.0, 0.0]}]},
    ),
    ("get", "/v1/models/payments", None),
    ("get", "/v2/models/payments", None),
    ("get", "/v2/models/payments/ready", None),
    ("post", "/v1/models/payments/feedback", {"rows": [{"row": [0.0, 0.0], "label": "normal"}]}),
]


async def test_a_declared_model_not_fitted_yet_answers_what_the_document_says(
    tmp_path: Path,
) -> None:
    """The service answers 404 ``model_not_fitted``; the document said 409 for it. Clients
    generated from the document must find the real status, described as this case."""
    async with service(tmp_path, model_name="payments") as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
        for method, url, body in NOT_FITTED_CALLS:
            response = await client.request(method, url, json=body)
            assert response.status_code == 404, (url, response.text)
            # v1: {"error": code, "detail": ...}; OIP v2: {"error": "code: detail"}
            assert response.json()["error"].startswith("model_not_fitted"), (url, response.text)
            template = url.replace("/payments", "/{name}")
            documented = paths[template][method]["responses"]
            assert "404" in documented, template
            assert "model_not_fitted" in documented["404"]["description"], template
        # 409 is documented only where the service answers it: a promotion with nothing to
        # promote.
        with_409 = sorted(
            f"{method.upper()} {path}"
            for path, operations in paths.items()
            for method, operation in operations.items()
            if "409" in operation["responses"]
        )
        assert with_409 == ["POST /v1/models/{name}/promote"]
        assert (
            "nothing_to_promote"
            in paths["/v1/models/{name}/promote"]["post"]["responses"]["409"]["description"]
        )
