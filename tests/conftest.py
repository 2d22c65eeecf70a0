"""Shared fixtures: a tiny offline BERT, toy data sets, and the real data when it is there."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_bert import build_tiny_bert, toy_sentiment  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KCBERT_DIR = SHARED_DATA / "models" / "kcbert-base"

logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
logging.getLogger("lightning").setLevel(logging.WARNING)


def settings(max_seq_length: int, **values: object) -> SimpleNamespace:
    """What ``Task.encode`` reads from a run's arguments, for calling it directly."""
    return SimpleNamespace(max_seq_length=max_seq_length, **values)


def write_tsv(path: Path, header: list[str], rows: list[tuple[str, ...]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(header)] + ["\t".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def toy_sentiment_files(root: Path, train_rows: int, test_rows: int) -> dict[str, str]:
    """``train_file``/``test_file`` arguments for a toy sentiment pair written under ``root``."""
    train = write_tsv(root / "train.tsv", ["text", "label"], toy_sentiment(train_rows, 1))
    test = write_tsv(root / "test.tsv", ["text", "label"], toy_sentiment(test_rows, 2))
    return {"train_file": str(train), "test_file": str(test)}


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT + WordPiece vocab saved with save_pretrained, loaded like a hub model."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def nsmc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A toy corpus in Korpora's NSMC layout: <root>/nsmc/ratings_{train,test}.txt."""
    root = tmp_path_factory.mktemp("korpora")
    for split, n, seed in (("train", 480, 1), ("test", 160, 2)):
        rows = [(str(i), text, label) for i, (text, label) in enumerate(toy_sentiment(n, seed), start=1)]
        write_tsv(root / "nsmc" / f"ratings_{split}.txt", ["id", "document", "label"], rows)
    return root


@pytest.fixture(scope="session")
def kcbert_dir() -> Path:
    if not (KCBERT_DIR / "vocab.txt").is_file():
        pytest.skip(f"real kcbert-base tokenizer not found at {KCBERT_DIR} (shared data absent)")
    return KCBERT_DIR


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each of the two workers gets one core: tiny models gain little from a
    second intra-op thread, and two workers contending for four threads on two cores lose."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the CLI, notebook and DDP subprocesses
        import torch

        torch.set_num_threads(1)
