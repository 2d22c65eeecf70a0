"""The first hour of a new user, through the CLI: every error is one line with exit 2 and a hint,
warnings reach the screen, and a run prints nothing the user did not ask for.

Most error cases run ``nlpbook.cli.main`` in this process and fail before any model loads; the
ones whose point is the process's real output (the hub without a network, a whole training run)
run ``python -m nlpbook.cli`` as a subprocess and read both streams.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import write_tsv
from tiny_bert import toy_sentiment

from nlpbook.cli import main
from nlpbook.logs import training_log

Case = Callable[[dict[str, Any]], list[str]]


def train_options(env: dict[str, Any], **options: str) -> list[str]:
    values = {
        "pretrained_model_name": str(env["tiny_bert"]),
        "downstream_corpus_root_dir": str(env["nsmc_root"]),
        "downstream_model_dir": str(env["tmp"] / "run"),
        **options,
    }
    return ["train", "classification"] + [
        item for key, value in values.items() for item in (f"--{key}", value)
    ]


def env_of(tiny_bert: Path, nsmc_root: Path, tmp: Path) -> dict[str, Any]:
    return {"tiny_bert": tiny_bert, "nsmc_root": nsmc_root, "tmp": tmp}


def no_weights(env: dict[str, Any]) -> list[str]:
    folder = shutil.copytree(
        env["tiny_bert"], env["tmp"] / "model", ignore=shutil.ignore_patterns("*.safetensors")
    )
    return train_options(env, pretrained_model_name=str(folder))


def model_dir_is_a_file(env: dict[str, Any]) -> list[str]:
    (env["tmp"] / "run").write_text("not a folder")
    return train_options(env)


def model_dir_read_only(env: dict[str, Any]) -> list[str]:
    if os.geteuid() == 0:  # root writes anywhere a permission bit forbids; /sys refuses even root
        return train_options(env, downstream_model_dir="/sys/nlpbook-test-run")
    folder = env["tmp"] / "locked"
    folder.mkdir(mode=0o555)
    return train_options(env, downstream_model_dir=str(folder / "run"))


def config(text: str) -> Case:
    def build(env: dict[str, Any]) -> list[str]:
        path = env["tmp"] / "args.json"
        path.write_text(text, encoding="utf-8")
        return [*train_options(env), "--config", str(path)]

    return build


def corpus_missing_offline(env: dict[str, Any]) -> list[str]:
    from nlpbook.classification import task

    def offline(*args: object) -> None:
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    env["monkeypatch"].setattr(task, "korpora_fetch", offline)
    return train_options(env, downstream_corpus_root_dir=str(env["tmp"] / "empty"))


def existing_run(env: dict[str, Any]) -> list[str]:
    (env["tmp"] / "run").mkdir()
    (env["tmp"] / "run" / "last.ckpt").write_bytes(b"")
    return train_options(env)


def predict(*extra: str) -> Case:
    def build(env: dict[str, Any]) -> list[str]:
        return ["predict", "--model_dir", str(env["tmp"]), "--text", "좋다", *extra]

    return build


def unless(condition: bool, reason: str) -> Any:
    return pytest.mark.skipif(condition, reason=reason)


# name -> (the command, what the one line must say); the data and the model are valid, so each case
# fails for its own reason, before the model loads.
CASES: dict[str, tuple[Case, list[str]]] = {
    "folder without weights": (no_weights, ["no weights", "--random_init"]),
    "tpu without torch_xla": (lambda env: train_options(env, tpu_cores="8"), ["torch_xla", "--tpu_cores 0"]),
    "gpu without a gpu": (
        lambda env: train_options(env, accelerator="gpu"),
        ["no GPU found", "--accelerator auto"],
    ),
    "model dir is a file": (model_dir_is_a_file, ["--downstream_model_dir", "is a file"]),
    "model dir read-only": (model_dir_read_only, ["--downstream_model_dir", "cannot write there"]),
    "config invalid json": (config('{"epochs": 2,}'), ["--config", "invalid JSON at line 1"]),
    "config a list": (config('["epochs", 2]'), ["--config", "expected a JSON object", "found a JSON list"]),
    "config wrong type": (config('{"epochs": "2"}'), ['"epochs" must be an int', "not quoted"]),
    "option wrong type": (lambda env: [*train_options(env), "--epochs", "1.5"], ["invalid int value: '1.5'"]),
    "learning rate inf": (
        lambda env: [*train_options(env), "--learning_rate", "inf"],
        ["--learning_rate must be"],
    ),
    "corpus missing offline": (
        corpus_missing_offline,
        ["--downstream_corpus_root_dir", "README", "Offline?"],
    ),
    "existing run": (
        existing_run,
        ["already holds a run", "continue it with --resume", "--overwrite_model_dir"],
    ),
    "predict chunk size 0": (predict("--chunk_size", "0"), ["--chunk_size must be at least 1"]),
    "predict output a folder": (
        lambda env: predict("--output", str(env["tmp"]))(env),
        ["--output", "is a folder"],
    ),
    "several problems": (
        lambda env: [*train_options(env), "--tpu_cores", "3", "--fp16", "--precision", "bf16-true"],
        ["--tpu_cores must be 0, 1 or 8, got 3", "; --fp16 conflicts with --precision bf16-true"],
    ),
}
MARKS = {
    "tpu without torch_xla": unless(
        importlib.util.find_spec("torch_xla") is not None, "torch_xla is installed"
    )
}


def cli_output(
    argv: list[str], caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> tuple[Any, list[str], str]:
    """Exit status, the lines the user would read on stderr, and stdout."""
    caplog.clear()
    capsys.readouterr()
    with caplog.at_level(logging.INFO):
        try:
            code = main(argv)
        except SystemExit as exit:  # argparse's own errors
            code = exit.code
    out, err = capsys.readouterr()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    return code, warnings + err.splitlines(), out


@pytest.mark.parametrize("case", [pytest.param(name, marks=MARKS.get(name, ())) for name in CASES])
def test_each_error_is_one_line_exit_2_and_a_hint(
    case: str,
    tiny_bert: Path,
    nsmc_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog,
    capsys,
) -> None:
    if case == "gpu without a gpu":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    build, hints = CASES[case]
    env = {"tiny_bert": tiny_bert, "nsmc_root": nsmc_root, "tmp": tmp_path, "monkeypatch": monkeypatch}
    from nlpbook import commands

    if case != "folder without weights":  # refused as the model loads, after the data
        monkeypatch.setattr(commands, "load_pretrained", _no_model_load)
    started = time.perf_counter()
    code, lines, out = cli_output(build(env), caplog, capsys)
    assert code == 2, lines
    assert len(lines) == 1, lines
    for hint in hints:
        assert hint in lines[0]
    assert out == ""
    assert time.perf_counter() - started < 10  # no retries, no training


def _no_model_load(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the model was being loaded: the error should come before")


def test_python_users_read_python_spelling(tiny_bert: Path, nsmc_root: Path, tmp_path: Path) -> None:
    import nlpbook
    from nlpbook.classification import ClassificationTrainArguments

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.ckpt").write_bytes(b"")
    args = ClassificationTrainArguments(
        pretrained_model_name=str(tiny_bert),
        downstream_corpus_root_dir=str(nsmc_root),
        downstream_model_dir=str(tmp_path / "run"),
    )
    with pytest.raises(
        nlpbook.ArgumentError, match="continue it with resume=True, start over with overwrite_model_dir=True"
    ):
        nlpbook.train(args)


# --- the real process: the hub without a network (the model load itself), and a whole run ------
def run_cli(
    *argv: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nlpbook.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "network",
    [
        {"HF_HUB_OFFLINE": "1"},
        # online but nothing answers: huggingface_hub retried for ~24 s before failing
        {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"},
    ],
    ids=["HF_HUB_OFFLINE", "unreachable"],
)
def test_hub_model_without_a_network_fails_fast_in_one_line(
    network: dict[str, str], nsmc_root: Path, tmp_path: Path
) -> None:
    env = {**network, "HF_HOME": str(tmp_path / "hf-home")}  # an empty cache: nothing to fall back on
    result = run_cli(
        "train", "classification", "--downstream_corpus_root_dir", str(nsmc_root),
        "--downstream_model_dir", str(tmp_path / "run"), env=env,
    )  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "nlpbook: error: could not download beomi/kcbert-base from the Hugging Face hub"
    )
    assert (
        "--pretrained_model_name path/to/folder" in lines[0] and "Offline: a local model folder" in lines[0]
    )
    assert result.stdout == ""  # and no "Retrying in 1s [Retry 1/5]" lines: the one line above


NOISE = (  # Lightning's _pytree deprecation, its tips and start-up lines, notebook and transformers noise
    *("LeafSpec", "litlogger", "litmodels", "Tip:", "limit_val_batches", "GPU available", "TPU available"),
    *("IProgress", "ipywidgets", "LOAD REPORT", "UNEXPECTED", "MISSING", "Loading weights"),
    *("Writing model shards", "Epoch 0/0", "Epoch 0:", "v_num", "DataLoader 0"),
    *("logging interval", "log_every_n_steps", "site-packages"),  # an epoch shorter than the default 10
)


def test_a_run_prints_progress_a_warning_and_a_summary_and_no_noise(
    tiny_bert: Path, tmp_path: Path, monkeypatch, caplog, capsys
) -> None:
    root = tmp_path / "korpora"
    rows = [(str(i), text, label) for i, (text, label) in enumerate(toy_sentiment(64, 1), start=1)]
    rows[5] = ("6", "", "1")  # NSMC ships a few empty reviews: left out with a warning
    write_tsv(root / "nsmc" / "ratings_train.txt", ["id", "document", "label"], rows)
    test_rows = [(str(i), text, label) for i, (text, label) in enumerate(toy_sentiment(32, 2), start=1)]
    write_tsv(root / "nsmc" / "ratings_test.txt", ["id", "document", "label"], test_rows)
    run = tmp_path / "run"
    result = run_cli(
        "train", "classification", "--pretrained_model_name", str(tiny_bert), "--downstream_corpus_root_dir",
        str(root), "--downstream_model_dir", str(run), "--epochs", "1", "--batch_size", "16",
        "--max_seq_length", "32", env={"HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{run / 'export'}\n"  # stdout: the export path and nothing else
    err = result.stderr
    for noise in NOISE:
        assert noise not in err, f"{noise!r} in the output:\n{err}"
    assert "nlpbook: warning: " in err and "left out 1 empty review(s) at line(s) [7]" in err
    assert "Epoch 1/1" in err  # the progress bar, on stderr
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("nlpbook: trained 1 epoch(s), 4 step(s) on cpu in ")
    assert "best val_loss 0." in summary and summary.endswith(f"export: {run / 'export'}")
    # 4 steps, fewer than the default log_every_n_steps (10): the epoch's training metrics are logged
    assert [row["step"] for row in training_log(run) if "train_loss" in row] == [3]

    # evaluate reads the run's train_args.json: no corpus option, and no training file needed
    (root / "nsmc" / "ratings_train.txt").rename(tmp_path / "ratings_train.txt")
    from nlpbook.classification import task

    def no_download(*args: object) -> None:
        raise AssertionError("evaluate tried to download the corpus")

    monkeypatch.setattr(task, "korpora_fetch", no_download)
    capsys.readouterr()
    assert main(["evaluate", "classification", "--downstream_model_dir", str(run)]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 32

    # resuming the finished run with no epoch added trains nothing and keeps export + evaluation
    (tmp_path / "ratings_train.txt").rename(root / "nsmc" / "ratings_train.txt")
    export_files = sorted(path.name for path in (run / "export").iterdir())
    assert "evaluation.json" in export_files
    code, lines, out = cli_output(
        [
            *train_options(
                env_of(tiny_bert, root, tmp_path),
                epochs="1",
                batch_size="16",
                max_seq_length="32",
            ),
            "--resume",
        ],
        caplog,
        capsys,
    )
    assert code == 0 and out == f"{run / 'export'}\n"
    assert sorted(path.name for path in (run / "export").iterdir()) == export_files
    assert any("nothing to train" in record.getMessage() for record in caplog.records)
