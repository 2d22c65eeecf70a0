"""Graph compilations on XLA: per-batch padding vs ``pad_buckets``, through nlpbook's own TPU path.

Run by hand in a separate venv with torch_xla (never in CI: torch_xla pins its own torch)::

    python -m venv xla-venv
    xla-venv/bin/pip install torch==2.9.0 torch_xla==2.9.0 "pytorch-lightning<2.7" -e .
    source xla-venv/bin/activate; export PJRT_DEVICE=CPU
    PYTHONPATH=. python benchmarks/xla_shapes.py [--rows 192] [--eval_rows 80] [--epochs 3] [--cores8]

No TPU is needed: torch_xla's CPU backend (``PJRT_DEVICE=CPU``) traces and compiles graphs as a TPU
does. Lightning asks the TPU runtime how many TPU devices there are (PCI ids and the GCE metadata
server), so off a TPU it finds none; the script stands in for that one question
(``XLAAccelerator.auto_device_count``, checked with Lightning 2.6.6; later versions move it to
another package) and calls ``nlpbook.train`` with ``tpu_cores=1`` on NSMC rows (kcbert-base's
tokenizer, a 2-layer BERT built from its config with random weights), once per configuration and
each in a fresh process, as XLA's graph cache and counters are per process:
``dynamic`` (``pad_buckets="none"``, per-batch padding as on a GPU) and ``bucketed``
(``pad_buckets="auto"``, the TPU default: 32/64/96/128 and a fixed batch size).

It prints the compilations (torch_xla's ``UncachedCompile``, equal to ``CompileTime``'s count) in
training and validation steps per epoch, the step each happened at, the distinct batch shapes, and
the shapes the whole NSMC training set would take (counted, not run); the last line is
``compiles_dynamic=<n> compiles_bucketed=<m>`` (training + validation steps). With buckets, expect
per bucket up to three training graphs: ordinary steps; the first step of epochs 2 and later
(Lightning resets its logged metrics inside it); the last steps (once ``learning_rate *
weight_decay`` is below float32's resolution at 1, AdamW decays by the constant 1); plus one for
the very first step (AdamW creates its state). Validation: one per bucket, plus the run's first
step (it creates Lightning's ``val_loss`` accumulators). On a TPU each compilation of kcbert-base
takes tens of seconds.

What the CPU backend cannot run: ``tpu_cores=8``. Lightning's ``XLAStrategy`` starts one process per
core through ``xmp.spawn``; on the CPU backend torch_xla starts one process holding a thread per
device, which Lightning does not expect (one replica without sharding, or collectives that never
meet). ``--cores8`` only builds nlpbook's Trainer for ``tpu_cores=8`` (an ``XLAStrategy`` over 8
devices) and checks, without XLA, that the 8 per-core shares of the batches have equal lengths and
bucket shapes. Compilations are per process and per core: the one-device counts are each core's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

CASES = {"dynamic": "none", "bucketed": "auto"}
TINY = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128}


def install_tpu_count_standin(devices: int) -> None:
    """Lightning's TPU device count, as a TPU host would report it (must run before any Trainer)."""
    from lightning_fabric.accelerators.xla import XLAAccelerator

    XLAAccelerator.auto_device_count = staticmethod(lambda: devices)  # type: ignore[method-assign]
    XLAAccelerator.is_available = staticmethod(lambda: True)  # type: ignore[method-assign]


def tiny_kcbert(folder: Path) -> Path:
    """kcbert-base's tokenizer and config, shrunk to 2 small layers (``random_init`` builds it)."""
    from common import KCBERT_DIR, require_shared_data

    require_shared_data()
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.txt", "tokenizer_config.json"):
        (folder / name).write_bytes((KCBERT_DIR / name).read_bytes())
    config = json.loads((KCBERT_DIR / "config.json").read_text(encoding="utf-8"))
    (folder / "config.json").write_text(json.dumps({**config, **TINY}), encoding="utf-8")
    return folder


def compiles() -> int:
    import torch_xla.debug.metrics as met

    return int(met.counter_value("UncachedCompile") or 0)


def compile_counter() -> Any:
    """A callback that books each compilation to the phase (and epoch) running when it happened."""
    import pytorch_lightning as pl

    class CompileCounter(pl.Callback):
        def __init__(self) -> None:
            self.by_phase: dict[str, int] = defaultdict(int)
            self.by_epoch: dict[str, int] = defaultdict(int)
            self.events: list[str] = []  # "train e2 b0 16x96 +1": where each compilation happened
            self.phase, self.last, self.epoch, self.where = "setup", compiles(), 0, "setup"

        def switch(self, phase: str, epoch: int | None = None, where: str = "") -> None:
            now = compiles()
            if now > self.last:
                self.events.append(f"{self.where} +{now - self.last}")
            self.by_phase[self.phase] += now - self.last
            if self.phase in ("train", "val"):
                self.by_epoch[f"{self.phase}_epoch{self.epoch + 1}"] += now - self.last
            self.last, self.phase = now, phase
            self.epoch = self.epoch if epoch is None else epoch
            self.where = where or f"after {self.where}"

        def batch(self, phase: str, trainer: Any, batch: Any, index: int) -> None:
            rows, length = batch["input_ids"].shape
            where = f"{phase} e{trainer.current_epoch + 1} b{index} {rows}x{length}"
            self.switch(phase, trainer.current_epoch, where)

        def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, index: int) -> None:
            self.batch("train", trainer, batch, index)

        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            self.switch("other")

        def on_validation_batch_start(self, trainer: Any, _: Any, batch: Any, index: int, *__: Any) -> None:
            self.batch("val", trainer, batch, index)

        def on_validation_batch_end(self, trainer: Any, *args: Any) -> None:
            self.switch("other")

    return CompileCounter()


