"""The core assumes no label type: a toy regression task, defined here as one class plus one registry
entry, trains, evaluates, predicts and exports through the unchanged core. Also: what the task
declares is checked at construction (--monitor, the corpus), and the light imports stay light."""

from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from conftest import write_tsv
from tiny_bert import toy_sentiment
from transformers import AutoModelForSequenceClassification

import nlpbook
from nlpbook.arguments import ArgumentError, TrainArguments, option
from nlpbook.classification import ClassificationTrainArguments
from nlpbook.data import Collator
from nlpbook.logs import training_log
from nlpbook.paircls import PairClassificationTrainArguments
from nlpbook.process_memory import MALLOC_ENVIRONMENT, _glibc, freed_memory_kept, old_objects_frozen
from nlpbook.tasks import TASKS, Head, InputField
from nlpbook.text import TextTask


@dataclass
class ToyScoreArguments(TrainArguments):
    task: ClassVar[str] = "toyscore"

    score_column: str = option("score column", default="score")


class ToyScoreTask(TextTask):
    """A text -> a number, the simplest regression task: only the output side is its own."""

    name = "toyscore"
    arguments_class = ToyScoreArguments
    head = Head("AutoModelForSequenceClassification", "regression")
    input_fields = (InputField("text", "text"),)
    metric_names = ("mse",)

    def file_columns(self, args: Any) -> tuple[list[str], str]:
        return ["text"], args.score_column

    def read_corpus(self, args: Any, split: str) -> list:
        raise AssertionError("custom files only")

    def label_names(self, train_examples: Sequence[Any]) -> list[str]:
        return ["score"]

    def targets(self, labels: Sequence[str], label_names: Sequence[str]) -> list[float]:
        return [float(label) for label in labels]

    def metrics(self, examples, features, outputs, label_names, args) -> dict[str, Any]:
        gold = np.array([f["labels"] for f in features])
        return {"mse": float(np.mean((np.concatenate(outputs) - gold) ** 2))}

    def prediction(self, output: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
        return {"score": float(output[0])}


TOY = ToyScoreTask()


@pytest.fixture(scope="module")
def toy_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(TASKS, "toyscore", f"{__name__}:TOY")  # the one registry line
        root = tmp_path_factory.mktemp("toyscore")
        for split, n, seed in (("train", 320, 1), ("test", 96, 2)):
            rows = [(text, "4.0" if label == "1" else "1.0") for text, label in toy_sentiment(n, seed)]
            write_tsv(root / f"{split}.tsv", ["text", "score"], rows)
        args = ToyScoreArguments(
            pretrained_model_name=str(tiny_bert),
            downstream_model_dir=str(root / "run"),
            train_file=str(root / "train.tsv"),
            test_file=str(root / "test.tsv"),
            learning_rate=5e-3,
            epochs=5,  # 3 left a quarter of seeds at the mean; 5 converged on every seed tried
            batch_size=16,
            max_seq_length=32,
            log_every_n_steps=1,
            monitor="min val_mse",
        )
        export = nlpbook.train(args)
        yield args, export


def test_a_regression_task_trains_through_the_core(toy_run) -> None:
    args, export = toy_run
    rows = training_log(args.model_dir)
    mse = [row["val_mse"] for row in rows if "val_mse" in row]
    assert len(mse) == 5 and mse[-1] < 0.5 < 2.25  # 2.25: the variance of 1.0/4.0 scores
    assert not any(key.endswith("accuracy") for row in rows for key in row), "no classification metric"
    config = json.loads((export / "config.json").read_text(encoding="utf-8"))
    assert config["problem_type"] == "regression" and config["id2label"] == {"0": "score"}
    plain = AutoModelForSequenceClassification.from_pretrained(export)
    assert plain.config.problem_type == "regression" and plain.num_labels == 1


def test_regression_predicts_and_evaluates(toy_run) -> None:
    args, export = toy_run
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(TASKS, "toyscore", f"{__name__}:TOY")
        high, low = nlpbook.predict(export, ["영화 정말 최고 추천", "영화 최악 지루"])
        assert set(high) == {"text", "score", "truncated"} and high["score"] > 3 > 2 > low["score"]
        assert nlpbook.evaluate(args)["mse"] < 0.5


def test_collator_keeps_float_targets_float() -> None:
    batch = Collator(pad_token_id=0)(
        [{"input_ids": [2, 3], "labels": 3.5}, {"input_ids": [2], "labels": 1.0}]
    )
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == [3.5, 1.0]
    assert Collator(0)([{"input_ids": [2], "labels": 1}])["labels"].dtype == torch.long


def test_monitor_must_name_a_metric_the_task_logs() -> None:
    with pytest.raises(ArgumentError, match="'val_acuracy', which this task does not log") as error:
        ClassificationTrainArguments(downstream_model_dir="x", monitor="max val_acuracy")
    assert "val_loss, val_accuracy, val_macro_f1" in str(error.value)
    assert ClassificationTrainArguments(downstream_model_dir="x", monitor="max val_macro_f1")


@pytest.mark.parametrize(
    ("cls", "corpus"), [(ClassificationTrainArguments, "kornli"), (PairClassificationTrainArguments, "nsmc")]
)
def test_every_task_refuses_a_corpus_it_cannot_read(cls, corpus) -> None:
    with pytest.raises(
        ArgumentError, match=f"downstream_corpus_name='{corpus}' is not a corpus of this task"
    ):
        cls(downstream_model_dir="x", downstream_corpus_name=corpus)


def test_import_and_help_do_not_load_torch_or_lightning() -> None:
    """`nlpbook --help` must be instant: the argument classes and the CLI import no heavy library."""
    code = (
        "import sys, nlpbook, nlpbook.classification, nlpbook.paircls, nlpbook.ner\n"
        "from nlpbook.cli import build_parser\n"
        "build_parser()\n"
        "heavy = ('torch', 'pytorch_lightning', 'transformers', 'sklearn')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_runs_freeze_older_objects_for_the_collector_and_leave_it_as_found() -> None:
    def frozen(obj: object) -> bool:  # gc.get_objects() lists every generation but the frozen one
        return not any(o is obj for o in gc.get_objects())

    older = ["made before the run"]
    with old_objects_frozen():
        assert gc.get_freeze_count() > 0 and frozen(older)  # full collections skip it
    assert gc.get_freeze_count() == 0 and not frozen(older)
    gc.freeze()  # a program that froze its own objects (e.g. before forking workers) keeps them frozen
    try:
        with old_objects_frozen():
            pass
        # not a count: objects of other threads (a test's server) may be freed meanwhile
        assert frozen(older)
    finally:
        gc.unfreeze()


@pytest.mark.skipif(_glibc() is None, reason="glibc's malloc only (Linux, Colab)")
def test_runs_reuse_freed_memory_and_hand_it_back_when_the_last_one_ends(monkeypatch) -> None:
    import ctypes

    for name in MALLOC_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    libc, size = _glibc(), 64 << 20
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]

    def page_faults_of_reallocating(times: int = 3) -> int:
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        for _ in range(times):
            block = libc.malloc(size)
            ctypes.memset(block, 1, size)  # written: fresh pages fault in
            libc.free(block)
        return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before

    with freed_memory_kept():
        with freed_memory_kept():  # e.g. run_model inside a run: its end must not undo the run's
            pass
        during = page_faults_of_reallocating()
    after = page_faults_of_reallocating()
    # the first block's 16,384 pages fault in once; then the freed block is used again
    assert during <= 16_384 + 100, f"{during} page faults: freed blocks went back to the kernel in the run"
    assert after >= 3 * 32, f"{after} page faults: 64 MiB blocks should be mapped afresh after the run"
