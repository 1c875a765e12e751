"""Generate ``inference_pb2.py`` and ``.pyi`` from ``inference.proto`` (``make grpc-stubs``).

protoc's Python output registers its messages in protobuf's default descriptor pool, where
Triton's and KServe's client libraries register the same protocol under other file names: two
of them in one process fail with "duplicate symbol". The generated module is therefore
rewritten to use a private pool, so the service's messages never clash with a client's.
Usage: ``python scripts/grpc-stubs.py OUT_DIR [PROTO_DIR]`` (PROTO_DIR defaults to OUT_DIR).
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

DEFAULT_POOL = "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile("
PRIVATE_POOL = "DESCRIPTOR = _descriptor_pool.DescriptorPool().AddSerializedFile("


def generate(out: Path, source: Path) -> None:
    """Write ``inference_pb2.py`` and ``inference_pb2.pyi`` for ``source/inference.proto``."""
    out.mkdir(parents=True, exist_ok=True)
    status = protoc.main(
        ["protoc", f"-I{source}", f"--python_out={out}", f"--pyi_out={out}", "inference.proto"]
    )
    if status != 0:
        raise SystemExit(f"protoc failed with status {status}")
    module = out / "inference_pb2.py"
    text = module.read_text()
    if DEFAULT_POOL not in text:
        raise SystemExit("protoc's output changed: the descriptor pool line was not found")
    module.write_text(text.replace(DEFAULT_POOL, PRIVATE_POOL))


if __name__ == "__main__":
    target = Path(sys.argv[1])
    generate(target, Path(sys.argv[2]) if len(sys.argv) > 2 else target)