def run_case(case: str, options: argparse.Namespace) -> dict[str, Any]:
    """One configuration through ``nlpbook.train`` on one XLA (CPU) device; run in its own process."""
    import torch

    torch.set_num_threads(1)  # a shared machine
    install_tpu_count_standin(1)
    import nlpbook
    from nlpbook import commands
    from nlpbook.classification import ClassificationTrainArguments
    from nlpbook.data import Collator

    counter = compile_counter()
    build_trainer, make_loader, collate = commands.build_trainer, commands.make_loader, Collator.__call__
    train_collators: list[Collator] = []
    seen: dict[str, list[tuple[int, ...]]] = {"train": [], "val": []}

    def counted_trainer(*args: Any, **kwargs: Any) -> Any:
        trainer = build_trainer(*args, **kwargs)
        trainer.callbacks.append(counter)
        return trainer

    def noted_loader(*args: Any, **kwargs: Any) -> Any:
        loader = make_loader(*args, **kwargs)
        if kwargs.get("shuffle"):
            train_collators.append(loader.collate_fn)
        return loader

    def recording(self: Collator, batch: list[dict]) -> dict[str, torch.Tensor]:
        out = collate(self, batch)
        seen["train" if self in train_collators else "val"].append(tuple(out["input_ids"].shape))
        return out

    commands.build_trainer, commands.make_loader = counted_trainer, noted_loader
    Collator.__call__ = recording  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory(prefix="xla-shapes-") as tmp:
        args = ClassificationTrainArguments(
            pretrained_model_name=str(tiny_kcbert(Path(tmp) / "tiny-kcbert")),
            random_init=True,
            downstream_corpus_name="nsmc",
            downstream_corpus_root_dir=str(options.korpora),
            downstream_model_dir=str(Path(tmp) / "run"),
            max_train_samples=options.rows,
            max_eval_samples=options.eval_rows,
            batch_size=options.batch_size,
            eval_batch_size=options.eval_batch_size,
            max_seq_length=128,
            epochs=options.epochs,
            tpu_cores=1,
            pad_buckets=CASES[case],
            save_every_n_minutes=None,
            save_top_k=0,
        )
        nlpbook.train(args)
    counter.switch("other")
    import torch_xla.debug.metrics as met

    compile_time = met.metric_data("CompileTime")
    return {
        "case": case,
        "pad_buckets": CASES[case],
        "train_compiles": counter.by_phase["train"],
        "val_compiles": counter.by_phase["val"],
        "other_compiles": counter.by_phase["other"] + counter.by_phase["setup"],
        "by_epoch": dict(counter.by_epoch),
        "events": counter.events,
        "UncachedCompile": compiles(),
        "CompileTime_count": compile_time[0] if compile_time else 0,
        "compile_seconds": round(compile_time[1] / 1e9, 1) if compile_time else 0.0,
        "train_batches": len(seen["train"]),
        "val_batches": len(seen["val"]),
        "train_shapes": sorted(set(seen["train"])),
        "val_shapes": sorted(set(seen["val"])),
    }


def nsmc_features(args: Any) -> list[dict]:
    """The training rows of ``args`` encoded as nlpbook encodes them (kcbert-base's tokenizer)."""
    from common import kcbert_tokenizer

    from nlpbook.classification import TASK

    examples = TASK.read(args, "train")[: args.max_train_samples]
    return TASK.encode(examples, kcbert_tokenizer(), TASK.label_names(examples), args)


