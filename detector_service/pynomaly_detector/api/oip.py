"""Open Inference Protocol v2 infer over REST: JSON bodies and the binary tensor data extension.

A request is either a JSON object, or (binary extension) a JSON header of
``Inference-Header-Content-Length`` bytes followed by the raw bytes of the inputs that carry
``parameters.binary_data_size``. The tensors themselves are decoded by ``scoring.tensors``
(no HTTP there); this module only splits the body, frames the response and sets the header.
Outputs asked for as binary (``binary_data_output`` or an output's ``binary_data``) follow the
response's JSON header in the order of the outputs, and the response then carries
``Inference-Header-Content-Length`` too, as Triton's and KServe's clients expect.

``p_values`` and ``explanations`` are extra outputs (``tensors.EXTRA_OUTPUTS``): sent only
when a request names them, so clients that name no outputs get exactly the two they always
got. ``output_arrays`` computes them for REST and gRPC alike.
"""

from __future__ import annotations

import functools
import importlib.metadata
from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from pynomaly_detector.api import deps, errors
from pynomaly_detector.api.bodies import Bound, JSONBytes, read_bounded
from pynomaly_detector.api.errors import BadRequestError
from pynomaly_detector.dataplane import DataPlane, Detection, LoadedModel
from pynomaly_detector.detectors.errors import DetectorError
from pynomaly_detector.scoring import tensors

HEADER_LENGTH = "inference-header-content-length"
EXTENSIONS = ["binary_tensor_data"]
"""Protocol extensions this server supports (server metadata, REST and gRPC)."""
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def server_metadata() -> dict[str, Any]:
    """Server name, version and extensions (REST ``GET /v2``, gRPC ``ServerMetadata``)."""
    return {"name": "pynomaly-detector", "version": _version(), "extensions": EXTENSIONS}


@functools.cache
def _version() -> str:
    try:
        return importlib.metadata.version("pynomaly-operator")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


_NOTHING = memoryview(b"")


def split(raw: bytes, header_length: str | None) -> tuple[dict[str, Any], memoryview]:
    """The body's JSON header (an object) and the binary data after it."""
    if not raw:
        raise BadRequestError("the request body is empty; send a JSON object")
    if header_length is None:  # all JSON: no view to slice (the common case)
        try:
            whole = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise BadRequestError(f"the request body is not valid JSON: {error}") from None
        if not isinstance(whole, dict):
            raise BadRequestError("the inference request must be a JSON object")
        return whole, _NOTHING
    if not header_length.isdigit() or not 0 < int(header_length) <= len(raw):
        raise BadRequestError(
            f"Inference-Header-Content-Length must be a byte count between 1 and the body "
            f"length {len(raw)}, got {header_length!r}"
        )
    length = int(header_length)
    view = memoryview(raw)
    try:
        header = orjson.loads(view[:length])
    except orjson.JSONDecodeError as error:
        raise BadRequestError(f"the JSON header is not valid JSON: {error}") from None
    if not isinstance(header, dict):
        raise BadRequestError("the inference request must be a JSON object")
    return header, view[length:]


class NoCalibrationError(DetectorError):
    """``p_values`` asked of a model version without a calibration sample (422)."""


def check_outputs(plane: DataPlane, model: LoadedModel, names: set[str]) -> None:
    """Refuse extra outputs the model cannot produce, before any row is scored."""
    if "p_values" in names and model.detector.calibration_scores is None:
        raise NoCalibrationError(
            "output 'p_values' is unavailable: this model version was fitted before "
            "calibration samples existed; refit it"
        )
    if "explanations" in names:
        plane.check_explainable(model)


async def output_arrays(plane: DataPlane, detection: Detection, names: set[str]) -> dict[str, Any]:
    """Every requested output's array (numpy arrays; a list of JSON texts for BYTES)."""
    arrays = tensors.output_arrays(
        detection.scores, detection.model.meta.threshold, detection.flags
    )
    if "p_values" in names:
        arrays["p_values"] = detection.p_values
    if "explanations" in names:
        explanations = await plane.explain(detection)
        arrays["explanations"] = [orjson.dumps(item).decode() for item in explanations]
    return arrays


_HEADER_LENGTH = HEADER_LENGTH.encode()


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), as ``request.headers.get`` gives it,
    without building Starlette's ``Headers`` for the one lookup."""
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _has_literal_booleans(raw: bytes, end: int) -> bool:
    return raw.find(b"true", 0, end) >= 0 or raw.find(b"false", 0, end) >= 0


_PREFIXES: dict[tuple[str, int, float], bytes] = {}
"""(name, version, threshold) -> the serialised start of its responses (bounded: cleared
when full)."""
_OUTPUT_NAMES = {output: orjson.dumps(output) for output in tensors.ALL_OUTPUTS}
_DATATYPES = {output: datatype.encode() for output, datatype in tensors.ALL_OUTPUTS.items()}


