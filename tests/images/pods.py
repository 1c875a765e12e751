"""Runs rendered Kubernetes pods with podman, the way the kubelet runs them.

The image tests do not describe containers again by hand: they take the objects the
operator's builders render (Deployments, StatefulSets, ConfigMaps, Secrets, Services) and
translate each pod template into a ``podman run``:

* uid/gid/fsGroup from the pod and container ``securityContext`` (``--user``,
  ``--group-add``), ``readOnlyRootFilesystem`` -> ``--read-only`` (without podman's own
  tmpfs on /tmp and /run), ``capabilities.drop: [ALL]`` -> ``--cap-drop all``,
  ``allowPrivilegeEscalation: false`` -> ``no-new-privileges``; ``runAsNonRoot`` checked;
* ``command`` replaces the image's ENTRYPOINT and drops its CMD, ``args`` replace CMD, with
  the kubelet's ``$(VAR)`` expansion;
* ``env`` (values, ``secretKeyRef``, ``configMapKeyRef``, ``fieldRef``) and ``envFrom``
  resolved from the rendered ConfigMaps and Secrets;
* volumes: ``emptyDir`` (``medium: Memory`` -> tmpfs, otherwise a 0777 directory),
  ``configMap``/``secret`` (files with their modes, group-owned by the fsGroup, mounted
  read-only), PVCs (a directory group-owned by the fsGroup, set-gid), the service account
  token for pods that automount it;
* probes: ``exec`` through ``podman exec``, ``httpGet`` and ``tcpSocket`` from a thread that
  entered the pod's network namespace; ``postStart`` exec hooks after the start.

Every container of one test runs in one podman pod without a network (``--network none``):
loopback only. Service and StatefulSet pod DNS names resolve to 127.0.0.1 through the
pod's /etc/hosts, so containers reach each other by the names the manifests use, and no
packet leaves the pod. Ports must therefore be distinct (one replica of each store).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import dataclasses
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "images" / "containers.conf"
IMAGES_ENV = REPO / ".images" / "images.env"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_CLONE_NEWNET = 0x40000000

T = TypeVar("T")


def podman(
    *args: str, check: bool = True, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run podman with the repository's containers.conf (runc, cgroupfs, ulimits)."""
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    done = subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        input=input,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} -> {done.returncode}\n{done.stderr}")
    return done


def built_images() -> dict[str, str]:
    """The image references `make images` wrote to .images/images.env."""
    out = {}
    for line in IMAGES_ENV.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key] = value
    return out


def in_netns(pid: int, call: Callable[[], T]) -> T:
    """Run ``call`` in a thread that joined the network namespace of process ``pid``.

    Sockets keep the namespace they were created in, so everything ``call`` opens talks to
    the pod's loopback, not the host's.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns(CLONE_NEWNET) failed")
            finally:
                os.close(fd)
            result["value"] = call()
        except BaseException as error:  # re-raised in the caller's thread
            result["error"] = error

    thread = threading.Thread(target=run, name=f"netns-{pid}")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    value: T = result["value"]
    return value


@dataclasses.dataclass
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(
    method: str,
    port: int,
    path: str,
    *,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> Response:
    """One HTTP request to 127.0.0.1:port (call it inside :func:`in_netns`)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        all_headers = {"content-type": "application/json", **(headers or {})}
        connection.request(method, path, body=payload, headers=all_headers)
        answer = connection.getresponse()
        return Response(answer.status, answer.read())
    finally:
        connection.close()


