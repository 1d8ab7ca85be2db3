"""SVHN (Street View House Numbers, Netzer et al. 2011), cropped-digits format 2: the MATLAB ``.mat`` files.

A directory holds ``train_32x32.mat`` (73 257 images) and ``test_32x32.mat`` (26 032); ``extra_32x32.mat`` is
ignored (Matsubara et al. IV-A did not use it either). Each file (MATLAB 5 format, read with ``scipy.io.loadmat``)
holds ``X``: uint8 (32, 32, 3, N), the images with the sample index last, and ``y``: (N, 1) labels 1-10, where 10
stands for the digit 0.

:func:`load_svhn` returns ``x`` uint8 (N, 32, 32, 3) RGB, ``y`` all 0 (protocols assign anomaly labels) and
``classes`` the digit 0-9 (label 10 mapped to 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anogen.data.base import ImageSet

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


def read_svhn_mat(path: str | Path) -> ImageSet:
    """One SVHN ``.mat`` file -> an :class:`ImageSet` (x uint8 (N, 32, 32, 3), classes 0-9).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a MATLAB 5 file, no ``X`` / ``y``, shapes that disagree, or labels outside 1-10 (0 accepted).
    """
    from scipy.io import loadmat

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"SVHN file not found: {p}")
    try:
        mat = loadmat(str(p), variable_names=["X", "y"])
    except Exception as e:  # scipy raises ValueError / NotImplementedError (MATLAB 7.3 = HDF5) / others
        raise ValueError(f"{p}: cannot read as a MATLAB 5 .mat file with X and y ({type(e).__name__}: {e})") from e
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"{p}: expected variables X and y, got {sorted(k for k in mat if not k.startswith('__'))}")
    xs, ys = np.asarray(mat["X"]), np.asarray(mat["y"])
    if xs.ndim != 4 or xs.shape[2] != 3 or xs.dtype != np.uint8:
        raise ValueError(f"{p}: expected X uint8 of shape (H, W, 3, N), got {xs.dtype} {xs.shape}")
    labels = ys.ravel()
    if labels.shape != (xs.shape[3],):
        raise ValueError(f"{p}: X holds {xs.shape[3]} images but y has shape {ys.shape}")
    if labels.size and (not np.all(np.isin(labels, np.arange(11)))):
        raise ValueError(f"{p}: labels must be 1-10 (10 = digit 0), got values {np.unique(labels)[:12].tolist()}")
    classes = labels.astype(np.int64) % 10  # label 10 is the digit 0
    x = np.ascontiguousarray(np.transpose(xs, (3, 0, 1, 2)))  # (H, W, 3, N) -> (N, H, W, 3)
    return ImageSet(x, np.zeros(len(x), dtype=np.int64), classes=classes)


def load_svhn(root: str | Path) -> tuple[ImageSet, ImageSet]:
    """The SVHN directory (``train_32x32.mat``, ``test_32x32.mat``) -> (train, test)."""
    r = Path(root)
    if not r.is_dir():
        raise FileNotFoundError(f"SVHN directory not found: {r} (expected {FILES['train']} and {FILES['test']})")
    missing = [f for f in FILES.values() if not (r / f).is_file()]
    if missing:
        raise FileNotFoundError(f"no {', '.join(missing)} in {r}; found {sorted(p.name for p in r.iterdir())[:12]}")
    return read_svhn_mat(r / FILES["train"]), read_svhn_mat(r / FILES["test"])
