"""Fast scoring (anogen.inference): the default path is bit-identical to plain no_grad score_batch calls, the opt-in
``optimize()`` path is within FAST_RTOL, caches follow weight changes, and training-time validation still works."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import anogen
from anogen.inference import FAST_RTOL, frozen_copy, options, scoring_view
from test_contract import _data, _tiny

NAMES = anogen.available()


def _plain_scores(det, x) -> np.ndarray:
    """What scoring was before anogen.inference: the original nets_, eval mode, torch.no_grad, batch by batch."""
    xt = det._prepare(x)
    det.nets_.eval()
    with torch.no_grad():
        out = [det._score_chunk(xt[i : i + det.eval_batch_size]) for i in range(0, len(xt), det.eval_batch_size)]
    return torch.cat(out).numpy()


def _plain_maps(det, x) -> np.ndarray:
    xt = det._prepare(x)
    det.nets_.eval()
    with torch.no_grad():
        return det._batched(xt, det.map_batch).numpy()


def _close(fast: np.ndarray, exact: np.ndarray) -> None:
    scale = max(float(np.abs(exact).max()), float(exact.std()), 1e-12)
    err = float(np.abs(fast - exact).max())
    assert err <= FAST_RTOL * scale, f"max |fast - exact| = {err:.3g} > {FAST_RTOL} x {scale:.3g}"


@pytest.fixture(scope="module")
def fitted(digits):
    """Every registered detector, fitted tiny (16 px, 1 channel), with its test inputs (fits shared by the tests)."""
    cache = {}

    def get(name):
        if name not in cache:
            det = anogen.create(name, **_tiny(name, 16, 1)).fit(_data(name, digits, 1, 24))
            cache[name] = (det, _data(name, digits, 1, 10, offset=100))
        return cache[name]

    return get


@pytest.mark.parametrize("name", NAMES)
def test_default_path_is_bit_identical_and_optimize_within_tolerance(name, fitted, tmp_path):
    det, x = fitted(name)
    anogen.inference.exact(det)
    exact = _plain_scores(det, x)
    np.testing.assert_array_equal(det.decision_function(x), exact)
    np.testing.assert_array_equal(det.decision_function(x), exact)  # second call: the cached view
    maps = det.has_anomaly_maps() and det.patch_size == 0
    if maps:
        np.testing.assert_array_equal(det.anomaly_maps(x), _plain_maps(det, x))

    assert det.optimize() is det and options(det) == {"fold_batchnorm": True, "channels_last": True}
    _close(det.decision_function(x), exact)
    if maps:
        _close(det.anomaly_maps(x), _plain_maps(det, x))
    # the saved model is the exact one: nets_ untouched, nothing of the fast path written
    loaded = anogen.load(det.save(tmp_path / "m.anogen"))
    np.testing.assert_array_equal(loaded.decision_function(x), exact)
    anogen.inference.exact(det)
    np.testing.assert_array_equal(det.decision_function(x), exact)


def test_scoring_runs_in_inference_mode_except_for_latent_searches(fitted, monkeypatch):
    seen = []
    for name in ("algan", "anogan"):
        det, x = fitted(name)
        cls = type(det)
        orig = cls.score_batch
        monkeypatch.setattr(cls, "score_batch", lambda self, xb, orig=orig: (
            seen.append((name, torch.is_inference_mode_enabled())), orig(self, xb))[1])
        det.decision_function(x)
    assert ("algan", True) in seen and ("anogan", False) in seen


def test_spectral_norm_view_follows_weight_changes(fitted):
    det, x = fitted("algan")
    anogen.inference.exact(det)
    before = det.decision_function(x)
    view = scoring_view(det)
    assert view is not det and scoring_view(det) is view  # cached while nothing changed
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in view.nets_.modules())
    assert any(torch.nn.utils.parametrize.is_parametrized(m) for m in det.nets_.modules())  # original untouched
    w = det.nets_["D"][1].body[0].parametrizations.weight.original
    with torch.no_grad():
        w.mul_(1.5)  # an in-place change (as an optimizer step makes) must invalidate the view
    try:
        after = det.decision_function(x)
        assert scoring_view(det) is not view
        np.testing.assert_array_equal(after, _plain_scores(det, x))
        assert not np.array_equal(after, before)
    finally:
        with torch.no_grad():
            w.div_(1.5)
    # a shared tensor stays shared: the view's frozen copy did not duplicate G
    assert scoring_view(det).nets_["G"].net[0].weight is det.nets_["G"].net[0].weight


def test_frozen_copy_folds_batchnorm_exactly_in_arithmetic():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                              torch.nn.ConvTranspose2d(8, 4, 4, 2, 1), torch.nn.BatchNorm2d(4),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 24 * 24, 5), torch.nn.BatchNorm1d(5))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-1, 1)
    net.eval()
    fused = frozen_copy(net, fold_batchnorm=True, channels_last=True)
    assert not any(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)) for m in fused.modules())
    assert fused[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert net[0].weight.is_contiguous()  # the original keeps its layout
    x = torch.randn(6, 3, 14, 14)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), net(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in NAMES if anogen.create(n).iterative])
def test_validation_during_training_scores_in_inference_mode(name, digits):
    """Validation between epochs scores under inference_mode; training must go on with ordinary tensors after it."""
    images, labels = digits
    kw = {**_tiny(name, 16, 1), "epochs": 2, "val_every": 1}
    train = _data(name, digits, 1, 16)
    vx = _data(name, digits, 1, 12, offset=200)
    vy = (labels[200:212] != labels[200]).astype(int)
    if len(np.unique(vy)) < 2:
        vy[0] = 1 - vy[0]
    det = anogen.create(name, **kw).fit(train, val_x=vx, val_y=vy)
    assert len(det.history_) == 2 and "val_auroc" in det.history_[-1]
    np.testing.assert_array_equal(det.decision_function(vx), _plain_scores(det, vx))


def test_patch_mode_uses_the_fast_view(digits):
    images, _ = digits
    det = anogen.create("algan", **{**_tiny("algan", 16, 1), "patch_size": 8, "patch_stride": 4}).fit(images[:16])
    x = images[100:104]
    xt = det._prepare(x)
    with torch.no_grad():
        plain = np.stack([s.amax(1).numpy() for _, s in det._over_windows(xt, det._score_chunk)][0])
    np.testing.assert_array_equal(det.decision_function(x), plain)
    _close(det.optimize().decision_function(x), plain)
