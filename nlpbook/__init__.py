"""nlpbook: fine-tune pretrained Korean BERT models with PyTorch Lightning and transformers.

from nlpbook.classification import ClassificationTrainArguments
args = ClassificationTrainArguments(downstream_model_dir="runs/nsmc", ...)
export_dir = nlpbook.train(args)
nlpbook.evaluate(args)
nlpbook.predict(export_dir, ["재미있는 영화였다"])
nlpbook.serve(export_dir, port=8000)  # web demo + JSON API
nlpbook.set_verbosity("warning")  # only warnings and errors from here on
"""

from __future__ import annotations

import importlib
from typing import Any

from nlpbook import console
from nlpbook.arguments import ArgumentError, TrainArguments
from nlpbook.console import set_verbosity
from nlpbook.corpus import DataError
from nlpbook.errors import CheckpointWriteError, ExportError, NonFiniteLossError

__all__ = [
    "train",
    "evaluate",
    "predict",
    "serve",
    "Predictor",
    "set_verbosity",
    "TrainArguments",
    "ArgumentError",
    "DataError",
    "ExportError",
    "NonFiniteLossError",
    "CheckpointWriteError",
]
__version__ = "0.1.0"

# The commands pull in torch, Lightning and transformers (seconds): they are imported on first
# use, so `import nlpbook`, the argument classes and `nlpbook --help` stay fast.
_LAZY = {
    "train": "nlpbook.commands",
    "evaluate": "nlpbook.commands",
    "predict": "nlpbook.predictor",
    "Predictor": "nlpbook.predictor",
    "serve": "nlpbook.web",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # cached: the next access skips __getattr__
        return value
    raise AttributeError(f"module 'nlpbook' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


# Warnings and progress reach scripts, notebooks and the CLI by default (see nlpbook.console).
console.install()
