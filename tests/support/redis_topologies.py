"""Real Redis sentinel and cluster topologies started from the operator's rendered files.

Every process here is started the way the pods start it: the operator's renderer writes
redis.conf / sentinel.conf (local port, directory and bind address substituted) and the
operator's own start script (``builders.redis.conf``) appends the password and identity and
execs ``redis-server``. The cluster is formed by the operator's bootstrap script. So these
fixtures test the shipped text, not a test-only copy. Usable outside pytest (the demo).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pynomaly_operator.builders.redis import conf as redis_conf
from pynomaly_operator.specs.redis import (
    RedisCluster,
    RedisSentinel,
    RedisSpec,
)

PASSWORD = "topology-test-password"
HOST = "127.0.0.1"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 whose +10000 (cluster bus) is free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind((HOST, port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair found")


def cli(port: int, *args: str, check: bool = True, timeout: float = 10) -> str:
    """``redis-cli`` against a local node (password via REDISCLI_AUTH, never argv)."""
    result = subprocess.run(
        ["redis-cli", "-h", HOST, "-p", str(port), *args],
        env={**os.environ, "REDISCLI_AUTH": PASSWORD},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )
    return result.stdout.strip()


def wait_until(predicate: object, *, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``predicate()`` until true or fail after ``timeout`` seconds."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class ScriptProcess:
    """One server started by an operator start script (which execs redis-server)."""

    def __init__(self, *, script: str, env: dict[str, str], workdir: Path, port: int) -> None:
        self.script = script
        self.env = env
        self.workdir = workdir
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: bool = True) -> None:
        """Run the start script; with ``wait``, until the server answers PING."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        script_path = self.workdir / "start.sh"
        script_path.write_text(self.script)
        log = (self.workdir / "server.log").open("ab")
        self.proc = subprocess.Popen(
            ["sh", str(script_path)],
            env={**os.environ, **self.env},
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if not wait:
            return
        wait_until(
            lambda: cli(self.port, "ping", check=False, timeout=2) == "PONG",
            timeout=15,
            what=f"redis on {self.port} ({self.workdir}/server.log)",
        )

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown (no final save, no goodbye to peers)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def data_node(
    spec: RedisSpec, workdir: Path, *, port: int, script: str, env: dict[str, str]
) -> ScriptProcess:
    """A Redis data node as its pod runs it: rendered redis.conf + the operator's start script."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / redis_conf.CONFIG_KEY
    conf.write_text(redis_conf.redis_conf(spec, port=port, data_dir=str(workdir), bind=HOST))
    return ScriptProcess(
        script=script,
        workdir=workdir,
        port=port,
        env={
            "CONF_SRC": str(conf),
            "CONF_DST": str(workdir / "run.conf"),
            "REDIS_PASSWORD": PASSWORD,
            "ANNOUNCE_HOST": HOST,
            **env,
        },
    )


def sentinel_test_spec(*, down_after_ms: int = 1000, failover_timeout_ms: int = 3000) -> RedisSpec:
    """Guide defaults, with a fast failure detector for tests and little memory."""
    base = RedisSpec(mode="sentinel")
    return base.model_copy(
        update={
            "sentinel": RedisSentinel(
                replicas=3,
                sentinels=3,
                quorum=2,
                down_after_milliseconds=down_after_ms,
                failover_timeout=failover_timeout_ms,
            ),
            "config": base.config.model_copy(update={"maxmemory": "64mb"}),
        }
    )


def cluster_test_spec(*, node_timeout_ms: int = 1000) -> RedisSpec:
    base = RedisSpec(mode="cluster")
    return base.model_copy(
        update={
            "cluster": RedisCluster(
                nodes=6, replicas_per_master=1, node_timeout_milliseconds=node_timeout_ms
            ),
            "config": base.config.model_copy(update={"maxmemory": "64mb"}),
        }
    )


class SentinelTopology:
    """Three data nodes (node 0 the initial master) and three sentinels, all local."""

    def __init__(self, base: Path, spec: RedisSpec) -> None:
        self.base = base
        self.spec = spec
        n, s = spec.sentinel.replicas, spec.sentinel.sentinels
        self.data_ports = [free_port() for _ in range(n)]
        self.sentinel_ports = [free_port() for _ in range(s)]
        self.sentinels_env = " ".join(f"{HOST}:{p}" for p in self.sentinel_ports)
        self.nodes: list[ScriptProcess] = []
        self.sentinels: list[ScriptProcess] = []

    @property
    def master_name(self) -> str:
        return self.spec.sentinel.master_name

    def _node(self, i: int) -> ScriptProcess:
        port = self.data_ports[i]
        return data_node(
            self.spec,
            self.base / f"redis-{i}",
            port=port,
            script=redis_conf.REDIS_START_SCRIPT,
            env={
                "REDIS_PORT": str(port),
                "INITIAL_MASTER_HOST": HOST,
                "INITIAL_MASTER_PORT": str(self.data_ports[0]),
                "SENTINELS": self.sentinels_env,
                "MASTER_NAME": self.master_name,
            },
        )

    def _sentinel(self, i: int) -> ScriptProcess:
        port = self.sentinel_ports[i]
        workdir = self.base / f"sentinel-{i}"
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / redis_conf.SENTINEL_CONFIG_KEY
        conf.write_text(
            redis_conf.sentinel_conf(
                self.spec,
                master_host=HOST,
                master_port=self.data_ports[0],
                port=port,
                data_dir=str(workdir),
                bind=HOST,
            )
        )
        return ScriptProcess(
            script=redis_conf.SENTINEL_START_SCRIPT,
            workdir=workdir,
            port=port,
            env={
                "CONF_SRC": str(conf),
                "CONF_DST": str(workdir / "run.conf"),
                "REDIS_PASSWORD": PASSWORD,
                "MASTER_NAME": self.master_name,
                "ANNOUNCE_HOST": HOST,
                "SENTINELS": self.sentinels_env,
            },
        )

    def start(self) -> None:
        self.nodes = [self._node(i) for i in range(len(self.data_ports))]
        for node in self.nodes:
            node.start()
        self.sentinels = [self._sentinel(i) for i in range(len(self.sentinel_ports))]
        for sentinel in self.sentinels:
            sentinel.start()
        replicas = len(self.data_ports) - 1
        wait_until(
            lambda: (
                f"connected_slaves:{replicas}" in cli(self.data_ports[0], "info", "replication")
            ),
            timeout=20,
            what="replicas to attach to the initial master",
        )
        others = len(self.sentinel_ports) - 1
        wait_until(
            lambda: all(
                self._sentinel_field(p, "num-other-sentinels") == str(others)
                for p in self.sentinel_ports
            ),
            timeout=20,
            what="sentinels to discover each other",
        )

    def master_flags(self) -> list[str]:
        """Each live sentinel's flags for the master (``master``, ``s_down``, ``o_down``...)."""
        return [
            self._sentinel_field(sentinel.port, "flags")
            for sentinel in self.sentinels
            if sentinel.alive
        ]

    def _sentinel_field(self, port: int, field: str) -> str:
        lines = cli(port, "sentinel", "master", self.master_name).splitlines()
        pairs = dict(zip(lines[::2], lines[1::2], strict=False))
        return pairs.get(field, "")

    def master_port(self) -> int:
        """The master's port according to a live sentinel."""
        for sentinel in self.sentinels:
            if sentinel.alive:
                out = cli(sentinel.port, "sentinel", "get-master-addr-by-name", self.master_name)
                return int(out.splitlines()[1])
        raise RuntimeError("no live sentinel")

    def node_by_port(self, port: int) -> ScriptProcess:
        return next(node for node in self.nodes if node.port == port)

    def stop(self) -> None:
        for proc in [*self.sentinels, *self.nodes]:
            proc.stop()


class ClusterTopology:
    """Six cluster-enabled nodes, formed by the operator's bootstrap script."""

    def __init__(self, base: Path, spec: RedisSpec) -> None:
        self.base = base
        self.spec = spec
        self.ports = [free_port() for _ in range(spec.cluster.nodes)]
        self.nodes: list[ScriptProcess] = []

    def _node(self, i: int) -> ScriptProcess:
        workdir = self.base / f"cluster-{i}"
        return data_node(
            self.spec,
            workdir,
            port=self.ports[i],
            script=redis_conf.CLUSTER_START_SCRIPT,
            env={"NODES_CONF": str(workdir / "nodes.conf")},
        )

    def start(self) -> None:
        self.nodes = [self._node(i) for i in range(len(self.ports))]
        for node in self.nodes:
            node.start()

    def bootstrap(self) -> subprocess.CompletedProcess[str]:
        """Run the operator's bootstrap script (the Job's command) against the nodes."""
        script = self.base / "cluster-bootstrap.sh"
        script.write_text(redis_conf.CLUSTER_BOOTSTRAP_SCRIPT)
        return subprocess.run(
            ["sh", str(script)],
            env={
                **os.environ,
                "REDIS_PASSWORD": PASSWORD,
                "CLUSTER_NODES": " ".join(f"{HOST}:{p}" for p in self.ports),
                "CLUSTER_REPLICAS": str(self.spec.cluster.replicas_per_master),
                "WAIT_SECONDS": "30",
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def wait_replicas_synced(self, *, timeout: float = 30) -> None:
        """Every replica's link to its master is up (a replica that never synced cannot
        take over: Redis refuses to fail over to data that old)."""

        def synced() -> bool:
            for port in self.ports:
                replication = cli(port, "info", "replication")
                if "role:slave" in replication and "master_link_status:up" not in replication:
                    return False
            return True

        wait_until(synced, timeout=timeout, what="cluster replicas to finish their first sync")

    def info(self, port: int) -> dict[str, str]:
        out = cli(port, "cluster", "info")
        return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture
def redis_sentinel_topology(tmp_path: Path) -> Iterator[SentinelTopology]:
    """A fresh sentinel topology per test (tests kill its master)."""
    topology = SentinelTopology(tmp_path / "sentinel", sentinel_test_spec())
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()


@pytest.fixture
def redis_cluster_topology(tmp_path: Path) -> Iterator[ClusterTopology]:
    """Six started (not yet formed) cluster nodes per test."""
    topology = ClusterTopology(tmp_path / "cluster", cluster_test_spec())
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()
