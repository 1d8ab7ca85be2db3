"""The convolutional AE and LAMP: eqs. (1)-(2) by hand, the L2 score whatever the training loss, patches, SSIM from
pytorch_msssim, the paper's architecture, and learning one-class digits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import anogen
from anogen.detectors.ae import block_count, from_patches, to_patches
from anogen.losses import lamp_loss, reconstruction_loss, ssim_map
from anogen.metrics import auroc
from conftest import one_class_digits

TINY = dict(epochs=1, image_size=16, channels=1, width=8, latent_dim=8, verbose=False)


# ---------------------------------------------------------------------------------------------------- LAMP, eqs. 1-2
def test_lamp_loss_matches_eqs_1_and_2_by_hand():
    base = torch.tensor([[[[0.1, 0.4]]], [[[0.2, 0.8]]]])  # (B=2, C=1, H=1, W=2) element-wise base loss
    eps = 0.5
    # eq. (2): L' = L / max(L) (1 - eps) = L / 0.8 * 0.5 = [0.0625, 0.25], [0.125, 0.5]
    # eq. (1): per sample, the sum over h, w, c of -log(1 - L')
    per_sample = [-math.log(1 - 0.0625) - math.log(1 - 0.25), -math.log(1 - 0.125) - math.log(1 - 0.5)]
    np.testing.assert_allclose(lamp_loss(base, eps, reduction="none").numpy(), per_sample, rtol=1e-6)
    assert lamp_loss(base, eps, reduction="sum").item() == pytest.approx(sum(per_sample), rel=1e-6)
    assert lamp_loss(base, eps).item() == pytest.approx(sum(per_sample) / 4, rel=1e-6)  # mean over all elements

    # detached max: d/dL -log(1 - L (1 - eps) / m) = (1 - eps) / m / (1 - L'), m a constant
    b = base.clone().requires_grad_(True)
    lamp_loss(b, eps, reduction="sum").backward()
    lp = base * (1 - eps) / 0.8
    np.testing.assert_allclose(b.grad.numpy(), ((1 - eps) / 0.8 / (1 - lp)).numpy(), rtol=1e-6)

    # a max that is not detached gives a different gradient (through the max)
    b2 = base.clone().requires_grad_(True)
    lamp_loss(b2, eps, detach_max=False, reduction="sum").backward()
    assert not torch.allclose(b2.grad, b.grad)


def test_lamp_amplifies_more_than_the_base_loss_and_stays_finite():
    base = torch.rand(4, 3, 8, 8)
    amplified = lamp_loss(base, 1e-2, reduction="none")
    scaled = base / base.max() * (1 - 1e-2)
    assert torch.all(amplified >= scaled.flatten(1).sum(1))  # -log(1 - u) >= u
    assert torch.isfinite(lamp_loss(torch.zeros(2, 1, 4, 4))) and lamp_loss(torch.zeros(2, 1, 4, 4)) == 0
    with pytest.raises(ValueError, match="eps"):
        lamp_loss(base, 0.0)


# ---------------------------------------------------------------------------------------------------- SSIM
def test_ssim_map_is_pytorch_msssims_at_its_granularity():
    import pytorch_msssim

    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 16, 16, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    valid = ssim_map(x, y, data_range=1.0, padding="valid")  # (3, 2, 6, 6)
    assert valid.shape == (3, 2, 6, 6)
    expected = pytorch_msssim.ssim(x, y, data_range=1.0, size_average=False)  # (3,) per-image mean
    np.testing.assert_allclose(valid.flatten(2).mean(-1).mean(1).numpy(), expected.numpy(), rtol=1e-5)
    full = ssim_map(x, y, data_range=1.0)
    assert full.shape == x.shape and torch.all(full <= 1 + 1e-6)
    assert torch.allclose(ssim_map(x, x, 1.0), torch.ones_like(x), atol=1e-5)


def test_ssim_loss_maps_tanh_images_to_unit_range():
    x = torch.rand(2, 1, 16, 16) * 2 - 1  # tanh-scaled images
    loss = reconstruction_loss(x, x.clone(), "ssim", (-1.0, 1.0))
    assert torch.allclose(loss, torch.zeros_like(loss), atol=1e-5)
    inverted = reconstruction_loss(x, -x, "ssim", (-1.0, 1.0))  # on [-1, 1] directly this would score SSIM ~ 1
    assert inverted.mean() > 0.5
    assert torch.equal(reconstruction_loss(x, x + 0.5, "l1"), torch.full_like(x, 0.5))
    assert torch.allclose(reconstruction_loss(x, x + 0.5, "l2"), torch.full_like(x, 0.25))


# ---------------------------------------------------------------------------------------------------- architecture
def test_block_count_and_architecture_of_section_3_1():
    assert block_count(16) == 4 and block_count(32) == 4 and block_count(64) == 6 and block_count(256) == 6
    assert block_count(8) == 3 and block_count(28) == 2 and block_count(64, 3) == 3
    with pytest.raises(ValueError, match="divisible"):
        block_count(24, 4)
    det = anogen.create("ae", **TINY).fit(np.zeros((8, 16, 16), np.uint8) + 100)
    enc, dec = det.nets_["enc"], det.nets_["dec"]
    convs = [m for m in enc if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(c.stride == (2, 2) for c in convs)
    kinds = [type(m).__name__ for m in enc][:3]
    assert kinds == ["Conv2d", "BatchNorm2d", "LeakyReLU"]
    assert [type(m).__name__ for m in dec][:4] == ["Upsample", "Conv2d", "BatchNorm2d", "LeakyReLU"]
    assert isinstance(dec[-1], nn.Tanh) and dec[-2].out_channels == 1
    assert not any(isinstance(m, nn.Linear) for m in det.nets_.modules())
    with torch.no_grad():
        assert enc(torch.zeros(2, 1, 16, 16)).shape == (2, 8, 1, 1)  # latent_dim channels at 1x1


def test_patches_round_trip_and_layout():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    p = to_patches(x, 2)
    assert p.shape == (8, 3, 4, 4)
    assert torch.equal(p[1], x[0, :, :4, 4:]) and torch.equal(p[6], x[1, :, 4:, :4])  # row-major per image
    assert torch.equal(from_patches(p, 2), x)


def test_bad_settings_are_loud():
    for bad in (dict(base_loss="l3"), dict(optimizer="lbfgs"), dict(normalize="imagenet"), dict(lamp_eps=1.0),
                dict(kernel_size=4), dict(patch_grid=3, image_size=16), dict(arch="dcgan", n_blocks=2),
                dict(n_blocks=5, image_size=16)):
        with pytest.raises(ValueError):
            anogen.create("ae", **bad)


# ---------------------------------------------------------------------------------------------------- score
@pytest.mark.parametrize("cfg", [
    dict(),  # LAMP on L2 (the default)
    dict(base_loss="l1", patch_grid=2, optimizer="rmsprop"),
    dict(base_loss="ssim", lamp=True, optimizer="sgd", momentum=0.9, kernel_size=5),
    dict(lamp=False, base_loss="ssim", normalize="unit"),
    dict(lamp=False, arch="dcgan"),  # this library's earlier plain AE
])
def test_score_is_mean_squared_reconstruction_error_whatever_the_loss(digits, cfg):
    images, _ = digits
    det = anogen.create("ae", **{**TINY, **cfg})
    det.fit(images[:32])
    x = det.preprocess(images[40:44])
    with torch.no_grad():
        expected = ((det.reconstruct(x) - x) ** 2).mean(dim=(1, 2, 3))
    np.testing.assert_allclose(det.decision_function(images[40:44]), expected.double().numpy(), rtol=1e-6)
    maps = det.anomaly_maps(images[40:44])
    assert maps.shape == (4, 16, 16)
    np.testing.assert_allclose(maps.mean(axis=(1, 2)), expected.numpy(), rtol=1e-5)


def test_lamp_changes_training(digits):
    images, _ = digits
    a = anogen.create("ae", **TINY, lamp=True).fit(images[:32]).decision_function(images[40:44])
    b = anogen.create("ae", **TINY, lamp=False).fit(images[:32]).decision_function(images[40:44])
    assert not np.allclose(a, b)


# ---------------------------------------------------------------------------------------------------- learning
@pytest.mark.slow
@pytest.mark.parametrize("cfg", [dict(lamp=True), dict(lamp=False, arch="dcgan")])
def test_ae_learns_one_class_digits(digits, cfg):
    train, test, y = one_class_digits(*digits, normal=0, n_train=120, seed=0)
    from anogen.detectors.ae import PRESETS

    det = anogen.create("ae", **{**PRESETS["cpu"], **cfg}, channels=1, batch_size=16, verbose=False, seed=0)
    auc = auroc(y, det.fit(train).decision_function(test))
    print(f"AE {cfg} one-class digits (0 normal) AUROC = {auc:.3f}")
    assert auc >= 0.9  # plain L2 and LAMP both reach ~1.0 here; chance is 0.5
