"""``pynomaly-operator``: kopf's own command line with the operator's handlers preloaded.

``pynomaly-operator run --all-namespaces`` or ``--namespace NS``; every other kopf option
(``--liveness``, ``--standalone``, ``--verbose`` ...) passes through unchanged. The usual
kubeconfig (``KUBECONFIG``) or in-cluster service account is used.
"""

from __future__ import annotations

import sys
from typing import NoReturn

MODULE = "pynomaly_operator.reconciling.handlers"


def main(argv: list[str] | None = None) -> NoReturn:
    from kopf import cli  # heavy import; only when the command runs

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "run" and MODULE not in args:
        args = ["run", "-m", MODULE, *args[1:]]
    # click exits the process itself (standalone mode), as kopf's own entry point does.
    cli.main.main(args=args, prog_name="pynomaly-operator", standalone_mode=True)


if __name__ == "__main__":
    main()
