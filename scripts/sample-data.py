#!/usr/bin/env python3
"""Writes the demo's small data sets into manifests/samples/data/ (deterministic, seed 7).

training.csv: 400 ordinary card payments (amount in EUR, hour of day, items in the basket).
score.csv: 12 rows to score, three of them obviously anomalous (a 9,000 EUR basket at 3 am, ...),
marked by the ``expected`` column so the demo can show what it should find. Re-running this
script reproduces the committed files byte for byte.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "manifests" / "samples" / "data"
HEADER = "amount,hour,items"


def ordinary(rng: random.Random) -> tuple[float, float, float]:
    """One everyday payment: tens of euros, daytime, a few items."""
    amount = max(2.0, rng.gauss(45.0, 15.0))
    hour = min(22.0, max(7.0, rng.gauss(14.0, 3.0)))
    items = float(max(1, round(amount / 15.0 + rng.gauss(0.0, 0.8))))
    return round(amount, 2), round(hour, 1), items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA, help="directory to write into")
    out: Path = parser.parse_args().out
    rng = random.Random(7)  # noqa: S311  (reproducible demo data, not secrets)
    out.mkdir(parents=True, exist_ok=True)
    training = [ordinary(rng) for _ in range(400)]
    (out / "training.csv").write_text(
        HEADER + "\n" + "".join(f"{a},{h},{i:g}\n" for a, h, i in training)
    )
    anomalies = [(9000.0, 3.0, 1.0), (4200.5, 4.5, 60.0), (15.0, 2.0, 45.0)]
    rows = [(*ordinary(rng), 0) for _ in range(9)]
    for position, row in zip((2, 6, 10), anomalies, strict=True):
        rows.insert(position, (*row, 1))
    (out / "score.csv").write_text(
        HEADER + ",expected\n" + "".join(f"{a},{h},{i:g},{e}\n" for a, h, i, e in rows)
    )
    print(f"wrote {out}/training.csv (400 rows) and score.csv (12 rows, 3 anomalies)")


if __name__ == "__main__":
    main()
