"""Stopping the server processes the fixtures start: politely first, bounded, then by force."""

from __future__ import annotations

import subprocess


def terminate(process: subprocess.Popen[bytes] | None, *, timeout: float = 10) -> None:
    """SIGTERM ``process`` and wait up to ``timeout`` s; SIGKILL if it does not exit by then."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
