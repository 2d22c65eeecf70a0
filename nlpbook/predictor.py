"""Prediction from an export folder, for every task, through the task's own encode/decode."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlpbook.data import make_loader
from nlpbook.export import Export, read_export
from nlpbook.tasks import Features

__all__ = ["Predictor", "predict", "run_model"]


@torch.inference_mode()
def run_model(
    model: Any,
    features: Sequence[Features],
    pad_token_id: int,
    batch_size: int = 64,
    dtype: torch.dtype | None = None,
) -> list[np.ndarray]:
    """Logits for each feature, in input order; batches are length-sorted and padded per batch.

    Token-level logits are cut to the feature's own length, so padding never reaches a caller.
    """
    if not features:
        return []
    device = next(model.parameters()).device
    loader = make_loader(features, batch_size, pad_token_id, shuffle=False, group_by_length=True)
    results: list[np.ndarray | None] = [None] * len(features)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()
    for batch in loader:
        indices = batch.pop("feature_index").tolist()
        batch.pop("labels", None)
        with autocast:
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        logits = logits.float().cpu().numpy()
        lengths = batch["attention_mask"].sum(-1).tolist()
        for index, row, length in zip(indices, logits, lengths, strict=True):
            results[index] = row[:length] if row.ndim == 2 else row
    return results  # type: ignore[return-value]


class Predictor:
    """A loaded export: ``Predictor.from_pretrained(dir)(["문장", ...])`` -> one dict per input."""

    def __init__(self, export: Export, batch_size: int = 64) -> None:
        self.export = export
        self.task = export.task
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(
        cls, model_dir: str | Path, device: str | None = None, batch_size: int = 64
    ) -> Predictor:
        return cls(read_export(model_dir, device=device), batch_size=batch_size)

    @property
    def label_names(self) -> list[str]:
        return self.export.label_names

    def __call__(self, inputs: Any) -> Any:
        single = isinstance(inputs, str | dict) or (isinstance(inputs, tuple) and self.task.name == "paircls")
        items = [inputs] if single else list(inputs)
        results = self.predict_examples([self.task.example_from_input(item) for item in items])
        return results[0] if single else results

    def predict_examples(self, examples: Sequence[Any]) -> list[dict[str, Any]]:
        export = self.export
        features = self.task.encode(examples, export.tokenizer, None, export.max_seq_length)
        logits = run_model(export.model, features, export.tokenizer.pad_token_id, self.batch_size)
        by_example: dict[int, list[int]] = {}
        for position, feature in enumerate(features):
            by_example.setdefault(feature["example_index"], []).append(position)
        return [
            self.task.decode(
                example,
                [features[p] for p in by_example.get(i, [])],
                [logits[p] for p in by_example.get(i, [])],
                self.label_names,
            )
            for i, example in enumerate(examples)
        ]


def predict(model_dir: str | Path, texts: Iterable[Any], batch_size: int = 64) -> list[dict[str, Any]]:
    """Predict with an export folder: a label and its probabilities (or entity spans) per input."""
    return Predictor.from_pretrained(model_dir, batch_size=batch_size)(list(texts))
