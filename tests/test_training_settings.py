"""Training settings that must hold on every machine: each precision (with and without gradient
clipping and accumulation) trains to a finite loss and a loadable export; the learning-rate
schedule of a resumed run that got longer is re-planned, not jumped; long inputs are cut before
tokenising without changing what the model sees."""

from __future__ import annotations

import logging
import math
import random
import warnings
from pathlib import Path

import pytest
import torch
from conftest import toy_sentiment_files
from transformers import AutoTokenizer

import nlpbook
from nlpbook.classification import ClassificationTrainArguments
from nlpbook.console import quiet_libraries
from nlpbook.logs import training_log
from nlpbook.module import use_fused_adamw
from nlpbook.schedule import LinearSchedule
from nlpbook.text import cut_long


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return toy_sentiment_files(tmp_path_factory.mktemp("settings-data"), 96, 32)


def arguments(
    tiny_bert: Path, files: dict[str, str], model_dir: Path, **extra
) -> ClassificationTrainArguments:
    values = dict(
        pretrained_model_name=str(tiny_bert),
        downstream_model_dir=str(model_dir),
        accelerator="cpu",
        batch_size=16,
        learning_rate=3e-3,
        log_every_n_steps=1,
        save_every_n_minutes=None,
        **files,
    )
    return ClassificationTrainArguments(**{**values, **extra})


# All four precisions Lightning offers; on a CPU nlpbook runs 16-mixed as bf16-mixed or 32-true (below).
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "bf16-true", "16-mixed"])
@pytest.mark.parametrize(
    ("max_grad_norm", "accumulation"), [(1.0, 2), (None, 1)], ids=["clip-accum", "plain"]
)
def test_every_precision_trains_and_exports(
    tiny_bert, files, tmp_path, caplog, precision, max_grad_norm, accumulation
):
    args = arguments(
        tiny_bert,
        files,
        tmp_path / "run",
        precision=precision,
        max_grad_norm=max_grad_norm,
        gradient_accumulation_steps=accumulation,
        max_steps=3,
        epochs=1,
    )
    with caplog.at_level(logging.INFO, logger="nlpbook"):
        export = nlpbook.train(args)
    losses = [row["train_loss"] for row in training_log(args.model_dir) if "train_loss" in row]
    assert len(losses) == 3 * accumulation or len(losses) == 3
    assert all(math.isfinite(loss) for loss in losses)
    # 6 batches an epoch: 3 steps of 2 accumulated batches end it and validate; 3 single-batch
    # steps stop before its validation, and the summary says so
    summary = caplog.records[-1].getMessage()
    assert summary.startswith("trained 1 epoch(s), 3 step(s)"), summary
    assert ("best val_loss" in summary) == (accumulation == 2) != ("not validated" in summary), summary
    prediction = nlpbook.predict(export, ["영화 최고"])[0]
    assert prediction["label"] in ("0", "1") and math.isfinite(sum(prediction["probabilities"].values()))


