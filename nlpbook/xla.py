"""TPUs (XLA): fixed tensor shapes, and the two places where XLA needs the model driven differently.

XLA compiles one graph per distinct tensor shape, and caches it per process. Per-batch padding of
length-grouped batches makes up to ``max_seq_length`` distinct lengths, plus short last batches:
on a TPU each new shape is a compilation of kcbert-base taking tens of seconds, for training and
again for validation, and reshuffling keeps producing new ones. On XLA nlpbook therefore pads every
batch to the next of a few fixed lengths (``pad_buckets``) and keeps the batch size fixed (the
short training batch is dropped; the last evaluation batch is filled with rows the metrics never
see: ``nlpbook.data``). ``benchmarks/xla_shapes.py`` counts the compilations both ways.

Everything here is importable without torch_xla (``nlpbook --help`` imports the argument checks);
torch_xla is imported only by code that runs on an XLA device.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from nlpbook.errors import spell

if TYPE_CHECKING:
    import torch

__all__ = [
    "bucket_problems",
    "bucket_lengths",
    "pad_buckets",
    "uses_xla",
    "on_xla",
    "xla_sync",
    "additive_attention_mask",
]

BUCKET_EXAMPLE = "'auto', 'none' or lengths such as '32,64,128'"


def _parse(spec: str) -> list[int] | None:
    """The lengths of an explicit list, or None when it is not a comma list of integers."""
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts):
        return None
    return [int(part) for part in parts]


def bucket_problems(spec: str, max_seq_length: int) -> list[str]:
    """Why ``pad_buckets`` cannot work (for ``TrainArguments.problems``); empty when it can."""
    if spec in ("auto", "none"):
        return []
    lengths = _parse(spec)
    if lengths is None:
        return [f"{spell('pad_buckets', spec)} must be {BUCKET_EXAMPLE}"]
    bad = [n for n in lengths if not 1 <= n <= max_seq_length]
    if bad:
        return [
            f"{spell('pad_buckets', spec)}: every length must be in 1..max_seq_length "
            f"({max_seq_length}), got {', '.join(map(str, bad))}"
        ]
    return []


def bucket_lengths(spec: str, max_seq_length: int, xla: bool) -> tuple[int, ...] | None:
    """The lengths batches are padded to, ascending and ending at ``max_seq_length``; None means
    per-batch padding (CPU and GPU by default, where any shape runs at full speed).

    ``auto`` on XLA: multiples of 32 (of 64 above 256 tokens, so kcbert's 512 makes 8 buckets, not
    16), then ``max_seq_length`` itself: 4 graphs per phase for the default 128. An explicit list
    applies on every device (to check TPU batching on a CPU, say); ``max_seq_length`` is added to
    it so every example fits.
    """
    if spec == "none" or (spec == "auto" and not xla):
        return None
    if spec == "auto":
        step = 32 if max_seq_length <= 256 else 64
        lengths = list(range(step, max_seq_length, step))
    else:
        lengths = _parse(spec) or []
    return tuple(sorted({*lengths, max_seq_length}))


def uses_xla(args: Any) -> bool:
    """Will Lightning train these arguments on XLA? ``tpu`` (or ``tpu_cores``) asks for it, and
    ``auto`` gets it when Lightning's own TPU check passes (it checks TPUs before GPUs)."""
    from nlpbook.trainer import devices_and_accelerator

    accelerator, _ = devices_and_accelerator(args)
    if accelerator != "auto":
        return accelerator == "tpu"
    if importlib.util.find_spec("torch_xla") is None:
        return False
    from lightning_fabric.accelerators.xla import XLAAccelerator

    return bool(XLAAccelerator.is_available())


def pad_buckets(args: Any) -> tuple[int, ...] | None:
    """The run's bucket lengths (``bucket_lengths`` for its device), or None for per-batch padding."""
    return bucket_lengths(args.pad_buckets, args.max_seq_length, uses_xla(args))


def on_xla(device: torch.device) -> bool:
    return device.type == "xla"


def xla_sync() -> None:
    """Cut the traced graph here and run it (``torch_xla.sync``; ``xm.mark_step`` before 2.6)."""
    import torch_xla

    if hasattr(torch_xla, "sync"):
        torch_xla.sync()
    else:  # pragma: no cover - older torch_xla
        import torch_xla.core.xla_model as xm

        xm.mark_step()


def additive_attention_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The 2D padding mask as the 4D additive mask (0 attend, dtype minimum ignore) that
    transformers' mask builders return as-is.

    transformers 5.x (checked with 5.24) builds the mask from a 2D one through
    ``masking_utils._ignore_bidirectional_mask_sdpa``, which asks ``padding_mask.all()`` as a
    Python bool: on XLA that is a device-to-host sync inside every forward and an extra small
    graph per shape. A prepared 4D mask skips it; sdpa and eager attention both add a float mask
    to the scores, and the logits match the 2D mask's (tests/test_xla.py).
    """
    import torch

    # where, not (1 - mask) * min: under bf16-true XLA stores float32 as bf16, where float32's
    # minimum rounds to -inf, and 0 * -inf would turn every attended position into NaN.
    keep = attention_mask[:, None, None, :].bool()
    zero = torch.zeros((), dtype=dtype, device=attention_mask.device)
    return torch.where(keep, zero, torch.finfo(dtype).min)
