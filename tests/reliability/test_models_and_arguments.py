"""Unusable model folders and arguments are refused with a clear message before training starts."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

import nlpbook
from nlpbook import commands
from nlpbook.arguments import ArgumentError
from nlpbook.classification import ClassificationTrainArguments
from nlpbook.cli import main
from reliability.files import file_text, write


@pytest.fixture
def data(tmp_path: Path) -> dict[str, str]:
    train = write(tmp_path / "train.tsv", file_text("classification"))
    test = write(tmp_path / "test.tsv", file_text("classification", seed=2))
    return {"train_file": str(train), "test_file": str(test)}


@pytest.fixture
def no_trainer(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a bad model folder reached the Trainer")

    monkeypatch.setattr(commands, "build_trainer", forbidden)


def refused(model: Path | str, tmp_path: Path, data: dict[str, str], match: str, **extra: object) -> None:
    args = ClassificationTrainArguments(
        pretrained_model_name=str(model), downstream_model_dir=str(tmp_path / "run"), **data, **extra
    )
    with pytest.raises(ArgumentError, match=match):
        nlpbook.train(args)
    assert not list(args.model_dir.glob("*.ckpt")) and not (args.model_dir / "train_args.json").exists()


def copy_model(tiny_bert: Path, to: Path, leave_out: tuple[str, ...] = ()) -> Path:
    shutil.copytree(tiny_bert, to, ignore=shutil.ignore_patterns(*leave_out))
    return to


def test_model_folder_without_tokenizer(tiny_bert, tmp_path, data, no_trainer) -> None:
    # transformers would quietly build an empty tokenizer here that reads every word as [UNK]
    model = copy_model(tiny_bert, tmp_path / "m", ("vocab.txt", "tokenizer*", "special_tokens_map.json"))
    refused(model, tmp_path, data, r"no tokenizer in the folder \(expected one of tokenizer.json, vocab.txt")


def test_model_folder_that_does_not_exist(tmp_path, data, no_trainer) -> None:
    refused(tmp_path / "nowhere", tmp_path, data, "folder not found")


def test_tokenizer_of_another_model(tiny_bert, tmp_path, data, no_trainer) -> None:
    model = copy_model(tiny_bert, tmp_path / "m")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "vocab_size": 100}))
    refused(model, tmp_path, data, r"tokenizer has \d+ tokens but the model's embeddings hold only 100")


@pytest.mark.parametrize("kind", ["gpt2", "t5"])
def test_config_of_another_architecture(kind, tiny_bert, tmp_path, data, no_trainer) -> None:
    """GPT-2 (decoder) and T5 (encoder-decoder) have classification heads in transformers, but not
    the inputs nlpbook's tasks feed ([CLS], token_type_ids, a pad token): refused by name."""
    from transformers import AutoConfig

    model = copy_model(tiny_bert, tmp_path / "m", ("config.json",))
    AutoConfig.for_model(kind, vocab_size=600).save_pretrained(model)
    refused(model, tmp_path, data, rf"is a '{kind}' model, not a BERT-style encoder")


def test_max_seq_length_above_the_models_positions(tiny_bert, tmp_path, data, no_trainer) -> None:
    refused(tiny_bert, tmp_path, data, "max_seq_length=129 is longer than .* max_position_embeddings=128",
            max_seq_length=129)  # fmt: skip


def test_max_seq_length_above_kcbert_300(kcbert_dir, tmp_path, data, no_trainer) -> None:
    # the shared folder has no weights: random_init gets past that check to this one
    refused(kcbert_dir, tmp_path, data, "max_seq_length=301 is longer than .*=300", max_seq_length=301,
            random_init=True)  # fmt: skip


ARGUMENT_CASES = {
    "tpu_cores=3": ({"tpu_cores": 3}, "tpu_cores must be 0, 1 or 8, got 3"),
    "fp16 with bf16": ({"fp16": True, "precision": "bf16-mixed"}, "fp16=True conflicts with precision"),
    "tpu with gpu": ({"tpu_cores": 8, "accelerator": "gpu"}, "tpu_cores=8 conflicts with accelerator='gpu'"),
    "tpu with fp16": ({"tpu_cores": 1, "fp16": True}, "fp16 is not supported on TPU"),
    "save_every_n_minutes=0": ({"save_every_n_minutes": 0}, "save_every_n_minutes must be > 0"),
    "save_every_n_steps=0": ({"save_every_n_steps": 0}, "save_every_n_steps must be >= 1"),
    "custom without files": ({"downstream_corpus_name": "custom"}, "needs train_file and/or test_file"),
}


@pytest.mark.parametrize("case", list(ARGUMENT_CASES))
def test_bad_arguments_fail_at_construction(case: str, tmp_path: Path) -> None:
    values, message = ARGUMENT_CASES[case]
    with pytest.raises(ArgumentError, match=message):
        ClassificationTrainArguments(downstream_model_dir=str(tmp_path / "run"), **values)
    assert not (tmp_path / "run").exists()


def test_cli_reports_bad_arguments_in_one_line_and_exits_2(tmp_path, data, caplog) -> None:
    started = time.perf_counter()
    code = main(
        ["train", "classification", "--downstream_model_dir", str(tmp_path / "run"), "--tpu_cores", "3",
         "--fp16", "--precision", "bf16-true", "--train_file", data["train_file"]]
    )  # fmt: skip
    assert code == 2
    # one line, options spelled as on the command line
    assert "--tpu_cores must be 0, 1 or 8, got 3; --fp16 conflicts with --precision bf16-true" in caplog.text
    assert time.perf_counter() - started < 1.0


def test_only_missing_encoder_weights_are_warned(tiny_bert, tmp_path, caplog) -> None:
    """The new head (and the pooler a masked-LM checkpoint lacks) start random by design: no word.
    An encoder weight missing from the checkpoint is a warning naming it."""
    from safetensors.torch import load_file, save_file

    from nlpbook.pretrained import load_pretrained
    from nlpbook.tasks import get_task

    task = get_task("classification")

    def load(model: Path) -> str:
        caplog.clear()
        args = ClassificationTrainArguments(pretrained_model_name=str(model), downstream_model_dir="x")
        with caplog.at_level("WARNING"):
            load_pretrained(args, task, ["0", "1"])
        return caplog.text

    assert load(tiny_bert) == ""
    model = copy_model(tiny_bert, tmp_path / "m")
    weights = load_file(model / "model.safetensors")
    del weights["bert.encoder.layer.0.attention.self.query.weight"]
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    text = load(model)
    assert "1 weight(s) of the encoder are not in the checkpoint" in text
    assert "bert.encoder.layer.0.attention.self.query.weight" in text
