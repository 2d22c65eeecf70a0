"""A signal or a crash loses nothing beyond the last optimizer step, also with gradient
accumulation; run folders are never silently reused; a resume cannot change what the run is.

The reference is an uninterrupted in-process run with ``gradient_accumulation_steps=2``; every
interrupted run resumes to exactly its weights.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

import nlpbook
from nlpbook.classification import ClassificationTrainArguments
from nlpbook.errors import ArgumentError, TrainingInterrupted
from nlpbook.module import TaskModule
from reliability.files import file_text, write

# 96 rows / batch 8 = 12 batches an epoch, 2 batches a step: 6 optimizer steps an epoch, 12 in all.
RUN: dict[str, Any] = {
    "batch_size": 8,
    "gradient_accumulation_steps": 2,
    "learning_rate": 3e-3,
    "epochs": 2,
    "seed": 7,
    "accelerator": "cpu",
    "save_every_n_minutes": None,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("stop-data")
    train = write(folder / "train.tsv", file_text("classification", n=96, seed=1))
    test = write(folder / "test.tsv", file_text("classification", n=32, seed=2))
    return {"train_file": str(train), "test_file": str(test)}


def arguments(
    tiny_bert: Path, data: dict[str, str], model_dir: Path, **extra: Any
) -> ClassificationTrainArguments:
    return ClassificationTrainArguments(
        pretrained_model_name=str(tiny_bert), downstream_model_dir=str(model_dir), **data, **{**RUN, **extra}
    )


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = weights(a), weights(b)
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.fixture(scope="module")
def reference(tiny_bert: Path, data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = tmp_path_factory.mktemp("stop-reference") / "run"
    nlpbook.train(arguments(tiny_bert, data, model_dir))
    return model_dir / "last.ckpt"


def interrupt_at(monkeypatch: pytest.MonkeyPatch, step: int, batch_parity: int, action: Any) -> None:
    """Call ``action()`` in the training batch of ``step`` whose index has ``batch_parity``:
    parity 0 is the first batch of an accumulation window (no optimizer step at its end)."""
    original = TaskModule.training_step

    def training_step(self: Any, batch: Any, batch_idx: int) -> Any:
        if self.global_step == step and batch_idx % 2 == batch_parity:
            action()
        return original(self, batch, batch_idx)

    monkeypatch.setattr(TaskModule, "training_step", training_step)


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "Ctrl-C"]
)
def test_a_signal_mid_window_stops_at_the_next_step_with_a_checkpoint(
    tiny_bert, data, reference, tmp_path, monkeypatch, signum, code
) -> None:
    args = arguments(tiny_bert, data, tmp_path / "run")
    interrupt_at(monkeypatch, 7, 0, lambda: os.kill(os.getpid(), signum))
    with pytest.raises(TrainingInterrupted) as stopped:
        nlpbook.train(args)
    monkeypatch.undo()
    assert stopped.value.exit_code == code and stopped.value.step == 8
    assert "continue it with resume=True, nothing is lost" in str(stopped.value)
    state = torch.load(args.model_dir / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["global_step"] == 8 and state["nlpbook_position"] == {"epoch": 1, "batches": 4}
    assert (
        signal.getsignal(signal.SIGTERM) is not None
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    nlpbook.train(replace(args, resume=True))
    assert_same_weights(args.model_dir / "last.ckpt", reference)


@pytest.mark.parametrize("trigger", ["save_every_n_steps", "save_every_n_minutes"])
def test_periodic_checkpoints_fall_on_step_boundaries(
    tiny_bert, data, reference, tmp_path, monkeypatch, trigger
):
    """Saved every 3 steps (or every 60 µs: every step, as a step takes milliseconds), crashed
    mid-window, resumed: identical."""
    extra = {"save_every_n_steps": 3} if trigger == "save_every_n_steps" else {"save_every_n_minutes": 1e-6}
    args = arguments(tiny_bert, data, tmp_path / "run", **extra)

    def crash() -> None:
        raise RuntimeError("simulated crash")

    interrupt_at(monkeypatch, 10, 1, crash)  # the second batch of the window that would make step 10
    with pytest.raises(RuntimeError, match="simulated crash"):
        nlpbook.train(args)
    monkeypatch.undo()
    state = torch.load(args.model_dir / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["global_step"] == (9 if trigger == "save_every_n_steps" else 10)
    assert state["nlpbook_position"]["batches"] % 2 == 0, "a checkpoint inside an accumulation window"
    nlpbook.train(replace(args, resume=True))
    assert_same_weights(args.model_dir / "last.ckpt", reference)


def test_a_folder_with_an_earlier_run_is_refused_unless_asked(tiny_bert, data, tmp_path) -> None:
    folder = tmp_path / "run"
    mine = write(folder / "export" / "my-notes.txt", "a user's file")  # checkpoints deleted by the user
    args = arguments(tiny_bert, data, folder, max_steps=2)
    with pytest.raises(ArgumentError, match=r"already holds a run \(export\).*overwrite_model_dir=True"):
        nlpbook.train(args)
    assert mine.read_text() == "a user's file"
    write(folder / ".export-x1y2" / "model.safetensors", "a staging copy left by a killed export")
    nlpbook.train(replace(args, overwrite_model_dir=True))
    assert not mine.exists() and (folder / "export" / "nlpbook.json").is_file()
    assert not (folder / ".export-x1y2").exists(), "a killed export's staging copy is cleaned up"


def test_a_resume_cannot_change_the_run_but_may_extend_it(tiny_bert, data, tmp_path) -> None:
    train = write(tmp_path / "train.tsv", file_text("classification", n=96, seed=1))
    test = write(tmp_path / "test.tsv", file_text("classification", n=16, seed=2))
    args = arguments(
        tiny_bert, {"train_file": str(train), "test_file": str(test)}, tmp_path / "run", max_steps=2
    )
    nlpbook.train(args)
    original = (args.model_dir / "train_args.json").read_text(encoding="utf-8")
    with pytest.raises(ArgumentError, match=r"max_seq_length 128 -> 64; learning_rate 0.003 -> 0.01"):
        nlpbook.train(replace(args, resume=True, max_seq_length=64, learning_rate=1e-2))
    for path, n, seed in ((train, 96, 1), (test, 16, 2)):  # the same files, with new labels
        write(path, file_text("classification", n=n, seed=seed).replace("\t1\n", "\tyes\n"))
    with pytest.raises(ArgumentError, match=r"labels \['0', 'yes'\] are not the run's \['0', '1'\]"):
        nlpbook.train(replace(args, resume=True))
    for path, n, seed in ((train, 96, 1), (test, 16, 2)):
        write(path, file_text("classification", n=n, seed=seed))

    nlpbook.train(replace(args, resume=True, max_steps=4, cpu_workers=0, save_every_n_steps=1))
    assert (args.model_dir / "train_args.json").read_text(encoding="utf-8") == original
    record = json.loads((args.model_dir / "resumes.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert record["changed"] == {"max_steps": [2, 4], "save_every_n_steps": [None, 1]}


def test_the_command_line_says_how_to_resume_in_one_line(
    tiny_bert, data, tmp_path, monkeypatch, caplog
) -> None:
    from nlpbook.cli import main

    interrupt_at(monkeypatch, 2, 0, lambda: os.kill(os.getpid(), signal.SIGTERM))
    options = {"pretrained_model_name": tiny_bert, **data, **RUN, "downstream_model_dir": tmp_path / "run"}
    argv = [item for key, value in options.items() if value is not None for item in (f"--{key}", str(value))]
    assert main(["train", "classification", *argv]) == 143
    errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0] and "stopped by SIGTERM at step 3" in errors[0], errors
    assert "continue it with --resume, nothing is lost" in errors[0]
