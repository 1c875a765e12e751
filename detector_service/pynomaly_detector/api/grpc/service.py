"""The RPCs of ``inference.GRPCInferenceService`` over the data plane, and their guard.

Each RPC is a coroutine ``(request, context) -> response``. ``guarded`` wraps one with what the
REST middleware does for HTTP: the bearer-token check (``authorization`` metadata, when
``scoring_auth=token``), the rate limit, the request deadline, Prometheus metrics (method
``GRPC``, endpoint ``grpc:<Rpc>``, status the HTTP code an equivalent REST error would have,
so existing 4xx/5xx queries cover gRPC) and the access log; and it maps the data plane's
errors to gRPC status codes with the same messages REST sends.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np

from pynomaly_detector import logs, metrics
from pynomaly_detector.api import oip
from pynomaly_detector.api.grpc import inference_pb2 as pb
from pynomaly_detector.api.ratelimiting import RateLimiter
from pynomaly_detector.dataplane import DataPlane, ModelNotFoundError
from pynomaly_detector.detectors.errors import DetectorError
from pynomaly_detector.registry.signing import ArtifactRejectedError
from pynomaly_detector.registry.store import StoreUnavailableError
from pynomaly_detector.scoring import tensors
from pynomaly_detector.scoring.rows import TooManyRowsError
from pynomaly_detector.settings import Settings
from pynomaly_detector.tokens import TokenFile

log = logging.getLogger(__name__)

Rpc = Callable[[Any, Any], Awaitable[Any]]

# (error type, gRPC code, HTTP status of the same error on REST), first match wins.
_ERRORS: list[tuple[type[Exception], Any, int]] = [
    (TooManyRowsError, grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
    (tensors.TensorError, grpc.StatusCode.INVALID_ARGUMENT, 400),
    (DetectorError, grpc.StatusCode.INVALID_ARGUMENT, 422),
    (ModelNotFoundError, grpc.StatusCode.NOT_FOUND, 404),
    (StoreUnavailableError, grpc.StatusCode.UNAVAILABLE, 503),
    (ArtifactRejectedError, grpc.StatusCode.UNAVAILABLE, 503),
]


class AbortError(Exception):
    """Answer the RPC with ``code`` and ``message`` (HTTP equivalent ``status``)."""

    def __init__(self, code: Any, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


class InferenceService:
    """``inference.GRPCInferenceService`` over one worker's data plane."""

    def __init__(
        self,
        *,
        plane: DataPlane,
        settings: Settings,
        tokens: TokenFile | None,
        limiter: RateLimiter | None,
    ) -> None:
        self.plane = plane
        self.settings = settings
        self.tokens = tokens
        self.limiter = limiter
        self.access_log = logs.AccessLog() if settings.access_log else None
        self._series: dict[tuple[str, int], tuple[Any, Any]] = {}

    # the RPCs ----------------------------------------------------------------------

    async def server_live(self, request: Any, context: Any) -> Any:
        """The worker's event loop answers."""
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, request: Any, context: Any) -> Any:
        """Same verdict as /readyz."""
        return pb.ServerReadyResponse(ready=self.plane.ready())

    async def server_metadata(self, request: Any, context: Any) -> Any:
        """Name, version and extensions, as REST ``GET /v2``."""
        server = oip.server_metadata()
        return pb.ServerMetadataResponse(
            name=server["name"], version=server["version"], extensions=server["extensions"]
        )

    async def model_ready(self, request: Any, context: Any) -> Any:
        """Ready when the model loads; false for a name the store does not hold."""
        try:
            model = await self.plane.model(request.name)
        except ModelNotFoundError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=_version_matches(request.version, model.meta.version))

    async def model_metadata(self, request: Any, context: Any) -> Any:
        """The model's tensors, as REST ``GET /v2/models/{name}``."""
        meta = await self.plane.describe(request.name)
        _check_version(request.version, meta.name, meta.version)
        response = pb.ModelMetadataResponse(
            name=meta.name, versions=[str(meta.version)], platform=f"pynomaly/{meta.algorithm}"
        )
        response.inputs.add(name=tensors.INPUT, datatype="FP64", shape=[-1, meta.n_features])
        for name, datatype in tensors.OUTPUTS.items():  # the extra outputs are asked by name
            response.outputs.add(name=name, datatype=datatype, shape=[-1])
        return response

    async def model_infer(self, request: Any, context: Any) -> Any:
        """Scores and flags of the request's rows (and the extra outputs it names); outputs
        always as raw contents."""
        wanted = [output.name for output in request.outputs] or list(tensors.OUTPUTS)
        for name in wanted:
            if name not in tensors.ALL_OUTPUTS:
                known = ", ".join(tensors.ALL_OUTPUTS)
                raise tensors.TensorError(f"unknown output {name!r}; the outputs are {known}")
        model = await self.plane.model(request.model_name)
        _check_version(request.model_version, model.meta.name, model.meta.version)
        names = set(wanted)
        extras = not names.issubset(tensors.OUTPUTS)
        if extras:
            oip.check_outputs(self.plane, model, names)
        values = decode_inputs(
            request,
            n_features=model.meta.n_features,
            max_rows=self.settings.max_instances_per_request,
        )
        detection = await self.plane.detect_matrix(model, values)
        if extras:
            arrays = await oip.output_arrays(self.plane, detection, names)
        else:
            arrays = tensors.output_arrays(detection.scores, model.meta.threshold, detection.flags)
        response = pb.ModelInferResponse(
            model_name=model.meta.name, model_version=str(model.meta.version), id=request.id
        )
        response.parameters["threshold"].string_param = repr(model.meta.threshold)
        rows = len(values)
        for name in wanted:
            response.outputs.add(name=name, datatype=tensors.ALL_OUTPUTS[name], shape=[rows])
            response.raw_output_contents.append(tensors.raw(arrays[name]))
        return response

    # the guard ---------------------------------------------------------------------

    def guarded(self, name: str, rpc: Rpc, *, scoring: bool, observed: bool) -> Rpc:
        """``rpc`` with auth (when ``scoring``), rate limit, deadline, errors, metrics, log."""
        endpoint = f"grpc:{name}"
        path = f"/inference.GRPCInferenceService/{name}"
        guard_token = scoring and self.tokens is not None
        limited = scoring and self.limiter is not None

        async def handle(request: Any, context: Any) -> Any:
            started = time.perf_counter()
            status = 200
            if observed:
                metrics.ACTIVE.inc()
            try:
                if guard_token:
                    self._authenticate(context)
                if limited:
                    await self._limit(context)
                async with asyncio.timeout(self.settings.request_timeout_seconds):
                    return await rpc(request, context)
            except AbortError as abort:
                status = abort.status
                failure = abort
            except TimeoutError:
                status = 504
                seconds = self.settings.request_timeout_seconds
                failure = AbortError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    504,
                    f"request did not complete within {seconds:g} seconds",
                )
            except Exception as error:
                failure = _abort_for(error)
                status = failure.status
            finally:
                if observed:
                    metrics.ACTIVE.dec()
                    self._observe(endpoint, path, status, started, context)
            await context.abort(failure.code, failure.message)  # raises: the RPC ends here
            return None

        return handle

    def _authenticate(self, context: Any) -> None:
        assert self.tokens is not None
        authorization = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                authorization = value
                break
        if not self.tokens.allows(authorization):
            raise AbortError(
                grpc.StatusCode.UNAUTHENTICATED,
                401,
                "scoring requires 'authorization: Bearer <token>' metadata with a valid token",
            )

    async def _limit(self, context: Any) -> None:
        assert self.limiter is not None
        if not await self.limiter.allow(_client(context.peer())):
            metrics.RATE_LIMITED.inc()
            raise AbortError(
                grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "request rate limit exceeded; retry later"
            )

    def _observe(self, endpoint: str, path: str, status: int, started: float, context: Any) -> None:
        elapsed = time.perf_counter() - started
        key = (endpoint, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (
                metrics.tally(metrics.REQUESTS.labels("GRPC", endpoint, str(status))),
                metrics.tally_histogram(metrics.REQUEST_DURATION.labels("GRPC", endpoint)),
            )
        series[0].inc()
        series[1].observe(elapsed)
        if self.access_log is not None and self.access_log.enabled():
            request_id = ""
            for key_, value in context.invocation_metadata() or ():
                if key_ == "x-request-id":
                    request_id = str(value)[:128]
                    break
            self.access_log.write(
                {
                    "request_id": request_id or f"{random.getrandbits(64):016x}",
                    "method": "GRPC",
                    "path": path,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "client": _client(context.peer()),
                }
            )


def decode_inputs(request: Any, *, n_features: int, max_rows: int) -> tensors.FloatArray:
    """The request's input tensors (raw contents or typed contents) as the model's matrix."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise tensors.TensorError(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; "
            "give one per input, in order"
        )
    arrays: list[Any] = []
    for index, tensor in enumerate(request.inputs):
        label = f"input {tensor.name!r}" if tensor.name else f"input {index}"
        dtype = tensors.dtype_of(tensor.datatype, label=label)
        shape = tensors.shape_of(list(tensor.shape), label=label, max_rows=max_rows)
        if raw:
            arrays.append(tensors.from_bytes(raw[index], dtype, shape, label=label))
            continue
        field = tensors.CONTENTS.get(tensor.datatype)
        if field is None:
            raise tensors.TensorError(f"{label}: {tensor.datatype} travels as raw_input_contents")
        values = getattr(tensor.contents, field)
        if not values and np.prod(shape):
            raise tensors.TensorError(
                f"{label}: no data; put {tensor.datatype} values in contents.{field} "
                "or the bytes in raw_input_contents"
            )
        arrays.append(tensors.from_values(values, dtype, shape, label=label))
    return tensors.features(arrays, n_features=n_features, max_rows=max_rows)


def _version_matches(requested: str, version: int) -> bool:
    return not requested or requested == str(version)


def _check_version(requested: str, name: str, version: int) -> None:
    if not _version_matches(requested, version):
        raise ModelNotFoundError(
            f"model {name!r} version {requested} is not served; the newest version is {version}"
        )


def _abort_for(error: Exception) -> AbortError:
    for kind, code, status in _ERRORS:
        if isinstance(error, kind):
            if status >= 500:
                log.warning("%s: %s", code.name.lower(), error)
            message = error.args[0] if len(error.args) == 1 else str(error)
            return AbortError(code, status, str(message))
    log.error("unhandled error in a gRPC call", exc_info=error)
    return AbortError(grpc.StatusCode.INTERNAL, 500, "an unexpected error occurred; it was logged")


def _client(peer: str | None) -> str:
    """The client address of a gRPC peer string (``ipv4:1.2.3.4:5678``, ``ipv6:[::1]:5678``)."""
    if not peer:
        return "unknown"
    _, _, address = peer.partition(":")
    host, _, _ = address.rpartition(":")
    return host.strip("[]") or address
