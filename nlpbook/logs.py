"""Reading a run's training log back, across resumes.

Each ``train`` call (the first and every resume) logs to its own ``logs/version_N/metrics.csv``:
Lightning's CSV logger would otherwise clear the earlier file on resume and the learning curve
before a disconnect would be lost. A resumed run starts again at its checkpoint's step, so the
steps an interrupted run logged after that checkpoint are trained (and logged) twice; each
version notes the step it started at (``start_step``), and the rows of the run that continued win.
"""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["training_log", "START_STEP_FILE"]

START_STEP_FILE = "start_step"


def training_log(model_dir: str | Path) -> list[dict[str, float]]:
    """Every logged row of a run, resumes included, in step order; empty cells left out; rows an
    interrupted run logged past the step its resume restarted from are replaced by the resume's."""
    folder = Path(model_dir).expanduser() / "logs"
    files = sorted(folder.glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
    rows: list[dict[str, float]] = []
    for path in files:
        with open(path, encoding="utf-8", newline="") as handle:
            new = [
                {key: float(value) for key, value in row.items() if value not in ("", None)}
                for row in csv.DictReader(handle)
            ]
        start = _start_step(path.parent, new)
        if start is not None:
            rows = [row for row in rows if row.get("step", 0) < start]
        rows += new
    return sorted(rows, key=lambda row: row.get("step", 0))


def _start_step(version: Path, rows: list[dict[str, float]]) -> float | None:
    marker = version / START_STEP_FILE
    if marker.is_file():
        return float(marker.read_text(encoding="utf-8").strip() or 0)
    steps = [row["step"] for row in rows if "step" in row]  # runs from before the marker existed
    return min(steps) if steps else None
