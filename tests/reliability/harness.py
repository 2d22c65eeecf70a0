"""Run ``nlpbook train`` with a probe on every training step, for the kill -9 / resume tests.

``python harness.py RECORD SLOW_FROM -- <nlpbook CLI arguments>`` appends one JSON line per
training step to RECORD (step, batch, examples, learning rate, Adam state, loss) and, from global
step SLOW_FROM on (-1: never), sleeps half a second per step so the test can kill it mid-epoch.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from nlpbook import module
from nlpbook.cli import main


def probe(record: str, slow_from: int) -> None:
    original = module.TaskModule.training_step

    def training_step(self: Any, batch: dict, batch_idx: int) -> Any:
        optimizer = self.trainer.optimizers[0]
        parameter = optimizer.param_groups[0]["params"][0]
        state = optimizer.state.get(parameter, {})
        loss = original(self, batch, batch_idx)
        row = {
            "step": self.global_step,
            "epoch": self.current_epoch,
            "batch_idx": batch_idx,
            "examples": batch["feature_index"].tolist(),
            "lr": optimizer.param_groups[0]["lr"],
            "adam_step": float(state["step"]) if "step" in state else 0.0,
            "exp_avg": float(state["exp_avg"].abs().sum()) if "exp_avg" in state else 0.0,
            "loss": float(loss),
        }
        with open(record, "a", encoding="utf-8") as file:
            file.write(json.dumps(row) + "\n")
        if 0 <= slow_from <= self.global_step:
            time.sleep(0.5)
        return loss

    module.TaskModule.training_step = training_step


if __name__ == "__main__":
    probe(sys.argv[1], int(sys.argv[2]))
    sys.exit(main(sys.argv[4:]))