def _json_body(
    name: str,
    model: LoadedModel,
    rows: int,
    wanted: list[tensors.Requested],
    arrays: dict[str, Any],
    header: dict[str, Any],
) -> bytes:
    """The response of JSON outputs, byte for byte what ``orjson.dumps`` gives for the
    response object (``_infer``'s general path), built from pieces serialised once per model
    version: the object cost twice as much (dicts, lists, a key walk) as its two arrays."""
    meta = model.meta
    key = (name, meta.version, meta.threshold)
    prefix = _PREFIXES.get(key)
    if prefix is None:
        start = {
            "model_name": name,
            "model_version": str(meta.version),
            "parameters": {"threshold": meta.threshold},
        }
        prefix = orjson.dumps(start)[:-1] + b',"outputs":['
        if len(_PREFIXES) >= 1024:
            _PREFIXES.clear()
        _PREFIXES[key] = prefix
    shape = b'"shape":[%d],"datatype":"' % rows
    parts = [prefix]
    for index, output in enumerate(wanted):
        parts += (
            b',{"name":' if index else b'{"name":',
            _OUTPUT_NAMES[output.name],
            b",",
            shape,
            _DATATYPES[output.name],
            b'","data":',
            orjson.dumps(arrays[output.name], option=_NUMPY),
            b"}",
        )
    if "id" in header:
        parts += (b'],"id":', orjson.dumps(header["id"]), b"}")
    else:
        parts.append(b"]}")
    return b"".join(parts)


async def infer(request: Request) -> Response:
    """Score the request's tensor(s); answer scores and flags as JSON or binary outputs.

    Errors keep the service's shape, with the message in ``error`` too (``"<code>: <message>"``):
    the protocol's clients show ``error`` and nothing else.
    """
    try:
        return await _infer(request)
    except Exception as error:
        known = errors.response_for(error)
        if known is None:
            raise
        body = orjson.loads(bytes(known.body))
        body["error"] = f"{body['error']}: {body['detail']}"
        return Response(
            orjson.dumps(body), status_code=known.status_code, media_type="application/json"
        )


async def _infer(request: Request) -> Response:
    plane = deps.plane_of(request)  # hot path: no dependency solving
    name: str = request.path_params["name"]
    model = await plane.model(name)  # its width bounds a JSON body before it is parsed
    header_length = _header(request.scope["headers"], _HEADER_LENGTH)
    if header_length is None:
        # All JSON: counted while it arrives (bodies.read_bounded), 413 past the bound. A binary
        # body is not counted (its bytes are not JSON); it decodes without per-value objects,
        # so the body-size limit bounds its memory.
        bound = Bound.for_model(plane.settings.max_instances_per_request, model.meta.n_features)
        raw = await read_bounded(request, bound)
    else:
        raw = await request.body()
    header, binary = split(raw, header_length)
    wanted = tensors.requested_outputs(header)
    names = {output.name for output in wanted}
    extras = not names.issubset(tensors.OUTPUTS)
    if extras:
        check_outputs(plane, model, names)
    values = None if binary else tensors.one_row(header, model.meta.n_features)
    if values is None:
        values = tensors.json_inputs(
            header,
            binary,
            n_features=model.meta.n_features,
            max_rows=plane.settings.max_instances_per_request,
            # JSON booleans are the literals true/false: without those bytes in the JSON there
            # are none, and the per-value type check is skipped.
            booleans_possible=_has_literal_booleans(raw, len(raw) - len(binary)),
        )
    detection = await plane.detect_matrix(model, values)
    if extras:
        arrays = await output_arrays(plane, detection, names)
    else:
        arrays = tensors.output_arrays(detection.scores, model.meta.threshold, detection.flags)
    rows = len(values)
    if not any(output.binary for output in wanted):
        return JSONBytes(_json_body(name, model, rows, wanted, arrays, header))
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for output in wanted:
        tensor: dict[str, Any] = {
            "name": output.name,
            "shape": [rows],
            "datatype": tensors.ALL_OUTPUTS[output.name],
        }
        if output.binary:
            chunk = tensors.raw(arrays[output.name])
            tensor["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            tensor["data"] = arrays[output.name]
        outputs.append(tensor)
    response: dict[str, Any] = {
        "model_name": name,
        "model_version": str(model.meta.version),
        "parameters": {"threshold": model.meta.threshold},
        "outputs": outputs,
    }
    if "id" in header:
        response["id"] = header["id"]
    body = orjson.dumps(response, option=_NUMPY)
    if not chunks:
        return JSONBytes(body)
    return Response(
        b"".join([body, *chunks]),
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(body))},
    )
