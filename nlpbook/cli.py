"""``nlpbook train|evaluate <task> ...`` and ``nlpbook predict|serve``: a thin map over the commands.

Options are generated from the task's argument dataclass (name, type, default, ``help``), so the
command line and ``ClassificationTrainArguments(...)`` can never drift apart. ``--config FILE``
reads the same fields from a JSON file; options given on the command line override it. ``evaluate``
starts from the run's own ``train_args.json``, so the corpus options need not be repeated.

Option values are strings converted by argparse (``--batch_size 32``); a ``--config`` file is JSON
and must hold JSON types, as the Python API must (``"epochs": 3``, not ``"3"``). Every error ends
the command with one line on stderr and exit status 2 (1 when training stopped on a NaN loss or a
failed checkpoint write), its hints spelled as options (``--resume``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from nlpbook.arguments import ArgumentError, TrainArguments, load_arguments
from nlpbook.cli_predict import add_predict_parser, add_serve_parser, predict_command, serve_command
from nlpbook.console import set_verbosity
from nlpbook.corpus import DataError
from nlpbook.errors import CheckpointWriteError, NonFiniteLossError, TrainingInterrupted, cli_spelling
from nlpbook.fieldtypes import type_problems
from nlpbook.tasks import get_task, task_names

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


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line: the generated usage of ``train`` spans dozens."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (options: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nlpbook", description="Fine-tune Korean BERT models.")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="also print debug messages")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="print only warnings and errors")
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
    add_predict_parser(commands)
    add_serve_parser(commands)
    return parser


def _arguments(namespace: argparse.Namespace) -> TrainArguments:
    """The command's arguments: the run's saved ``train_args.json`` (evaluate), then ``--config``,
    then the options given, each overriding the one before."""
    cls = get_task(namespace.task).arguments_class
    given = {k: v for k, v in vars(namespace).items() if k not in NOT_ARGUMENTS}
    config = _config_values(namespace.config, cls) if namespace.config else {}
    saved: dict[str, Any] = {}
    if namespace.command == "evaluate":
        model_dir = given.get("downstream_model_dir", config.get("downstream_model_dir"))
        saved = _saved_arguments(Path(model_dir).expanduser(), cls) if model_dir else {}
    return load_arguments({**saved, **config, **given}, cls)


NOT_ARGUMENTS = ("command", "task", "config", "verbose", "quiet")


def _config_values(path: Path, cls: type[TrainArguments]) -> dict[str, Any]:
    """A ``--config`` file: a JSON object of argument names and JSON-typed values."""
    where = f"--config {path}"
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ArgumentError(f"{where}: cannot read it ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise ArgumentError(f"{where}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise ArgumentError(f"{where}: invalid JSON at line {error.lineno}: {error.msg}") from None
    if not isinstance(values, dict):
        raise ArgumentError(
            f'{where}: expected a JSON object such as {{"epochs": 3}}, found a JSON {type(values).__name__}'
        )
    unknown = sorted(set(values) - {f.name for f in fields(cls)} - {"task"})
    if unknown:
        raise ArgumentError(f"{where}: unknown argument(s) for {cls.__name__}: {', '.join(unknown)}")
    wrong = type_problems(cls, values, lambda name: f'"{name}"')
    if wrong:
        raise ArgumentError(f"{where}: {'; '.join(wrong)} (JSON numbers and true/false are not quoted)")
    return values


def _saved_arguments(model_dir: Path, cls: type[TrainArguments]) -> dict[str, Any]:
    """The arguments a run was trained with, so ``evaluate`` needs no corpus options repeated.
    Fields this version does not know are left out; ``resume``/``force_download`` do not apply."""
    path = model_dir / "train_args.json"
    if not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ArgumentError(f"{path}: cannot read the run's arguments ({error})") from None
    task = saved.get("task")
    if task and task != cls.task:
        raise ArgumentError(f"{model_dir} holds a {task!r} run; use: nlpbook evaluate {task} ...")
    known = {f.name for f in fields(cls)} - {"resume", "force_download"}
    return {k: v for k, v in saved.items() if k in known}


def main(argv: Sequence[str] | None = None) -> int:
    namespace = build_parser().parse_args(argv)
    if namespace.verbose or namespace.quiet:
        set_verbosity("debug" if namespace.verbose else "warning")
    with cli_spelling():  # messages name options as --resume, not resume=True
        try:
            return _run(namespace)
        except BrokenPipeError:  # `nlpbook predict ... | head`: the reader has gone; stop quietly
            _drop_stdout()
            return 141  # what a shell reports for a process ended by SIGPIPE, as `cat` would be
        except (ArgumentError, DataError, FileNotFoundError) as error:
            logger.error("%s", one_line(error))
            return 2
        except (NonFiniteLossError, CheckpointWriteError) as error:  # stopped; last.ckpt is intact
            logger.error("%s", one_line(error))
            return 1
        except TrainingInterrupted as error:  # SIGTERM / Ctrl-C: saved at a step, says how to resume
            logger.error("%s", one_line(error))
            return error.exit_code


def _run(namespace: argparse.Namespace) -> int:
    if namespace.command in ("predict", "serve"):
        (predict_command if namespace.command == "predict" else serve_command)(namespace)
        return 0
    import nlpbook

    args = _arguments(namespace)
    if namespace.command == "train":
        print(nlpbook.train(args))  # stdout holds only the export path: `dir=$(nlpbook train ...)`
    else:
        print(json.dumps(nlpbook.evaluate(args), ensure_ascii=False, indent=2))
    return 0


def one_line(error: BaseException) -> str:
    """An error as one line: several argument problems are joined with '; '."""
    problems = getattr(error, "problems", None)
    text = "; ".join(problems) if problems else str(error)
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (tests capture stdout)
        pass


if __name__ == "__main__":
    sys.exit(main())
