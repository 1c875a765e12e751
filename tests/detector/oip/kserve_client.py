"""KServe's REST and gRPC clients, unchanged, against a running service; prints JSON results.

Run by ``test_kserve_clients.py`` under the interpreter of ``.venv-kserve`` (the ``kserve``
package pins psutil < 6 and pandas < 3, below this project's own floors, so it cannot share
``.venv``). Usage: ``python kserve_client.py HTTP_HOST:PORT GRPC_HOST:PORT ROWS_JSON``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig


def _request(rows: np.ndarray, *, binary: bool) -> InferRequest:
    tensor = InferInput(name="input-0", shape=list(rows.shape), datatype="FP64")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return InferRequest(model_name="m", infer_inputs=[tensor], request_id="k-1")


def _outputs(response: Any) -> dict[str, Any]:
    found = {output.name: output.as_numpy().tolist() for output in response.outputs}
    return {"id": response.id, **found}


async def main(http: str, grpc_address: str, rows: np.ndarray) -> dict[str, Any]:
    base = f"http://{http}"
    results: dict[str, Any] = {}
    rest = InferenceRESTClient(RESTConfig(protocol="v2", retries=1, timeout=30))
    try:
        results["rest"] = {
            "live": await rest.is_server_live(base),
            "ready": await rest.is_server_ready(base),
            "model_ready": await rest.is_model_ready(base, "m"),
            "binary": _outputs(await rest.infer(base, _request(rows, binary=True), "m")),
            "json": _outputs(await rest.infer(base, _request(rows, binary=False), "m")),
        }
    finally:
        await rest.close()
    client = InferenceGRPCClient(grpc_address, timeout=30)
    try:
        results["grpc"] = {
            "live": await client.is_server_live(),
            "ready": await client.is_server_ready(),
            "model_ready": await client.is_model_ready("m"),
            "infer": _outputs(await client.infer(_request(rows, binary=True))),
        }
    finally:
        await client.close()
    return results


if __name__ == "__main__":
    queries = np.array(json.loads(sys.argv[3]), dtype=np.float64)
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], queries))))
