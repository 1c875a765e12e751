"""``kubectl anomalydetector``: day-2 commands for AnomalyDetector resources.

    kubectl anomalydetector status NAME [-n NS]
    kubectl anomalydetector fit NAME --csv FILE [--algorithm A] [--contamination C]
    kubectl anomalydetector score NAME --csv FILE
    kubectl anomalydetector token NAME

Installed as the console script ``kubectl-anomalydetector`` (kubectl finds it on PATH). It
runs the user's ``kubectl`` for everything Kubernetes (so the kubeconfig, context and the
user's own RBAC apply: it reads the resource, its HPA and Deployment, and the token Secret
only when scoring needs it) and talks HTTP to the detector through ``kubectl port-forward
svc/NAME`` or, with ``--endpoint`` (env ``PYNOMALY_ENDPOINT``), a URL the user can reach
(inside the cluster the Service, ``http://NAME.NS.svc:8000``). Standard library only:
it works with the base install, without the operator's or the service's extras.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import json
import os
import re
import select
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pynomaly_operator import naming

HTTP_PORT = 8000
PORT_FORWARD_TIMEOUT = 20.0
_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)")


class PluginError(Exception):
    """A failure to report to the user as one line (exit status 1)."""


@dataclass
class Kube:
    """Runs the user's kubectl with their global flags (namespace, context, kubeconfig)."""

    namespace: str | None = None
    context: str | None = None
    kubeconfig: str | None = None
    kubectl: str = field(default_factory=lambda: os.environ.get("KUBECTL", "kubectl"))

    def args(self, *extra: str, namespaced: bool = True) -> list[str]:
        """The kubectl command line for ``extra``."""
        command = [self.kubectl]
        if self.kubeconfig:
            command += ["--kubeconfig", self.kubeconfig]
        if self.context:
            command += ["--context", self.context]
        if namespaced and self.namespace:
            command += ["--namespace", self.namespace]
        return [*command, *extra]

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """The object as JSON; None when it does not exist or the user may not read it."""
        done = subprocess.run(
            self.args("get", kind, name, "-o", "json"),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if done.returncode != 0:
            if "NotFound" in done.stderr or "Forbidden" in done.stderr:
                return None
            raise PluginError(f"kubectl get {kind} {name}: {done.stderr.strip()}")
        found: dict[str, Any] = json.loads(done.stdout)
        return found

    def current_namespace(self) -> str:
        """The namespace commands act in (flag, else the kubeconfig context's, else default)."""
        if self.namespace:
            return self.namespace
        done = subprocess.run(
            self.args(
                "config", "view", "--minify", "-o", "jsonpath={..namespace}", namespaced=False
            ),
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        return done.stdout.strip() or "default"


@contextlib.contextmanager
def endpoint(kube: Kube, name: str, explicit: str | None) -> Iterator[str]:
    """The detector's base URL: ``explicit``, or a port-forward to its Service while in use."""
    if explicit:
        yield explicit.rstrip("/")
        return
    process = subprocess.Popen(
        kube.args("port-forward", f"service/{name}", f":{HTTP_PORT}", "--address", "127.0.0.1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        # kubectl prints "Forwarding from 127.0.0.1:PORT -> 8000" once listening; a pod it
        # cannot reach may leave it silent, so the wait has a deadline.
        readable, _, _ = select.select([process.stdout], [], [], PORT_FORWARD_TIMEOUT)
        line = process.stdout.readline() if readable else ""
        match = _FORWARDING.search(line)
        if match is None:
            if not readable:
                line = f"no answer within {PORT_FORWARD_TIMEOUT:.0f}s"
            process.terminate()
            try:
                error = process.communicate(timeout=5)[1] or ""
            except subprocess.TimeoutExpired:
                error = ""
            raise PluginError(
                f"kubectl port-forward service/{name} failed: {(line + error).strip()} "
                "(or pass --endpoint URL)"
            )
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def http(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    content_type: str = "application/json",
    token: str | None = None,
    timeout: float = 60,
) -> tuple[int, Any]:
    """One request; returns (status, parsed JSON or text). Never raises for HTTP errors."""
    headers = {"content-type": content_type, "accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 - http(s) URL from the user or port-forward
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - as above
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        raise PluginError(f"{method} {url}: {getattr(error, 'reason', error)}") from None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def _detail(payload: Any) -> str:
    if isinstance(payload, dict):
        return str(payload.get("detail") or payload.get("error") or payload)
    return str(payload)


def _require(kube: Kube, name: str) -> dict[str, Any]:
    detector = kube.get(f"{naming.PLURAL}.{naming.GROUP}", name)
    if detector is None:
        raise PluginError(
            f"AnomalyDetector {kube.current_namespace()}/{name} not found (or not readable)"
        )
    return detector


def _model_name(detector: dict[str, Any]) -> str:
    status_model = (detector.get("status") or {}).get("model") or {}
    spec_model = (detector.get("spec") or {}).get("model") or {}
    return str(status_model.get("name") or spec_model.get("name") or detector["metadata"]["name"])


def _token(kube: Kube, name: str, explicit: str | None) -> str | None:
    if explicit:
        return explicit
    from_env = os.environ.get("PYNOMALY_API_TOKEN")
    if from_env:
        return from_env
    secret = kube.get("secret", f"{name}-api-token")
    if secret is None:
        return None
    encoded = (secret.get("data") or {}).get("token")
    if not encoded:
        return None
    lines = base64.b64decode(encoded).decode().splitlines()
    tokens = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return tokens[0] if tokens else None


# ---- status ------------------------------------------------------------------------------


def _age_free_conditions(conditions: Sequence[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            str(c.get("type", "")),
            str(c.get("status", "")),
            str(c.get("reason", "")),
            str(c.get("message", "")),
        ]
        for c in conditions
    ]


def table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Left-aligned columns like kubectl's, the last column unpadded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        print("  ".join(cells).rstrip(), file=out)


def status(
    kube: Kube, name: str, explicit_endpoint: str | None, out: TextIO, *, token: str | None = None
) -> int:
    """One screen: phase, conditions, endpoint, served model, replicas, store health.

    The model is read with the API token when the user may read it (a detector with
    ``scoringAuth: token`` answers model reads only with one)."""
    detector = _require(kube, name)
    state = detector.get("status") or {}
    namespace = detector["metadata"].get("namespace", kube.current_namespace())
    generation = detector["metadata"].get("generation")
    print(
        f"AnomalyDetector {namespace}/{name}  phase: {state.get('phase', '(no status yet)')}  "
        f"generation {generation} (observed {state.get('observedGeneration', '-')})",
        file=out,
    )
    print(f"endpoint:  {state.get('endpoint', '-')}", file=out)
    deployment = kube.get("deployment", name)
    hpa = kube.get("horizontalpodautoscaler", name)
    dep_status = (deployment or {}).get("status") or {}
    dep_spec = (deployment or {}).get("spec") or {}
    replicas = (
        f"{dep_status.get('readyReplicas', 0)} ready / {dep_spec.get('replicas', '?')} desired"
        if deployment is not None
        else "deployment not found"
    )
    if hpa is not None:
        hpa_spec, hpa_status = hpa.get("spec") or {}, hpa.get("status") or {}
        replicas += (
            f"  (HPA: {hpa_status.get('desiredReplicas', '?')} desired, "
            f"{hpa_status.get('currentReplicas', '?')} current, "
            f"range {hpa_spec.get('minReplicas', 1)}-{hpa_spec.get('maxReplicas', '?')})"
        )
    else:
        replicas += "  (no HPA)"
    print(f"replicas:  {replicas}", file=out)
    model = _model_name(detector)
    try:
        with endpoint(kube, name, explicit_endpoint) as base:
            _, ready = http("GET", f"{base}/readyz", timeout=10)
            secret = _token(kube, name, token)
            code, meta = http("GET", f"{base}/v1/models/{model}", token=secret, timeout=10)
    except PluginError as error:
        print(f"model:     {model} (service unreachable: {error})", file=out)
        print("stores:    unknown (service unreachable)", file=out)
    else:
        if code == 200 and isinstance(meta, dict):
            print(
                f"model:     {model} v{meta.get('version')}  {meta.get('algorithm')}  "
                f"threshold {meta.get('threshold'):.6g}  "
                f"contamination {meta.get('contamination')}  "
                f"features {','.join(meta.get('features') or [])}  "
                f"fitted {meta.get('fitted_at')}",
                file=out,
            )
        else:
            print(f"model:     {model} not served ({code}: {_detail(meta)})", file=out)
        if isinstance(ready, dict):
            print(
                "stores:    "
                f"database {ready.get('database', '-')}  redis {ready.get('redis', '-')}  "
                f"store {ready.get('store', '-')}  "
                f"declared model loaded {ready.get('declared_model_loaded', '-')}  "
                f"ready {ready.get('ready', '-')}",
                file=out,
            )
    conditions = state.get("conditions") or []
    if conditions:
        print("", file=out)
        table([["TYPE", "STATUS", "REASON", "MESSAGE"], *_age_free_conditions(conditions)], out)
    return 0


# ---- fit / score ---------------------------------------------------------------------------


def _multipart(fields: dict[str, str], csv_path: Path) -> tuple[bytes, str]:
    boundary = f"pynomaly-{uuid.uuid4().hex}"
    parts: list[bytes] = []
    for key, value in fields.items():
        head = f'--{boundary}\r\ncontent-disposition: form-data; name="{key}"\r\n\r\n'
        parts.append(f"{head}{value}\r\n".encode())
    parts.append(
        f'--{boundary}\r\ncontent-disposition: form-data; name="file"; '
        f'filename="{csv_path.name}"\r\ncontent-type: text/csv\r\n\r\n'.encode()
        + csv_path.read_bytes()
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def fit(
    kube: Kube,
    name: str,
    csv_path: Path,
    *,
    algorithm: str | None,
    contamination: float | None,
    explicit_endpoint: str | None,
    token: str | None,
    out: TextIO,
) -> int:
    """Fit a new version of the detector's model from a CSV (header = feature names)."""
    detector = _require(kube, name)
    spec_model = (detector.get("spec") or {}).get("model") or {}
    fields = {
        "algorithm": algorithm or str(spec_model.get("algorithm", "IForest")),
        "contamination": str(contamination or spec_model.get("contamination", 0.1)),
        "parameters": json.dumps(spec_model.get("parameters") or {}),
    }
    body, content_type = _multipart(fields, csv_path)
    model = _model_name(detector)
    with endpoint(kube, name, explicit_endpoint) as base:
        code, meta = http(
            "PUT",
            f"{base}/v1/models/{model}",
            body=body,
            content_type=content_type,
            token=_token(kube, name, token),
            timeout=600,
        )
    if code != 201 or not isinstance(meta, dict):
        raise PluginError(f"fit {model}: {code} {_detail(meta)}")
    print(
        f"fitted {model} v{meta['version']} ({meta['algorithm']}, {meta['n_samples']} rows, "
        f"threshold {meta['threshold']:.6g}, contamination {meta['contamination']})",
        file=out,
    )
    return 0


def _read_csv(path: Path) -> tuple[list[str], list[list[float]]]:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise PluginError(f"{path}: empty CSV")
        rows = []
        for number, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                rows.append([float(value) for value in row])
            except ValueError:
                raise PluginError(f"{path}:{number}: not all numbers: {row}") from None
    return header, rows


def score(
    kube: Kube,
    name: str,
    csv_path: Path,
    *,
    explicit_endpoint: str | None,
    token: str | None,
    out: TextIO,
) -> int:
    """Score a CSV's rows; print them with score and verdict, then a one-line summary."""
    detector = _require(kube, name)
    header, rows = _read_csv(csv_path)
    model = _model_name(detector)
    secret = _token(kube, name, token)
    with endpoint(kube, name, explicit_endpoint) as base:
        _, meta = http("GET", f"{base}/v1/models/{model}", token=secret, timeout=10)
        # Send the model's feature columns in its order when the CSV names them all; other
        # columns (ids, labels such as `expected`) are only shown.
        features = meta.get("features") if isinstance(meta, dict) else None
        if features and set(features) <= set(header) and features != header:
            index = [header.index(feature) for feature in features]
            instances = [[row[i] for i in index] for row in rows]
        else:
            instances = rows
        code, result = http(
            "POST",
            f"{base}/v1/models/{model}/detect",
            body=json.dumps({"instances": instances}).encode(),
            token=secret,
        )
    if code != 200 or not isinstance(result, dict):
        raise PluginError(f"score {model}: {code} {_detail(result)}")
    lines = [[*header, "score", "verdict"]]
    for row, value, flagged in zip(rows, result["scores"], result["is_anomaly"], strict=True):
        lines.append([*(f"{v:g}" for v in row), f"{value:.4f}", "ANOMALY" if flagged else "ok"])
    table(lines, out)
    print(
        f"{sum(result['is_anomaly'])} anomalies in {len(rows)} rows "
        f"({model} v{result.get('version')}, threshold {result.get('threshold'):.6g})",
        file=out,
    )
    return 0


# ---- token ----------------------------------------------------------------------------------


def token_help(kube: Kube, name: str, out: TextIO) -> int:
    """How to read the API token Secret (never prints the token itself)."""
    detector = _require(kube, name)
    namespace = detector["metadata"].get("namespace", kube.current_namespace())
    secret = f"{name}-api-token"
    exists = kube.get("secret", secret)
    server = (detector.get("spec") or {}).get("server") or {}
    auth = server.get("scoringAuth") or server.get("auth") or "none (spec default)"
    print(f"Scoring auth of {namespace}/{name}: {auth}", file=out)
    print(
        f"API token Secret: {namespace}/{secret}, key 'token' "
        f"({'exists' if exists else 'not found, or not readable with your credentials'})",
        file=out,
    )
    print("Read it (needs `get` on that Secret):", file=out)
    print(
        f"  kubectl get secret {secret} -n {namespace} -o jsonpath='{{.data.token}}' "
        "| base64 -d | grep -v '^#' | head -1",
        file=out,
    )
    print("Use it:", file=out)
    print(
        f'  curl -H "Authorization: Bearer $TOKEN" '
        f"{(detector.get('status') or {}).get('endpoint', f'http://{name}.{namespace}.svc:8000')}"
        f"/v1/models/{_model_name(detector)}/detect ...",
        file=out,
    )
    print("fit/score here read it themselves (or take --token / PYNOMALY_API_TOKEN).", file=out)
    return 0


# ---- entry point ----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    """The command line (kubectl passes everything after `kubectl anomalydetector`)."""
    root = argparse.ArgumentParser(
        prog="kubectl anomalydetector",
        description="Day-2 commands for pynomaly.io AnomalyDetector resources.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    common.add_argument("--context", help="kubeconfig context")
    common.add_argument("--kubeconfig", help="kubeconfig file")
    common.add_argument(
        "--endpoint",
        default=os.environ.get("PYNOMALY_ENDPOINT"),
        help="detector base URL (default: kubectl port-forward to the Service); "
        "env PYNOMALY_ENDPOINT",
    )
    common.add_argument("--token", help="API token (default: from Secret NAME-api-token)")
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "status", parents=[common], help="phase, conditions, model, replicas, stores"
    ).add_argument("name")
    fit_cmd = commands.add_parser(
        "fit", parents=[common], help="fit a new model version from a CSV"
    )
    fit_cmd.add_argument("name")
    fit_cmd.add_argument("--csv", required=True, type=Path, help="CSV with a header row")
    fit_cmd.add_argument("--algorithm", help="default: spec.model.algorithm")
    fit_cmd.add_argument("--contamination", type=float, help="default: spec.model.contamination")
    score_cmd = commands.add_parser("score", parents=[common], help="score a CSV's rows")
    score_cmd.add_argument("name")
    score_cmd.add_argument("--csv", required=True, type=Path, help="CSV with a header row")
    commands.add_parser(
        "token", parents=[common], help="how to read the API token Secret"
    ).add_argument("name")
    return root


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Console script ``kubectl-anomalydetector``."""
    args = parser().parse_args(argv)
    stream = out or sys.stdout
    kube = Kube(namespace=args.namespace, context=args.context, kubeconfig=args.kubeconfig)
    try:
        if args.command == "status":
            return status(kube, args.name, args.endpoint, stream, token=args.token)
        if args.command == "fit":
            return fit(
                kube,
                args.name,
                args.csv,
                algorithm=args.algorithm,
                contamination=args.contamination,
                explicit_endpoint=args.endpoint,
                token=args.token,
                out=stream,
            )
        if args.command == "score":
            return score(
                kube,
                args.name,
                args.csv,
                explicit_endpoint=args.endpoint,
                token=args.token,
                out=stream,
            )
        return token_help(kube, args.name, stream)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
