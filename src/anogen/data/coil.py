"""COIL-100 (Nene, Nayar, Murase 1996): one folder of ``obj<K>__<angle>.png``, 72 poses per object, 128x128 RGB.

Subsets keep the names (the 17-object ``coil17`` folder does). Sources return paths (images are read, and
resized, only by :mod:`anogen.data.transforms`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from anogen.data.base import ImageSet
from anogen.data.io import list_images

_NAME = re.compile(r"obj(\d+)__(\d+)\.png", re.IGNORECASE)


def load_coil(folder: str | Path) -> ImageSet:
    """Every ``obj<K>__<angle>.png`` in ``folder`` -> :class:`ImageSet`, sorted by object then angle.

    ``y`` 0 (protocols choose the normal objects), ``classes`` the object id K, ``names`` the file names. Image files
    with other names are an error (a folder mixing data sets would give wrong labels); other files are ignored.
    """
    files = list_images(folder)
    parsed, bad = [], []
    for f in files:
        m = _NAME.fullmatch(f.name)
        if m is None:
            bad.append(f.name)
        else:
            parsed.append((int(m.group(1)), int(m.group(2)), f))
    if bad:
        raise ValueError(f"{len(bad)} image files in {folder} are not named obj<K>__<angle>.png, e.g. {bad[:5]}")
    parsed.sort(key=lambda t: (t[0], t[1]))
    paths = [f for _, _, f in parsed]
    return ImageSet(paths, np.zeros(len(paths), dtype=np.int64), names=[f.name for f in paths],
                    classes=np.array([k for k, _, _ in parsed], dtype=np.int64))
