"""Name -> detector class registry (like torchvision's / timm's model registries).

The method files register themselves when imported; ``import anogen`` imports them all (``anogen.detectors``), as
timm's package does, so this module imports nothing of anogen and sits at the bottom of the house.
"""

from __future__ import annotations

from typing import Any, Callable

_REGISTRY: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator adding a detector under ``name``; a second class under the same name is an error."""

    def wrap(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"detector name {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        _REGISTRY[name] = cls
        cls.name = name  # type: ignore[attr-defined]
        return cls

    return wrap


def available() -> list[str]:
    """Sorted names of every registered detector."""
    return sorted(_REGISTRY)


def get(name: str) -> type:
    """The detector class registered as ``name``."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown detector {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create(name: str, **overrides: Any) -> Any:
    """A new, unfitted detector ``name`` with the paper's defaults, except the given ``overrides``."""
    cls = get(name)
    fields = cls.field_names()
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise TypeError(f"{name} has no field(s) {unknown}; its fields are: {', '.join(fields)}")
    return cls(**overrides)
