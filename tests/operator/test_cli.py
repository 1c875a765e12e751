"""``pynomaly-operator``: kopf's CLI with the handlers preloaded; kopf options pass through."""

from __future__ import annotations

import pathlib
import subprocess
import sys

OPERATOR = pathlib.Path(sys.executable).with_name("pynomaly-operator")


def test_run_help_lists_kopf_options() -> None:
    done = subprocess.run(
        [str(OPERATOR), "run", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    for option in ("--all-namespaces", "--namespace", "--liveness", "--standalone"):
        assert option in done.stdout


def test_handlers_module_registers_without_finalizer_handlers() -> None:
    import kopf

    from pynomaly_operator.reconciling import handlers

    registry = kopf.get_default_registry()
    assert handlers.detectors is not None
    # No delete handlers, timers or daemons: nothing that makes kopf add a finalizer.
    assert not list(registry._spawning.get_all_handlers())
    assert not list(registry._changing.get_all_handlers())
