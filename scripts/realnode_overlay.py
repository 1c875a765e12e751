#!/usr/bin/env python3
"""A sample AnomalyDetector sized for the real node: the overlay ``make demo`` and the tests use.

    realnode_overlay.py SAMPLE.yaml [--images-env .images/images.env]  -> YAML on stdout

The sample's own fields stay; the overlay adds what a 2-core local node needs and nothing
else: the project's images as ``make images`` tagged them (``.images/images.env``; the
detector with ``imagePullPolicy: Never``, the store images' version tags are never pulled
either), requests that fit beside each other (detector 250m, stores 20m-150m), 1-3 detector
replicas with 2 workers (2Gi memory request, the CRD's default: 2 workers with a model use
~400Mi, and each worker that has fitted keeps a ~250Mi fit fork server, so with 1Gi the HPA's
80 % memory target held the detector at 2 replicas after the load), small Redis/Postgres
memory and 1Gi volumes. The defaults in the CRD (the performance guide's) are unchanged.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def read_images_env(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of images/build.sh's env file (comments and blanks skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.strip().startswith("#"):
            values[key.strip()] = value.strip()
    return values


def overlay(body: dict[str, Any], images: dict[str, str]) -> dict[str, Any]:
    """The AnomalyDetector ``body`` with the real-node overlay applied (a new dict)."""
    small = {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    spec = dict(body.get("spec") or {})
    spec.update(
        {
            "image": images["DETECTOR_IMAGE"],
            "imagePullPolicy": "Never",
            "resources": {
                "requests": {"cpu": "250m", "memory": "2Gi"},
                "limits": {"cpu": "1", "memory": "2Gi"},
            },
            "autoscaling": {"minReplicas": 1, "maxReplicas": 3},
            "server": {"workers": 2},
            "redis": {
                "image": images["REDIS_IMAGE"],
                "resources": small,
                "config": {"maxmemory": "64mb"},
                "persistence": {"size": "1Gi"},
                "sentinel": {
                    "resources": {
                        "requests": {"cpu": "20m", "memory": "32Mi"},
                        "limits": {"cpu": "200m", "memory": "64Mi"},
                    }
                },
            },
            "postgres": {
                "image": images["POSTGRES_IMAGE"],
                "resources": {
                    "requests": {"cpu": "150m", "memory": "256Mi"},
                    "limits": {"cpu": "1", "memory": "1Gi"},
                },
                "config": {"shared_buffers": "64MB", "effective_cache_size": "256MB"},
                "persistence": {"size": "1Gi"},
                "pgbouncer": {
                    "image": images["PGBOUNCER_IMAGE"],
                    "replicas": 1,
                    "resources": {
                        "requests": {"cpu": "50m", "memory": "32Mi"},
                        "limits": {"cpu": "250m", "memory": "64Mi"},
                    },
                },
            },
        }
    )
    return {**body, "spec": spec}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sample", type=Path, help="a file holding one AnomalyDetector")
    parser.add_argument(
        "--images-env", type=Path, default=ROOT / ".images" / "images.env", help="make images' env"
    )
    args = parser.parse_args()
    docs = [d for d in yaml.safe_load_all(args.sample.read_text()) if d]
    detectors = [d for d in docs if d.get("kind") == "AnomalyDetector"]
    if len(detectors) != 1:
        print(f"{args.sample}: expected one AnomalyDetector", file=sys.stderr)
        return 2
    sys.stdout.write(yaml.safe_dump(overlay(detectors[0], read_images_env(args.images_env))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
