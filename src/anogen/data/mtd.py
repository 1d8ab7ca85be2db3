"""Magnetic Tile Defects (Huang, Qiu, Yuan, The Visual Computer 2020)::

    <root>/MT_<Class>/Imgs/<name>.jpg     image (grayscale JPEG, sizes vary)
    <root>/MT_<Class>/Imgs/<name>.png     its mask, same stem

``MT_Free`` is normal (952 images in the full set); the defect classes (``Blowhole``, ``Break``, ``Crack``,
``Fray``, ``Uneven``: 392) are anomalous. A splits file fixes train / val / test lists per seed, see
:func:`read_splits`.

Sources return paths (images are read, and resized, only by :mod:`anogen.data.transforms`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from anogen.data.base import ImageSet
from anogen.data.io import IMAGE_SUFFIXES

NORMAL_CLASS = "Free"
_MASK_SUFFIX = ".png"
_SPLIT_KEYS = ("train", "val", "val_labels", "test", "test_labels")


def load_mtd(root: str | Path) -> ImageSet:
    """The MTD tree -> one :class:`ImageSet` of every image.

    Order: ``MT_Free`` first, then the defect classes by name; files sorted by name within a class (the order the
    splits file was drawn from). ``y`` 1 for defects; ``masks`` the same-stem PNG paths (None where an ``MT_Free``
    image has none; a defect image without one is an error); ``names`` paths relative to ``root`` such as
    ``MT_Free/Imgs/exp0_num_743.jpg``; ``classes`` the class name without ``MT_``.
    """
    r = Path(root)
    if not r.is_dir():
        raise FileNotFoundError(f"MTD root not found: {r}")
    class_dirs = sorted(p.name[3:] for p in r.iterdir() if p.is_dir() and p.name.startswith("MT_"))
    if NORMAL_CLASS not in class_dirs or len(class_dirs) < 2:
        raise ValueError(f"{r} is not an MTD root: expected MT_{NORMAL_CLASS}/Imgs and at least one defect folder "
                         f"MT_<Class>/Imgs, found {['MT_' + c for c in class_dirs]}")
    classes = [NORMAL_CLASS] + [c for c in class_dirs if c != NORMAL_CLASS]
    files: list[Path] = []
    kinds: list[str] = []
    masks: list[Path | None] = []
    missing: list[str] = []
    for c in classes:
        d = r / f"MT_{c}" / "Imgs"
        if not d.is_dir():
            raise FileNotFoundError(f"MTD class folder not found: {d}")
        # the PNGs beside the JPEGs are the masks, so images are the other image files
        imgs = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                      and p.suffix.lower() != _MASK_SUFFIX)
        if not imgs:
            raise ValueError(f"no images (.jpg) in {d}")
        for f in imgs:
            m = f.with_suffix(_MASK_SUFFIX)
            if not m.is_file():
                if c != NORMAL_CLASS:
                    missing.append(f.relative_to(r).as_posix())
                m = None
            files.append(f)
            kinds.append(c)
            masks.append(m)
    if missing:
        raise ValueError(f"{len(missing)} MTD defect images have no same-stem {_MASK_SUFFIX} mask, e.g. {missing[:5]}")
    return ImageSet(files, np.array([k != NORMAL_CLASS for k in kinds], dtype=np.int64), masks=masks,
                    names=[f.relative_to(r).as_posix() for f in files], classes=np.array(kinds))


def read_splits(path: str | Path, seed: int) -> dict[str, list[Any]]:
    """One seed's entry of an MTD splits file.

    The file is JSON ``{"<seed>": {"train": [...], "val": [...], "val_labels": [...], "test": [...],
    "test_labels": [...]}, ...}`` with paths relative to the MTD root and labels 1 = defective; ``train`` is
    normal only.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"MTD splits file not found: {p}")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{p} is not valid JSON ({e})") from e
    if not isinstance(data, dict) or str(seed) not in data:
        held = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{p} has no split for seed {seed}; it holds seeds {held}")
    entry = data[str(seed)]
    if not isinstance(entry, dict) or any(k not in entry for k in _SPLIT_KEYS):
        got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise ValueError(f"{p} seed {seed}: expected keys {list(_SPLIT_KEYS)}, got {got}")
    for part in ("val", "test"):
        if len(entry[part]) != len(entry[f"{part}_labels"]):
            raise ValueError(f"{p} seed {seed}: {len(entry[part])} {part} files but "
                             f"{len(entry[f'{part}_labels'])} {part}_labels")
    return {k: list(entry[k]) for k in _SPLIT_KEYS}
