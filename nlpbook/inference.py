"""Running a model over features, for every task: length-sorted batches, raw outputs back in order.

``evaluate``, ``Predictor`` and the training module's validation all turn model outputs into
per-feature arrays here; what the arrays mean is the task's business (``Task.metrics``,
``Task.decode``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch

from nlpbook.data import MODEL_INPUTS, make_loader
from nlpbook.errors import ArgumentError
from nlpbook.process_memory import freed_memory_kept
from nlpbook.tasks import Features, Task

logger = logging.getLogger(__name__)

__all__ = [
    "run_model",
    "output_rows",
    "resolve_device",
    "autocast_dtype",
    "quantize_model",
    "int8_linears",
    "QUANTIZE_CHOICES",
]

QUANTIZE_CHOICES = ("int8",)
INT8_ENGINE = "onednn"  # see _quantized_engine


def output_rows(task: Task, outputs: torch.Tensor, attention_mask: torch.Tensor) -> list[np.ndarray]:
    """One float32 array per feature; a per-token head's rows are cut to the feature's own length,
    so padding never reaches a task."""
    values = outputs.float().cpu().numpy()
    if not task.head.per_token:
        return list(values)
    lengths = attention_mask.cpu().sum(-1).tolist()  # on XLA a device sum would be one more graph
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
    padded per batch (``output_rows`` cuts per-token outputs back to each feature's length).

    Over more than one batch on the CPU, freed memory is kept for the next batch (``process_memory``):
    a kcbert-base batch's activations are tens of MB, and faulting them in afresh cost 5-15% of a
    batch (float32 and int8 alike).
    """
    if not features:
        return []
    device = next(model.parameters()).device
    loader = make_loader(features, batch_size, pad_token_id, shuffle=False, group_by_length=True)
    results: list[np.ndarray | None] = [None] * len(features)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()
    many_batches = device.type == "cpu" and len(features) > batch_size
    with freed_memory_kept() if many_batches else nullcontext():
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


def quantize_model(model: Any, quantize: str | None, device: torch.device) -> Any:
    """``model`` itself for ``quantize=None``; for ``"int8"`` a copy whose ``nn.Linear`` layers are
    dynamically quantized (int8 weights, activations quantized per batch), for CPU prediction.

    Only what the caller asked for: nothing is quantized by default, and nothing about it is
    written to the export. Refused on any device but the CPU (the int8 kernels are CPU kernels).
    """
    if quantize is None:
        return model
    if quantize not in QUANTIZE_CHOICES:
        raise ArgumentError(f"quantize must be one of {list(QUANTIZE_CHOICES)} or None, got {quantize!r}")
    if device.type != "cpu":
        raise ArgumentError(
            f"quantize={quantize!r} runs on the CPU only (device is {device}); pass device='cpu' "
            "(--device cpu), or drop --quantize to predict on the GPU"
        )
    return _dynamic_int8(model)


def _dynamic_int8(model: Any) -> Any:
    """``torch.ao.quantization.quantize_dynamic`` over ``nn.Linear``, on a copy of ``model``.

    Checked against torch 2.13, where ``torch.ao.quantization`` warns that it is deprecated in
    favour of torchao's ``quantize_``. It is still the one that pays on CPU: on this project's
    2-core AVX2 machine (kcbert-base size, batches of 64) it ran 1.5-2.8x faster than float32
    (a shared, noisy machine), while torchao 0.18's ``Int8DynamicActivationInt8WeightConfig`` ran
    about 30x *slower* than float32 in eager mode (its fast CPU path needs ``torch.compile``: a
    C++ toolchain at run time and a recompile per padded batch length). The warnings speak to
    library authors, not to the user who asked for int8, so they are silenced here; if a later
    torch removes the module, int8 is refused with an error rather than skipped.
    """
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError as error:  # pragma: no cover - depends on the installed torch
        raise ArgumentError(
            f"int8 prediction needs torch.ao.quantization, which this torch {torch.__version__} lacks"
        ) from error
    with warnings.catch_warnings(), _quantized_engine(INT8_ENGINE):
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor.* are deprecated")
        quantized = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=False)
    logger.info(
        "int8: %d Linear layers dynamically quantized for CPU prediction", len(int8_linears(quantized))
    )
    return quantized


@contextmanager
def _quantized_engine(name: str) -> Iterator[None]:
    """Pack int8 weights for ``name``'s kernels, then put torch's process-wide setting back.

    Each packed weight keeps the engine it was packed for, so only quantizing needs it. oneDNN's
    dynamic int8 Linear ran 1.87x float32 against 1.66x for torch's default ``x86`` engine
    (4 kcbert-base layers, batch 64, 1 thread, this project's AVX2 machine; the logits differ from
    float32's by the same 0.02-0.03). On a CPU with VNNI, per kcbert-base Linear shape (1,536
    tokens, 2 threads): oneDNN 3.8-4.9x float32, ``x86`` 3.0-3.9x. Where a torch build lacks
    oneDNN, its default engine is used.
    """
    if name not in torch.backends.quantized.supported_engines:
        yield
        return
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


def int8_linears(model: Any) -> list[str]:
    """Names of the dynamically quantized int8 Linear layers in ``model``."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    return [name for name, module in model.named_modules() if isinstance(module, DynamicInt8Linear)]
