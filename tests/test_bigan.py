"""BiGAN / EGBAD: eq. (6) on hand-made logits, the E / G losses, the score of eqs. (7)-(10) recomputed by hand for
every ``score_disc``, the weight EMA, and a learning test on one-class digits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import anogen
from anogen.detectors.bigan import PRESETS, BiGAN, ConcatDiscriminator, bigan_d_loss, bigan_ge_losses
from anogen.metrics import auroc
from conftest import one_class_digits

TINY = dict(image_size=16, channels=1, width=8, max_width=16, latent_dim=8, hidden=16, batch_size=8, epochs=1,
            verbose=False, seed=0)


def _log_sig(v: float) -> float:
    return -math.log1p(math.exp(-v))  # log D = log sigmoid(logit)


def _log_one_minus_sig(v: float) -> float:
    return -math.log1p(math.exp(v))  # log(1 - D)


REAL, FAKE = [2.0, -1.0, 0.3], [0.5, -2.5]


def test_d_loss_is_minus_eq6_on_hand_made_logits():
    eq6 = sum(map(_log_sig, REAL)) / len(REAL) + sum(map(_log_one_minus_sig, FAKE)) / len(FAKE)
    r, f = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    assert bigan_d_loss(r, f).item() == pytest.approx(-eq6, rel=1e-12)
    det = anogen.create("bigan")  # tricks off: the detector's D loss is the same formula
    assert det.disc_loss(r, f).item() == pytest.approx(-eq6, rel=1e-12)


def test_encoder_and_generator_losses_use_the_flipped_hard_targets():
    r, f = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    loss_e, loss_g = bigan_ge_losses(r, f)
    assert loss_e.item() == pytest.approx(-sum(map(_log_one_minus_sig, REAL)) / 3)  # E: D(x, E(x)) -> 0
    assert loss_g.item() == pytest.approx(-sum(map(_log_sig, FAKE)) / 2)  # G: D(G(z), z) -> 1


def test_concat_discriminator_shapes_and_feature_layer():
    torch.manual_seed(0)
    D = ConcatDiscriminator(16, 3, 8, width=8, max_width=16, hidden=32, norm="batch", dropout=0.5).eval()
    x, z = torch.randn(4, 3, 16, 16), torch.randn(4, 8)
    logit, f = D(x, z)
    assert logit.shape == (4,) and f.shape == (4, 32)
    torch.testing.assert_close(logit, D.out(f).squeeze(1))  # the logit is one linear map of f_D
    assert not torch.equal(D(x, z + 1.0)[0], logit)  # D sees the latent
    assert torch.equal(D(x, z)[0], logit)  # eval mode: no dropout


def _hand_score(det: BiGAN, x: torch.Tensor) -> np.ndarray:
    E, G, D = det.scoring_nets()
    with torch.no_grad():
        z = E(x)
        x_rec = G(z)
        l_r = (x - x_rec).abs().flatten(1).sum(1)  # eq. (7), L1 norm
        logit_x, f_x = D(x, z)
        logit_rec, f_rec = D(x_rec, z)
        if det.score_disc == "fm":
            l_d = (f_x - f_rec).abs().sum(1)  # eq. (8)
        else:
            logit = logit_x if det.score_disc == "ce" else logit_rec
            l_d = -F.logsigmoid(logit)  # cross-entropy against label 1
    return ((1 - det.lam) * l_r + det.lam * l_d).double().numpy()  # eq. (10)


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_score_equals_the_formula_recomputed_by_hand(digits, ema):
    images, _ = digits
    det = anogen.create("bigan", **TINY, ema_decay=ema, lam=0.3).fit(images[:32])
    x = det.preprocess(images[40:46])
    det.nets_.eval()
    for mode in ("fm", "ce", "ce_rec"):
        det.score_disc = mode
        np.testing.assert_allclose(det.decision_function(images[40:46]), _hand_score(det, x), rtol=1e-5)
    maps = det.anomaly_maps(images[40:46])
    with torch.no_grad():
        x_rec, _ = det.reconstruct(x)
    assert maps.shape == (6, 16, 16)
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), (x - x_rec).abs().flatten(1).sum(1).numpy(), rtol=1e-5)


def test_ema_copies_are_saved_and_follow_the_formula():
    det = anogen.create("bigan", **TINY, ema_decay=0.9)
    torch.manual_seed(0)
    det.build((1, 16, 16))
    assert {"E_ema", "G_ema", "D_ema"} <= set(det.nets_)
    assert not any(p.requires_grad for p in det.nets_["E_ema"].parameters())
    before = [p.detach().clone() for p in det.nets_["E"].parameters()]
    det.epoch_ = 0
    det.nets_.train()
    det.train_step(torch.rand(8, 1, 16, 16) * 2 - 1)
    d0 = min(0.9, 1 / 10)  # the first update's warm-up decay (nets.ema_decay_at)
    for avg, cur, old in zip(det.nets_["E_ema"].parameters(), det.nets_["E"].parameters(), before):
        torch.testing.assert_close(avg, d0 * old + (1 - d0) * cur)  # one EMA step from the initial weights
    assert det.ema_updates_ == {"D": 1, "E": 1, "G": 1}
    avg_before = [p.detach().clone() for p in det.nets_["E_ema"].parameters()]
    det.train_step(torch.rand(8, 1, 16, 16) * 2 - 1)
    d1 = min(0.9, 2 / 11)
    for avg, cur, old in zip(det.nets_["E_ema"].parameters(), det.nets_["E"].parameters(), avg_before):
        torch.testing.assert_close(avg, d1 * old + (1 - d1) * cur)
    assert det.train_state() == {} or int(det.train_state()["ema_updates.E"]) == 2
    assert det.scoring_nets()[0] is det.nets_["E_ema"]
    plain = anogen.create("bigan", **TINY, ema_decay=0.0)
    plain.build((1, 16, 16))
    assert set(plain.nets_) == {"E", "G", "D"} and plain.scoring_nets()[0] is plain.nets_["E"]


def test_d_norm_switches_spectral_and_batch_norm():
    for norm, has_sn, has_bn in [("batch", False, True), ("spectral", True, False), ("spectral_batch", True, True),
                                 ("none", False, False)]:
        D = ConcatDiscriminator(16, 1, 8, width=8, max_width=16, hidden=16, norm=norm, dropout=0.0)
        mods = list(D.modules())
        assert any(hasattr(m, "parametrizations") for m in mods) == has_sn, norm
        assert any(isinstance(m, torch.nn.BatchNorm2d) for m in mods) == has_bn, norm


@pytest.mark.parametrize("bad", [dict(score_disc="l2"), dict(d_norm="layer"), dict(lam=1.5), dict(dropout=1.0),
                                 dict(ema_decay=1.0), dict(image_size=24), dict(normalize="unit")])
def test_bad_fields_are_loud(bad):
    with pytest.raises(ValueError):
        anogen.create("bigan", **bad)


@pytest.mark.slow
def test_bigan_cpu_preset_learns_one_class_digits(digits):
    train, test, y = one_class_digits(*digits, normal=0, n_train=120, seed=0)
    det = anogen.create("bigan", **dict(PRESETS["cpu"], channels=1, verbose=False, seed=0)).fit(train)
    auc = auroc(y, det.decision_function(test))
    with torch.no_grad():
        det.nets_.eval()
        rec = {}
        for k, imgs in (("normal_train", train), ("anomalous", test[y == 1])):
            x = det.preprocess(imgs)
            rec[k] = (x - det.reconstruct(x)[0]).abs().flatten(1).sum(1).mean().item()  # mean L_R
    print(f"BiGAN one-class digits (0 normal) AUROC = {auc:.3f}; mean L_R normal train {rec['normal_train']:.1f}, "
          f"anomalous {rec['anomalous']:.1f}")
    assert rec["normal_train"] < rec["anomalous"]  # the encoder-generator pair reconstructs normal data better
    assert auc >= 0.75  # seed 0 gives 0.85, seeds 1-3 0.98-1.0


def test_batchnorm_momentum_is_table_a2():
    from torch import nn

    det = anogen.create("bigan", image_size=16, width=8, max_width=16, latent_dim=8, hidden=16)
    det.build((1, 16, 16))
    moms = {m.momentum for m in det.nets_.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))}
    assert moms == {0.2}  # Table A2: 0.8 in TensorFlow's convention
    with pytest.raises(ValueError, match="bn_momentum"):
        anogen.create("bigan", bn_momentum=0.0)
