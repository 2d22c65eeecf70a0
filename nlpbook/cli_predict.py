"""``nlpbook predict`` and ``nlpbook serve``: the CLI's commands over an export folder.

Inputs are given as one option per input field the model's task declares (``--text``;
``--text_a``/``--text_b``), checked against the export's task before the model loads, or as a file
(``--input``). What can be refused without the model (sizes, paths) is refused first.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nlpbook.errors import ArgumentError
from nlpbook.tasks import Task, get_task, input_field_names, task_names

__all__ = ["add_predict_parser", "add_serve_parser", "predict_command", "serve_command"]

QUANTIZE_CHOICES = ("int8",)  # nlpbook.inference.QUANTIZE_CHOICES; not imported: it loads torch


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by predict and serve: which export, where it runs."""
    parser.add_argument("--model_dir", required=True, help="export folder (or the downstream_model_dir)")
    parser.add_argument("--batch_size", type=int, default=64, help="examples per forward pass")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: the GPU when there is one)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA GPUs only)")
    parser.add_argument(
        "--quantize",
        choices=QUANTIZE_CHOICES,
        help="int8: dynamic int8 quantization of the Linear layers, for faster CPU prediction "
        "(CPU only; predictions may differ slightly from float32; the export is not changed)",
    )


def add_predict_parser(commands: Any) -> None:
    predict = commands.add_parser("predict", help="predict with an export folder")
    predict.add_argument("task", nargs="?", choices=task_names(), help="optional: checked against the export")
    _add_model_options(predict)
    # One option per input field any task declares (--text; --text_a --text_b; ...): which ones a
    # model takes is checked against its task before it loads.
    for name in input_field_names():
        users = [task for task in task_names() if name in [f.name for f in get_task(task).input_fields]]
        predict.add_argument(
            f"--{name}", action="append", help=f"input field of {', '.join(users)} models (repeatable)"
        )
    predict.add_argument(
        "--input", type=Path, help="file of inputs: .txt (one per line), .tsv/.csv/.jsonl/.json with a header"
    )
    predict.add_argument(
        "--output", type=Path, help="JSON lines file, written whole or not at all (default: stdout)"
    )
    predict.add_argument("--chunk_size", type=int, default=2048, help="inputs encoded and run at a time")
    predict.add_argument("--no_progress", action="store_true", help="no progress bar")


def add_serve_parser(commands: Any) -> None:
    serve = commands.add_parser("serve", help="web demo and JSON API for an export folder")
    _add_model_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to accept other machines")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max_text_chars", type=int, default=5000, help="longer texts get 413")
    serve.add_argument("--max_batch_size", type=int, default=64, help="larger 'texts' batches get 413")
    serve.add_argument(
        "--allowed_hosts",
        nargs="+",
        metavar="NAME",
        help="Host names accepted besides 127.0.0.1, localhost and [::1] ('*': any); default: none "
        "when --host is loopback, any otherwise",
    )


def _cli_inputs(namespace: argparse.Namespace, task: Task) -> list[Any] | None:
    """The --<field> inputs as dicts (one per repetition), or None for --input; checked against
    the model's task before the model loads."""
    names = [f.name for f in task.input_fields]
    given = {name: getattr(namespace, name) for name in input_field_names() if getattr(namespace, name)}
    spelled = " ".join(f"--{name} TEXT" for name in names)
    if bool(given) == (namespace.input is not None):
        raise ArgumentError(f"give the inputs as {spelled} (repeatable) or as --input FILE")
    if namespace.input is not None:
        return None
    if sorted(given) != sorted(names):
        raise ArgumentError(
            f"a {task.name} model takes {spelled}; got {' '.join('--' + name for name in given)}"
        )
    counts = {len(values) for values in given.values()}
    if len(counts) > 1:
        raise ArgumentError(f"give each of {', '.join('--' + n for n in names)} the same number of times")
    return [dict(zip(given, values, strict=True)) for values in zip(*given.values(), strict=True)]


def _check_predict_options(namespace: argparse.Namespace) -> None:
    """What can be refused before a model loads (seconds): sizes, the input and output paths."""
    for name in ("batch_size", "chunk_size"):
        if getattr(namespace, name) < 1:
            raise ArgumentError(f"--{name} must be at least 1, got {getattr(namespace, name)}")
    if namespace.output is not None and namespace.output.is_dir():
        raise ArgumentError(f"--output {namespace.output} is a folder; give a file, e.g. predictions.jsonl")


def predict_command(namespace: argparse.Namespace) -> None:
    from nlpbook.export import read_meta

    _check_predict_options(namespace)
    task = get_task(read_meta(namespace.model_dir)["task"])
    if namespace.task and namespace.task != task.name:
        raise ArgumentError(f"{namespace.model_dir} holds a {task.name!r} model, not {namespace.task!r}")
    inputs = _cli_inputs(namespace, task)
    if namespace.input is not None and not namespace.input.is_file():
        missing = "not found" if not namespace.input.exists() else "not a file"
        raise ArgumentError(f"--input {namespace.input}: {missing}")

    from nlpbook.predictor import Predictor, atomic_output

    predictor = Predictor.from_pretrained(
        namespace.model_dir,
        device=namespace.device,
        batch_size=namespace.batch_size,
        dtype="bf16" if namespace.bf16 else None,
        quantize=namespace.quantize,
    )
    if inputs is None:  # predict_file logs what it wrote where
        predictor.predict_file(
            namespace.input,
            namespace.output,
            chunk_size=namespace.chunk_size,
            progress=not namespace.no_progress,
        )
        return
    try:
        results = predictor(inputs)
    except ValueError as error:  # e.g. a blank --text
        raise ArgumentError(str(error)) from None
    with atomic_output(namespace.output) as sink:
        sink.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in results)


def serve_command(namespace: argparse.Namespace) -> None:
    from nlpbook.web import serve

    serve(
        namespace.model_dir,
        namespace.host,
        namespace.port,
        device=namespace.device,
        batch_size=namespace.batch_size,
        bf16=namespace.bf16,
        max_text_chars=namespace.max_text_chars,
        max_batch_size=namespace.max_batch_size,
        allowed_hosts=namespace.allowed_hosts,
        quantize=namespace.quantize,
    )
