"""AnoGAN (thesis 2.3.1): the latent search lowers L(z), the score is L(z) at the returned z, G and D stay frozen,
and the detector learns one-class digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import anogen
from anogen.losses import residual_score
from anogen.metrics import auroc
from conftest import one_class_digits

TINY = dict(epochs=4, batch_size=8, image_size=16, channels=1, width=8, max_width=16, latent_dim=8, lr_g=1e-3,
            lr_d=1e-3, search_steps=20, search_lr=0.05, verbose=False, seed=0)


@pytest.fixture(scope="module")
def fitted(digits):
    images, _ = digits
    return anogan_fit(images[:32])


def anogan_fit(x, **kw):
    return anogen.create("anogan", **dict(TINY, **kw)).fit(x)


def test_residual_score_is_the_papers_loss():
    """A = (1 - lambda) ||x - G(z)||_1 + lambda ||f(x) - f(G(z))||_1 (eqs. 2.32, 2.33) on hand-made tensors."""
    x = torch.zeros(2, 1, 2, 2)
    x_gen = torch.stack([torch.full((1, 2, 2), 0.5), torch.tensor([[[1.0, -1.0], [0.0, 2.0]]])])  # L1: 2, 4
    f_x = torch.zeros(2, 3)
    f_gen = torch.tensor([[1.0, 1.0, 1.0], [0.0, -2.0, 0.0]])  # L1: 3, 2
    a = residual_score(x, x_gen, f_x, f_gen, lam=0.1, p=1)
    np.testing.assert_allclose(a.numpy(), [0.9 * 2 + 0.1 * 3, 0.9 * 4 + 0.1 * 2], rtol=1e-6)


def test_search_lowers_its_loss(fitted, digits):
    images, _ = digits
    x = fitted.preprocess(images[40:56])
    z0, loss0 = fitted.search_latents(x, steps=0)
    assert torch.equal(z0, fitted.initial_latent(16, x.device))  # no step: the shared start z0
    z, loss = fitted.search_latents(x)
    assert loss.shape == (16,) and z.shape == (16, 8)
    assert loss.mean() < loss0.mean(), (loss0.mean().item(), loss.mean().item())
    assert (loss < loss0).float().mean() >= 0.8  # lower for (nearly) every image, not just on average


def test_score_is_the_loss_at_the_returned_latent(fitted, digits):
    images, _ = digits
    x = fitted.preprocess(images[40:48])
    z, loss = fitted.search_latents(x)
    G, D = fitted.nets_["G"], fitted.nets_["D"]
    with torch.no_grad():
        x_gen = G(z)
        r = (x - x_gen).abs().sum(dim=(1, 2, 3))  # eq. (2.32)
        d = (D.features(x) - D.features(x_gen)).abs().sum(dim=(1, 2, 3))  # eq. (2.33)
    expected = 0.9 * r + 0.1 * d
    np.testing.assert_allclose(loss.numpy(), expected.numpy(), rtol=1e-5)
    np.testing.assert_allclose(fitted.decision_function(images[40:48]), expected.double().numpy(), rtol=1e-5)
    maps = fitted.anomaly_maps(images[40:48])
    assert maps.shape == (8, 16, 16)
    np.testing.assert_allclose(maps.mean(axis=(1, 2)), (r / 256).numpy(), rtol=1e-4)  # mean |x - G(z)|, 1 channel


def test_search_leaves_g_and_d_untouched(fitted, digits):
    images, _ = digits
    before = {k: v.clone() for k, v in fitted.nets_.state_dict().items()}
    fitted.nets_.zero_grad(set_to_none=True)  # (training leaves gradients behind)
    fitted.nets_.train()  # the search switches to eval mode itself (BatchNorm running statistics stay as they are)
    fitted.search_latents(fitted.preprocess(images[60:70]))
    assert fitted.nets_.training  # ... and restores the mode
    fitted.nets_.eval()
    after = fitted.nets_.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in fitted.nets_.parameters())


def test_score_does_not_depend_on_the_batch(fitted, digits):
    images, _ = digits
    together = fitted.decision_function(images[80:90])
    alone = np.concatenate([fitted.decision_function(images[i : i + 1]) for i in range(80, 90)])
    np.testing.assert_allclose(alone, together, rtol=1e-4)


def test_sgd_search_and_bad_fields(digits):
    images, _ = digits
    det = anogan_fit(images[:16], epochs=1, search_optimizer="sgd", search_lr=1.0)
    x = det.preprocess(images[40:48])
    assert det.search_latents(x)[1].mean() < det.search_latents(x, steps=0)[1].mean()
    for bad in [dict(search_optimizer="lbfgs"), dict(lam=1.5), dict(search_steps=0), dict(normalize="unit")]:
        with pytest.raises(ValueError):
            anogen.create("anogan", **bad)


@pytest.mark.slow
def test_anogan_learns_one_class_digits(digits):
    from anogen.detectors.anogan import PRESETS

    train, test, y = one_class_digits(*digits, normal=0, n_train=120, seed=0)
    keep = np.random.default_rng(0).permutation(len(test))[:300]  # the latent search is the slow part
    cfg = dict(PRESETS["cpu"], epochs=15, search_steps=50, eval_batch_size=512, verbose=False, seed=0)
    det = anogen.create("anogan", **cfg)
    auc = auroc(y[keep], det.fit(train).decision_function(test[keep]))
    print(f"AnoGAN one-class digits (0 normal) AUROC = {auc:.3f}")
    assert auc >= 0.85


def test_discriminator_is_table_a1_batchnorm_on_every_conv_including_the_first():
    from torch import nn

    det = anogen.create("anogan", image_size=32, width=8, max_width=32, latent_dim=8)
    det.build((1, 32, 32))
    mods = [m for m in det.nets_["D"].body if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    assert [type(m).__name__ for m in mods] == ["Conv2d", "BatchNorm2d"] * 3  # 64-128-256 pattern at 32 px
    assert all(m.momentum == 0.2 for m in mods if isinstance(m, nn.BatchNorm2d))  # TF 0.8
