"""Fixed shapes for TPUs (``pad_buckets``), checked on the CPU without torch_xla.

On XLA every new (rows, length) shape is a graph compilation. These tests hold the promises that
keep the shapes few: batches come only in bucket lengths and with a fixed number of rows, filler
rows never reach a task's metrics, every example is trained once per epoch except the dropped
short batch, and a resumed run still skips exactly the batches it trained. The compile counts
themselves need torch_xla: ``benchmarks/xla_shapes.py``.
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest
import torch
from conftest import toy_sentiment_files

import nlpbook
from nlpbook.classification import ClassificationTrainArguments
from nlpbook.data import FILLER_INDEX, Collator, LengthGroupedSampler, make_loader
from nlpbook.errors import ArgumentError, TrainingInterrupted
from nlpbook.module import TaskModule
from nlpbook.tasks import IGNORE_INDEX, get_task
from nlpbook.xla import additive_attention_mask, bucket_lengths, pad_buckets

BUCKETS = (32, 64, 96, 128)


def features(lengths: list[int], label: str = "class") -> list[dict]:
    out = []
    for i, n in enumerate(lengths):
        target = {"class": i % 2, "tokens": [1] * n, "score": i / 10}[label]
        out.append({"input_ids": list(range(2, 2 + n)), "token_type_ids": [0] * n, "labels": target})
    return out


def arguments(**values: object) -> ClassificationTrainArguments:
    return ClassificationTrainArguments(downstream_model_dir="unused", **values)  # type: ignore[arg-type]


def test_auto_buckets_apply_on_xla_only() -> None:
    assert bucket_lengths("auto", 128, xla=False) is None, "CPU/GPU keep per-batch padding"
    assert bucket_lengths("auto", 128, xla=True) == BUCKETS
    assert bucket_lengths("auto", 100, xla=True) == (32, 64, 96, 100)
    assert bucket_lengths("auto", 512, xla=True) == tuple(range(64, 513, 64))
    assert bucket_lengths("none", 128, xla=True) is None
    assert bucket_lengths("64,16", 128, xla=False) == (16, 64, 128), "sorted, max_seq_length added"


def test_the_run_takes_its_buckets_from_its_device() -> None:
    assert pad_buckets(arguments(tpu_cores=8)) == BUCKETS
    assert pad_buckets(arguments(accelerator="tpu", devices="1")) == BUCKETS
    assert pad_buckets(arguments(accelerator="cpu")) is None
    assert pad_buckets(arguments()) is None, "auto without torch_xla is no TPU"
    assert pad_buckets(arguments(accelerator="cpu", pad_buckets="16, 48")) == (16, 48, 128)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("fixed", "pad_buckets='fixed' must be 'auto', 'none' or lengths such as '32,64,128'"),
        ("32,-64", "must be 'auto', 'none' or lengths"),
        ("0,64", "every length must be in 1..max_seq_length (128), got 0"),
        ("64,256", "got 256"),
    ],
)
def test_a_bad_bucket_list_is_refused_when_the_arguments_are_built(value: str, message: str) -> None:
    with pytest.raises(ArgumentError) as error:
        arguments(pad_buckets=value)
    assert message in str(error.value)


def test_mixed_precision_is_refused_on_tpu_where_lightning_would_refuse_it_after_loading() -> None:
    with pytest.raises(ArgumentError, match="precision='bf16-mixed' is not supported on TPU; use precision="):
        arguments(tpu_cores=8, precision="bf16-mixed")
    with pytest.raises(ArgumentError, match="fp16 is not supported on TPU"):
        arguments(accelerator="tpu", fp16=True)
    assert arguments(tpu_cores=8, precision="bf16-true").resolved_precision == "bf16-true"


def test_training_batches_have_bucket_lengths_and_full_rows() -> None:
    lengths = [random.Random(i).randint(3, 120) for i in range(203)]
    loader = make_loader(features(lengths), 16, 0, shuffle=True, seed=1, pad_buckets=BUCKETS)
    dropped = []
    for epoch in range(3):
        loader.sampler.set_epoch(epoch)
        batches = list(loader)
        assert {tuple(b["input_ids"].shape) for b in batches} <= {(16, n) for n in BUCKETS}
        assert len(batches) == len(loader) == 203 // 16
        seen = [i for b in batches for i in b["feature_index"].tolist()]
        assert len(seen) == len(set(seen)) == 192, "each example at most once, only full batches"
        dropped.append(frozenset(range(203)) - set(seen))
        for batch in batches:  # the padding is padding: the real tokens and mask are intact
            real = batch["attention_mask"].sum(-1)
            assert real.tolist() == [lengths[i] for i in batch["feature_index"].tolist()]
    assert len(set(dropped)) == 3, "different examples are left out each epoch"
    longest = frozenset(sorted(range(203), key=lengths.__getitem__)[-11:])
    assert longest not in dropped, "a random remainder, not the longest examples of the last chunk"


@pytest.mark.parametrize("group_by_length", [True, False])
def test_the_last_evaluation_batch_is_filled_with_rows_no_metric_sees(group_by_length: bool) -> None:
    lengths = [random.Random(i).randint(3, 120) for i in range(203)]
    loader = make_loader(
        features(lengths), 32, 0, shuffle=False, group_by_length=group_by_length, pad_buckets=BUCKETS
    )
    batches = list(loader)
    assert {tuple(b["input_ids"].shape) for b in batches} <= {(32, n) for n in BUCKETS}
    indices = [i for b in batches for i in b["feature_index"].tolist()]
    real = [i for i in indices if i != FILLER_INDEX]
    assert sorted(real) == list(range(203)), "every example scored exactly once"
    assert len(indices) - len(real) == 32 * 7 - 203
    last = batches[-1]
    filler = last["feature_index"] == FILLER_INDEX
    assert (last["labels"][filler] == IGNORE_INDEX).all(), "class-id losses skip the fillers"


def test_filler_rows_keep_targets_the_loss_ignores_or_can_take() -> None:
    tokens = Collator(0, buckets=(8, 16), rows=4)(features([5, 3], label="tokens"))
    assert tokens["input_ids"].shape == (4, 8)
    assert (tokens["labels"][2:] == IGNORE_INDEX).all(), "per-token fillers: every position ignored"
    scores = Collator(0, buckets=(8, 16), rows=4)(features([5, 3], label="score"))
    assert scores["labels"].dtype == torch.float32 and scores["labels"][2:].tolist() == [0.0, 0.0]
    assert scores["feature_index"].tolist() == [-1, -1, -1, -1], "no feature_index given: none real"


@pytest.mark.parametrize("world_size", [1, 2])
def test_fixed_batches_resume_exactly_mid_epoch(world_size: int) -> None:
    lengths = [i % 23 for i in range(301)]
    sampler = LengthGroupedSampler(lengths, batch_size=10, seed=5, drop_last=True)
    sampler.shard(world_size - 1, world_size)
    sampler.set_epoch(2)
    full = list(sampler)
    assert len(full) == len(sampler) == 300 // world_size, "30 full batches, shared out"
    sampler.skip_batches(epoch=2, batches=4)
    assert list(sampler) == full[40:]


def test_too_few_examples_for_one_fixed_batch_is_an_argument_error() -> None:
    with pytest.raises(ArgumentError, match="do not fill one batch of batch_size=32"):
        make_loader(features([5] * 20), 32, 0, shuffle=True, pad_buckets=BUCKETS)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_the_prepared_4d_mask_gives_the_logits_of_the_2d_mask(attention: str) -> None:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    model = BertForSequenceClassification._from_config(config, attn_implementation=attention).eval()
    batch = Collator(0, buckets=(16,))(features([9, 4, 16]))
    inputs = {k: batch[k] for k in ("input_ids", "token_type_ids")}
    with torch.no_grad():
        plain = model(**inputs, attention_mask=batch["attention_mask"]).logits
        mask = additive_attention_mask(batch["attention_mask"], model.dtype)
        prepared = model(**inputs, attention_mask=mask).logits
    assert mask.shape == (3, 1, 1, 16)
    torch.testing.assert_close(prepared, plain)


# --- the whole run on the CPU with an explicit bucket list (what a TPU run does with 'auto') ----
@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return toy_sentiment_files(tmp_path_factory.mktemp("xla-data"), 100, 40)


def run(tiny_bert: Path, files: dict[str, str], folder: Path, **extra: object) -> None:
    values = dict(
        pretrained_model_name=str(tiny_bert),
        downstream_model_dir=str(folder),
        accelerator="cpu",
        batch_size=16,
        eval_batch_size=16,
        epochs=2,
        pad_buckets="16,32",
        save_every_n_minutes=None,
        log_every_n_steps=1,
        **files,
    )
    nlpbook.train(ClassificationTrainArguments(**{**values, **extra}))  # type: ignore[arg-type]


def test_a_fixed_shape_run_scores_every_example_once_and_resumes_exactly(
    tiny_bert: Path, files: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    collate, training_step = Collator.__call__, TaskModule.training_step
    shapes: set[tuple[int, ...]] = set()
    trained: list[list[int]] = []
    stop_at: list[int] = []  # a global step at which the run gets SIGTERM

    def recording_collate(self: Collator, batch: list[dict]) -> dict[str, torch.Tensor]:
        out = collate(self, batch)
        shapes.add(tuple(out["input_ids"].shape))
        return out

    def recording_step(self: TaskModule, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.global_step in stop_at:
            os.kill(os.getpid(), signal.SIGTERM)  # stops after this step, last.ckpt saved
        trained.append(batch["feature_index"].tolist())
        return training_step(self, batch, batch_idx)

    task = get_task("classification")
    scored: list[list[int]] = []

    def metrics(examples, features, outputs, label_names, args):  # noqa: ANN001, ANN202
        scored.append([id(f) for f in features])
        return type(task).metrics(task, examples, features, outputs, label_names, args)

    monkeypatch.setattr(Collator, "__call__", recording_collate)
    monkeypatch.setattr(TaskModule, "training_step", recording_step)
    monkeypatch.setattr(task, "metrics", metrics)

    run(tiny_bert, files, tmp_path / "whole")  # 100 rows / 16: 6 full batches per epoch, 4 left out
    assert shapes <= {(16, 16), (16, 32)}
    assert len(trained) == 12 and all(len(set(b)) == 16 for b in trained)
    for epoch in (trained[:6], trained[6:]):
        assert len({i for b in epoch for i in b}) == 96, "each example once per epoch but 4"
    assert len(scored) == 2 and all(len(s) == len(set(s)) == 40 for s in scored), "fillers unscored"

    reference, trained[:], stop_at[:] = list(trained), [], [7]
    with pytest.raises(TrainingInterrupted):
        run(tiny_bert, files, tmp_path / "stopped")
    state = torch.load(tmp_path / "stopped" / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["nlpbook_position"] == {"epoch": 1, "batches": 2}, "stopped mid-epoch 2"
    stop_at[:] = []
    run(tiny_bert, files, tmp_path / "stopped", resume=True)
    assert trained == reference, "the resumed run trains exactly the batches of the whole run"
    resumed = torch.load(tmp_path / "stopped" / "last.ckpt", map_location="cpu", weights_only=False)
    whole = torch.load(tmp_path / "whole" / "last.ckpt", map_location="cpu", weights_only=False)
    for name, value in whole["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], value, rtol=1e-5, atol=1e-6, msg=name)