class Manifests:
    """The rendered objects of one AnomalyDetector, looked up the way the kubelet does."""

    def __init__(self, objects: Sequence[Mapping[str, Any]]) -> None:
        self.objects = [dict(o) for o in objects]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for obj in self.objects:
            if obj["kind"] == kind and obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"no {kind} {name} among the rendered objects")

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def config_map(self, name: str) -> dict[str, str]:
        data: dict[str, str] = self.get("ConfigMap", name).get("data", {})
        return data

    def secret(self, name: str) -> dict[str, str]:
        obj = self.get("Secret", name)
        out = {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
        out.update(obj.get("stringData", {}))
        return out

    def hostnames(self, namespace: str) -> list[str]:
        """Every DNS name a pod may use for a Service or a StatefulSet pod."""
        names: list[str] = []

        def forms(short: str) -> list[str]:
            svc = f"{short}.{namespace}.svc"
            return [short, f"{short}.{namespace}", svc, f"{svc}.cluster.local"]

        for service in self.of_kind("Service"):
            names += forms(service["metadata"]["name"])
        for sts in self.of_kind("StatefulSet"):
            spec = sts["spec"]
            for ordinal in range(spec.get("replicas", 1)):
                pod = f"{sts['metadata']['name']}-{ordinal}"
                names += forms(f"{pod}.{spec['serviceName']}")
        return names


_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion (``$$`` escapes; unknown names stay as they are)."""

    def one(match: re.Match[str]) -> str:
        return env.get(match.group(1), match.group(0))

    return "$(".join(_VAR.sub(one, part) for part in text.split("$$("))


@dataclasses.dataclass
class Container:
    """One running container of a rendered pod."""

    name: str
    """podman's container name."""
    pod_name: str
    spec: dict[str, Any]
    pod: PodmanPod

    def exec(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *command, check=False, timeout=timeout)

    def port(self, port: int | str) -> int:
        if isinstance(port, int):
            return port
        for item in self.spec.get("ports", []):
            if item.get("name") == port:
                number: int = item["containerPort"]
                return number
        raise KeyError(f"container {self.name} has no port named {port}")

    def probe(self, probe: Mapping[str, Any]) -> bool:
        """One run of a Kubernetes probe (exec, httpGet or tcpSocket): passed or not."""
        timeout = float(probe.get("timeoutSeconds", 1))
        if "exec" in probe:
            try:
                done = self.exec(*probe["exec"]["command"], timeout=max(timeout, 5))
            except subprocess.TimeoutExpired:
                return False
            return done.returncode == 0
        if "httpGet" in probe:
            get = probe["httpGet"]
            port = self.port(get["port"])

            def call() -> bool:
                try:
                    answer = http_request("GET", port, get.get("path", "/"), timeout=timeout)
                except OSError:
                    return False
                return 200 <= answer.status < 400

            return self.pod.in_netns(call)
        if "tcpSocket" in probe:
            port = self.port(probe["tcpSocket"]["port"])

            def connect() -> bool:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=timeout).close()
                except OSError:
                    return False
                return True

            return self.pod.in_netns(connect)
        raise ValueError(f"unsupported probe {probe}")

    def stop(self) -> None:
        """Stop as the kubelet does: SIGTERM, SIGKILL after the grace period."""
        podman("stop", self.name, timeout=120)

    def running(self) -> bool:
        state = podman("inspect", "--format", "{{.State.Status}}", self.name, check=False)
        return state.stdout.strip() == "running"

    def wait(
        self, kind: str = "readinessProbe", *, timeout: float = 120, consecutive: int = 1
    ) -> float:
        """Poll the container's probe ``kind`` until it passes ``consecutive`` times in a row;
        return the seconds until the first of those passes.

        Polls every 0.1 s rather than every ``periodSeconds``, to measure when the container
        became ready; fails at once with the logs when the container exits. ``consecutive``
        > 1 for a server with several worker processes, each answering probes for itself.
        """
        probe = self.spec.get(kind)
        if probe is None:
            raise AssertionError(f"{self.name} has no {kind}")
        began = time.monotonic()
        first_pass: float | None = None
        passes = 0
        while passes < consecutive:
            if self.probe(probe):
                first_pass = time.monotonic() if first_pass is None else first_pass
                passes += 1
                continue
            first_pass, passes = None, 0
            if not self.running():
                raise AssertionError(f"{self.name} exited before its {kind} passed:\n{self.logs()}")
            if time.monotonic() - began > timeout:
                raise AssertionError(
                    f"{self.name}: {kind} not passing after {timeout:.0f}s:\n{self.logs()}"
                )
            time.sleep(0.1)
        assert first_pass is not None
        return first_pass - began

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return (done.stdout + done.stderr)[-6000:]

    def main_pid(self) -> int:
        return int(podman("inspect", "--format", "{{.State.Pid}}", self.name).stdout.strip())