@pytest.mark.parametrize(
    ("has_bf16", "expected"), [(False, "32-true"), (True, "bf16-mixed"), (None, "bf16-mixed")]
)
def test_fp16_on_a_cpu_trains_in_what_the_cpu_runs_and_says_so_in_one_line(
    tmp_path, monkeypatch, caplog, has_bf16, expected
) -> None:
    # Lightning runs fp16 on a CPU as bf16-mixed, which a CPU without bf16 instructions emulates
    # (16x slower than float32 on the AVX2 build machine): nlpbook picks 32-true there.
    from nlpbook import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "cpu_has_bf16", lambda: has_bf16)
    args = ClassificationTrainArguments(
        downstream_model_dir=str(tmp_path / "run"), accelerator="cpu", fp16=True
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_libraries(), caplog.at_level(logging.INFO, logger="nlpbook"):
            trainer = trainer_module.build_trainer(args)
    assert trainer.precision == expected
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 1 and said[0].startswith("fp16=True: "), said
    assert said[0].split(": training in ")[1].startswith(expected), said
    assert not [w for w in caught if "fp16" in str(w.message)], [str(w.message) for w in caught]


def test_cpu_bf16_instructions_are_read_from_cpuinfo(tmp_path) -> None:
    from nlpbook.trainer import cpu_has_bf16

    cases = {
        "flags\t\t: fpu sse avx2 fma\n": False,
        "flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n": True,
        "Features\t: fp asimd bf16 i8mm\n": True,  # Arm
    }
    for text, expected in cases.items():
        (tmp_path / "cpuinfo").write_text("processor\t: 0\n" + text, encoding="utf-8")
        assert cpu_has_bf16(tmp_path / "cpuinfo") is expected, text
    assert cpu_has_bf16(tmp_path / "missing") is None


def test_fused_adamw_unless_a_grad_scaler_must_be_clipped() -> None:
    assert use_fused_adamw(False, 1.0) and use_fused_adamw(True, None)
    assert not use_fused_adamw(True, 1.0)


def test_bf16_mixed_clips_the_fused_optimizers_gradients(tiny_bert, files, tmp_path, monkeypatch) -> None:
    # Lightning refuses to clip for fused AdamW under any mixed precision; bf16 has no scaler, so
    # nlpbook lets it: every step must run fused on gradients clipped to max_grad_norm.
    seen: list[tuple[bool, float]] = []
    step = torch.optim.AdamW.step

    def recording_step(self, *args, **kwargs):
        result = step(self, *args, **kwargs)  # Lightning's closure computes the gradients inside
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        seen.append((bool(self.defaults["fused"]), float(torch.nn.utils.get_total_norm(grads))))
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    args = arguments(
        tiny_bert, files, tmp_path / "run", precision="bf16-mixed", max_grad_norm=1e-3, max_steps=3
    )
    nlpbook.train(args)
    assert len(seen) == 3
    assert all(fused for fused, _ in seen)
    assert all(norm == pytest.approx(1e-3, rel=1e-3) for _, norm in seen)  # raw norms are far larger


def test_schedule_is_warmup_then_linear_decay() -> None:
    schedule = LinearSchedule(warmup_steps=2, total_steps=10)
    assert [round(schedule(s), 3) for s in range(11)] == [
        0,
        0.5,
        1,
        0.875,
        0.75,
        0.625,
        0.5,
        0.375,
        0.25,
        0.125,
        0,
    ]


def learning_rates(model_dir: Path) -> dict[int, float]:
    return {int(row["step"]): row["lr"] for row in training_log(model_dir) if "lr" in row}


def test_an_interrupted_run_resumed_longer_decays_on_without_a_jump(
    tiny_bert, files, tmp_path, monkeypatch
) -> None:
    # 96 rows / 16 = 6 steps an epoch; planned 2 epochs (12 steps), crashed after the step-5
    # checkpoint, resumed for 4 epochs (24 steps).
    from nlpbook.module import TaskModule

    original = TaskModule.training_step

    def crash_at_step_7(self, batch, batch_idx):
        if self.global_step == 7:
            raise RuntimeError("simulated crash")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(TaskModule, "training_step", crash_at_step_7)
    with pytest.raises(RuntimeError, match="simulated crash"):
        nlpbook.train(arguments(tiny_bert, files, tmp_path / "run", epochs=2, save_every_n_steps=5))
    monkeypatch.setattr(TaskModule, "training_step", original)
    before = learning_rates(tmp_path / "run")
    nlpbook.train(arguments(tiny_bert, files, tmp_path / "run", epochs=4, resume=True))
    rates = learning_rates(tmp_path / "run")
    assert sorted(rates) == list(range(24)) and all(rates[s] == before[s] for s in range(5))
    after = [rates[s] for s in range(5, 24)]
    assert after == sorted(after, reverse=True), "a steady decay from the resume on"
    assert abs(after[0] - before[4]) < 0.15 * before[4], "no jump at the resume"
    assert after[-1] < 0.1 * max(before.values())


def test_a_finished_run_extended_starts_a_new_warmup_cycle(tiny_bert, files, tmp_path) -> None:
    nlpbook.train(arguments(tiny_bert, files, tmp_path / "run", epochs=1))
    first = learning_rates(tmp_path / "run")
    nlpbook.train(arguments(tiny_bert, files, tmp_path / "run", epochs=3, resume=True))
    rates = learning_rates(tmp_path / "run")
    extension = [rates[s] for s in range(6, 18)]
    peak = extension.index(max(extension))
    assert extension[0] < 0.5 * max(first.values()), "no jump from 0 to a high learning rate"
    assert 0 < peak < 5 and extension[peak] == pytest.approx(3e-3, rel=0.01), "warmup to learning_rate"
    assert extension[peak:] == sorted(extension[peak:], reverse=True)


def test_resumed_steps_are_listed_once_with_the_values_of_the_run_that_continued(tmp_path) -> None:
    logs = tmp_path / "logs"
    for version, steps, loss, start in ((0, range(10), 1.0, 0), (1, range(6, 12), 2.0, 6)):
        folder = logs / f"version_{version}"
        folder.mkdir(parents=True)
        rows = "".join(f"{loss},{step}\n" for step in steps)
        (folder / "metrics.csv").write_text("train_loss,step\n" + rows, encoding="utf-8")
        (folder / "start_step").write_text(f"{start}\n", encoding="utf-8")
    rows = training_log(tmp_path)
    assert [row["step"] for row in rows] == list(range(12))
    assert [row["train_loss"] for row in rows] == [1.0] * 6 + [2.0] * 6


def test_a_very_long_text_is_cut_before_tokenising_with_the_same_result(kcbert_dir) -> None:
    tokenizer = AutoTokenizer.from_pretrained(kcbert_dir)
    rng = random.Random(0)
    words = ["정말", "재밌는", "영화", "였다!!", "배우", "연기가", "최고", "ㅋㅋㅋ", "...", "지루"]
    text = " ".join(rng.choice(words) for _ in range(200_000))  # ~1.2 M characters, one line
    cut = cut_long(text, tokenizer, 128)
    assert len(cut) < 5_000
    whole = tokenizer(text[:100_000], truncation=True, max_length=128, verbose=False)
    assert tokenizer(cut, truncation=True, max_length=128)["input_ids"] == whole["input_ids"]
    assert cut_long("짧은 문장", tokenizer, 128) == "짧은 문장"
    assert torch.tensor(whole["input_ids"]).numel() == 128
