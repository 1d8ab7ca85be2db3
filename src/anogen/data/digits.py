"""scikit-learn's handwritten digits: the embedded default data set (no files, nothing downloaded).

1797 images of 8x8 pixels, about 180 per digit, values 0-16 in the original; scaled here to uint8 0-255 by
``round(v * 255 / 16)`` so every source hands the transforms the same pixel range.
"""

from __future__ import annotations

import numpy as np

from anogen.data.base import ImageSet


def load_digits() -> ImageSet:
    """All 1797 digits as an :class:`ImageSet`.

    Returns:
        ``x`` uint8 (1797, 8, 8) in 0-255, ``y`` all 0 (protocols assign anomaly labels), ``classes`` the digit 0-9.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    d = _sk_load_digits()
    x = np.round(d.images * 255.0 / 16.0).astype(np.uint8)  # (N, 8, 8); 16 -> 255 exactly
    return ImageSet(x, np.zeros(len(x), dtype=np.int64), classes=d.target.astype(np.int64))
