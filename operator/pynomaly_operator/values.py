"""Two primitives every layer needs: a short stable hash and a lenient integer.

``short_hash`` names content in annotations (the spec hash of an applied object, the hash of
settings and config files that rolls pods, the hash of the generated Secrets' UIDs);
``as_int`` reads counters and versions from raw Kubernetes JSON, where a field may be
missing, ``null`` or a string (``resourceVersion``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def short_hash(value: Any) -> str:
    """The first 16 hex digits of the SHA-256 of ``value`` (text as is, anything else as
    canonical JSON with sorted keys)."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def as_int(value: Any) -> int:
    """``value`` as an int, 0 when it is missing or not a number (``True`` is not a count)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return 0
    return 0
