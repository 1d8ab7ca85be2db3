"""Consistency-ensured BiGAN: the projection discriminator of eq. (13) by hand, the consistency terms of eqs. (11)-(12)
on hand-made tensors, Algorithm 1's weighting, the Table 1 switches, the score, and a learning test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import anogen
from anogen.detectors.bigan import ConcatDiscriminator
from anogen.detectors.ce_bigan import PRESETS, ProjectionDiscriminator, consistency_losses
from anogen.metrics import auroc
from conftest import one_class_digits

TINY = dict(image_size=16, channels=1, width=8, max_width=16, latent_dim=8, hidden=16, batch_size=8, epochs=1,
            verbose=False, seed=0)


def test_projection_output_is_f1_of_h_plus_inner_product_with_z():
    torch.manual_seed(0)
    D = ProjectionDiscriminator(16, 3, 8, width=8, max_width=16, norm="spectral_batch", dropout=0.0)
    D.train()
    D(torch.randn(6, 3, 16, 16), torch.randn(6, 8))  # a few power iterations / BatchNorm statistics
    D.eval()
    x, z = torch.randn(4, 3, 16, 16), torch.randn(4, 8)
    logit, h = D(x, z)
    with torch.no_grad():
        fmap = D.phi(x)  # (4, W, 4, 4)
        pooled = sum(fmap[:, :, i, j] for i in range(4) for j in range(4))  # global SUM pooling, (4, W)
        h_hand = pooled @ D.f_zdim.weight.T + D.f_zdim.bias  # f_zdim (spectrally normalised weight)
        out_hand = (h_hand @ D.f_1.weight.T + D.f_1.bias).squeeze(1) + (h_hand * z).sum(1)  # f_1(h) + <h, z>
    assert logit.shape == (4,) and h.shape == (4, 8)
    torch.testing.assert_close(h, h_hand)
    torch.testing.assert_close(logit, out_hand)
    z2 = torch.randn(4, 8)  # the latent enters only through the inner product: D(x, z) - D(x, z2) = <h, z - z2>
    torch.testing.assert_close(logit - D(x, z2)[0], (h * (z - z2)).sum(1))


def test_projection_discriminator_is_spectrally_normalised():
    D = ProjectionDiscriminator(16, 1, 8, width=8, max_width=16, norm="spectral_batch", dropout=0.0)
    convs = [m for m in D.phi if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    assert hasattr(D.f_zdim, "parametrizations") and hasattr(D.f_1, "parametrizations")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in D.phi)


def test_consistency_terms_on_hand_made_tensors():
    x = torch.tensor([[[[1.0, -1.0], [0.5, 0.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])  # (2, 1, 2, 2)
    x_rec = torch.tensor([[[[0.5, -1.0], [0.0, 1.0]]], [[[0.0, -0.25], [0.25, 0.0]]]])
    z = torch.tensor([[1.0, 2.0, -1.0], [0.0, 0.0, 0.0]])
    z_rec = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    cons_x, cons_z = consistency_losses(x, x_rec, z, z_rec)
    assert cons_x.item() == pytest.approx(((0.5 + 0 + 0.5 + 1.0) + (0.25 + 0.25)) / 2)  # eq. (11): 1.25
    assert cons_z.item() == pytest.approx(((1.0 + 0 + 2.0) + 3.0) / 2)  # eq. (12): 3.0


def test_encoder_generator_loss_is_algorithm_1():
    torch.manual_seed(0)
    det = anogen.create("ce_bigan", **TINY)
    det.build((1, 16, 16))
    det.epoch_ = 0
    det.nets_.eval()  # no BatchNorm batch statistics, frozen spectral norm: every pass below is the same function
    E, G, D = det.nets_["E"], det.nets_["G"], det.nets_["D"]
    x, z = torch.rand(4, 1, 16, 16) * 2 - 1, torch.randn(4, 8)
    with torch.no_grad():
        z_enc, x_gen = E(x), G(z)
        loss, logs = det.encoder_generator_loss(x, z, z_enc, x_gen)
        adv = (F.binary_cross_entropy_with_logits(D(x, z_enc)[0], torch.zeros(4))
               + F.binary_cross_entropy_with_logits(D(x_gen, z)[0], torch.ones(4)))
        cons = (x - G(z_enc)).abs().flatten(1).sum(1).mean() + (z - E(x_gen)).abs().sum(1).mean()
    assert loss.item() == pytest.approx((0.9 * cons + 0.1 * adv).item(), rel=1e-5)
    assert {"e", "g", "cons_x", "cons_z"} <= set(logs)
    det.consistency = False
    with torch.no_grad():
        assert det.encoder_generator_loss(x, z, z_enc, x_gen)[0].item() == pytest.approx(adv.item(), rel=1e-5)


@pytest.mark.parametrize("disc,cls", [("projection", ProjectionDiscriminator), ("concat", ConcatDiscriminator)])
@pytest.mark.parametrize("consistency", [True, False])
def test_table_1_variants_train_and_score(disc, cls, consistency, digits):
    images, _ = digits
    det = anogen.create("ce_bigan", **TINY, discriminator=disc, consistency=consistency).fit(images[:16])
    assert isinstance(det.nets_["D"], cls)
    assert ("cons_x" in det.history_[0]) == consistency
    assert np.isfinite(det.decision_function(images[20:24])).all()


def test_score_uses_h_of_the_projection_discriminator(digits):
    images, _ = digits
    det = anogen.create("ce_bigan", **TINY, lam=0.5).fit(images[:16])
    x = det.preprocess(images[20:24])
    E, G, D = det.nets_["E"], det.nets_["G"], det.nets_["D"]
    with torch.no_grad():
        z = E(x)
        x_rec = G(z)
        h_x = D.f_zdim(D.phi(x).sum(dim=(2, 3)))  # eq. (15): f = h for both images
        h_rec = D.f_zdim(D.phi(x_rec).sum(dim=(2, 3)))
        want = 0.5 * (x - x_rec).abs().flatten(1).sum(1) + 0.5 * (h_x - h_rec).abs().sum(1)  # eq. (16)
    np.testing.assert_allclose(det.decision_function(images[20:24]), want.double().numpy(), rtol=1e-5)


@pytest.mark.parametrize("bad", [dict(discriminator="hinge"), dict(alpha=-0.1), dict(alpha=1.5)])
def test_bad_fields_are_loud(bad):
    with pytest.raises(ValueError):
        anogen.create("ce_bigan", **bad)


@pytest.mark.slow
def test_ce_bigan_cpu_preset_learns_one_class_digits(digits):
    train, test, y = one_class_digits(*digits, normal=0, n_train=120, seed=0)
    det = anogen.create("ce_bigan", **dict(PRESETS["cpu"], channels=1, verbose=False, seed=0)).fit(train)
    auc = auroc(y, det.decision_function(test))
    with torch.no_grad():
        det.nets_.eval()
        rec = {}
        for k, imgs in (("normal_train", train), ("anomalous", test[y == 1])):
            x = det.preprocess(imgs)
            rec[k] = (x - det.reconstruct(x)[0]).abs().flatten(1).sum(1).mean().item()  # mean L_R
    print(f"CE-BiGAN one-class digits (0 normal) AUROC = {auc:.3f}; mean L_R normal train {rec['normal_train']:.1f}, "
          f"anomalous {rec['anomalous']:.1f}")
    assert rec["normal_train"] < rec["anomalous"]  # the consistent E / G pair reconstructs normal data better
    assert auc >= 0.9  # seeds 0-3 give 0.999


def test_encoder_batchnorm_statistics_come_from_real_images_only():
    """The consistency pass E(G(z)) does not move E's running statistics (scoring encodes real images)."""
    import copy

    from torch import nn

    det = anogen.create("ce_bigan", image_size=16, width=8, max_width=16, latent_dim=8, batch_size=8, d_norm="batch")
    torch.manual_seed(0)
    det.build((1, 16, 16))
    det.epoch_ = 0
    det.nets_.train()
    x = torch.rand(8, 1, 16, 16) * 2 - 1
    real_only = copy.deepcopy(det.nets_["E"])
    real_only(x)  # what E's statistics become after the real pass alone
    det.train_step(x)
    bns = [m for m in det.nets_["E"].modules() if isinstance(m, nn.BatchNorm2d)]
    want = [m for m in real_only.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns
    for a, b in zip(bns, want):
        torch.testing.assert_close(a.running_mean, b.running_mean)
        torch.testing.assert_close(a.running_var, b.running_var)
        assert a.momentum == b.momentum  # restored after the frozen pass
