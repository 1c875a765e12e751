"""Names and labels of everything an ``AnomalyDetector`` owns.

One place decides what each child is called and how it is labelled, so builders, the
reconcile (which watches children by label) and tests agree without repeating strings.
Names derive only from the custom resource's name and namespace: a rename is a new
resource, and two detectors in one namespace never collide.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

GROUP = "pynomaly.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "AnomalyDetector"
PLURAL = "anomalydetectors"
SINGULAR = "anomalydetector"
SHORT_NAMES = ("ad", "adet")

FIELD_MANAGER = "pynomaly-operator"
# Holds the Deployment's spec.replicas for the moment the operator stops applying it (autoscaling
# switched on), so server-side apply keeps the value until the HPA takes it over.
HANDOVER_FIELD_MANAGER = "pynomaly-operator-handover"
PART_OF = "pynomaly"
MANAGED_BY = "pynomaly-operator"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"

# Annotation on every child: hash of the desired manifest. Equal hash -> no patch.
SPEC_HASH_ANNOTATION = "pynomaly.io/spec-hash"
# Annotation on the detector pod template: hash of the rendered ConfigMap data, so a
# settings change rolls the pods.
CONFIG_HASH_ANNOTATION = "pynomaly.io/config-hash"
# Annotation on pod templates that read generated Secrets: hash of those Secrets' UIDs, so a
# Secret deleted by hand and re-created (new value, new UID) rolls exactly its consumers.
SECRETS_HASH_ANNOTATION = "pynomaly.io/secrets-hash"
# Annotation on a generated Secret that must outlive the resource (the signing key while the
# model data it signs is retained): applied without an owner reference, so garbage
# collection leaves it when the resource is deleted.
RETAIN_ANNOTATION = "pynomaly.io/retain-on-delete"

# Component label values.
COMPONENT_DETECTOR = "detector"
COMPONENT_REDIS = "redis"
COMPONENT_SENTINEL = "redis-sentinel"
COMPONENT_POSTGRES = "postgres"
COMPONENT_PGBOUNCER = "pgbouncer"

# Longest CR name accepted (CEL rule in the CRD): leaves room for the longest suffix
# below inside the 63-character DNS label limit of Services and StatefulSet pods, and keeps
# StatefulSet names within 52 characters (the controller labels their pods
# ``controller-revision-hash: <name>-<10-char hash>``, a label value of at most 63):
# ``<instance>-redis-sentinel`` is instance + 15.
MAX_NAME_LENGTH = 37


@dataclasses.dataclass(frozen=True)
class Names:
    """Child names and labels for one ``AnomalyDetector`` (``instance`` = CR name)."""

    instance: str
    namespace: str

    # --- detector service -------------------------------------------------------------
    @property
    def detector(self) -> str:
        """Deployment, Service, HPA, PDB, ServiceAccount, NetworkPolicy of the detector."""
        return self.instance

    @property
    def config(self) -> str:
        """ConfigMap with the PYNOMALY_* settings."""
        return f"{self.instance}-config"

    @property
    def signing_key_secret(self) -> str:
        """Generated Secret holding the artifact signing key (key ``signing-key``)."""
        return f"{self.instance}-signing-key"

    @property
    def api_token_secret(self) -> str:
        """Generated Secret holding the scoring API bearer token(s) (key ``token``)."""
        return f"{self.instance}-api-token"

    @property
    def endpoint(self) -> str:
        """In-cluster URL of the scoring API."""
        return f"http://{self.detector}.{self.namespace}.svc:8000"

    # --- stores -----------------------------------------------------------------------
    @property
    def redis(self) -> str:
        return f"{self.instance}-redis"

    @property
    def redis_sentinel(self) -> str:
        return f"{self.instance}-redis-sentinel"

    @property
    def redis_secret(self) -> str:
        return f"{self.instance}-redis-auth"

    @property
    def postgres(self) -> str:
        return f"{self.instance}-postgres"

    @property
    def postgres_secret(self) -> str:
        return f"{self.instance}-postgres-auth"

    @property
    def pgbouncer(self) -> str:
        return f"{self.instance}-pgbouncer"

    def child(self, suffix: str) -> str:
        """Any other child: ``<instance>-<suffix>``."""
        return f"{self.instance}-{suffix}"

    # --- labels ---------------------------------------------------------------------
    def selector(self, component: str) -> dict[str, str]:
        """Immutable pod-selector labels of one component (never add to these)."""
        return {
            LABEL_NAME: PART_OF,
            LABEL_INSTANCE: self.instance,
            LABEL_COMPONENT: component,
        }

    def labels(self, component: str) -> dict[str, str]:
        """Every label a child of ``component`` carries."""
        return {
            **self.selector(component),
            LABEL_PART_OF: PART_OF,
            LABEL_MANAGED_BY: MANAGED_BY,
        }


def names_for(body: Mapping[str, object]) -> Names:
    """``Names`` from a raw custom resource body."""
    metadata = body.get("metadata")
    if not isinstance(metadata, Mapping):
        raise ValueError("resource has no metadata")
    return Names(instance=str(metadata["name"]), namespace=str(metadata["namespace"]))
