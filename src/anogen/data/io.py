"""Reading image files into numpy arrays (the only place anogen opens an image file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def read_image(path: str | Path) -> np.ndarray:
    """One image file as uint8 (H, W) for grayscale or (H, W, C) for RGB / RGBA, with a clear error if unreadable."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image file not found: {p}")
    try:
        with Image.open(p) as im:
            im.load()
            if im.mode in ("1", "L", "P", "I", "I;16", "F", "LA"):
                if im.mode == "P":
                    im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                elif im.mode == "LA":
                    im = im.convert("L")
                elif im.mode in ("I", "I;16", "F"):
                    arr = np.asarray(im, dtype=np.float64)
                    hi = 65535.0 if arr.max() > 255 else 255.0
                    return np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
                else:
                    im = im.convert("L")
            elif im.mode not in ("RGB", "RGBA"):
                im = im.convert("RGB")
            return np.asarray(im).copy()
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read {p} as an image ({e}); expected one of {', '.join(IMAGE_SUFFIXES)}") from e


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder``, sorted; an error if the folder is missing or holds none."""
    f = Path(folder)
    if not f.is_dir():
        raise FileNotFoundError(f"image folder not found: {f}")
    files = sorted(p for p in f.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {f}")
    return files
