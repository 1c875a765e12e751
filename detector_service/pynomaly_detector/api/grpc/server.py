"""The gRPC server of one worker: started and stopped by the app's lifespan.

Every uvicorn worker runs its own ``grpc.aio`` server on its own event loop, all bound to
``PYNOMALY_GRPC_PORT`` with ``SO_REUSEPORT`` (the kernel spreads connections over workers, as
it does for HTTP), so an RPC is served by the same process, data plane, batcher and caches as
a REST request. Handlers are registered generically from the message classes
(``inference_pb2``); no generated servicer code is needed. ``stop`` refuses new RPCs and lets
those in flight finish within the grace period.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc

from pynomaly_detector.api.grpc import inference_pb2 as pb
from pynomaly_detector.api.grpc.service import InferenceService
from pynomaly_detector.api.ratelimiting import RateLimiter
from pynomaly_detector.dataplane import DataPlane
from pynomaly_detector.settings import Settings
from pynomaly_detector.tokens import TokenFile

log = logging.getLogger(__name__)

SERVICE = "inference.GRPCInferenceService"

# rpc name -> (method of InferenceService, request type, scoring (auth, rate limit), observed)
_RPCS: dict[str, tuple[str, Any, bool, bool]] = {
    "ServerLive": ("server_live", pb.ServerLiveRequest, False, False),
    "ServerReady": ("server_ready", pb.ServerReadyRequest, False, False),
    "ServerMetadata": ("server_metadata", pb.ServerMetadataRequest, False, True),
    "ModelReady": ("model_ready", pb.ModelReadyRequest, True, True),
    "ModelMetadata": ("model_metadata", pb.ModelMetadataRequest, True, True),
    "ModelInfer": ("model_infer", pb.ModelInferRequest, True, True),
}
"""Probes (ServerLive, ServerReady) are neither guarded nor counted, like /livez and /readyz."""


def handler(service: InferenceService) -> Any:
    """The generic handler routing ``inference.GRPCInferenceService`` calls to ``service``."""
    methods = {}
    for name, (attribute, request_type, scoring, observed) in _RPCS.items():
        rpc = getattr(service, attribute)
        methods[name] = grpc.unary_unary_rpc_method_handler(
            service.guarded(name, rpc, scoring=scoring, observed=observed),
            request_deserializer=request_type.FromString,
            response_serializer=_serialize,
        )
    return grpc.method_handlers_generic_handler(SERVICE, methods)


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


async def start(
    settings: Settings,
    *,
    plane: DataPlane,
    tokens: TokenFile | None,
    limiter: RateLimiter | None,
) -> Any:
    """A started ``grpc.aio.Server`` on ``settings.host:settings.grpc_port``."""
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            ("grpc.max_send_message_length", settings.max_body_bytes),
        ]
    )
    service = InferenceService(plane=plane, settings=settings, tokens=tokens, limiter=limiter)
    server.add_generic_rpc_handlers((handler(service),))
    address = f"{settings.host}:{settings.grpc_port}"
    server.add_insecure_port(address)
    await server.start()
    log.info("gRPC (inference.GRPCInferenceService) listening on %s", address)
    return server
