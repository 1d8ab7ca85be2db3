"""Reading image files into numpy arrays (the only place anogen opens an image file).

Every failure to read a file is an :class:`InputError` naming the file and the problem (missing files stay
``FileNotFoundError``); nothing from deep inside Pillow reaches the user. What is read, by Pillow mode (the documented
conversions):

- ``L``, ``1`` (bilevel): uint8 (H, W); bilevel as 0 / 255.
- ``LA``, ``La``: uint8 (H, W, 2); the alpha channel is dropped (``channel_mode="convert"``) or refused (``strict``)
  by :mod:`anogen.data.transforms`.
- ``RGB``: uint8 (H, W, 3); 16-bit-per-channel RGB PNGs are reduced to 8 bits by Pillow.
- ``RGBA``, ``RGBa``, ``PA``: uint8 (H, W, 4); alpha as for ``LA``.
- ``P`` (palette): its palette colours, uint8 RGB (H, W, 3), or RGBA (H, W, 4) when the palette has transparency.
- ``CMYK`` (JPEG or TIFF), ``YCbCr``, ``LAB``, ``HSV``, ``RGBX``: uint8 RGB (H, W, 3) by Pillow's conversion (Adobe's
  inverted CMYK JPEGs are handled by Pillow's JPEG reader).
- ``I;16`` (16-bit gray, any byte order): uint16 (H, W), scaled to [0, 1] by dividing by 65535 in
  :mod:`anogen.data.transforms`.
- ``I`` (32-bit integer): uint16 (H, W) when every value lies in 0..65535 (read as 16-bit), else an error.
- ``F`` (32-bit float): float32 (H, W) when every value lies in [0, 1], else an error.
- any other mode: an error.

Limits: only the formats of :data:`IMAGE_FORMATS` are decoded (Pillow's other plugins, some of which call external
programs, are never tried); an image of more than :data:`MAX_IMAGE_PIXELS` pixels is refused from its header, before
any pixel is decoded (Pillow's own decompression-bomb error, above twice its ``Image.MAX_IMAGE_PIXELS``, becomes the
same error); truncated files are errors, never partly read; of a multi-frame file (TIFF stack, animated WebP) only the
first frame is read.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "PPM")
"""Pillow formats decoded (JPEG includes cameras' multi-picture MPO files; PPM covers .pgm / .ppm)."""
MAX_IMAGE_PIXELS = 2**26
"""Largest image read, in pixels (width x height): 67,108,864, e.g. 8192 x 8192; larger files are refused as possible
decompression bombs. A module constant: set ``anogen.data.io.MAX_IMAGE_PIXELS`` to change it."""

_KEEP = ("L", "LA", "RGB", "RGBA")  # modes returned as they are (uint8)
_TO = {"1": "L", "La": "LA", "PA": "RGBA", "RGBa": "RGBA", "RGBX": "RGB", "CMYK": "RGB", "YCbCr": "RGB",
       "LAB": "RGB", "HSV": "RGB"}  # documented conversions; P is decided by its transparency


class InputError(ValueError):
    """An input that the declared preprocessing cannot turn into what the model expects."""


def read_image(path: str | Path) -> np.ndarray:
    """One image file as an array (see the module docstring for what each kind of file gives).

    Raises:
        FileNotFoundError: no such file.
        InputError: the file is empty, not an image of :data:`IMAGE_FORMATS`, corrupt or truncated, larger than
            :data:`MAX_IMAGE_PIXELS`, or holds values that cannot be read as pixels; the message names the file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image file not found: {p}")
    try:
        size = p.stat().st_size
    except OSError as e:
        raise InputError(f"cannot read image file {p}: {e.strerror or e}") from e
    if size == 0:
        raise InputError(f"cannot read image file {p}: it is empty (0 bytes)")
    try:
        f = open(p, "rb")
    except OSError as e:
        raise InputError(f"cannot read image file {p}: {e.strerror or e}") from e
    with f:
        return _decode(f, f"image file {p}")


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """The bytes of one image file as :func:`read_image` reads files (``name`` appears in errors)."""
    if len(data) == 0:
        raise InputError(f"cannot read image {name}: it is empty (0 bytes)")
    return _decode(io.BytesIO(data), f"image {name}")


def pil_to_array(im: Any, name: str = "a PIL image") -> np.ndarray:
    """A PIL image (already open) as an array, with the conversions of the module docstring."""
    try:
        return _convert(im, name)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure converting is this image's problem, reported as such
        raise InputError(f"cannot read {name} (mode {getattr(im, 'mode', '?')}) as pixels: {_why(e)}") from e


def _decode(f: BinaryIO, name: str) -> np.ndarray:
    """Decode an open binary file; ``name`` says what it is in errors ("image file PATH")."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(f, formats=IMAGE_FORMATS) as im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise InputError(_too_large(name, f"{w}x{h} = {w * h:,} pixels"))
            if w < 1 or h < 1:
                raise InputError(f"cannot read {name}: it has no pixels ({w}x{h})")
            im.load()  # decode now: truncated / corrupt data fails here (LOAD_TRUNCATED_IMAGES stays off)
            return _convert(im, name)
    except InputError:
        raise
    except Image.DecompressionBombError as e:
        n = re.search(r"(\d+) pixels", str(e))  # Pillow's own check (above twice PIL.Image.MAX_IMAGE_PIXELS)
        raise InputError(_too_large(name, f"{int(n.group(1)):,} pixels" if n else str(e))) from e
    except UnidentifiedImageError as e:
        raise InputError(f"cannot read {name}: not an image in a format anogen reads (formats: "
                         f"{', '.join(IMAGE_FORMATS)}; suffixes {', '.join(IMAGE_SUFFIXES)})") from e
    except Exception as e:  # noqa: BLE001 - Pillow's decoders raise OSError, SyntaxError, ValueError, struct.error...
        raise InputError(f"cannot read {name}: it is corrupt or truncated ({_why(e)})") from e


def _convert(im: Any, name: str) -> np.ndarray:
    """An open, loaded PIL image -> uint8 (H, W[, C]), uint16 (H, W) or float32 (H, W) in [0, 1]."""
    mode = im.mode
    if mode.startswith("I;16"):  # 16-bit gray, any byte order -> native uint16
        return np.asarray(im).astype(np.uint16)
    if mode == "I":
        a = np.asarray(im)
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 65535:
            raise InputError(f"cannot read {name}: its 32-bit integer pixels hold values in [{lo}, {hi}]; anogen "
                             f"reads integer images in 0..65535 (16-bit) only")
        return a.astype(np.uint16)
    if mode == "F":
        a = np.asarray(im).astype(np.float32)
        if not np.isfinite(a).all():
            raise InputError(f"cannot read {name}: its float pixels hold NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0:
            raise InputError(f"cannot read {name}: its float pixels hold values in [{lo:.4g}, {hi:.4g}]; anogen "
                             f"reads float images in [0, 1] only")
        return a
    if mode == "P":
        target = "RGBA" if "transparency" in im.info else "RGB"
    elif mode in _KEEP:
        target = mode
    elif mode in _TO:
        target = _TO[mode]
    else:
        raise InputError(f"cannot read {name}: it has pixel mode {mode!r}, which anogen does not read")
    if target != mode:
        im = im.convert(target)
    a = np.asarray(im)
    if a.dtype != np.uint8 or a.ndim not in (2, 3):
        raise InputError(f"cannot read {name}: mode {mode} decoded to {a.dtype} {a.shape}, not 8-bit pixels")
    return a.copy()


def _too_large(name: str, what: str) -> str:
    return (f"cannot read {name}: it is too large ({what}; anogen reads at most MAX_IMAGE_PIXELS = "
            f"{MAX_IMAGE_PIXELS:,}), refused as a possible decompression bomb (raise anogen.data.io.MAX_IMAGE_PIXELS "
            "if it is genuine)")


def _why(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder``, sorted; an error if the folder is missing or holds none."""
    f = Path(folder)
    if not f.is_dir():
        raise FileNotFoundError(f"image folder not found: {f}")
    files = sorted(p for p in f.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {f}")
    return files
