"""Interrupted runs lose nothing beyond the last checkpoint, and resume as if never stopped.

One uninterrupted run (a subprocess, module fixture) is the reference. Each interruption (kill -9,
a checkpoint write that fails halfway, a full disk, a NaN loss) is followed by ``resume=True``
and must end with the reference's weights, having replayed the reference's batches, learning
rates and Adam state from the checkpoint's step on.
"""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

import nlpbook
from nlpbook import commands
from nlpbook.checkpoints import AtomicCheckpointIO
from nlpbook.classification import ClassificationTrainArguments
from nlpbook.errors import CheckpointWriteError
from nlpbook.module import NonFiniteLossError
from reliability.files import file_text, write

HARNESS = Path(__file__).with_name("harness.py")
RUN: dict[str, Any] = {"batch_size": 16, "learning_rate": 3e-3, "epochs": 2, "seed": 7, "accelerator": "cpu"}
STEPS = 26  # 200 examples / 16 = 13 batches per epoch, 2 epochs


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("reliability-data")
    train = write(folder / "train.tsv", file_text("classification", n=200, seed=1))
    test = write(folder / "test.tsv", file_text("classification", n=64, seed=2))
    return {"train_file": str(train), "test_file": str(test)}


def cli_arguments(tiny_bert: Path, data: dict[str, str], model_dir: Path, **extra: Any) -> list[str]:
    values = {"pretrained_model_name": str(tiny_bert), **data, **RUN, **extra}
    flat = [item for key, value in values.items() for item in (f"--{key}", str(value))]
    return ["train", "classification", *flat, "--downstream_model_dir", str(model_dir)]


def harness(record: Path, slow_from: int, arguments: list[str]) -> subprocess.Popen:
    command = [sys.executable, str(HARNESS), str(record), str(slow_from), "--", *arguments]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def records(path: Path) -> dict[int, dict[str, Any]]:
    return {row["step"]: row for row in map(json.loads, path.read_text().splitlines())}


def checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = checkpoint(a)["state_dict"], checkpoint(b)["state_dict"]
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.fixture(scope="module")
def reference(tiny_bert: Path, data, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The uninterrupted run: its last.ckpt and one probe record per training step."""
    folder = tmp_path_factory.mktemp("reference")
    process = harness(folder / "steps.jsonl", -1, cli_arguments(tiny_bert, data, folder / "run"))
    _, errors = process.communicate(timeout=300)
    assert process.returncode == 0, errors[-3000:]
    return folder / "run", records(folder / "steps.jsonl")


def in_process_arguments(
    tiny_bert: Path, data, model_dir: Path, **extra: Any
) -> ClassificationTrainArguments:
    return ClassificationTrainArguments(
        pretrained_model_name=str(tiny_bert), downstream_model_dir=str(model_dir), **data, **RUN, **extra
    )


def test_reference_keeps_one_current_last_checkpoint(reference) -> None:
    run, steps = reference
    assert sorted(p.name for p in run.glob("last*.ckpt")) == ["last.ckpt"]  # no stale last-v1.ckpt
    assert checkpoint(run / "last.ckpt")["global_step"] == STEPS == len(steps)


def test_kill_9_mid_epoch_then_resume_equals_the_uninterrupted_run(tiny_bert, data, reference, tmp_path):
    run, reference_steps = reference
    model_dir = tmp_path / "run"
    # A DataLoader worker process: it outlives the killed parent for seconds and must neither keep
    # the folder locked nor change the data order (the reference runs without workers).
    arguments = cli_arguments(tiny_bert, data, model_dir, save_every_n_steps=5, cpu_workers=1)
    # Slow down from step 15 (mid epoch 2) so the kill lands between checkpoints.
    process = harness(tmp_path / "killed.jsonl", 15, arguments)
    deadline = time.monotonic() + 240
    saved = 0
    while saved < 15:
        assert process.poll() is None, process.stderr.read()[-3000:] if process.stderr else ""
        assert time.monotonic() < deadline, "no step-15 checkpoint in time"
        time.sleep(0.05)
        if (model_dir / "last.ckpt").is_file():
            saved = checkpoint(model_dir / "last.ckpt")["global_step"]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    state = checkpoint(model_dir / "last.ckpt")
    step = state["global_step"]
    assert step % 5 == 0 and 13 < step < STEPS  # mid epoch 2, on a save_every_n_steps boundary
    assert state["nlpbook_position"] == {"epoch": 1, "batches": step - 13}
    assert not (model_dir / "export").exists()

    resumed = harness(tmp_path / "resumed.jsonl", -1, [*arguments, "--resume", "true"])
    _, errors = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, errors[-3000:]
    steps = records(tmp_path / "resumed.jsonl")
    assert sorted(steps) == list(range(step, STEPS))  # continues at the saved step, none twice
    for n, row in steps.items():
        expected = reference_steps[n]
        assert row["examples"] == expected["examples"], f"step {n}: other batch than the reference"
        assert row["lr"] == pytest.approx(expected["lr"], rel=1e-9), f"step {n}: scheduler state"
        assert row["adam_step"] == expected["adam_step"], f"step {n}: optimizer state"
        assert row["exp_avg"] == pytest.approx(expected["exp_avg"], rel=1e-5), f"step {n}: Adam moments"
        assert row["loss"] == pytest.approx(expected["loss"], rel=1e-5), f"step {n}: dropout or weights"
    assert_same_weights(model_dir / "last.ckpt", run / "last.ckpt")
    assert (model_dir / "export" / "model.safetensors").is_file()


def test_checkpoint_write_failing_halfway_keeps_the_previous_one(
    tiny_bert, data, reference, tmp_path, monkeypatch
) -> None:
    args = in_process_arguments(tiny_bert, data, tmp_path / "run", save_every_n_steps=2)
    real_save, calls = torch.save, []

    def save_half_then_fail(obj: Any, file: Any, *rest: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) < 3:
            return real_save(obj, file, *rest, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer)
        file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(CheckpointWriteError, match=r"last.ckpt \(No space left on device.*was not replaced"):
        nlpbook.train(args)
    monkeypatch.undo()
    assert checkpoint(args.model_dir / "last.ckpt")["global_step"] == 4  # the third save (step 6) failed
    assert not list(args.model_dir.glob(".*.tmp-*")) and not (args.model_dir / "export").exists()

    nlpbook.train(replace(args, resume=True))
    assert_same_weights(args.model_dir / "last.ckpt", reference[0] / "last.ckpt")


def test_full_disk_keeps_the_last_checkpoint_loadable(tiny_bert, data, tmp_path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    # room for train_args, logs, one top-k checkpoint and last.ckpt, not for the temp copy of the next
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2600k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        args = in_process_arguments(tiny_bert, data, disk / "run", save_every_n_steps=2)
        with pytest.raises(CheckpointWriteError, match="MiB free there"):
            nlpbook.train(args)
        step = checkpoint(args.model_dir / "last.ckpt")["global_step"]
        assert 0 < step < STEPS
        assert not list(args.model_dir.glob(".*.tmp-*")) and not (args.model_dir / "export").exists()
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_state(
    tiny_bert, data, reference, tmp_path, monkeypatch
) -> None:
    args = in_process_arguments(tiny_bert, data, tmp_path / "run", save_every_n_steps=2)
    real_load, forwards = commands.load_pretrained, []

    def poisoned(*a: Any, **k: Any) -> Any:
        tokenizer, model = real_load(*a, **k)

        def hook(module: Any, inputs: Any, output: Any) -> Any:
            if module.training:
                forwards.append(1)
                if len(forwards) == 10:  # global step 9
                    output.loss = output.loss * float("nan")
            return output

        model.register_forward_hook(hook)
        return tokenizer, model

    monkeypatch.setattr(commands, "load_pretrained", poisoned)
    with pytest.raises(NonFiniteLossError, match="loss became nan at global step 9: lower learning_rate"):
        nlpbook.train(args)
    monkeypatch.undo()
    state = checkpoint(args.model_dir / "last.ckpt")
    assert state["global_step"] == 8
    assert all(torch.isfinite(t).all() for t in state["state_dict"].values())
    assert not (args.model_dir / "export").exists()  # no export of a broken run

    nlpbook.train(replace(args, resume=True))
    assert_same_weights(args.model_dir / "last.ckpt", reference[0] / "last.ckpt")


def test_checkpoint_with_nan_weights_is_never_written(tmp_path) -> None:
    path = write(tmp_path / "last.ckpt", b"previous")
    with pytest.raises(NonFiniteLossError, match="weight w is NaN/inf; last.ckpt was not written"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.tensor([1.0, float("inf")])}}, path)
    assert path.read_bytes() == b"previous"
