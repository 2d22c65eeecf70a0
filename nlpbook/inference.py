"""Running a model over features, for every task: length-sorted batches, raw outputs back in order.

``evaluate``, ``Predictor`` and the training module's validation all turn model outputs into
per-feature arrays here; what the arrays mean is the task's business (``Task.metrics``,
``Task.decode``).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from nlpbook.data import MODEL_INPUTS, make_loader
from nlpbook.errors import ArgumentError
from nlpbook.tasks import Features, Task

__all__ = ["run_model", "output_rows", "resolve_device", "autocast_dtype"]


def output_rows(task: Task, outputs: torch.Tensor, attention_mask: torch.Tensor) -> list[np.ndarray]:
    """One float32 array per feature; a per-token head's rows are cut to the feature's own length,
    so padding never reaches a task."""
    values = outputs.float().cpu().numpy()
    if not task.head.per_token:
        return list(values)
    lengths = attention_mask.sum(-1).tolist()
    return [row[:length] for row, length in zip(values, lengths, strict=True)]


@torch.inference_mode()
def run_model(
    task: Task,
    model: Any,
    features: Sequence[Features],
    pad_token_id: int,
    batch_size: int = 64,
    dtype: torch.dtype | None = None,
) -> list[np.ndarray]:
    """The task's raw outputs for each feature, in input order; batches are length-sorted and
    padded per batch (``output_rows`` cuts per-token outputs back to each feature's length)."""
    if not features:
        return []
    device = next(model.parameters()).device
    loader = make_loader(features, batch_size, pad_token_id, shuffle=False, group_by_length=True)
    results: list[np.ndarray | None] = [None] * len(features)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()
    for batch in loader:
        with autocast:
            output = model(**{k: batch[k].to(device) for k in MODEL_INPUTS})
        rows = output_rows(task, task.outputs(output), batch["attention_mask"])
        for index, row in zip(batch["feature_index"].tolist(), rows, strict=True):
            results[index] = row
    return results  # type: ignore[return-value]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` means the GPU when there is one, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ArgumentError(f"device={str(device)!r}, but torch sees no CUDA GPU; use device='cpu'")
    return resolved


def autocast_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``--bf16``; refused on CPU, where bf16 matmuls are usually slower."""
    if dtype is None:
        return None
    names = {
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
    }
    resolved = names.get(dtype, None) if isinstance(dtype, str) else dtype
    if resolved not in (torch.bfloat16, torch.float16):
        raise ArgumentError(f"dtype must be bf16 or fp16 (autocast), got {dtype!r}")
    if device.type != "cuda":
        raise ArgumentError(
            f"{resolved} autocast is only offered on a CUDA GPU (device is {device}); "
            "on CPU predict in float32 (drop --bf16)"
        )
    if resolved == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise ArgumentError("this GPU does not support bf16; drop --bf16")
    return resolved
