"""Fuzz test of the image loader: whatever bytes a file holds, ``read_image`` returns a valid array or raises
``InputError`` -- nothing else (no Pillow / numpy / torch exception, no crash), and what it returns goes through the
declared preprocessing. Bounded: at most 200 mutated and 100 random files, derandomized (the same cases every run).
"""

from __future__ import annotations

import io
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from anogen.data import io as image_io  # noqa: E402
from anogen.data.io import InputError, read_image  # noqa: E402
from anogen.data.transforms import Preprocess  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")  # Pillow on broken files

FUZZ_MAX_PIXELS = 2**16  # a mutated header may claim a large image: keep the fuzz cases small and fast


def _seeds() -> list[bytes]:
    """Valid files of every format and the pixel modes with documented conversions, 8x6 pixels each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    out = []
    for im, fmt, kw in [
        (rgb, "PNG", {}), (rgb.convert("L"), "PNG", {}), (rgb.convert("RGBA"), "PNG", {}),
        (rgb.convert("LA"), "PNG", {}), (rgb.convert("P"), "PNG", {"transparency": 0}),
        (Image.fromarray(rng.integers(0, 65536, (6, 8)).astype(np.uint16)), "PNG", {}),
        (rgb, "JPEG", {"quality": 80}), (rgb.convert("L"), "JPEG", {}), (rgb.convert("CMYK"), "JPEG", {}),
        (rgb, "BMP", {}), (rgb.convert("1"), "BMP", {}), (rgb, "TIFF", {}),
        (Image.fromarray(rng.random((6, 8), dtype=np.float32)), "TIFF", {}), (rgb, "WEBP", {}),
        (rgb, "PPM", {}), (rgb.convert("L"), "PPM", {}),
    ]:
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        out.append(buf.getvalue())
    return out


SEEDS = _seeds()


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    """A valid file with a few random edits after its first 8 bytes (so the decoders, not just format detection,
    see them): byte flips, overwritten runs (e.g. a size field), insertions, deletions, truncation."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["set", "xor", "run", "insert", "delete", "truncate"]))
        i = draw(st.integers(min(8, len(data) - 1), len(data) - 1)) if data else 0  # keep the magic bytes
        if op == "set" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "xor" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "run":
            data[i : i + 4] = draw(st.binary(min_size=1, max_size=4))  # e.g. a size field in a header
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[i:]
    return bytes(data)


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "case.png"


def _check(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    with mock.patch.object(image_io, "MAX_IMAGE_PIXELS", FUZZ_MAX_PIXELS):
        try:
            a = read_image(path)
        except InputError as e:
            assert str(path) in str(e)  # names the file
            return
    assert isinstance(a, np.ndarray) and a.size > 0 and a.shape[0] * a.shape[1] <= FUZZ_MAX_PIXELS
    assert a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (2, 3, 4)), a.shape
    assert a.dtype in (np.uint8, np.uint16, np.float32), a.dtype
    if a.dtype == np.float32:
        assert np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0
    x = Preprocess(image_size=8, channels=3)([path])  # and it goes through the declared preprocessing
    assert x.shape == (1, 3, 8, 8) and bool(x.isfinite().all())


FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(data=mutated_files())
def test_mutated_valid_files(fuzz_file, data):
    _check(fuzz_file, data)


@settings(FUZZ, max_examples=100)
@given(data=st.one_of(st.binary(max_size=2048), st.sampled_from(SEEDS).flatmap(
    lambda s: st.binary(max_size=256).map(lambda tail: s[: len(s) // 2] + tail))))
def test_random_bytes(fuzz_file, data):
    _check(fuzz_file, data)


def test_seed_files_are_all_read(fuzz_file):
    """Every unmutated seed decodes (so the fuzz starts from files the loader accepts)."""
    for data in SEEDS:
        fuzz_file.write_bytes(data)
        assert read_image(fuzz_file).size > 0
