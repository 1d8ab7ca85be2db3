"""VAE with the unregularized score: eqs. (5)-(6) on hand-made numbers, the score switch, the nets, and learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import anogen
from anogen.detectors.vae import PRESETS, SCORES, VAEDecoder, VAEEncoder, soft_clamp, vae_terms
from anogen.metrics import auroc
from conftest import one_class_digits

TINY = dict(epochs=1, batch_size=8, image_size=16, channels=1, n_conv=2, n_channels=4, latent_dim=4, verbose=False)


def test_terms_match_equation_6_by_hand():
    # two 1x2x2 images with given decoder outputs (mu_x, log sigma_x^2) and encoder outputs (mu_z, log sigma_z^2)
    x = np.array([[[[0.5, -1.0], [0.25, 0.0]]], [[[1.0, 1.0], [-1.0, 0.0]]]])  # (2, 1, 2, 2)
    mu_x = np.array([[[[0.3, -0.8], [0.25, 0.5]]], [[[0.0, 1.0], [-0.5, 0.1]]]])
    logvar_x = np.array([[[[0.0, -2.0], [1.0, math.log(0.25)]]], [[[-1.0, 0.5], [0.0, 2.0]]]])
    mu_z = np.array([[1.0, -0.5], [0.0, 2.0]])  # (2, N_z = 2)
    logvar_z = np.array([[0.0, math.log(2.0)], [-1.0, 0.3]])

    d, a, m = np.zeros(2), np.zeros(2), np.zeros(2)
    for b in range(2):
        for j in range(2):  # D = sum_j 1/2 (-log s_zj^2 - 1 + s_zj^2 + mu_zj^2)
            d[b] += 0.5 * (-logvar_z[b, j] - 1 + math.exp(logvar_z[b, j]) + mu_z[b, j] ** 2)
        for xi, mi, lv in zip(x[b].ravel(), mu_x[b].ravel(), logvar_x[b].ravel()):
            s2 = math.exp(lv)
            a[b] += 0.5 * math.log(2 * math.pi * s2)  # A = sum_i 1/2 log(2 pi s_xi^2)
            m[b] += 0.5 * (mi - xi) ** 2 / s2  # M = sum_i 1/2 (mu_xi - x_i)^2 / s_xi^2
    # first image, fully by hand: D = 1/2 (0 - 1 + 1 + 1) + 1/2 (-log 2 - 1 + 2 + 0.25)
    assert d[0] == pytest.approx(0.5 + 0.5 * (1.25 - math.log(2)))
    # M = 1/2 (0.2^2 / 1 + 0.2^2 / e^-2 + 0 + 0.5^2 / 0.25)
    assert m[0] == pytest.approx(0.5 * (0.04 + 0.04 * math.exp(2) + 0 + 1.0))

    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    out = vae_terms(t(x), t(mu_x), t(logvar_x), t(mu_z), t(logvar_z))
    np.testing.assert_allclose(out["D"].numpy(), d, rtol=1e-12)
    np.testing.assert_allclose(out["A"].numpy(), a, rtol=1e-12)
    np.testing.assert_allclose(out["M"].numpy(), m, rtol=1e-12)
    np.testing.assert_allclose(out["L"].numpy(), d + a + m, rtol=1e-12)  # eq. (5)


def test_soft_clamp_bounds_log_variance():
    v = torch.linspace(-100, 100, 2001)
    c = soft_clamp(v, -6.0, 4.0)
    slack = math.log1p(math.exp(-10.0))  # the two softplus roundings overlap by log(1 + e^-(hi - lo))
    assert c.min() >= -6.0 - slack - 1e-6 and c.max() <= 4.0 + 1e-6
    assert (c.diff() >= 0).all()  # monotone
    mid = torch.tensor([-1.0, 0.0, 1.0])
    torch.testing.assert_close(soft_clamp(mid, -20.0, 20.0), mid)  # identity well inside the range


def test_nets_take_any_side_divisible_by_2_to_the_n_conv():
    for (h, w), n_conv in [((96, 96), 5), ((24, 40), 3)]:
        enc, dec = VAEEncoder(3, h, w, n_conv, 4, 6).eval(), VAEDecoder(3, h, w, n_conv, 4, 6).eval()
        mu_z, logvar_z = enc(torch.zeros(2, 3, h, w))
        assert mu_z.shape == logvar_z.shape == (2, 6)
        mu_x, raw = dec(mu_z)
        assert mu_x.shape == raw.shape == (2, 3, h, w)
        convs = [m for m in enc.body if isinstance(m, torch.nn.Conv2d)]
        assert [c.out_channels for c in convs] == [4 * 2**n for n in range(n_conv)]  # N_c 2^(n-1), n = 1..N_conv
        assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)


def test_bad_fields_are_refused(digits):
    with pytest.raises(ValueError, match="divisible"):
        anogen.create("vae", image_size=40, n_conv=4)
    with pytest.raises(ValueError, match="score"):
        anogen.create("vae", score="nll")
    with pytest.raises(ValueError, match="logvar_min"):
        anogen.create("vae", logvar_min=2.0, logvar_max=1.0)


def test_score_switch_parts_and_map_use_the_map_latent(digits):
    images, _ = digits
    det = anogen.create("vae", **TINY).fit(images[:32])
    test = images[40:46]
    parts = det.score_parts(test)
    assert set(parts) == {"D", "A", "M", "L"} and all(v.shape == (6,) for v in parts.values())
    np.testing.assert_allclose(parts["L"], parts["D"] + parts["A"] + parts["M"], rtol=1e-5)
    np.testing.assert_array_equal(det.decision_function(test), parts["M"])  # default: the unregularized score
    for score, letter in SCORES.items():
        det.score = score
        np.testing.assert_array_equal(det.decision_function(test), parts[letter])
    det.score = "unregularized"

    # by hand from the nets in eval mode with z = mu_z (the MAP estimate), numpy formulas
    x = det.preprocess(test)
    with torch.no_grad():
        mu_z, logvar_z = (v.double().numpy() for v in det.nets_["enc"](x))
        mu_x, logvar_x = (v.double().numpy() for v in det.decode(det.nets_["enc"](x)[0]))
    xn = x.double().numpy()
    np.testing.assert_allclose(parts["M"], (0.5 * (mu_x - xn) ** 2 / np.exp(logvar_x)).sum((1, 2, 3)), rtol=1e-4)
    np.testing.assert_allclose(parts["A"], (0.5 * np.log(2 * np.pi * np.exp(logvar_x))).sum((1, 2, 3)), rtol=1e-4)
    np.testing.assert_allclose(parts["D"], (0.5 * (-logvar_z - 1 + np.exp(logvar_z) + mu_z**2)).sum(1), rtol=1e-4)
    # eval mode: a sample's score does not depend on the rest of its batch
    np.testing.assert_allclose(det.decision_function(test[:1]), parts["M"][:1], rtol=1e-5)
    maps = det.anomaly_maps(test)
    assert maps.shape == (6, 16, 16)
    np.testing.assert_allclose(maps.sum((1, 2)), parts["M"], rtol=1e-4)  # per-pixel M sums to M


def test_train_step_minimises_the_sampled_negative_elbo(digits):
    images, _ = digits
    det = anogen.create("vae", **TINY).fit(images[:16])
    x = det.preprocess(images[:8])
    det.nets_.train()
    torch.manual_seed(5)
    parts, _, _ = det.terms(x, sample=True)
    expected = parts["L"].mean().item()
    with torch.no_grad():
        at_mean = det.terms(x)[0]["L"].mean().item()
    assert expected != at_mean  # a reparameterised sample, not the mean
    torch.manual_seed(5)
    losses = det.train_step(x)
    assert losses["neg_elbo"] == pytest.approx(expected, rel=1e-6)


def test_patch_mode_parts_are_window_maxima(digits):
    images, _ = digits
    det = anogen.create("vae", **{**TINY, "patch_size": 8, "patch_stride": 4}).fit(images[:16])
    parts = det.score_parts(images[40:43])
    np.testing.assert_array_equal(det.decision_function(images[40:43]), parts["M"])
    det.score = "elbo"
    np.testing.assert_array_equal(det.decision_function(images[40:43]), parts["L"])


@pytest.mark.slow
def test_vae_unregularized_score_learns_one_class_digits(digits):
    train, test, y = one_class_digits(*digits, normal=0, n_train=120, seed=0)
    det = anogen.create("vae", **PRESETS["cpu"], channels=1, verbose=False, seed=0).fit(train)
    parts = det.score_parts(test)
    aucs = {k: auroc(y, v) for k, v in parts.items()}
    print("VAE one-class digits (0 normal) AUROC " + " ".join(f"{k}={v:.3f}" for k, v in aucs.items()))
    assert aucs["M"] >= 0.9  # measured 1.000 (seed 0); chance is 0.5
