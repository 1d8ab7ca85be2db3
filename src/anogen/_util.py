"""Small helpers every layer may use: the library version, device resolution, seeding, JSON-ready values, the user
error type. The bottom of the house (``docs/architecture.md``): this module imports nothing of anogen, so any module
can import it without making an import circle.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

__version__ = "0.1.0"
"""the library version (``anogen.__version__``; pyproject.toml repeats it)"""


class UserError(Exception):
    """An error in what the user asked for, reported as one line with exit code 2."""


def library_version() -> str:
    return __version__


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU; anything else as torch spells it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global RNGs."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def params_jsonable(d: dict[str, Any]) -> dict[str, Any]:
    """A detector's ``get_params()`` as JSON-ready values (tuples -> lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def jsonable(v: Any) -> Any:
    """``v`` with dict keys as strings, tuples as lists, numpy scalars as Python numbers and paths as strings."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, Path):
        return str(v)
    return v
