"""The one switch that rewrites golden files: ``UPDATE_GOLDEN=1 pytest ...``.

Every golden-file test reads it from here, so one variable accepts every intended change
(review the diff before committing it).
"""

from __future__ import annotations

import os

VARIABLE = "UPDATE_GOLDEN"
UPDATE = os.environ.get(VARIABLE) == "1"
