"""MVTec AD, one category folder (Bergmann et al., CVPR 2019)::

    <category>/
      train/good/*.png                       normal training images
      test/good/*.png                        normal test images (no masks)
      test/<defect type>/*.png               anomalous test images
      ground_truth/<defect type>/<stem>_mask.png

Sources return paths (images are read, and resized, only by :mod:`anogen.data.transforms`). A category without a
``ground_truth`` folder is read as classification only (``masks`` None); with one, every anomalous image needs its
mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anogen.data.base import ImageSet
from anogen.data.io import list_images

GOOD = "good"


def load_mvtec(category: str | Path) -> tuple[ImageSet, ImageSet]:
    """One MVTec AD category -> (train, test).

    Returns:
        train: ``train/good`` (labels 0). test: every ``test/<type>`` folder, ``good`` first, then the defect types
        sorted (labels 1 for every type but ``good``), masks as paths (None for ``good``) or no masks at all without
        ``ground_truth``. ``names`` are paths relative to the category, ``classes`` the type name (``good`` included).
    """
    root = Path(category)
    if not root.is_dir():
        raise FileNotFoundError(f"MVTec AD category folder not found: {root}")
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        subs = sorted(p.name for p in root.iterdir() if p.is_dir())
        hint = (" -- it looks like the data set root; pass one category folder, e.g. "
                f"{root / subs[0]}" if subs and all((root / s / "train").is_dir() for s in subs) else "")
        raise FileNotFoundError(f"{root} is not an MVTec AD category: expected train/good and test/ folders, "
                                f"found folders {subs}{hint}")
    train_files = list_images(root / "train" / GOOD)
    types = sorted(p.name for p in (root / "test").iterdir() if p.is_dir())
    if not types:
        raise ValueError(f"no defect-type folders in {root / 'test'}")
    types = [t for t in types if t == GOOD] + [t for t in types if t != GOOD]
    gt = root / "ground_truth"
    files: list[Path] = []
    kinds: list[str] = []
    masks: list[Path | None] = []
    missing: list[str] = []
    for t in types:
        for f in list_images(root / "test" / t):
            files.append(f)
            kinds.append(t)
            m = None if t == GOOD else gt / t / f"{f.stem}_mask.png"
            if m is not None and gt.is_dir() and not m.is_file():
                missing.append(m.relative_to(root).as_posix())
            masks.append(m)
    if missing:
        raise ValueError(f"{len(missing)} MVTec masks missing under {gt}, e.g. {missing[:5]}")
    rel = [f.relative_to(root).as_posix() for f in files]
    train = ImageSet(train_files, np.zeros(len(train_files), dtype=np.int64),
                     names=[f.relative_to(root).as_posix() for f in train_files],
                     classes=np.array([GOOD] * len(train_files)))
    test = ImageSet(files, np.array([k != GOOD for k in kinds], dtype=np.int64),
                    masks=masks if gt.is_dir() else None, names=rel, classes=np.array(kinds))
    return train, test
