"""Does a live child already match what the operator wants? (pure; no client)

Two checks, CloudNativePG-style: the ``pynomaly.io/spec-hash`` annotation says whether the
operator's *desired* object changed; a drift check says whether someone changed the *live*
object by hand (every desired field present and equal in the live object; fields the API
server defaulted are ignored, and desired zero values match an absent live key because Go's
``omitempty`` drops them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pynomaly_operator import naming, values


def spec_hash(desired: Mapping[str, Any]) -> str:
    """Hash of a desired manifest (stable across runs)."""
    return values.short_hash(desired)


def contains(live: Any, desired: Any) -> bool:
    """True when every field of ``desired`` is present and equal in ``live``."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        for key, want in desired.items():
            if key not in live:
                if want in ("", 0, False, None, {}, []):
                    continue
                return False
            if not contains(live[key], want):
                return False
        return True
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return False
        return all(contains(have, want) for have, want in zip(live, desired, strict=True))
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is live
    if isinstance(desired, int | float) and isinstance(live, int | float):
        return float(desired) == float(live)
    return bool(desired == live)


def applies(live: Mapping[str, Any] | None, manager: str, path: tuple[str, ...]) -> bool:
    """Whether ``manager``'s server-side apply configuration of ``live`` includes ``path``.

    Read from ``metadata.managedFields`` (``fieldsV1``: ``{"f:spec": {"f:replicas": {}}}``).
    """
    for entry in ((live or {}).get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") != manager or entry.get("operation") != "Apply":
            continue
        node: Any = entry.get("fieldsV1") or {}
        for field in path:
            node = node.get(f"f:{field}") if isinstance(node, Mapping) else None
        if node is not None:
            return True
    return False


def up_to_date(live: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether applying ``desired`` (with its spec-hash annotation) would change nothing."""
    if live is None:
        return False
    want = ((desired.get("metadata") or {}).get("annotations") or {}).get(
        naming.SPEC_HASH_ANNOTATION
    )
    have = ((live.get("metadata") or {}).get("annotations") or {}).get(naming.SPEC_HASH_ANNOTATION)
    if want is None or want != have:
        return False
    body = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind", "status")}
    return contains(live, body)
