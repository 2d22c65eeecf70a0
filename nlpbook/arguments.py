"""The shared training arguments.

Field names follow the book (ratsnlp) so that a reader's notebook moves over by changing an import;
the modern fields (precision, warmup, resume, ...) are additions, never renames. Every field's
``help`` metadata is also its ``--help`` text on the command line (see ``cli.py``).
"""

from __future__ import annotations

import json
import re
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

from nlpbook.errors import ArgumentError, spell
from nlpbook.fieldtypes import normalised, type_problems
from nlpbook.xla import bucket_problems

__all__ = ["TrainArguments", "ArgumentError", "load_arguments", "option"]

Precision = Literal["32-true", "16-mixed", "bf16-mixed", "bf16-true"]
Accelerator = Literal["auto", "cpu", "gpu", "cuda", "mps", "tpu"]


def option(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


@dataclass
class TrainArguments:
    """Arguments shared by every task. Task modules subclass this and add only their own fields."""

    task: ClassVar[str] = ""
    corpora: ClassVar[tuple[str, ...]] = ()  # the known corpora of the task; the first is the default
    book_task_name: ClassVar[str] = ""  # ratsnlp's downstream_task_name for this task

    # --- the book's fields -------------------------------------------------------------------
    pretrained_model_name: str = option(
        "Hugging Face hub name or local folder of the pretrained model", default="beomi/kcbert-base"
    )
    downstream_task_name: str = option(
        "the book's task name (e.g. document-classification); accepted for its notebooks, "
        "the task itself comes from the arguments class",
        default="",
    )
    downstream_corpus_name: str = option(
        "corpus to train on: a known name (see the task) or 'custom' with --train_file/--test_file",
        default="",
    )
    downstream_corpus_root_dir: str = option(
        "folder holding corpora in Korpora's layout (<root>/<corpus>/...)", default="~/Korpora"
    )
    downstream_model_dir: str = option(
        "output folder: checkpoints, logs, and the export that predict/serve read", default=""
    )
    max_seq_length: int = option("longest token sequence; longer input is truncated", default=128)
    save_top_k: int = option("how many best checkpoints (by --monitor) to keep", default=1)
    monitor: str = option("'min <metric>' or 'max <metric>', e.g. 'min val_loss'", default="min val_loss")
    seed: int | None = option("random seed for data order and initialisation", default=7)
    overwrite_cache: bool = option(
        "kept for the book's notebooks; features are not cached (tokenising NSMC takes seconds)",
        default=False,
    )
    force_download: bool = option(
        "train: download the corpus again (through Korpora) even when its files exist", default=False
    )
    test_mode: bool = option(
        "smoke run: 1 epoch of at most 20 training and 5 validation batches", default=False
    )
    learning_rate: float = option("peak learning rate of AdamW", default=5e-5)
    epochs: int = option("training epochs", default=3)
    batch_size: int = option("examples per training batch (per device)", default=32)
    cpu_workers: int = option("DataLoader worker processes (0 = load in the main process)", default=0)
    fp16: bool = option("mixed precision float16 (same as --precision 16-mixed)", default=False)
    tpu_cores: int = option("TPU cores: 0 (no TPU), 1 or 8", default=0)

    # --- modern additions --------------------------------------------------------------------
    accelerator: Accelerator = option("where to run: auto, cpu, gpu, mps or tpu", default="auto")
    devices: str = option("'auto', a device count, or a comma list of device ids", default="auto")
    precision: Precision | None = option(
        "32-true, 16-mixed, bf16-mixed or bf16-true (default: 16-mixed with --fp16, else 32-true; "
        "TPUs take 32-true or bf16-true)",
        default=None,
    )
    warmup_ratio: float = option("fraction of training steps with linear LR warmup", default=0.1)
    weight_decay: float = option("AdamW weight decay (not applied to biases and LayerNorm)", default=0.01)
    gradient_accumulation_steps: int = option("batches whose gradients add up to one step", default=1)
    max_grad_norm: float | None = option("clip gradients to this norm (none: no clipping)", default=1.0)
    early_stopping_patience: int | None = option(
        "stop after this many validations without improvement of --monitor", default=None
    )
    resume: bool = option("continue from last.ckpt in downstream_model_dir", default=False)
    overwrite_model_dir: bool = option(
        "start over in a downstream_model_dir that holds an earlier run (its checkpoints, logs and "
        "export are deleted first)",
        default=False,
    )
    save_every_n_steps: int | None = option(
        "also refresh last.ckpt every N optimizer steps, so a disconnect loses at most N steps",
        default=None,
    )
    save_every_n_minutes: float | None = option(
        "also refresh last.ckpt every N minutes of training, so a disconnect loses at most that much "
        "(none: only at epoch ends and every save_every_n_steps)",
        default=30.0,
    )
    val_check_interval: float | None = option(
        "validate every N batches (int) or fraction of an epoch (float); default once per epoch",
        default=None,
    )
    max_steps: int = option("stop after this many optimizer steps (-1: no limit)", default=-1)
    max_train_samples: int | None = option("use only the first N training examples", default=None)
    max_eval_samples: int | None = option("use only the first N evaluation examples", default=None)
    padding: Literal["dynamic", "max_length"] = option(
        "'dynamic' pads each batch to its longest example; 'max_length' pads all to max_seq_length",
        default="dynamic",
    )
    pad_buckets: str = option(
        "fixed lengths batches are padded to, with a fixed batch size: 'auto' (multiples of 32 up to "
        "max_seq_length on TPUs, where each new shape is a compilation; per-batch padding elsewhere), "
        "'none', or a comma list such as '32,64,128' (any device; max_seq_length is added)",
        default="auto",
    )
    group_by_length: bool = option(
        "batch examples of similar length together (less padding, faster)", default=True
    )
    eval_batch_size: int | None = option(
        "examples per evaluation batch (default: 2 x batch_size)", default=None
    )
    log_every_n_steps: int = option(
        "how often training metrics are logged (at least once an epoch)", default=10
    )
    random_init: bool = option(
        "build the model from its config with random weights instead of loading pretrained weights "
        "(benchmarks and offline smoke runs only: accuracy will be poor)",
        default=False,
    )
    train_file: str | None = option("your own training file (.tsv, .csv or .jsonl)", default=None)
    test_file: str | None = option("your own evaluation file (.tsv, .csv or .jsonl)", default=None)

    def __post_init__(self) -> None:
        # Types first: the value checks below compare numbers and would fail on a string.
        hints = typing.get_type_hints(type(self))
        wrong = type_problems(type(self), vars(self), spell)
        if wrong:
            raise _invalid(type(self).__name__, wrong)
        for f in fields(self):
            setattr(self, f.name, normalised(getattr(self, f.name), hints[f.name]))
        if not self.downstream_corpus_name:
            default = self.corpora[0] if self.corpora else "custom"
            self.downstream_corpus_name = "custom" if self.train_file else default
        problems = self.problems()
        if problems:
            raise _invalid(type(self).__name__, problems)

    def problems(self) -> list[str]:
        """Every reason these arguments cannot work, so the user fixes them all in one go."""
        found: list[str] = []
        if self.downstream_task_name and self.downstream_task_name not in (self.book_task_name, self.task):
            found.append(
                f"{spell('downstream_task_name', self.downstream_task_name)} does not match "
                f"{type(self).__name__} ({self.book_task_name!r}); use the arguments class of that task"
            )
        if not self.downstream_model_dir:
            found.append(
                f"{spell('downstream_model_dir')} is required: the folder for checkpoints and the export"
            )
        for name in (
            "max_seq_length",
            "batch_size",
            "epochs",
            "gradient_accumulation_steps",
            "log_every_n_steps",
        ):
            if getattr(self, name) < 1:
                found.append(f"{spell(name)} must be >= 1, got {getattr(self, name)}")
        if self.max_seq_length < 8:
            found.append(
                f"{spell('max_seq_length')} must be >= 8 to hold [CLS] text [SEP], got {self.max_seq_length}"
            )
        if not self.learning_rate > 0:
            found.append(f"{spell('learning_rate')} must be > 0, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            found.append(f"{spell('warmup_ratio')} must be in [0, 1), got {self.warmup_ratio}")
        if self.weight_decay < 0:
            found.append(f"{spell('weight_decay')} must be >= 0, got {self.weight_decay}")
        if self.tpu_cores not in (0, 1, 8):
            found.append(f"{spell('tpu_cores')} must be 0, 1 or 8, got {self.tpu_cores}")
        if self.tpu_cores and self.accelerator not in ("auto", "tpu"):
            tpu, accelerator = spell("tpu_cores", self.tpu_cores), spell("accelerator", self.accelerator)
            found.append(f"{tpu} conflicts with {accelerator}")
        if self.fp16 and self.precision not in (None, "16-mixed"):
            found.append(f"{spell('fp16', True)} conflicts with {spell('precision', self.precision)}")
        # Lightning 2.6's XLA precision takes only 32-true, 16-true (fp32 on torch_xla 2.9) or
        # bf16-true, and would refuse a mixed one only after the model and the data are loaded.
        on_tpu = bool(self.tpu_cores) or self.accelerator == "tpu"
        if on_tpu and self.fp16:
            found.append(f"{spell('fp16')} is not supported on TPU; use {spell('precision', 'bf16-true')}")
        elif on_tpu and self.precision in ("16-mixed", "bf16-mixed"):
            mixed, true = spell("precision", self.precision), spell("precision", "bf16-true")
            found.append(f"{mixed} is not supported on TPU; use {true}")
        found += self._monitor_problems()
        if self.downstream_corpus_name not in (*self.corpora, "custom"):
            known = ", ".join(repr(name) for name in (*self.corpora, "custom"))
            found.append(
                f"{spell('downstream_corpus_name', self.downstream_corpus_name)} is not a corpus of this "
                f"task; use one of {known} (custom: your own {spell('train_file')}/{spell('test_file')})"
            )
        if self.save_top_k < -1:
            found.append(f"{spell('save_top_k')} must be -1 (all), 0 or more, got {self.save_top_k}")
        if self.devices != "auto" and not re.fullmatch(r"-1|\d+|\d+(,\d+)*,?", self.devices.replace(" ", "")):
            found.append(
                f"{spell('devices')} must be 'auto', a count or a comma list of ids, got {self.devices!r}"
            )
        for name in (
            "max_train_samples",
            "max_eval_samples",
            "save_every_n_steps",
            "early_stopping_patience",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                found.append(f"{spell(name)} must be >= 1 when given, got {value}")
        if self.save_every_n_minutes is not None and not self.save_every_n_minutes > 0:
            found.append(
                f"{spell('save_every_n_minutes')} must be > 0 when given, got {self.save_every_n_minutes}"
            )
        if self.max_steps == 0 or self.max_steps < -1:
            found.append(f"{spell('max_steps')} must be -1 (no limit) or >= 1, got {self.max_steps}")
        if self.downstream_corpus_name == "custom" and not (self.train_file or self.test_file):
            found.append(
                f"{spell('downstream_corpus_name', 'custom')} needs {spell('train_file')} and/or "
                f"{spell('test_file')}"
            )
        if self.resume and self.overwrite_model_dir:
            found.append(
                f"{spell('resume')} and {spell('overwrite_model_dir')} conflict: continue the run, "
                "or start it over"
            )
        if self.cpu_workers < 0:
            found.append(f"{spell('cpu_workers')} must be >= 0, got {self.cpu_workers}")
        return found + bucket_problems(self.pad_buckets, self.max_seq_length)

    def _monitor_problems(self) -> list[str]:
        """--monitor must name a metric the task logs: a typo would otherwise fail after an epoch."""
        allowed = ["val_loss"]
        if self.task:
            from nlpbook.tasks import get_task

            allowed += [f"val_{name}" for name in get_task(self.task).metric_names]
        example = f"'min val_loss' or 'max {allowed[-1]}'"
        if not re.fullmatch(r"(min|max) \w+", self.monitor):
            return [f"{spell('monitor')} must look like {example}, got {self.monitor!r}"]
        if self.monitor.split()[1] not in allowed:
            return [
                f"{spell('monitor')} names {self.monitor.split()[1]!r}, which this task does not log; "
                f"choose one of {', '.join(allowed)} (e.g. {example})"
            ]
        return []

    # --- derived values ----------------------------------------------------------------------
    @property
    def model_dir(self) -> Path:
        return Path(self.downstream_model_dir).expanduser()

    @property
    def corpus_root(self) -> Path:
        return Path(self.downstream_corpus_root_dir).expanduser()

    @property
    def monitor_mode(self) -> str:
        return self.monitor.split()[0]

    @property
    def monitor_metric(self) -> str:
        return self.monitor.split()[1]

    @property
    def resolved_precision(self) -> str:
        if self.precision:
            return self.precision
        return "16-mixed" if self.fp16 else "32-true"

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, **asdict(self)}

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _invalid(cls_name: str, problems: list[str]) -> ArgumentError:
    return ArgumentError(f"invalid {cls_name}:\n  - " + "\n  - ".join(problems), problems)


def load_arguments(values: dict[str, Any], cls: type[TrainArguments]) -> TrainArguments:
    """Build ``cls`` from a dict (a saved ``train_args.json`` or a config file), naming unknown keys."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known - {"task"})
    if unknown:
        raise ArgumentError(f"unknown argument(s) for {cls.__name__}: {', '.join(unknown)}")
    return cls(**{k: v for k, v in values.items() if k in known})