class PodmanPod:
    """One podman pod (one network namespace with loopback only) that hosts rendered pods."""

    def __init__(self, name: str, workdir: Path, *, namespace: str, hostnames: Sequence[str]):
        self.name = name
        self.workdir = workdir
        self.namespace = namespace
        self.containers: list[Container] = []
        hosts = workdir / "hosts"
        hosts.write_text(
            "127.0.0.1 localhost\n::1 localhost\n"
            + "".join(f"127.0.0.1 {host}\n" for host in hostnames)
        )
        hosts.chmod(0o644)
        self.hosts = hosts
        podman("pod", "create", "--name", name, "--network", "none", "--share", "net,ipc,uts")
        self.infra_pid = int(
            podman("inspect", "--format", "{{.State.Pid}}", self._infra_id()).stdout.strip() or 0
        )

    def _infra_id(self) -> str:
        podman("pod", "start", self.name)
        return podman(
            "pod", "inspect", "--format", "{{.InfraContainerID}}", self.name
        ).stdout.strip()

    def in_netns(self, call: Callable[[], T]) -> T:
        return in_netns(self.infra_pid, call)

    def request(self, method: str, port: int, path: str, **kwargs: Any) -> Response:
        """An HTTP request to 127.0.0.1:port inside the pod."""
        return self.in_netns(lambda: http_request(method, port, path, **kwargs))

    def remove(self) -> None:
        podman("pod", "rm", "--force", "--time", "5", self.name, check=False, timeout=120)

    # --- translation of one rendered pod template ------------------------------------------

    def run(
        self,
        manifests: Manifests,
        workload: Mapping[str, Any],
        *,
        pod_name: str,
        container: str | None = None,
        image: str | None = None,
        service_account: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> Container:
        """Start one container of ``workload``'s pod template (a Deployment, StatefulSet or
        Job; its first container unless ``container``); a StatefulSet's volumeClaimTemplates
        become directories, as bound PersistentVolumes would be.

        ``image`` replaces the template's image (the image under test); ``service_account``:
        a directory with token, ca.crt and namespace, mounted where the kubelet mounts it
        when the pod automounts its token; ``extra_env`` what the kubelet adds (the API
        server's address for in-cluster clients).
        """
        spec = dict(workload["spec"]["template"]["spec"])
        spec["volumeClaimTemplates"] = workload["spec"].get("volumeClaimTemplates", [])
        chosen = next(c for c in spec["containers"] if container in (None, c["name"]))
        pod_ctx = spec.get("securityContext", {})
        ctx = {**pod_ctx, **chosen.get("securityContext", {})}
        uid = int(ctx.get("runAsUser", 0))
        gid = int(ctx.get("runAsGroup", uid))
        fs_group = pod_ctx.get("fsGroup")
        if ctx.get("runAsNonRoot"):
            assert uid != 0, "runAsNonRoot with uid 0: the kubelet would refuse this pod"
        args: list[str] = ["run", "--detach", "--pod", self.name]
        cname = f"{self.name}-{pod_name}-{chosen['name']}"
        args += ["--name", cname, "--user", f"{uid}:{gid}", "--no-hosts"]
        args += ["--volume", f"{self.hosts}:/etc/hosts:ro"]
        if fs_group is not None:
            args += ["--group-add", str(fs_group)]
        if ctx.get("readOnlyRootFilesystem"):
            args += ["--read-only", "--read-only-tmpfs=false"]
        if "ALL" in ctx.get("capabilities", {}).get("drop", []):
            args += ["--cap-drop", "all"]
        for cap in ctx.get("capabilities", {}).get("add", []):
            args += ["--cap-add", cap]
        if ctx.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        memory = chosen.get("resources", {}).get("limits", {}).get("memory")
        if memory:
            args += ["--memory", _bytes(memory)]
        grace = spec.get("terminationGracePeriodSeconds")
        if grace is not None:
            args += ["--stop-timeout", str(grace)]

        env = self._env(manifests, chosen, pod_name=pod_name, extra=extra_env or {})
        env_file = self.workdir / f"{cname}.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        env_file.chmod(0o600)
        args += ["--env-file", str(env_file)]

        args += self._mounts(manifests, spec, chosen, pod_name=pod_name, fs_group=fs_group)
        if service_account is not None and spec.get("automountServiceAccountToken", True):
            args += ["--volume", f"{service_account}:{SERVICE_ACCOUNT_DIR}:ro"]

        command = [expand(c, env) for c in chosen.get("command", [])]
        rest = [expand(a, env) for a in chosen.get("args", [])]
        if command:
            args += ["--entrypoint", json.dumps(command)]
        args.append(image or chosen["image"])
        args += rest
        podman(*args)
        started = Container(name=cname, pod_name=pod_name, spec=chosen, pod=self)
        self.containers.append(started)
        post_start = chosen.get("lifecycle", {}).get("postStart", {}).get("exec")
        if post_start:
            threading.Thread(
                target=started.exec,
                args=tuple(post_start["command"]),
                kwargs={"timeout": 300},
                daemon=True,
            ).start()
        return started

    def _env(
        self,
        manifests: Manifests,
        container: Mapping[str, Any],
        *,
        pod_name: str,
        extra: Mapping[str, str],
    ) -> dict[str, str]:
        env: dict[str, str] = dict(extra)
        for source in container.get("envFrom", []):
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                data = manifests.config_map(source["configMapRef"]["name"])
            else:
                data = manifests.secret(source["secretRef"]["name"])
            env.update({prefix + k: v for k, v in data.items()})
        fields = {
            "metadata.name": pod_name,
            "metadata.namespace": self.namespace,
            "status.podIP": "127.0.0.1",
            "status.hostIP": "127.0.0.1",
            "spec.nodeName": "podman",
        }
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = expand(str(item["value"]), env)
                continue
            source = item["valueFrom"]
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                env[item["name"]] = manifests.secret(ref["name"])[ref["key"]]
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                env[item["name"]] = manifests.config_map(ref["name"])[ref["key"]]
            elif "fieldRef" in source:
                env[item["name"]] = fields[source["fieldRef"]["fieldPath"]]
            else:
                raise ValueError(f"unsupported env source {item}")
        return env

    def _mounts(
        self,
        manifests: Manifests,
        spec: Mapping[str, Any],
        container: Mapping[str, Any],
        *,
        pod_name: str,
        fs_group: int | None,
    ) -> list[str]:
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for claim in spec.get("volumeClaimTemplates", []):
            volumes[claim["metadata"]["name"]] = {"name": claim["metadata"]["name"], "claim": True}
        args: list[str] = []
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            target = mount["mountPath"]
            read_only = ",ro" if mount.get("readOnly") else ""
            if "emptyDir" in volume and volume["emptyDir"].get("medium") == "Memory":
                size = volume["emptyDir"].get("sizeLimit")
                options = ["type=tmpfs", f"destination={target}", "tmpfs-mode=1777"]
                if size:
                    options.append(f"tmpfs-size={_bytes(size)}")
                args += ["--mount", ",".join(options)]
                continue
            source = self.workdir / "volumes" / pod_name / mount["name"]
            if not source.exists():
                source.mkdir(parents=True)
                if "emptyDir" in volume:
                    source.chmod(0o777)
                elif volume.get("claim") or "persistentVolumeClaim" in volume:
                    if fs_group is not None:
                        os.chown(source, 0, fs_group)
                    source.chmod(0o2770)
                elif "configMap" in volume or "secret" in volume:
                    self._write_files(manifests, volume, source, fs_group=fs_group)
                else:
                    raise ValueError(f"unsupported volume {volume}")
            if mount.get("subPath"):
                source = source / mount["subPath"]
            args += ["--volume", f"{source}:{target}{read_only or ''}".replace(",ro", ":ro")]
        return args

    @staticmethod
    def _write_files(
        manifests: Manifests, volume: Mapping[str, Any], target: Path, *, fs_group: int | None
    ) -> None:
        if "configMap" in volume:
            source = volume["configMap"]
            data = manifests.config_map(source["name"])
        else:
            source = volume["secret"]
            data = manifests.secret(source["secretName"])
        mode = int(source.get("defaultMode", 0o644))
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            path = target / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(data[item["key"]])
            item_mode = int(item.get("mode", mode))
            if fs_group is not None:
                os.chown(path, 0, fs_group)
                item_mode |= 0o040 if item_mode & 0o400 else 0
            path.chmod(item_mode)
        target.chmod(0o755)


def _bytes(quantity: str) -> str:
    """A Kubernetes memory quantity as podman's byte count."""
    units = {
        "Ki": 1 << 10,
        "Mi": 1 << 20,
        "Gi": 1 << 30,
        "Ti": 1 << 40,
        "k": 10**3,
        "M": 10**6,
        "G": 10**9,
    }
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return str(int(float(quantity[: -len(suffix)]) * factor))
    return str(int(quantity))


@contextlib.contextmanager
def podman_pod(
    name: str, workdir: Path, *, namespace: str, hostnames: Sequence[str]
) -> Iterator[PodmanPod]:
    """A :class:`PodmanPod`, force-removed afterwards (its logs kept in ``workdir``)."""
    pod = PodmanPod(name, workdir, namespace=namespace, hostnames=hostnames)
    try:
        yield pod
    finally:
        for container in pod.containers:
            with contextlib.suppress(Exception):
                (workdir / f"{container.name}.log").write_text(container.logs())
        pod.remove()
        shutil.rmtree(workdir / "volumes", ignore_errors=True)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def forward_into(pod: PodmanPod, port: int, *, target: int | None = None) -> socket.socket:
    """Make the host's 127.0.0.1:``target`` (default ``port``) reachable as
    127.0.0.1:``port`` inside ``pod``.

    For the in-cluster client in the operator image: the kubelet gives a pod the API server's
    address; here the API server listens on the host's loopback, so a relay listens on the
    pod's loopback (socket created inside its namespace) and connects out from the host's.
    Both ends are loopback. Close the returned listener to stop accepting.
    """

    def listen() -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        return listener

    listener = pod.in_netns(listen)

    def accept() -> None:
        while True:
            try:
                inside, _ = listener.accept()
            except OSError:
                return
            try:
                outside = socket.create_connection(("127.0.0.1", target or port), timeout=10)
            except OSError:
                inside.close()
                continue
            outside.settimeout(None)
            for a, b in ((inside, outside), (outside, inside)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    threading.Thread(target=accept, name=f"relay-{port}", daemon=True).start()
    return listener
