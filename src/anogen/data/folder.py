"""Image folders: a plain folder of normal images, and anomalib's ``Folder`` layout.

A plain folder holds normal images only (``folder:PATH``): every image file directly in it, sorted, labels 0.

anomalib's ``Folder`` datamodule layout (``anomalib:PATH``) is a root with one folder per kind of image::

    root/
      normal/        normal_dir: normal images (the training pool)
      abnormal/      abnormal_dir: anomalous images (label 1)
      normal_test/   normal_test_dir, optional: normal images kept for testing
      mask/          mask_dir, optional: one mask per anomalous image, matched by file stem
                     (``img.png`` <- ``mask/img.png`` or ``mask/img_mask.png``; other suffixes too)

The names are arguments. Their defaults, ``normal`` and ``abnormal`` with no mask or normal-test folder, are the
names of anomalib's own Folder example (its ``cubes`` data set); anomalib itself requires ``normal_dir`` and has no
defaults. For a tree such as anomalib's ``hazelnut_toy`` pass ``normal_dir="good", abnormal_dir="crack",
mask_dir="mask/crack"``. Sub-paths and absolute paths are accepted for every name.

Sources return paths (images are read, and resized, only by :mod:`anogen.data.transforms`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anogen.data.base import ImageSet
from anogen.data.io import list_images

NORMAL_DIR = "normal"
ABNORMAL_DIR = "abnormal"


def load_folder(path: str | Path) -> ImageSet:
    """Every image file directly in ``path`` (sorted), all normal: ``x`` paths, ``y`` 0, ``names`` file names."""
    files = list_images(path)
    return ImageSet(files, np.zeros(len(files), dtype=np.int64), names=[f.name for f in files])


def match_masks(images: list[Path], mask_dir: Path, root: Path | None = None) -> list[Path]:
    """The mask of each image in ``mask_dir``, by stem: ``<stem>.*`` or ``<stem>_mask.*``.

    Raises:
        ValueError: an image without a mask, or a stem with two candidate masks.
    """
    by_stem: dict[str, list[Path]] = {}
    for m in list_images(mask_dir):
        by_stem.setdefault(m.stem, []).append(m)
    out, missing = [], []
    for img in images:
        cands = by_stem.get(img.stem, []) or by_stem.get(img.stem + "_mask", [])
        if len(cands) > 1:
            raise ValueError(f"{img.name}: several masks match by stem in {mask_dir}: {[c.name for c in cands]}")
        if not cands:
            missing.append(str(img.relative_to(root)) if root else img.name)
        else:
            out.append(cands[0])
    if missing:
        raise ValueError(
            f"{len(missing)} anomalous images have no mask in {mask_dir} (expected <stem>.<ext> or "
            f"<stem>_mask.<ext>), e.g. {missing[:5]}"
        )
    return out


def _subdir(root: Path, name: str, what: str) -> Path:
    d = root / name
    if not d.is_dir():
        held = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise FileNotFoundError(f"{what} folder not found: {d} (set {what}=...; {root} holds folders {held})")
    return d


def load_anomalib_folder(
    root: str | Path,
    normal_dir: str = NORMAL_DIR,
    abnormal_dir: str = ABNORMAL_DIR,
    mask_dir: str | None = None,
    normal_test_dir: str | None = None,
) -> tuple[ImageSet, ImageSet]:
    """An anomalib ``Folder`` tree -> (normal pool, test set).

    Returns:
        The normal images of ``normal_dir`` (labels 0), and the test images: those of ``normal_test_dir`` (labels 0,
        masks None) followed by those of ``abnormal_dir`` (labels 1, mask paths when ``mask_dir`` is given, else no
        masks). ``names`` are paths relative to ``root``; ``classes`` the folder name each image came from.
    """
    r = Path(root)
    if not r.is_dir():
        raise FileNotFoundError(f"anomalib Folder root not found: {r}")
    normal = list_images(_subdir(r, normal_dir, "normal_dir"))
    abnormal = list_images(_subdir(r, abnormal_dir, "abnormal_dir"))
    normal_test = list_images(_subdir(r, normal_test_dir, "normal_test_dir")) if normal_test_dir else []
    masks = match_masks(abnormal, _subdir(r, mask_dir, "mask_dir"), r) if mask_dir else None

    def names(files: list[Path]) -> list[str]:
        return [f.relative_to(r).as_posix() if f.is_relative_to(r) else str(f) for f in files]

    pool = ImageSet(normal, np.zeros(len(normal), dtype=np.int64), names=names(normal),
                    classes=np.array([normal_dir] * len(normal)))
    test_files = normal_test + abnormal
    test = ImageSet(
        test_files,
        np.r_[np.zeros(len(normal_test)), np.ones(len(abnormal))],
        masks=None if masks is None else [None] * len(normal_test) + masks,
        names=names(test_files),
        classes=np.array([normal_test_dir] * len(normal_test) + [abnormal_dir] * len(abnormal)),
    )
    return pool, test
