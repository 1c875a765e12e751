"""The pod's shared model-usage file: workers' counts add up, the most used model ranks first,
old use decays, and an unreadable file costs warm starts, never an error."""

from __future__ import annotations

import json
from pathlib import Path

from pynomaly_detector.caching import usage
from pynomaly_detector.caching.usage import ModelUsage


def test_workers_counts_add_up_and_rank_the_most_used_first(tmp_path: Path) -> None:
    first, second = ModelUsage(str(tmp_path)), ModelUsage(str(tmp_path))
    for _ in range(3):
        first.touch("a")
    first.touch("b")
    second.touch("b")
    second.touch("b")
    second.touch("b")
    first.save()
    second.save()
    restarted = ModelUsage(str(tmp_path))
    assert restarted.ranked() == ["b", "a"]  # 4 uses of b across two workers, 3 of a
    assert not list(tmp_path.glob("*.json")), "the probe listener reads *.json as workers"


def test_old_use_decays_and_is_forgotten(tmp_path: Path) -> None:
    hour_ago = 1_000_000.0
    now = hour_ago + usage.HALF_LIFE_SECONDS * 2
    (tmp_path / usage.FILE_NAME).write_text(
        json.dumps(
            {
                "busy-yesterday": [100.0, hour_ago, now - usage.FORGET_SECONDS - 1],
                "busy-before": [100.0, hour_ago, hour_ago],
                "now": [30.0, now, now],
            }
        )
    )
    entries = usage._decayed(ModelUsage(str(tmp_path))._read(), now)
    assert "busy-yesterday" not in entries
    assert entries["busy-before"][0] == 25.0  # two half-lives
    assert sorted(entries, key=lambda name: -entries[name][0]) == ["now", "busy-before"]


def test_an_unreadable_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / usage.FILE_NAME).write_text("{not json")
    counter = ModelUsage(str(tmp_path))
    counter.touch("a")
    assert counter.ranked() == ["a"]
    counter.save()
    assert ModelUsage(str(tmp_path)).ranked() == ["a"]


def test_without_a_directory_only_this_process_counts() -> None:
    counter = ModelUsage(None)
    counter.touch("x")
    counter.save()
    assert counter.ranked() == ["x"]
