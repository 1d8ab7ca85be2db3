"""Parameter domains: the values each detector field accepts, checked when a detector is created or ``set_params``
is called -- never after training.

A detector class declares the domains of its own fields in a class dict next to them,
``param_domains: ClassVar[dict[str, Domain]] = {"lr": positive(), "score": one_of(SCORES), ...}``; the base
:class:`anogen.detector.Detector` merges the dicts along the class hierarchy and checks every field generically
(``check_params``). A value outside its domain raises :class:`ParameterError`, naming the field, the value and the
domain. Cross-field rules (``patch_stride <= patch_size``, a method's power-of-two sizes, ...) stay in the methods'
``__post_init__``, which runs right after the generic check.

Every domain also lists a few values outside it (:meth:`Domain.outside`), so that a test can walk every field of
every registered detector with out-of-domain values.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from anogen.data.io import InputError


class ParameterError(InputError):
    """A hyperparameter outside its domain (a ValueError, like every input error)."""


@dataclass(frozen=True)
class Domain:
    """A set of accepted values: ``accepts(v)`` and a description for messages (``"an integer >= 1"``)."""

    text: str
    accepts: Callable[[Any], bool]
    bad: tuple[Any, ...] = field(default=())

    def outside(self) -> tuple[Any, ...]:
        """A few values this domain refuses (for tests)."""
        return self.bad

    def check(self, owner: str, name: str, value: Any) -> None:
        if not self.accepts(value):
            raise ParameterError(f"{owner}: {name}={value!r} is outside its domain: {name} must be {self.text}")


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def integer(lo: int | None = None, hi: int | None = None) -> Domain:
    """Integers in [lo, hi] (either bound optional)."""
    text = "an integer" + (f" >= {lo}" if lo is not None and hi is None else "") + (
        f" in {lo}..{hi}" if lo is not None and hi is not None else "") + (
        f" <= {hi}" if hi is not None and lo is None else "")
    bad = [2.5, "3"] + ([lo - 1] if lo is not None else []) + ([hi + 1] if hi is not None else [])
    return Domain(text, lambda v: _is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi), tuple(bad))


def real(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False) -> Domain:
    """Finite real numbers between lo and hi (bounds optional, each closed unless ``*_open``)."""
    if lo is not None and hi is not None:
        text = f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    elif lo is not None:
        text = f"a number {'>' if lo_open else '>='} {lo:g}"
    elif hi is not None:
        text = f"a number {'<' if hi_open else '<='} {hi:g}"
    else:
        text = "a finite number"

    def ok(v: Any) -> bool:
        if not _is_real(v):
            return False
        v = float(v)
        above = lo is None or (v > lo if lo_open else v >= lo)
        below = hi is None or (v < hi if hi_open else v <= hi)
        return above and below

    bad = [float("nan"), float("inf"), "0.1"]
    if lo is not None:
        bad.append(lo if lo_open else lo - 1.0)
    if hi is not None:
        bad.append(hi if hi_open else hi + 1.0)
    return Domain(text, ok, tuple(bad))


def positive() -> Domain:
    """Finite numbers > 0 (learning rates, margins, standard deviations)."""
    return real(0.0, lo_open=True)


def non_negative() -> Domain:
    """Finite numbers >= 0 (loss weights, noise levels)."""
    return real(0.0)


def unit_interval() -> Domain:
    """Finite numbers in [0, 1] (weights, shares, probabilities)."""
    return real(0.0, 1.0)


def power_of_two(lo: int = 1, hi: int | None = None) -> Domain:
    """Powers of two in [lo, hi]."""
    text = f"a power of two >= {lo}" + (f" and <= {hi}" if hi is not None else "")
    return Domain(text, lambda v: _is_int(v) and v >= lo and (hi is None or v <= hi) and v & (v - 1) == 0,
                  (lo * 3 if lo > 1 else 3, max(lo // 2, 0), 2.0 * lo))


def one_of(choices: Sequence[Any]) -> Domain:
    """One of the listed values."""
    choices = tuple(choices)
    return Domain("one of " + ", ".join(repr(c) for c in choices), lambda v: _in(v, choices), ("<none of these>",))


def _in(v: Any, choices: tuple[Any, ...]) -> bool:
    for c in choices:
        if isinstance(c, str) and isinstance(v, str) and v == c:
            return True
        if _is_int(c) and _is_int(v) and v == c:
            return True
    return False


def flag() -> Domain:
    """True or False."""
    return Domain("True or False", lambda v: isinstance(v, bool), ("yes", 2))


def subset_of(choices: Sequence[str]) -> Domain:
    """A tuple (or list) of distinct values from ``choices``, possibly empty."""
    choices = tuple(choices)

    def ok(v: Any) -> bool:
        return isinstance(v, (tuple, list)) and len(set(v)) == len(v) and all(_in(c, choices) for c in v)

    return Domain(f"a tuple of distinct values from {', '.join(choices)}", ok,
                  ("hflip", ("<none of these>",), (choices[0], choices[0])))


def tuple_of(n: int, item: Domain) -> Domain:
    """A tuple (or list) of ``n`` values, each in ``item``."""
    def ok(v: Any) -> bool:
        return isinstance(v, (tuple, list)) and len(v) == n and all(item.accepts(e) for e in v)

    bad_item = item.outside()[0]
    return Domain(f"a tuple of {n} values, each {item.text}", ok, ((bad_item,) * n, (0,) * (n + 1), 1))


def device() -> Domain:
    """``"auto"`` or a device torch can name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``)."""
    def ok(v: Any) -> bool:
        if not isinstance(v, str):
            return False
        if v == "auto":
            return True
        import torch

        try:
            torch.device(v)
        except (RuntimeError, ValueError):
            return False
        return True

    return Domain("'auto' or a torch device name such as 'cpu', 'cuda' or 'cuda:1'", ok, ("gpu0", 1))


def check_all(owner: str, values: dict[str, Any], domains: dict[str, Domain]) -> None:
    """Check each ``values[name]`` that has a domain; the first value outside its domain raises ParameterError."""
    for name, value in values.items():
        dom = domains.get(name)
        if dom is not None:
            dom.check(owner, name, value)
