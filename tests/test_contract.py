"""The contract every registered detector obeys (DESIGN.md, 'Tests' item 9): tiny nets, 1-2 steps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import anogen
from anogen.detector import NotFittedError


def _tiny(name: str, size: int, channels: int) -> dict:
    """Smallest sensible overrides for a contract run, chosen from the fields a detector has."""
    fields = anogen.create(name).field_names()
    kw = dict(epochs=1, batch_size=8, image_size=size, channels=channels, verbose=False, seed=3)
    for k, v in dict(width=8, max_width=16, latent_dim=8, hidden=16, n_dis=1, search_steps=2, encoder_epochs=0, n_channels=8).items():
        if k in fields:
            kw[k] = v
    if "backbone" in fields:
        kw["backbone"] = "none"  # vectors, or the image as its own feature map (padim, patchcore); backbones have
        # their own tests
    if "normalize" in fields and kw.get("backbone") == "none":
        kw["normalize"] = "tanh"
    return kw


def _data(name: str, digits, channels: int, n: int, offset: int = 0):
    images, _ = digits
    x = images[offset : offset + n]
    det = anogen.create(name)
    if "backbone" in det.field_names() and det.input_kind != "image":
        return x.reshape(n, -1).astype(np.float32) / 255.0  # (N, 64) vectors
    if channels == 3:
        x = np.stack([x, 255 - x, x // 2], axis=-1)  # (N, 8, 8, 3) with distinct channels
    return x


NAMES = anogen.available()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size,channels", [(16, 1), (32, 3)])
def test_contract(name, size, channels, digits, tmp_path):
    kw = _tiny(name, size, channels)
    train, test = _data(name, digits, channels, 24), _data(name, digits, channels, 10, offset=100)

    det = anogen.create(name, **kw)
    with pytest.raises(NotFittedError):
        det.decision_function(test)
    with pytest.raises(NotFittedError):
        det.save(tmp_path / "unfitted.anogen")

    assert det.fit(train) is det
    s = det.decision_function(test)
    assert s.shape == (10,) and s.dtype == np.float64 and np.isfinite(s).all()
    assert set(np.unique(det.predict(test))) <= {0, 1}
    assert np.isfinite(det.threshold_) and det.decision_scores_.shape == (24,)

    # same seed -> same scores, also for a second fit of the same object (fit starts from scratch)
    s2 = anogen.create(name, **kw).fit(train).decision_function(test)
    np.testing.assert_array_equal(s, s2)
    np.testing.assert_array_equal(det.fit(train).decision_function(test), s)

    # save -> load -> bit-identical scores, with no dataset
    path = det.save(tmp_path / f"{name}.anogen")
    loaded = anogen.load(path)
    assert type(loaded) is type(det) and loaded.get_params() == det.get_params()
    np.testing.assert_array_equal(loaded.decision_function(test), s)
    assert loaded.threshold_ == det.threshold_
    assert not list(tmp_path.glob(".*.tmp")), "a temp file was left behind"


@pytest.mark.parametrize("name", NAMES)
def test_params_and_unknown_field(name):
    det = anogen.create(name)
    params = det.get_params()
    assert params == {f.name: getattr(det, f.name) for f in dataclasses.fields(det)}
    assert not [k for k in vars(det) if k.endswith("_")], "construction must do no work"
    with pytest.raises(TypeError, match="no field"):
        anogen.create(name, not_a_field=1)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_after_fit(name, digits):
    kw = _tiny(name, 16, 1)
    det = anogen.create(name, **kw).fit(_data(name, digits, 1, 16))
    if "backbone" in det.field_names() and det.input_kind != "image":
        with pytest.raises(anogen.InputError, match="length"):
            det.decision_function(np.zeros((2, 5), np.float32))
        bad = np.zeros((2, 64), np.float32)
    else:
        with pytest.raises(anogen.InputError, match="images"):
            det.decision_function(np.zeros((2, 64), np.float32))  # vectors given to an image model
        bad = np.zeros((2, 8, 8), np.float32)
    bad[0, 0] = np.nan
    with pytest.raises(anogen.InputError, match="NaN"):
        det.decision_function(bad)
