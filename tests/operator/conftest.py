"""The control-plane fixtures (``crd``, ``kube``, ``operator``) for every operator test module.

They are defined beside the tests that introduced them (``test_operator_cluster``); importing
them here makes them available to the other cluster tests of this package by name.
"""

from __future__ import annotations

from tests.operator.test_operator_cluster import crd, kube, operator

__all__ = ["crd", "kube", "operator"]
