"""Fixtures of the image tests (marker ``images``, ``make test-images``).

They need the images ``make images`` built (listed in .images/images.env) and podman from
scripts/images-deps.sh. Missing images fail the tests with the command to run: a silent
skip would hide that the images were never built.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from tests.images import pods


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Image tests run only when asked for (``-m images``, as ``make test-images`` does):
    they need ``make images`` first and take minutes, so ``make check`` leaves them out
    (deselected, not skipped)."""
    if "images" in (config.option.markexpr or ""):
        return
    here = Path(__file__).parent
    keep = [item for item in items if here not in item.path.parents]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """Image references from .images/images.env (DETECTOR_IMAGE, REDIS_IMAGE, ...)."""
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: run scripts/images-deps.sh (make images does)")
    if not pods.IMAGES_ENV.exists():
        pytest.fail(f"{pods.IMAGES_ENV} is missing: run `make images` first")
    built = pods.built_images()
    for key in (
        "DETECTOR_IMAGE",
        "OPERATOR_IMAGE",
        "REDIS_IMAGE",
        "POSTGRES_IMAGE",
        "PGBOUNCER_IMAGE",
    ):
        if pods.podman("image", "exists", built[key], check=False).returncode != 0:
            pytest.fail(f"{built[key]} is not in podman's storage: run `make images`")
    return built


@pytest.fixture
def pod_workdir(tmp_path: Path) -> Path:
    """A directory for one podman pod's volumes, env files and logs (readable by uid 10001)."""
    tmp_path.chmod(0o755)
    return tmp_path


@pytest.fixture
def pod_name() -> str:
    return f"pynomaly-images-{uuid.uuid4().hex[:8]}"
