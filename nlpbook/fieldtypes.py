"""Argument values checked against their dataclass annotations, at construction.

The annotations already say what each field takes (``int``, ``float``, ``bool``, ``str``,
``Literal[...]``, ``X | None``); without this check ``batch_size="32"`` failed later with a bare
``TypeError`` and ``precision="fp16"``, ``epochs=1.5`` or ``learning_rate=inf`` were accepted. The
Python API is strict (the command line converts its strings first, with argparse): a bool is not
an int, a string is not a number, and a float must be finite. Paths (``pathlib.Path``) are taken
where a string is expected and numpy scalars where a number is, both stored as plain Python values
so ``train_args.json`` stays plain JSON.
"""

from __future__ import annotations

import math
import numbers
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

__all__ = ["type_problems", "normalised"]


def type_problems(cls: type, values: Mapping[str, Any], name: Callable[[str], str] = str) -> list[str]:
    """One message per value in ``values`` (by field name) that its annotation in ``cls`` refuses;
    ``name`` spells a field in the message (``--epochs``, ``"epochs"``)."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in fields(cls):
        if f.name not in values:
            continue
        value = values[f.name]
        expected = _refusal(value, hints[f.name])
        if expected is not None:
            found.append(f"{name(f.name)} must be {expected}, got {value!r} ({type(value).__name__})")
    return found


def normalised(value: Any, annotation: Any) -> Any:
    """``value`` as the plain Python type its (accepted) annotation names."""
    kind = _plain_type(value, annotation)
    if kind is str and isinstance(value, os.PathLike):
        return os.fspath(value)
    if kind in (int, float) and type(value) is not kind:
        return kind(value)
    return value


def _plain_type(value: Any, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return next((_plain_type(value, a) for a in options if _refusal(value, a) is None), None)
    return annotation if annotation in (int, float, str) else None


def _refusal(value: Any, annotation: Any) -> str | None:
    """None when ``value`` fits ``annotation``, else what the annotation expects, in words."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        expected = []
        for option in (a for a in options if a is not type(None)):
            refusal = _refusal(value, option)
            if refusal is None:
                return None
            expected.append(refusal)
        if type(None) in options:
            expected.append("None")
        return " or ".join(expected)
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        if any(type(value) is type(choice) and value == choice for choice in choices):
            return None
        return "one of " + ", ".join(repr(choice) for choice in choices)
    if annotation is bool:
        return None if isinstance(value, bool) else "a bool (True or False)"
    if annotation is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        return None if ok else "an int"
    if annotation is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else "a finite float or int"
    if annotation is str:
        return None if isinstance(value, str | os.PathLike) else "a str"
    return None  # an annotation this module does not know: nothing to check
