"""``nlpbook train|evaluate <task> ...`` and ``nlpbook predict|serve``: a thin map over the commands.

Options are generated from the task's argument dataclass (name, type, default, ``help``), so the
command line and ``ClassificationTrainArguments(...)`` can never drift apart. ``--config FILE``
reads the same fields from a JSON file; options given on the command line override it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from nlpbook.arguments import ArgumentError, TrainArguments, load_arguments
from nlpbook.corpus import DataError
from nlpbook.errors import CheckpointWriteError, NonFiniteLossError
from nlpbook.tasks import Task, get_task, input_field_names, task_names

QUANTIZE_CHOICES = ("int8",)  # nlpbook.inference.QUANTIZE_CHOICES; not imported: it loads torch

__all__ = ["main", "build_parser", "add_dataclass_options"]

logger = logging.getLogger("nlpbook")


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "y"):
        return True
    if text.lower() in ("0", "false", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _or_none(converter: Any) -> Any:
    """``none`` on the command line sets an optional field back to None (e.g. no clipping)."""

    def convert(text: str) -> Any:
        return None if text.lower() in ("none", "null") else converter(text)

    convert.__name__ = getattr(converter, "__name__", "value")  # argparse names it in errors
    return convert


def _option_type(annotation: Any) -> tuple[Any, list[Any] | None]:
    """(converter, choices) for a field's type: unwraps ``X | None`` and ``Literal[...]``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        converter, choices = _option_type(inner[0])
        return _or_none(converter), [*choices, None] if choices else None
    if origin is typing.Literal:
        return str, list(typing.get_args(annotation))
    if annotation is bool:
        return _parse_bool, None
    return annotation, None


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type) -> None:
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        converter, choices = _option_type(hints[f.name])
        default = None if f.default is MISSING else f.default
        kwargs: dict[str, Any] = {
            "type": converter,
            "default": argparse.SUPPRESS,
            "help": f"{f.metadata.get('help', '')} (default: {default})",
        }
        if choices:
            kwargs["choices"] = choices
        if converter is _parse_bool:
            kwargs.update(nargs="?", const=True, metavar="BOOL")
        parser.add_argument(f"--{f.name}", **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nlpbook", description="Fine-tune Korean BERT models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("train", "evaluate"):
        sub = commands.add_parser(command, help=f"{command} a task model")
        tasks = sub.add_subparsers(dest="task", required=True)
        for name in task_names():
            task_parser = tasks.add_parser(name, help=f"{command} {name}")
            task_parser.add_argument(
                "--config", type=Path, help="JSON file of arguments (CLI options override)"
            )
            add_dataclass_options(task_parser, get_task(name).arguments_class)
    _add_predict_parser(commands)
    _add_serve_parser(commands)
    return parser


def _arguments(namespace: argparse.Namespace) -> TrainArguments:
    cls = get_task(namespace.task).arguments_class
    values: dict[str, Any] = {}
    if namespace.config:
        values = json.loads(namespace.config.read_text(encoding="utf-8"))
    given = {k: v for k, v in vars(namespace).items() if k not in ("command", "task", "config", "verbose")}
    return load_arguments({**values, **given}, cls)


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


def _add_predict_parser(commands: Any) -> None:
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


def _add_serve_parser(commands: Any) -> None:
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


def _predict(namespace: argparse.Namespace) -> None:
    from nlpbook.export import read_meta

    task = get_task(read_meta(namespace.model_dir)["task"])
    if namespace.task and namespace.task != task.name:
        raise ArgumentError(f"{namespace.model_dir} holds a {task.name!r} model, not {namespace.task!r}")
    inputs = _cli_inputs(namespace, task)

    from nlpbook.predictor import Predictor, atomic_output

    predictor = Predictor.from_pretrained(
        namespace.model_dir,
        device=namespace.device,
        batch_size=namespace.batch_size,
        dtype="bf16" if namespace.bf16 else None,
        quantize=namespace.quantize,
    )
    if inputs is None:
        summary = predictor.predict_file(
            namespace.input,
            namespace.output,
            chunk_size=namespace.chunk_size,
            progress=not namespace.no_progress,
        )
        if namespace.output is not None:
            print(f"{summary.examples} predictions written to {summary.output}", file=sys.stderr)
        return
    try:
        results = predictor(inputs)
    except ValueError as error:  # e.g. a blank --text
        raise ArgumentError(str(error)) from None
    with atomic_output(namespace.output) as sink:
        sink.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in results)


def _serve(namespace: argparse.Namespace) -> None:
    from nlpbook.serve import serve

    serve(
        namespace.model_dir,
        namespace.host,
        namespace.port,
        device=namespace.device,
        batch_size=namespace.batch_size,
        bf16=namespace.bf16,
        quantize=namespace.quantize,
        max_text_chars=namespace.max_text_chars,
        max_batch_size=namespace.max_batch_size,
        allowed_hosts=namespace.allowed_hosts,
    )


def main(argv: Sequence[str] | None = None) -> int:
    namespace = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if namespace.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if namespace.command in ("predict", "serve"):
            (_predict if namespace.command == "predict" else _serve)(namespace)
            return 0
        import nlpbook

        args = _arguments(namespace)
        if namespace.command == "train":
            print(nlpbook.train(args))
        else:
            print(json.dumps(nlpbook.evaluate(args), ensure_ascii=False, indent=2))
        return 0
    except (ArgumentError, DataError, FileNotFoundError) as error:
        logger.error("%s", error)
        return 2
    except (NonFiniteLossError, CheckpointWriteError) as error:  # training stopped; last.ckpt is intact
        logger.error("%s", error)
        return 1


if __name__ == "__main__":
    sys.exit(main())
