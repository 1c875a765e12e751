"""The Open Inference Protocol v2 over gRPC: ``inference.GRPCInferenceService``.

``server`` starts a ``grpc.aio`` server on ``PYNOMALY_GRPC_PORT`` inside each worker's event
loop (so it shares that worker's data plane: batcher, caches, models) and stops it with the
worker; ``service`` implements the RPCs over the same data plane and tensor codecs
(``scoring.tensors``) as REST. ``inference.proto`` is the protocol's API; ``inference_pb2``
is generated from it by ``make grpc-stubs`` and committed (see the proto's header for why).
"""
