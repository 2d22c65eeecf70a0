"""One process of a run that torchrun started (tests/test_multinode.py): ``nlpbook train ...`` exactly
as the command line runs it, plus a record, per rank, of the batches it trained on (rows and loss)
and of the run folder's owner-only steps it took (the lock, ``train_args.json``, the export).

Usage: torchrun ... tests/multinode_worker.py <record folder> train classification --...
With ``HOLD_AT=<rank>:<step>`` that rank stops before training that step, writes ``held`` into the
record folder and waits there, for the test to kill its machine at a known point.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def main() -> int:
    folder, rank = Path(sys.argv[1]), int(os.environ["RANK"])
    (folder / f"pid{rank}").write_text(
        str(os.getpid()), encoding="utf-8"
    )  # torchrun gives it its own session
    hold = os.environ.get("HOLD_AT")
    hold_rank, hold_step = (int(part) for part in hold.split(":")) if hold else (-1, -1)

    def note(**entry: Any) -> None:
        with open(folder / f"rank{rank}.jsonl", "a", encoding="utf-8") as file:
            file.write(json.dumps(entry) + "\n")

    import nlpbook.commands as commands
    from nlpbook.cli import main as cli_main
    from nlpbook.module import TaskModule

    def spy(name: str) -> Any:
        original = getattr(commands, name)

        def called(*args: Any, **kwargs: Any) -> Any:
            note(call=name)
            return original(*args, **kwargs)

        return called

    for name in ("run_lock", "record_run", "write_export"):
        setattr(commands, name, spy(name))

    batch_start, batch_end = TaskModule.on_train_batch_start, TaskModule.on_train_batch_end

    @functools.wraps(batch_start)
    def on_train_batch_start(self: TaskModule, batch: Any, batch_idx: int) -> None:
        if (rank, self.global_step) == (hold_rank, hold_step):
            (folder / "held").touch()
            time.sleep(3600)
        self.noted = {
            "epoch": self.current_epoch,
            "step": self.global_step,
            "rows": batch["feature_index"].tolist(),
        }
        batch_start(self, batch, batch_idx)

    @functools.wraps(batch_end)
    def on_train_batch_end(self: TaskModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        note(**self.noted, loss=float(outputs["loss"]))
        batch_end(self, outputs, batch, batch_idx)

    TaskModule.on_train_batch_start = on_train_batch_start  # type: ignore[method-assign]
    TaskModule.on_train_batch_end = on_train_batch_end  # type: ignore[method-assign]
    return cli_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
