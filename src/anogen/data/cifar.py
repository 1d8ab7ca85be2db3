"""CIFAR-10 (Krizhevsky 2009), the "python version": ``cifar-10-batches-py/``.

The folder holds ``data_batch_1`` .. ``data_batch_5`` (10 000 images each), ``test_batch`` (10 000) and
``batches.meta``. Each batch is a **pickle** (written by Python 2) of a dict with byte-string keys: ``b"data"`` uint8
(N, 3072), each row the red, then green, then blue 32x32 plane in row-major order; ``b"labels"`` a list of N ints
0-9; ``b"filenames"`` (optional here). ``batches.meta`` holds ``b"label_names"`` (airplane, automobile, ...).

Pickle is the format itself, so these files are a user's own data and unpickling them is trusted as such: a batch is
read only from inside the folder the user named (after resolving links), and through an unpickler that accepts the
numpy array / dtype constructors (and ``_codecs.encode``) these files need and nothing else, so a tampered file
fails with an error instead of running code.

:func:`load_cifar10` returns ``x`` uint8 (N, 32, 32, 3) RGB, ``y`` all 0 (protocols assign anomaly labels),
``classes`` the label 0-9 and ``names`` the batch's file names where present.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from anogen.data.base import ImageSet

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
SIDE = 32


def _numpy_global(module: str, name: str) -> Any:
    try:  # numpy >= 2 keeps these in numpy._core; numpy.core is a deprecated alias there
        import numpy._core.multiarray as ma
        import numpy._core.numeric as nu
    except ImportError:  # numpy 1.x
        import numpy.core.multiarray as ma  # type: ignore[no-redef]
        import numpy.core.numeric as nu  # type: ignore[no-redef]
    return {"_reconstruct": ma._reconstruct, "_frombuffer": getattr(nu, "_frombuffer", None)}[name]


_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR batch: numpy arrays, dtypes, dicts, lists and strings; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of the CIFAR batch format")
        if module == "numpy":
            return getattr(np, name)
        if module == "_codecs":
            return codecs.encode
        return _numpy_global(module, name)


def _folder(root: str | Path) -> Path:
    """``root`` itself when it holds the batches, else ``root/cifar-10-batches-py``."""
    r = Path(root)
    if not r.is_dir():
        raise FileNotFoundError(f"CIFAR-10 folder not found: {r}")
    if not (r / TEST_BATCH).exists() and (r / FOLDER).is_dir():
        r = r / FOLDER
    return r


def read_batch(path: str | Path, root: str | Path) -> dict[bytes, Any]:
    """One pickled batch, read only if it lies inside the user's folder ``root`` (links resolved)."""
    p, r = Path(path).resolve(), Path(root).resolve()
    if not p.is_relative_to(r):
        raise ValueError(f"{path} resolves to {p}, outside the dataset folder {r}; refusing to unpickle it")
    if not p.is_file():
        raise FileNotFoundError(f"CIFAR-10 batch not found: {path}")
    try:
        with p.open("rb") as f:
            data = _BatchUnpickler(f, encoding="bytes").load()
    except Exception as e:  # pickle raises many types on bad input; name the file whatever the cause
        raise ValueError(f"cannot read {path} as a CIFAR-10 python batch ({type(e).__name__}: {e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(data).__name__}")
    return data


def _batch_set(path: Path, root: Path) -> ImageSet:
    d = read_batch(path, root)
    if b"data" not in d or b"labels" not in d:
        raise ValueError(f"{path}: expected keys b'data' and b'labels', got {sorted(d)}")
    data, labels = np.asarray(d[b"data"]), np.asarray(d[b"labels"])
    if data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE or data.dtype != np.uint8:
        raise ValueError(f"{path}: expected data uint8 of shape (N, {3 * SIDE * SIDE}), got {data.dtype} {data.shape}")
    if labels.shape != (len(data),) or (labels.size and not np.isin(labels, np.arange(10)).all()):
        raise ValueError(f"{path}: expected {len(data)} labels in 0-9, got shape {labels.shape}")
    x = data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)  # R, G, B planes -> (N, 32, 32, 3)
    names = d.get(b"filenames")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names] if names is not None else None
    if names is not None and len(names) != len(x):
        names = None
    return ImageSet(np.ascontiguousarray(x), np.zeros(len(x), dtype=np.int64), names=names,
                    classes=labels.astype(np.int64))


def _concat(sets: list[ImageSet]) -> ImageSet:
    names = None
    if all(s.names is not None for s in sets):
        names = [n for s in sets for n in s.names]  # type: ignore[union-attr]
    return ImageSet(np.concatenate([s.x for s in sets]), np.concatenate([s.y for s in sets]), names=names,
                    classes=np.concatenate([s.classes for s in sets]))  # type: ignore[misc]


def load_cifar10(root: str | Path) -> tuple[ImageSet, ImageSet]:
    """``cifar-10-batches-py`` (or its parent) -> (train: the five data batches in order, test: ``test_batch``)."""
    r = _folder(root)
    missing = [b for b in (*TRAIN_BATCHES, TEST_BATCH) if not (r / b).is_file()]
    if missing:
        raise FileNotFoundError(f"no {', '.join(missing)} in {r}; found {sorted(p.name for p in r.iterdir())[:12]}")
    train = _concat([_batch_set(r / b, r) for b in TRAIN_BATCHES])
    return train, _batch_set(r / TEST_BATCH, r)


def label_names(root: str | Path) -> list[str]:
    """The class names of ``batches.meta`` (index = label), or [] when the file is absent."""
    r = _folder(root)
    if not (r / META).is_file():
        return []
    names = read_batch(r / META, r).get(b"label_names", [])
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]
