"""Arguments: the book's names, validation at construction, and a CLI generated from them."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from nlpbook.arguments import ArgumentError
from nlpbook.classification import ClassificationTrainArguments
from nlpbook.cli import build_parser

BOOK_FIELDS = [
    "pretrained_model_name",
    "downstream_task_name",
    "downstream_corpus_name",
    "downstream_corpus_root_dir",
    "downstream_model_dir",
    "max_seq_length",
    "save_top_k",
    "monitor",
    "seed",
    "overwrite_cache",
    "force_download",
    "test_mode",
    "learning_rate",
    "epochs",
    "batch_size",
    "cpu_workers",
    "fp16",
    "tpu_cores",
]


def test_the_books_cell_works_as_written():
    args = ClassificationTrainArguments(
        pretrained_model_name="beomi/kcbert-base",
        downstream_task_name="document-classification",
        downstream_corpus_name="nsmc",
        downstream_corpus_root_dir="/content/Korpora",
        downstream_model_dir="/gdrive/My Drive/nlpbook/checkpoint-doccls",
        batch_size=32,
        learning_rate=5e-5,
        max_seq_length=128,
        epochs=3,
        tpu_cores=0,
        seed=7,
    )
    assert {f.name for f in fields(args)} >= set(BOOK_FIELDS)
    assert args.resolved_precision == "32-true"


def test_every_problem_is_reported_at_once():
    with pytest.raises(ArgumentError) as error:
        ClassificationTrainArguments(
            downstream_model_dir="x",
            batch_size=0,
            tpu_cores=4,
            monitor="lowest loss",
            fp16=True,
            precision="bf16-mixed",
            warmup_ratio=1.5,
        )
    message = str(error.value)
    for part in (
        "batch_size must be >= 1",
        "tpu_cores must be 0, 1 or 8",
        "monitor must look like",
        "fp16=True conflicts",
        "warmup_ratio",
    ):
        assert part in message


def test_model_dir_is_required():
    with pytest.raises(ArgumentError, match="downstream_model_dir is required"):
        ClassificationTrainArguments()


def test_fp16_maps_to_mixed_precision():
    assert ClassificationTrainArguments(downstream_model_dir="x", fp16=True).resolved_precision == "16-mixed"


def test_cli_options_are_generated_from_the_dataclass():
    parser = build_parser()
    namespace = parser.parse_args(
        [
            "train",
            "classification",
            "--downstream_model_dir",
            "d",
            "--fp16",
            "--batch_size",
            "8",
            "--precision",
            "bf16-mixed",
            "--seed",
            "3",
        ]
    )
    assert namespace.fp16 is True and namespace.batch_size == 8 and namespace.precision == "bf16-mixed"
    help_text = (
        parser._subparsers._group_actions[0]
        .choices["train"]
        ._subparsers._group_actions[0]
        .choices["classification"]
        .format_help()
    )
    for f in fields(ClassificationTrainArguments):
        assert f"--{f.name}" in help_text


def test_cli_can_set_an_optional_field_back_to_none():
    namespace = build_parser().parse_args(
        ["train", "classification", "--downstream_model_dir", "d", "--max_grad_norm", "none"]
    )
    assert namespace.max_grad_norm is None


def test_a_book_task_name_of_another_task_is_refused():
    with pytest.raises(ArgumentError, match="downstream_task_name='pair-classification' does not match"):
        ClassificationTrainArguments(downstream_model_dir="x", downstream_task_name="pair-classification")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"tpu_cores": 8}, ("tpu", 8)),  # the book's TPU cell -> Lightning 2.x's TPU accelerator
        ({"tpu_cores": 1}, ("tpu", 1)),
        ({}, ("auto", "auto")),
        ({"accelerator": "gpu", "devices": "2"}, ("gpu", 2)),
        ({"accelerator": "gpu", "devices": "0,1"}, ("gpu", "0,1")),
        ({"accelerator": "cpu"}, ("cpu", 1)),
    ],
)
def test_devices_map_onto_lightning(options, expected):
    from nlpbook.trainer import devices_and_accelerator

    assert (
        devices_and_accelerator(ClassificationTrainArguments(downstream_model_dir="x", **options)) == expected
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"batch_size": "32"}, "batch_size must be an int, got '32' (str)"),
        ({"epochs": 1.5}, "epochs must be an int, got 1.5 (float)"),
        ({"epochs": True}, "epochs must be an int, got True (bool)"),  # a bool is not a count
        ({"learning_rate": float("inf")}, "learning_rate must be a finite float or int, got inf"),
        ({"learning_rate": "5e-5"}, "learning_rate must be a finite float or int, got '5e-5' (str)"),
        (
            {"precision": "fp16"},
            "precision must be one of '32-true', '16-mixed', 'bf16-mixed', 'bf16-true' or None",
        ),
        ({"accelerator": "tpuu"}, "accelerator must be one of 'auto', 'cpu'"),
        ({"fp16": 1}, "fp16 must be a bool (True or False), got 1 (int)"),
        ({"devices": 2}, "devices must be a str, got 2 (int)"),
        ({"max_train_samples": 1.0}, "max_train_samples must be an int or None, got 1.0 (float)"),
    ],
)
def test_every_field_type_is_checked_at_construction(values, message):
    with pytest.raises(ArgumentError) as error:
        ClassificationTrainArguments(downstream_model_dir="x", **values)
    assert error.value.problems == [message] or message in error.value.problems[0]


def test_paths_and_numpy_numbers_are_stored_as_plain_values():
    import numpy as np

    args = ClassificationTrainArguments(
        downstream_model_dir=Path("runs") / "x", batch_size=np.int64(8), learning_rate=1, seed=None
    )
    assert args.downstream_model_dir == str(Path("runs") / "x")
    assert type(args.batch_size) is int and type(args.learning_rate) is float and args.seed is None
    assert json.loads(json.dumps(args.to_dict()))["batch_size"] == 8  # train_args.json stays plain JSON
