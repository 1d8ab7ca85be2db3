"""The two containers every data source and protocol returns: a labelled set of images, and a split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class ImageSet:
    """Images with labels (1 = anomaly), and optionally masks, names and original class ids.

    ``x`` is anything ``Detector.fit`` accepts: array sources (digits, IDX, pickle) give a uint8 array
    (N, H, W[, C]); file-tree sources (folder, anomalib, mvtec, mtd, coil) give a list of paths, read by
    ``transforms`` when a detector consumes them. ``masks`` is None, an array (N, H, W), or a list with a path /
    array / None per sample (None = all-normal mask). ``classes`` holds the source's class of each sample (ints such
    as digits or COIL objects, or strings such as MVTec defect types).
    """

    x: Any
    y: np.ndarray
    masks: Any = None
    names: list[str] | None = None
    classes: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, dtype=np.int64).ravel()
        if len(self.y) != len(self.x):
            raise ValueError(f"{len(self.x)} images but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: Any) -> "ImageSet":
        """The samples at integer indices ``idx``, in that order."""
        idx = np.asarray(idx, dtype=np.int64)

        def take(v: Any) -> Any:
            if v is None:
                return None
            if isinstance(v, np.ndarray):
                return v[idx]
            return [v[i] for i in idx]

        return ImageSet(take(self.x), self.y[idx], take(self.masks), take(self.names), take(self.classes))

    @property
    def paths(self) -> list[Path] | None:
        if isinstance(self.x, list) and self.x and isinstance(self.x[0], (str, Path)):
            return [Path(p) for p in self.x]
        return None


@dataclass
class Split:
    """A protocol's train (normal only) / validation / test sets, and what produced them."""

    train: ImageSet
    val: ImageSet | None = None
    test: ImageSet | None = None
    name: str = ""
    info: dict[str, Any] = field(default_factory=dict)
