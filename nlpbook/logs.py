"""Reading a run's training log back, across resumes.

Each ``train`` call (the first and every resume) logs to its own ``logs/version_N/metrics.csv``:
Lightning's CSV logger would otherwise clear the earlier file on resume and the learning curve
before a disconnect would be lost.
"""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["training_log"]


def training_log(model_dir: str | Path) -> list[dict[str, float]]:
    """All logged rows of a run (every resume included), in step order; empty cells left out."""
    folder = Path(model_dir).expanduser() / "logs"
    files = sorted(folder.glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
    rows: list[dict[str, float]] = []
    for path in files:
        with open(path, encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                rows.append({key: float(value) for key, value in row.items() if value not in ("", None)})
    return sorted(rows, key=lambda row: row.get("step", 0))
