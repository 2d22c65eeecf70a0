"""Checks that run before any data or model is loaded: the device and the run folder.

Each of these used to fail only after the corpus was read and kcbert-base loaded (``tpu_cores=8``
without torch_xla reached the Trainer; an unwritable ``downstream_model_dir`` failed when the lock
file or the first checkpoint was written) and printed a traceback. Here they are
``ArgumentError``s raised in a second. (The model folder is checked when it loads, after the data:
data errors come first, so a data file can be checked with no model at hand.)
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

from nlpbook.arguments import TrainArguments
from nlpbook.cluster import check_launch
from nlpbook.errors import ArgumentError, spell
from nlpbook.trainer import devices_and_accelerator

__all__ = ["preflight", "check_devices", "check_output_dir"]

DEVICES_SECTION = "README: 'GPUs, TPUs and precision'"


def preflight(args: TrainArguments) -> None:
    """Everything about a training run that can be checked without reading data or loading a model."""
    check_launch(args)  # torchrun/srun: devices per machine match the processes started there
    check_devices(args)
    check_output_dir(args.model_dir)


def check_devices(args: TrainArguments) -> None:
    """The accelerator asked for is there: a TPU needs torch_xla, a GPU needs CUDA (or Apple's MPS)."""
    import torch

    accelerator, devices = devices_and_accelerator(args)
    asked = spell("tpu_cores", args.tpu_cores) if args.tpu_cores else spell("accelerator", accelerator)
    if accelerator == "tpu" and importlib.util.find_spec("torch_xla") is None:
        raise ArgumentError(
            f"{asked} needs torch_xla, which is not installed: on a TPU runtime install it "
            f"(pip install torch_xla), or train on a GPU or the CPU with {spell('tpu_cores', 0)} "
            f"({DEVICES_SECTION})"
        )
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ArgumentError(f"{asked}: Apple's MPS is not available on this machine")
    if accelerator not in ("gpu", "cuda"):
        return
    found = torch.cuda.device_count()
    if found == 0 and accelerator == "gpu" and torch.backends.mps.is_available():
        return  # Lightning's "gpu" is MPS on a Mac
    if found == 0:
        build = "; this PyTorch is a CPU-only build" if torch.version.cuda is None else ""
        raise ArgumentError(
            f"{asked}: no GPU found (torch.cuda.is_available() is False{build}); use "
            f"{spell('accelerator', 'auto')} to train on what this machine has, or on Colab choose "
            f"Runtime > Change runtime type > GPU ({DEVICES_SECTION})"
        )
    wanted = _device_ids(devices, found)
    if wanted and max(wanted) >= found:
        raise ArgumentError(
            f"{spell('devices', args.devices)} asks for GPU(s) {sorted(wanted)} but this machine has "
            f"{found} (ids 0-{found - 1})"
        )


def _device_ids(devices: object, found: int) -> list[int]:
    """GPU ids a ``devices`` value asks for (a count n means ids 0..n-1); empty for auto/-1."""
    if isinstance(devices, int):
        return list(range(devices)) if devices > 0 else []
    if isinstance(devices, str) and devices not in ("auto", "-1"):
        return [int(part) for part in devices.split(",") if part.strip()]
    return []


def check_output_dir(path: Path) -> None:
    """``downstream_model_dir`` is (or can become) a folder this process can write to."""
    what = f"{spell('downstream_model_dir')} {path}"
    if path.exists() and not path.is_dir():
        raise ArgumentError(f"{what} is a file, not a folder; choose a folder for the run")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise ArgumentError(
            f"{what}: cannot write there ({error.strerror or error}); choose a folder you can write to"
        ) from None
