"""Runs last (file order): ``e2e/cluster.sh stop`` leaves nothing of the real node on the host."""

from __future__ import annotations

import pytest

from .conftest import RealCluster
from .hoststate import snapshot

pytestmark = [pytest.mark.realnode, pytest.mark.slow]


def test_cluster_down_leaves_no_process_mount_rule_link_netns_or_cgroup(
    real_cluster: RealCluster,
) -> None:
    """After stop the host equals its snapshot from before start (processes, mounts, rules...)."""
    if not real_cluster.owned or real_cluster.before is None:
        pytest.skip("the running `make cluster REAL_NODE=1` is reused; stop it to run this check")
    # Real pods with network namespaces and mounts exist at this point (earlier tests).
    seconds = real_cluster.stop()
    after = snapshot(real_cluster.cp.state_dir)
    assert real_cluster.before.differences(after) == {}
    print(f"\ncluster.sh stop with a real node took {seconds:.1f}s")
