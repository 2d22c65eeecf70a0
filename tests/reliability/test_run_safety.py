"""Two runs never share a model folder; checkpoints come often enough; features are never stale."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tiny_bert import build_tiny_bert
from transformers import AutoTokenizer

import nlpbook
from nlpbook import commands
from nlpbook.checkpoints import LastCheckpoint
from nlpbook.classification import ClassificationTrainArguments
from nlpbook.classification.task import TASK
from nlpbook.rundir import ModelDirBusyError, run_lock
from reliability.files import file_text, write

HOLD_LOCK = """
import sys, time
from pathlib import Path
from nlpbook.rundir import run_lock
with run_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


def arguments(model: Path, folder: Path, run: str = "run", **extra: Any) -> ClassificationTrainArguments:
    return ClassificationTrainArguments(
        pretrained_model_name=str(model),
        downstream_model_dir=str(folder / run),
        train_file=str(folder / "train.tsv"),
        test_file=str(folder / "test.tsv"),
        **extra,
    )


def test_a_second_run_on_the_same_folder_is_refused_until_the_first_dies(
    tiny_bert, tmp_path, monkeypatch
) -> None:
    args = arguments(tiny_bert, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(args.model_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ModelDirBusyError, match=rf"in use by another nlpbook run \(pid {holder.pid} on "):
            nlpbook.train(args)
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # dies holding the lock: it must not stay locked
        holder.wait()
    monkeypatch.setattr(commands, "_train", lambda args, task, group, resume_from: "trained")
    assert nlpbook.train(args) == "trained"
    with run_lock(args.model_dir):  # a run in this very process (another notebook thread)
        with pytest.raises(ModelDirBusyError, match="in use by another nlpbook run in this process"):
            nlpbook.train(args)
    assert nlpbook.train(args) == "trained"


def fake_trainer(step: int) -> Any:
    saved: list[int] = []
    trainer = SimpleNamespace(
        global_step=step,
        sanity_checking=False,
        fast_dev_run=False,
        world_size=1,  # one process: the stop and save flags need no reduce
    )
    trainer.save_checkpoint = lambda path, weights_only=None: saved.append(trainer.global_step)
    return trainer, saved


def test_last_checkpoint_every_n_minutes_and_steps(monkeypatch, tmp_path) -> None:
    """Saves when either the step count or the clock says so, once per optimizer step at most."""
    clock = [0.0]
    monkeypatch.setattr("nlpbook.checkpoints.time.monotonic", lambda: clock[0])
    callback = LastCheckpoint(tmp_path / "last.ckpt", every_n_steps=100, every_n_minutes=30)
    trainer, saved = fake_trainer(0)
    callback.on_train_start(trainer, None)
    for step in range(1, 251):
        callback.on_train_batch_start(trainer)  # an accumulation batch: no optimizer step, no save
        clock[0] += 30.0
        callback.on_train_batch_end(trainer)
        callback.on_train_batch_start(trainer)  # the batch that ends the window steps the optimizer
        trainer.global_step = step
        clock[0] += 30.0  # one minute per step
        callback.on_train_batch_end(trainer)
    assert saved == [30, 60, 90, 100, 130, 160, 190, 200, 230]  # the clock restarts at every save
    callback.on_train_end(trainer, None)
    assert saved[-1] == 250


def test_save_every_n_minutes_defaults_to_30() -> None:
    assert ClassificationTrainArguments(downstream_model_dir="x").save_every_n_minutes == 30


def test_changed_data_or_tokenizer_is_picked_up_on_the_next_run(tmp_path, monkeypatch) -> None:
    """nlpbook tokenizes in memory on every run (no feature cache), so nothing can be stale."""
    model = build_tiny_bert(tmp_path / "model")
    write(tmp_path / "train.tsv", file_text("classification", n=32, seed=1))
    write(tmp_path / "test.tsv", file_text("classification", n=10, seed=2))
    encoded: list[list[list[int]]] = []
    real_encode = TASK.encode

    def spy(examples, tokenizer, *rest, **kwargs):
        features = real_encode(examples, tokenizer, *rest, **kwargs)
        encoded.append([f["input_ids"] for f in features])
        return features

    monkeypatch.setattr(TASK, "encode", spy)
    quick = {"max_steps": 1, "epochs": 1, "overwrite_cache": False}
    nlpbook.train(arguments(model, tmp_path, "run1", **quick))

    # New data in the same file, a new vocabulary in the same model folder.
    write(tmp_path / "train.tsv", file_text("classification", n=32, seed=5))
    words = [f"{w}{n}" for n in range(50) for w in ("가", "나다", "라마바")]
    build_tiny_bert(tmp_path / "model", texts=words)
    args = arguments(model, tmp_path, "run2", **quick)
    nlpbook.train(args)
    tokenizer = AutoTokenizer.from_pretrained(model)
    fresh = [f["input_ids"] for f in real_encode(TASK.read(args, "train"), tokenizer, None, args)]
    assert encoded[2] == fresh != encoded[0]

    write(tmp_path / "test.tsv", file_text("classification", n=7, seed=3))
    assert nlpbook.evaluate(args)["examples"] == 7  # the edited test file, not a remembered one
    assert not [p for p in tmp_path.rglob("*") if "cache" in p.name.lower()]


def test_failed_export_write_keeps_the_previous_export(tiny_bert, tmp_path, monkeypatch) -> None:
    from nlpbook.export import read_export, write_export

    args = arguments(tiny_bert, tmp_path)
    model = TASK.head.model_class().from_pretrained(tiny_bert, num_labels=2)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    export = write_export(args.model_dir / "export", model, tokenizer, TASK, ["0", "1"], args)

    def full_disk(*a: Any, **k: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tokenizer, "save_pretrained", full_disk)  # fails after the weights are written
    with pytest.raises(OSError, match="No space left"):
        write_export(export, model, tokenizer, TASK, ["negative", "positive"], args)
    assert read_export(export).label_names == ["0", "1"]  # the previous export, complete
    assert [p.name for p in args.model_dir.iterdir()] == ["export"]  # no staging folder left
