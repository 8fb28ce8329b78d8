"""Help that reads like a manual page: ``--since TEXT``, ``--dry-run``, ``FILE``.

Typer labels each option with its Python type (``<str>``, ``<list[str]>``, ``<bool>`` even on
a flag) and an argument as ``{file}``. Every command and group of ``relay`` is built with
these classes, which give each parameter without an explicit ``metavar`` the usual one:
nothing for a flag, ``[a|b]`` for a choice, ``TEXT``/``INTEGER``/``NUMBER``/``PATH`` by
type, an argument's name in capitals.
"""

from __future__ import annotations

import inspect
from enum import Enum
from pathlib import Path
from typing import Any, get_args

from typer import Typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

_BY_TYPE: dict[Any, str] = {str: "TEXT", int: "INTEGER", float: "NUMBER", Path: "PATH"}


def metavar(param: TyperOption | TyperArgument) -> str:
    if isinstance(param, TyperArgument):
        return (param.name or "value").upper()
    if param.is_flag:
        return ""
    described = param.type_descriptor
    if described.is_choice:
        values = (c.value if isinstance(c, Enum) else c for c in described.choices or ())
        return "[" + "|".join(map(str, values)) + "]"
    annotation = described.annotation
    if described.is_list:
        annotation = get_args(annotation)[0]
    return _BY_TYPE.get(annotation, "VALUE")


class _ReadableArgument(TyperArgument):
    """``FILE`` / ``[SUBSCRIPTION_ID]`` in the usage line, and no ``<path>`` beside it."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw + ("..." if self.nargs != 1 else "")
        return name if self.required else f"[{name}]"

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


def _readable(params: list[Any]) -> None:
    for param in params:
        if isinstance(param, TyperOption | TyperArgument) and param.metavar is None:
            param.metavar = metavar(param)
        if type(param) is TyperArgument:
            # Typer builds its own argument objects; only these two methods differ.
            param.__class__ = _ReadableArgument


def _reflowed(text: str | None) -> str | None:
    """Each paragraph of a docstring as one line: the terminal wraps it. (Typer keeps the
    docstring's own line breaks after the first paragraph, so at 80 columns a line ended
    after two words.)"""
    if not text:
        return text
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n"))


class ReadableCommand(TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = _reflowed(self.help)
        _readable(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        _readable([option])
        return option


class ReadableGroup(TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _readable(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        _readable([option])
        return option


def group(**kwargs: Any) -> Typer:
    """A command group of ``relay`` (its usage printed when called bare)."""
    return Typer(cls=ReadableGroup, no_args_is_help=True, **kwargs)
