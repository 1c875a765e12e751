"""GitOps tests: a live Argo CD syncs this repository's manifests from a local Git repository.

They run only when asked for (``make test-argocd``, i.e. ``pytest -m argocd``, or by naming
this directory or a file in it): Argo CD is a separate build (``make argocd``) and the
scenarios take minutes, so the default run (``make check``) deselects them instead of
starting Argo CD. The deselection is reported in pytest's summary line.

Fixtures here hold the module's story together: ``git_repo`` (this repository's
``manifests/`` and ``crds/`` committed to a local repository), ``operator`` (the operator
process, started by the first scenario once the install synced), ``applications`` (the two
committed Applications, pointed at ``git_repo`` by a test-time rewrite of ``repoURL`` and
``targetRevision`` only).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.argocd import ArgoCD
from tests.support.controlplane import REPO, ControlPlane
from tests.support.git_repos import GitRepo
from tests.support.operator_process import OperatorProcess

HERE = Path(__file__).resolve().parent
APPLICATIONS = REPO / "manifests" / "argocd"
DETECTOR_NAMESPACE = "anomaly-demo"  # application-detector.yaml's destination
INSTALL_NAMESPACE = "pynomaly-system"


def _asked_for(config: pytest.Config) -> bool:
    if "argocd" in (config.option.markexpr or ""):
        return True
    return any(Path(arg.split("::")[0]).resolve().is_relative_to(HERE) for arg in config.args)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect ``argocd`` tests unless the run asked for them (marker or path)."""
    if _asked_for(config):
        return
    dropped = [item for item in items if item.get_closest_marker("argocd")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not item.get_closest_marker("argocd")]


def pointed_at(path: Path, repo: GitRepo) -> dict[str, Any]:
    """A committed Application with only its source moved to ``repo``'s ``main`` branch."""
    app: dict[str, Any] = yaml.safe_load(path.read_text())
    app["spec"]["source"]["repoURL"] = repo.url
    app["spec"]["source"]["targetRevision"] = "main"
    return app


@pytest.fixture(scope="module")
def git_repo(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    """This repository's ``manifests/`` and ``crds/`` (same layout) in a local Git repository."""
    return GitRepo.create(
        tmp_path_factory.mktemp("gitops") / "pynomaly-operator",
        copy={"manifests": REPO / "manifests", "crds": REPO / "crds"},
        message="pynomaly-operator manifests",
    )


@pytest.fixture(scope="module")
def operator(
    kube_cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator for the detector's namespace; not started (the first scenario starts it)."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(kube_cluster.kubeconfig, DETECTOR_NAMESPACE, log)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def applications(
    argocd: ArgoCD, kube_cluster: ControlPlane, git_repo: GitRepo, operator: OperatorProcess
) -> Iterator[dict[str, dict[str, Any]]]:
    """Both committed Applications applied at once, as a user would; cleaned up afterwards."""
    apps = {
        path.stem: pointed_at(path, git_repo)
        for path in sorted(APPLICATIONS.glob("application-*.yaml"))
    }
    for app in apps.values():
        argocd.apply(app)
    try:
        yield apps
    finally:
        # Argo CD lets go first (or self-heal would put things back), then, while the
        # operator still runs (its finalizer), the detector's namespace goes.
        argocd.uninstall()
        kube_cluster.kubectl(
            "delete", "namespace", DETECTOR_NAMESPACE, "--timeout=60s", check=False, timeout=90
        )
        operator.stop()
        kube_cluster.kubectl("delete", "namespace", INSTALL_NAMESPACE, "--wait=false", check=False)
