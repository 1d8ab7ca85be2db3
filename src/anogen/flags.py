"""argparse flags from dataclass fields, and the small parsers every ``anogen`` subcommand shares.

One flag per field (``image_size`` -> ``--image-size N``), typed from the annotation: ``int`` / ``float`` / ``str``,
``Literal`` choices, ``X | None`` (``none`` for None), tuples as comma lists (``--augment hflip,vflip``), booleans as
``--flag`` / ``--no-flag`` / ``--flag true|false``. The help text is the docstring under each field, read from the
class source, and the default. A flag left out is left out of the namespace (``argparse.SUPPRESS``), so the caller
knows which fields the user set (explicit overrides on top of a preset, never silent changes).

Chosen over tyro and jsonargparse (both tried): same help quality, but they parse tuples as space-separated or JSON
lists and build the whole object (losing which fields were given), and add dependencies.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import json
import os
import textwrap
import types
import typing
from typing import Any, Callable, Sequence

from anogen._util import UserError


@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` from the string literal under each field in the class bodies (base classes first)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):  # no source (frozen app, REPL): the field name will do
            continue
        cdef = next((n for n in tree.body if isinstance(n, ast.ClassDef)), None)
        if cdef is None:
            continue
        for a, b in zip(cdef.body, cdef.body[1:]):
            if (
                isinstance(a, ast.AnnAssign)
                and isinstance(a.target, ast.Name)
                and isinstance(b, ast.Expr)
                and isinstance(b.value, ast.Constant)
                and isinstance(b.value.value, str)
            ):
                docs[a.target.id] = " ".join(b.value.value.split())
    return docs


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def doc_summary(obj: Any) -> str:
    """The first paragraph of ``obj``'s docstring on one line (help lines end where a sentence ends)."""
    return " ".join((inspect.getdoc(obj) or "").split("\n\n")[0].split())


def parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def converter(tp: Any) -> tuple[Callable[[str], Any], str]:
    """A string -> value converter and a metavar for the field type ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        inner, meta = converter(rest[0] if len(rest) == 1 else str)

        def optional(s: str) -> Any:
            return None if s.strip().lower() in ("none", "null") else inner(s)

        return optional, meta
    if origin is typing.Literal:
        choices = [str(a) for a in args]

        def literal(s: str) -> Any:
            for a in args:
                if str(a) == s:
                    return a
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(choices)}, got {s!r}")

        return literal, "{" + ",".join(choices) + "}"
    if origin is tuple:
        variadic = len(args) == 2 and args[1] is Ellipsis
        elems = [args[0]] if variadic else list(args)
        convs = [converter(e)[0] for e in elems]

        def tup(s: str) -> tuple:
            items = [p.strip() for p in s.split(",")] if s.strip() else []
            if not variadic and len(items) != len(elems):
                raise argparse.ArgumentTypeError(f"expected {len(elems)} comma-separated values, got {s!r}")
            return tuple((convs[0] if variadic else convs[i])(p) for i, p in enumerate(items))

        metas = [converter(e)[1] for e in elems]
        return tup, (f"{metas[0]}[,{metas[0]}...]" if variadic else ",".join(metas))
    if tp is bool:
        return parse_bool, "{true,false}"
    if tp in (int, float, str):
        def scalar(s: str) -> Any:
            try:
                return tp(s)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected {tp.__name__}, got {s!r}") from None

        return scalar, {int: "N", float: "X", str: "TEXT"}[tp]
    return str, "VALUE"


class BoolAction(argparse.Action):
    """``--flag`` / ``--no-flag`` / ``--flag true|false``."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kw: Any) -> None:
        opts = list(option_strings) + ["--no-" + s[2:] for s in option_strings if s.startswith("--")]
        kw.pop("nargs", None)
        super().__init__(opts, dest, nargs="?", metavar="true|false", **kw)

    def __call__(self, parser: Any, ns: Any, values: Any, option_string: str | None = None) -> None:
        if option_string and option_string.startswith("--no-"):
            if values is not None:
                raise argparse.ArgumentError(self, f"{option_string} takes no value")
            setattr(ns, self.dest, False)
            return
        try:
            setattr(ns, self.dest, True if values is None else parse_bool(values))
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentError(self, str(e)) from None


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34, width=min(110, _terminal_width()))

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if isinstance(action, BoolAction):
            return f"{action.option_strings[0]} [true|false], {action.option_strings[1]}"
        return super()._format_action_invocation(action)


def _terminal_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 100


def show_default(v: Any) -> str:
    if isinstance(v, tuple):
        return ",".join(str(e) for e in v) if v else "empty"
    return str(v)


def add_field_flags(parser: argparse.ArgumentParser, cls: type, *, skip: set[str] = frozenset()) -> list[str]:
    """One flag per dataclass field of ``cls`` (defaults left out of the namespace); returns the field names."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    group = parser.add_argument_group(f"{cls.name} fields (defaults are the paper's)")  # type: ignore[attr-defined]
    names = []
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        doc = docs.get(f.name, f.name.replace("_", " "))
        help_ = f"{doc} (default: {show_default(default)})".replace("%", "%%")  # argparse %-formats help
        flag = "--" + f.name.replace("_", "-")
        tp = hints.get(f.name, str)
        if tp is bool:
            group.add_argument(flag, dest=f.name, action=BoolAction, default=argparse.SUPPRESS, help=help_)
        else:
            conv, meta = converter(tp)
            group.add_argument(flag, dest=f.name, type=conv, metavar=meta, default=argparse.SUPPRESS, help=help_)
        names.append(f.name)
    return names


def fmt_overrides(d: dict[str, Any]) -> str:
    """``{"epochs": 5, "augment": ("hflip",)}`` -> ``"epochs=5, augment=hflip"``."""
    return ", ".join(f"{k}={show_default(v)}" for k, v in d.items())


def parse_csv(text: str | None, conv: Callable[[str], Any] = str) -> list[Any] | None:
    """``"0, 1,2"`` -> ``[conv("0"), conv("1"), conv("2")]``; None or "" -> None."""
    return None if not text else [conv(t.strip()) for t in text.split(",") if t.strip()]


def parse_assignments(items: Sequence[str], flag: str = "--set") -> dict[str, Any]:
    """``["epochs=5", "augment=[\"hflip\"]", "arch=dcgan"]`` -> ``{"epochs": 5, "augment": ["hflip"], "arch": "dcgan"}``:
    each value read as JSON where it parses, else as text."""
    extra: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise UserError(f"{flag} takes FIELD=VALUE, got {item!r}")
        try:
            extra[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            extra[key.strip()] = value
    return extra
