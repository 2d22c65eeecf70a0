"""Prediction from an export folder, for every task, through the task's own encode/decode.

Inputs go through ``task.encode``, the same code path training used, so prediction can never
tokenize differently (the book's notebooks did). Long files are encoded and run chunk by chunk:
only one chunk of features and logits is held at a time, results stream to the output in input
order, and the output appears under its name only once complete (temp file, then rename).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence, Sized
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch

from nlpbook.errors import ArgumentError, spell
from nlpbook.export import Export, read_export
from nlpbook.inference import autocast_dtype, quantize_model, resolve_device, run_model

__all__ = ["Predictor", "FileSummary", "predict", "run_model", "atomic_output"]

logger = logging.getLogger(__name__)


@dataclass
class FileSummary:
    """What ``predict_file`` did: counts a caller can print or check."""

    input: str
    output: str | None
    examples: int
    truncated: int
    seconds: float

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds else 0.0


class Predictor:
    """A loaded export: ``Predictor.from_pretrained(dir)(["문장", ...])`` -> one dict per input.

    A ``str``, ``dict`` (or, for pair models, a ``(text_a, text_b)`` tuple) is one input and gets
    one dict back; a list is a batch and gets a list back. Results carry ``"truncated": true``
    when the task cut the input to ``max_seq_length`` tokens (as training did).

    ``quantize="int8"``: dynamic int8 quantization of the model's Linear layers, for faster
    prediction on the CPU (the device defaults to the CPU then; a GPU is refused). Predictions
    can differ slightly from float32 ones; the export on disk is not changed.
    """

    def __init__(
        self,
        export: Export,
        batch_size: int = 64,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        quantize: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ArgumentError(f"batch_size must be at least 1, got {batch_size}")
        self.task = export.task
        self.batch_size = batch_size
        self.device = resolve_device("cpu" if quantize is not None and device is None else device)
        self.dtype = autocast_dtype(dtype, self.device)
        self.quantize = quantize
        export.model.to(self.device)
        export.model.eval()
        quantized = quantize_model(export.model, quantize, self.device)  # a copy: ``export`` keeps its own
        self.export = export if quantized is export.model else dataclasses.replace(export, model=quantized)

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path,
        device: str | torch.device | None = None,
        batch_size: int = 64,
        dtype: str | torch.dtype | None = None,
        quantize: str | None = None,
    ) -> Predictor:
        """Load an export folder (or a ``downstream_model_dir`` holding one)."""
        return cls(
            read_export(model_dir), batch_size=batch_size, device=device, dtype=dtype, quantize=quantize
        )

    @property
    def label_names(self) -> list[str]:
        return self.export.label_names

    @property
    def max_seq_length(self) -> int:
        return self.export.max_seq_length

    # --- in memory -----------------------------------------------------------------------------
    def __call__(self, inputs: Any) -> Any:
        single = self.is_single(inputs)
        items = [inputs] if single else list(inputs)
        examples = []
        for position, item in enumerate(items):
            try:
                examples.append(self.task.example_from_input(item))
            except ValueError as error:
                raise ValueError(str(error) if single else f"input {position}: {error}") from None
        results = self.predict_examples(examples)
        _warn_truncated(sum(bool(r.get("truncated")) for r in results), len(results), self.max_seq_length)
        return results[0] if single else results

    def is_single(self, inputs: Any) -> bool:
        """One input or a batch? Strings and dicts are one; a tuple is one if the task takes it
        as one (a pair), else a batch; lists and other iterables are always batches."""
        if isinstance(inputs, str | dict):
            return True
        if isinstance(inputs, tuple):
            try:
                self.task.example_from_input(inputs)
            except ValueError:
                return False
            return True
        return False

    def predict_examples(self, examples: Sequence[Any]) -> list[dict[str, Any]]:
        """Predictions for task examples (as ``task.example_from_input`` or a reader makes them)."""
        export = self.export
        settings = export.settings
        features = self.task.encode(examples, export.tokenizer, None, settings)
        outputs = run_model(
            self.task, export.model, features, export.tokenizer.pad_token_id, self.batch_size, self.dtype
        )
        by_example: dict[int, list[int]] = {}
        for position, feature in enumerate(features):
            by_example.setdefault(feature["example_index"], []).append(position)
        results = []
        for i, example in enumerate(examples):
            positions = by_example.get(i, [])
            own = [features[p] for p in positions]
            result = self.task.decode(
                example, own, [outputs[p] for p in positions], self.label_names, settings
            )
            if any("truncated" in f for f in own):  # the task reports truncation: pass it on
                result["truncated"] = any(f.get("truncated") for f in own)
            results.append(result)
        return results

    def iter_predictions(self, examples: Iterable[Any], chunk_size: int = 2048) -> Iterator[dict[str, Any]]:
        """Predictions in input order, ``chunk_size`` examples encoded and run at a time.

        Each chunk is length-sorted into batches, so a chunk much larger than ``batch_size``
        keeps padding low while memory stays bounded by the chunk, not the file.
        """
        _check_chunk_size(chunk_size)
        iterator = iter(examples)
        while chunk := list(itertools.islice(iterator, chunk_size)):
            yield from self.predict_examples(chunk)

    # --- files -----------------------------------------------------------------------------------
    def predict_file(
        self,
        input: str | Path,
        output: str | Path | None = None,
        *,
        chunk_size: int = 2048,
        progress: bool = True,
    ) -> FileSummary:
        """Predict every input of a file into JSON lines (one per input, in input order).

        The whole input is read and validated first (bad encoding, missing columns, empty text:
        ``DataError`` naming file and line) so a bad file fails before any output exists. Output
        goes to a temp file beside ``output`` and is renamed when complete; ``None`` writes to
        stdout. Each line also carries ``"line"``, the input line it came from.
        """
        # Plain tqdm on stderr: tqdm.auto prints "IProgress not found" in a notebook without ipywidgets.
        from tqdm import tqdm

        source = Path(input).expanduser()
        target = Path(output).expanduser() if output is not None else None
        _check_chunk_size(chunk_size)
        if target is not None and target.resolve() == source.resolve():
            raise ArgumentError(f"{spell('output')} {target} is the input file; choose another path")
        if target is not None and target.is_dir():
            raise ArgumentError(f"{spell('output')} {target} is a folder; give a file: predictions.jsonl")
        started = time.perf_counter()
        examples = self.task.examples_from_file(str(source))
        count = truncated = 0
        total = len(examples) if isinstance(examples, Sized) else None
        bar = tqdm(total=total, unit="ex", desc="predict", disable=not progress, file=sys.stderr)
        with bar, atomic_output(target) as sink:
            for example, result in zip(examples, self.iter_predictions(examples, chunk_size), strict=True):
                row = getattr(example, "row", None)
                if row is not None:
                    result["line"] = row.line
                sink.write(json.dumps(result, ensure_ascii=False) + "\n")
                count += 1
                truncated += bool(result.get("truncated"))
                bar.update(1)
        _warn_truncated(truncated, count, self.max_seq_length)
        summary = FileSummary(
            str(source), str(target) if target else None, count, truncated, time.perf_counter() - started
        )
        logger.info(
            "predicted %d inputs from %s in %.1fs (%.0f/s)%s",
            count,
            source,
            summary.seconds,
            summary.examples_per_second,
            f" -> {target}" if target else "",
        )
        return summary


def _check_chunk_size(chunk_size: int) -> None:
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ArgumentError(f"{spell('chunk_size')} must be an int of at least 1, got {chunk_size!r}")


def _warn_truncated(truncated: int, total: int, max_seq_length: int) -> None:
    if truncated:
        logger.warning(
            "%d of %d input(s) were longer than max_seq_length=%d tokens and were truncated, as in "
            'training (marked "truncated": true)',
            truncated,
            total,
            max_seq_length,
        )


@contextmanager
def atomic_output(path: Path | None) -> Iterator[TextIO]:
    """A file that appears at ``path`` only when the block finishes without an error."""
    if path is None:
        yield sys.stdout
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as sink:
            yield sink
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def predict(
    model_dir: str | Path,
    texts: Iterable[Any],
    batch_size: int = 64,
    device: str | None = None,
    quantize: str | None = None,
) -> list[dict[str, Any]]:
    """Predict with an export folder: a label and its probabilities (or entity spans) per input."""
    predictor = Predictor.from_pretrained(model_dir, device=device, batch_size=batch_size, quantize=quantize)
    return predictor(list(texts))
