"""NSMC document classification end to end on the tiny offline BERT: train, export, evaluate,
predict, resume, and the LR schedule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import nlpbook
from nlpbook.classification import ClassificationTrainArguments
from nlpbook.cli import main as cli_main
from nlpbook.logs import training_log


def make_args(tiny_bert: Path, nsmc_root: Path, model_dir: Path, **overrides) -> ClassificationTrainArguments:
    values = dict(
        pretrained_model_name=str(tiny_bert),
        downstream_corpus_name="nsmc",
        downstream_corpus_root_dir=str(nsmc_root),
        downstream_model_dir=str(model_dir),
        batch_size=32,
        learning_rate=3e-3,
        max_seq_length=64,
        epochs=3,
        seed=7,
        log_every_n_steps=1,
    )
    return ClassificationTrainArguments(**{**values, **overrides})


def logged(model_dir: Path, column: str) -> list[tuple[int, float]]:
    return [(int(row["step"]), row[column]) for row in training_log(model_dir) if column in row]


@pytest.fixture(scope="module")
def trained(tiny_bert: Path, nsmc_root: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch_module):
    # The corpus files are in place: Korpora (which goes online first) must not be called.
    def no_download(*args, **kwargs):
        raise AssertionError("Korpora.fetch was called although the NSMC files exist")

    monkeypatch_module.setattr("Korpora.Korpora.fetch", no_download)
    args = make_args(tiny_bert, nsmc_root, tmp_path_factory.mktemp("run") / "nsmc")
    export = nlpbook.train(args)
    return args, export


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_loss_goes_down_and_accuracy_beats_chance(trained):
    args, _ = trained
    losses = [loss for _, loss in logged(args.model_dir, "train_loss")]
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    assert max(acc for _, acc in logged(args.model_dir, "val_accuracy")) > 0.8


def test_learning_rate_follows_warmup_and_decay(trained):
    args, _ = trained
    rates = [lr for _, lr in logged(args.model_dir, "lr")]
    peak = rates.index(max(rates))
    assert rates[0] < rates[peak], "warmup: the LR rises first"
    assert rates[-1] < 0.2 * rates[peak], "linear decay: the LR falls towards 0"


def test_checkpoints_and_export_layout(trained):
    args, export = trained
    assert export == args.model_dir / "export"
    assert (args.model_dir / "last.ckpt").is_file()
    best = [p for p in args.model_dir.glob("epoch=*.ckpt")]
    assert len(best) == args.save_top_k
    saved = json.loads((args.model_dir / "train_args.json").read_text(encoding="utf-8"))
    assert saved["task"] == "classification" and saved["batch_size"] == 32


def test_export_loads_in_plain_transformers_with_label_names(trained):
    _, export = trained
    model = AutoModelForSequenceClassification.from_pretrained(export)
    tokenizer = AutoTokenizer.from_pretrained(export)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert model.config.label2id == {"negative": 0, "positive": 1}
    inputs = tokenizer(["영화 정말 최고 추천"], return_tensors="pt")
    with torch.inference_mode():
        plain = model(**inputs).logits.softmax(-1)[0].tolist()
    ours = nlpbook.predict(export, ["영화 정말 최고 추천"])[0]
    assert ours["probabilities"] == pytest.approx(
        dict(zip(["negative", "positive"], plain, strict=True)), abs=1e-5
    )


def test_export_reloads_to_identical_predictions(trained):
    args, export = trained
    texts = ["배우 연기 최고 명작", "스토리 지루 실망", "그냥 영화"]
    first = nlpbook.predict(export, texts)
    again = nlpbook.Predictor.from_pretrained(args.model_dir)(texts)  # downstream_model_dir works too
    assert first == again
    assert [r["label"] for r in first[:2]] == ["positive", "negative"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-6 for r in first)


def test_evaluate_writes_metrics(trained):
    args, export = trained
    metrics = nlpbook.evaluate(args)
    assert metrics["accuracy"] > 0.8 and metrics["macro_f1"] > 0.8
    assert set(metrics["per_class"]) == {"negative", "positive"}
    assert {"precision", "recall", "f1", "support"} <= set(metrics["per_class"]["positive"])
    on_disk = json.loads((export / "evaluation.json").read_text(encoding="utf-8"))
    assert on_disk["accuracy"] == metrics["accuracy"]


def test_refuses_to_train_over_an_earlier_run(trained):
    args, _ = trained
    with pytest.raises(nlpbook.ArgumentError, match="resume=True"):
        nlpbook.train(args)


def test_resume_continues_from_the_saved_step(tiny_bert, nsmc_root, tmp_path):
    args = make_args(tiny_bert, nsmc_root, tmp_path / "run", max_steps=8, epochs=5)
    nlpbook.train(args)
    first = torch.load(args.model_dir / "last.ckpt", map_location="cpu", weights_only=False)
    assert first["global_step"] == 8

    resumed = make_args(tiny_bert, nsmc_root, tmp_path / "run", max_steps=14, epochs=5, resume=True)
    nlpbook.train(resumed)
    last = torch.load(args.model_dir / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 14
    steps = [step for step, _ in logged(args.model_dir, "train_loss")]
    assert steps[0] == 0 and steps[-1] == 13, "the log keeps the steps from before the resume"
    assert len(steps) == len(set(steps)) == 14, "no step trained twice, none skipped"
    adam_steps = {float(state["step"]) for state in last["optimizer_states"][0]["state"].values()}
    assert adam_steps == {14.0}, "the optimizer state carried over"
    assert last["lr_schedulers"][0]["last_epoch"] == 14, "the LR schedule carried over"


def test_best_checkpoints_hold_weights_only_and_the_run_still_resumes(tiny_bert, nsmc_root, tmp_path):
    """The AdamW state (twice the weights) lives in last.ckpt alone; the export is the best one."""

    def run(epochs: int, **more) -> Path:
        args = make_args(tiny_bert, nsmc_root, tmp_path / "run", epochs=epochs, max_train_samples=128, **more)
        return nlpbook.train(args)

    run(1, max_eval_samples=32, save_top_k=2)
    export = run(2, max_eval_samples=32, save_top_k=2, resume=True)
    last = torch.load(tmp_path / "run" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 8 and {"optimizer_states", "lr_schedulers"} <= set(last)
    best = sorted((tmp_path / "run").glob("epoch=*.ckpt"))
    assert len(best) == 2, "one best checkpoint per epoch, the resumed one too"
    for path in best:
        saved = torch.load(path, weights_only=False)
        assert "state_dict" in saved and not {"optimizer_states", "lr_schedulers", "callbacks"} & set(saved)
    tracker = next(state for name, state in last["callbacks"].items() if name.startswith("ModelCheckpoint"))
    weights = torch.load(tracker["best_model_path"], weights_only=False)["state_dict"]
    exported = AutoModelForSequenceClassification.from_pretrained(export).state_dict()
    assert torch.equal(weights["model.classifier.weight"], exported["classifier.weight"])


def test_two_devices_train_in_spawned_processes_and_resume(tiny_bert, nsmc_root, tmp_path):
    """devices=2 (two CPU processes here, as two GPUs would be): each trains on its own share of
    the length-grouped batches, the caller's process keeps the lock and writes the export, and the
    run resumes. 480 rows / 32 = 15 batches: 7 per device, one left out each epoch."""
    args = make_args(tiny_bert, nsmc_root, tmp_path / "ddp", accelerator="cpu", devices="2", epochs=1)
    export = nlpbook.train(args)
    assert torch.load(args.model_dir / "last.ckpt", weights_only=False)["global_step"] == 7
    best = next(args.model_dir.glob("epoch=*.ckpt"))
    weights = torch.load(best, weights_only=False)["state_dict"]
    exported = AutoModelForSequenceClassification.from_pretrained(export).state_dict()
    assert torch.equal(weights["model.classifier.weight"], exported["classifier.weight"])

    nlpbook.train(
        make_args(
            tiny_bert, nsmc_root, tmp_path / "ddp", accelerator="cpu", devices="2", epochs=2, resume=True
        )
    )
    assert torch.load(args.model_dir / "last.ckpt", weights_only=False)["global_step"] == 14
    assert nlpbook.predict(export, ["영화 최고"])[0]["label"] in ("negative", "positive")


def test_command_line_train_evaluate_predict(tiny_bert, nsmc_root, tmp_path, capsys):
    common = [
        "--pretrained_model_name",
        str(tiny_bert),
        "--downstream_corpus_root_dir",
        str(nsmc_root),
        "--downstream_model_dir",
        str(tmp_path / "cli"),
        "--epochs",
        "1",
        "--max_steps",
        "3",
        "--max_eval_samples",
        "32",
    ]
    assert cli_main(["train", "classification", *common]) == 0
    assert cli_main(["evaluate", "classification", *common]) == 0
    assert '"accuracy"' in capsys.readouterr().out
    assert cli_main(["predict", "--model_dir", str(tmp_path / "cli"), "--text", "영화 최고"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["label"] in ("negative", "positive") and set(line["probabilities"]) == {
        "negative",
        "positive",
    }


def test_command_line_reports_bad_arguments(tmp_path, caplog):
    assert (
        cli_main(["train", "classification", "--downstream_model_dir", str(tmp_path), "--tpu_cores", "3"])
        == 2
    )
    assert "tpu_cores must be 0, 1 or 8" in caplog.text
