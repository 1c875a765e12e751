"""Runs Argo CD health scripts with the real Lua interpreter against Python objects.

Argo CD hands a health script the live resource as the global ``obj``. Here the resource (a
JSON-like Python value) is written out as a Lua table literal, so no Lua JSON library is needed:
the script under test runs exactly as committed.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

LUA = "lua5.4"


def literal(value: Any) -> str:
    """A Lua expression for a JSON value (``None`` → ``nil``: absent, as Argo CD sees it)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"not a JSON number: {value!r}")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "{" + ", ".join(literal(v) for v in value) + "}"
    if isinstance(value, dict):
        items = (f"[{literal(str(k))}] = {literal(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"cannot express {type(value).__name__} in Lua")


def _string(text: str) -> str:
    # Lua 5.1-5.4 decimal escapes for controls, quotes and backslashes; other characters pass
    # through as UTF-8 bytes, which Lua strings carry unchanged.
    out = []
    for ch in text:
        if ch in '"\\' or ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\{ord(ch):03d}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def run_health(script: Path, obj: dict[str, Any], *, timeout: float = 10.0) -> dict[str, str]:
    """Run ``script`` with global ``obj`` set; return the ``hs`` table it returns."""
    if shutil.which(LUA) is None:
        raise RuntimeError(f"{LUA} is not installed (make system-deps)")
    program = (
        f"obj = {literal(obj)}\n"
        f"local hs = dofile({literal(str(script))})\n"
        'io.write(tostring(hs.status), "\\n", tostring(hs.message))\n'
    )
    done = subprocess.run(
        [LUA, "-"], input=program, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"lua failed:\n{done.stderr}")
    status, _, message = done.stdout.partition("\n")
    return {"status": status, "message": message}
