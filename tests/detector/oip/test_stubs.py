"""The committed ``inference_pb2`` is what ``make grpc-stubs`` makes of ``inference.proto``."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from pynomaly_detector.api.grpc import inference_pb2

ROOT = Path(__file__).resolve().parents[3]
GRPC_DIR = ROOT / "detector_service" / "pynomaly_detector" / "api" / "grpc"


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "grpc-stubs.py"), str(tmp_path), str(GRPC_DIR)],
        check=True,
    )
    spec = importlib.util.spec_from_file_location("regenerated_pb2", tmp_path / "inference_pb2.py")
    assert spec is not None
    assert spec.loader is not None
    regenerated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(regenerated)
    # The descriptor, not the text: another grpcio-tools release formats the file differently.
    assert regenerated.DESCRIPTOR.serialized_pb == inference_pb2.DESCRIPTOR.serialized_pb, (
        "inference.proto changed: run `make grpc-stubs` and commit the result"
    )


def test_messages_live_in_a_private_pool() -> None:
    # Triton's and KServe's clients register the same protocol in the default pool.
    from google.protobuf import descriptor_pool

    default = descriptor_pool.Default()
    assert inference_pb2.DESCRIPTOR.pool is not default
    import tritonclient.grpc  # noqa: F401  # would raise "duplicate symbol" otherwise