def check_cores8(options: argparse.Namespace) -> dict[str, Any]:
    """What can be checked of ``tpu_cores=8`` on the CPU backend: the Trainer nlpbook builds, and the
    8 per-core shares of the bucketed batches (plain Python, the sampler's own sharding)."""
    install_tpu_count_standin(8)
    from nlpbook.classification import ClassificationTrainArguments
    from nlpbook.data import make_loader
    from nlpbook.trainer import build_trainer
    from nlpbook.xla import pad_buckets

    with tempfile.TemporaryDirectory(prefix="xla-cores8-") as tmp:
        args = ClassificationTrainArguments(
            downstream_corpus_root_dir=str(options.korpora),
            downstream_model_dir=tmp,
            max_train_samples=options.rows * 8,
            batch_size=options.batch_size,
            tpu_cores=8,
        )
        trainer = build_trainer(args)
        strategy = trainer.strategy
        features, buckets = nsmc_features(args), pad_buckets(args)
        shares = []
        for rank in range(8):
            loader = make_loader(features, args.batch_size, 0, shuffle=True, seed=7, pad_buckets=buckets)
            loader.sampler.shard(rank, 8)
            shares.append([tuple(batch["input_ids"].shape) for batch in loader])
    return {
        "strategy": type(strategy).__name__,
        "devices": len(getattr(strategy, "parallel_devices", None) or []),
        "launcher": type(strategy.launcher).__name__ if strategy.launcher else None,
        "buckets": buckets,
        "batches_per_core": sorted({len(share) for share in shares}),
        "shapes": sorted({shape for share in shares for shape in share}),
    }


def whole_corpus_shapes(options: argparse.Namespace) -> dict[str, Any]:
    """The distinct training shapes of ``options.epochs`` epochs over the whole NSMC training set
    at the default batch size, each a compilation on XLA: lengths only, no XLA needed."""
    from nlpbook.classification import ClassificationTrainArguments
    from nlpbook.data import LengthGroupedSampler
    from nlpbook.xla import bucket_lengths

    args = ClassificationTrainArguments(
        downstream_corpus_root_dir=str(options.korpora), downstream_model_dir="x"
    )
    lengths = [len(feature["input_ids"]) for feature in nsmc_features(args)]
    buckets = bucket_lengths("auto", args.max_seq_length, xla=True) or ()
    shapes: dict[str, set[tuple[int, int]]] = {"dynamic": set(), "bucketed": set()}
    for case, fixed in (("dynamic", False), ("bucketed", True)):
        sampler = LengthGroupedSampler(lengths, args.batch_size, seed=args.seed or 0, drop_last=fixed)
        for epoch in range(options.epochs):
            sampler.set_epoch(epoch)
            for batch in sampler.batches():
                width = max(lengths[i] for i in batch)
                width = min(n for n in buckets if n >= width) if fixed else width
                shapes[case].add((len(batch), width))
    return {"rows": len(lengths), "batch_size": args.batch_size, **{k: len(v) for k, v in shapes.items()}}


def child(case: str, options: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, os.path.abspath(__file__), *options.argv, "--case", case]
    paths = [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    environment = {**os.environ, "PJRT_DEVICE": "CPU", "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        sys.exit(f"{case} failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=192, help="NSMC training rows")
    parser.add_argument("--eval_rows", type=int, default=80, help="NSMC test rows")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--eval_batch_size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help="later epochs show what still compiles")
    parser.add_argument("--korpora", type=Path, default=None, help="default: the shared data's korpora")
    parser.add_argument("--cores8", action="store_true", help="also the tpu_cores=8 build check")
    parser.add_argument("--case", choices=[*CASES, "cores8"], help=argparse.SUPPRESS)
    options = parser.parse_args()
    options.argv = [a for a in sys.argv[1:] if a != "--cores8"]
    sys.path.insert(0, str(Path(__file__).parent))  # common.py
    if options.korpora is None:
        from common import SHARED_DATA

        options.korpora = SHARED_DATA / "korpora"
    if options.case == "cores8":
        print(json.dumps(check_cores8(options)))
        return
    if options.case:
        print(json.dumps(run_case(options.case, options), default=list))
        return
    results = {case: child(case, options) for case in CASES}
    for r in results.values():
        train = f"{r['train_compiles']} compilations over {r['train_batches']} batches"
        val = f"{r['val_compiles']} over {r['val_batches']} batches"
        print(f"{r['case']} (pad_buckets={r['pad_buckets']!r}): training {train}, validation {val}")
        print(f"  per epoch {r['by_epoch']}; other (setup, epoch ends, checkpoints) {r['other_compiles']}")
        print(f"  compiled at: {', '.join(r['events'])}")
        print(
            f"  total UncachedCompile {r['UncachedCompile']}, CompileTime count {r['CompileTime_count']} "
            f"({r['compile_seconds']} s compiling)"
        )
        print(f"  {len(r['train_shapes'])} training shapes {r['train_shapes']}")
        print(f"  {len(r['val_shapes'])} validation shapes {r['val_shapes']}")
    if options.cores8:
        print(f"tpu_cores=8 (built, not run): {child('cores8', options)}")
    whole = whole_corpus_shapes(options)
    print(
        f"the whole NSMC training set ({whole['rows']} rows, batch {whole['batch_size']}, {options.epochs} "
        f"epochs; counted, not run): {whole['dynamic']} training shapes dynamic, {whole['bucketed']} bucketed"
    )
    d, b = results["dynamic"], results["bucketed"]
    print(
        f"compiles_dynamic={d['train_compiles'] + d['val_compiles']} "
        f"compiles_bucketed={b['train_compiles'] + b['val_compiles']}"
    )


if __name__ == "__main__":
    main()
