"""f-AnoGAN (thesis 3.1): the gradient penalty, each mode's loss and score against eqs. (3.1)-(3.6), the two stages
(the encoder stage leaves G and D untouched), and learning one-class digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import anogen
from anogen.detectors.f_anogan import feature_residual, image_residual, izi_f_score, ziz_loss
from anogen.losses import gradient_penalty
from anogen.metrics import auroc
from conftest import one_class_digits

TINY = dict(epochs=3, encoder_epochs=1, batch_size=8, image_size=16, channels=1, width=8, max_width=16,
            latent_dim=8, n_dis=2, lr_e=1e-3, verbose=False, seed=0)


def test_gradient_penalty_of_a_linear_critic():
    """D(x) = <w, x> has gradient w everywhere: the penalty is (||w||_2 - 1)^2 whatever the interpolates."""
    torch.manual_seed(0)
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    for norm in [2.0, 1.0, 0.5]:
        w = torch.tensor([1.0, -1.0, 1.0, -1.0]).reshape(1, 1, 2, 2) * norm / 2  # ||w||_2 = norm
        gp = gradient_penalty(lambda x, w=w: (x * w).sum(dim=(1, 2, 3)), real, fake)
        assert gp.item() == pytest.approx((norm - 1) ** 2, abs=1e-6)


def test_losses_and_scores_against_the_equations():
    x = torch.zeros(2, 1, 2, 2)  # n = 4 values per image
    x_rec = torch.stack([torch.full((1, 2, 2), 0.5), torch.tensor([[[1.0, -1.0], [0.0, 2.0]]])])
    a_r = image_residual(x, x_rec)  # eq. (3.5): 1/n ||x - G(E(x))||^2
    np.testing.assert_allclose(a_r.numpy(), [4 * 0.25 / 4, (1 + 1 + 0 + 4) / 4], rtol=1e-6)
    f_x = torch.zeros(2, 2, 1, 1)  # n_d = 2 features
    f_rec = torch.tensor([[1.0, 1.0], [0.0, -3.0]]).reshape(2, 2, 1, 1)
    a_d = feature_residual(f_x, f_rec)  # eq. (3.6): 1/n_d ||f(x) - f(G(E(x)))||^2
    np.testing.assert_allclose(a_d.numpy(), [1.0, 4.5], rtol=1e-6)
    a = izi_f_score(x, x_rec, f_x, f_rec, kappa=2.0)  # eq. (3.4): A_R + kappa A_D
    np.testing.assert_allclose(a.numpy(), [0.25 + 2.0, 1.5 + 9.0], rtol=1e-6)
    # eq. (3.2) is the batch mean of eq. (3.4) (the same per-image normalisations); eq. (3.1) the mean of A_R
    assert izi_f_score(x, x_rec, f_x, f_rec, 1.0).mean().item() == pytest.approx((0.25 + 1.0 + 1.5 + 4.5) / 2)
    z, z_rec = torch.tensor([[1.0, 0.0, 2.0]]), torch.tensor([[0.0, 0.0, 0.0]])
    assert ziz_loss(z, z_rec).item() == pytest.approx(5 / 3)  # eq. (3.3): 1/d ||z - E(G(z))||^2


@pytest.mark.parametrize("mode", ["izi", "ziz", "izi_f"])
def test_fitted_score_per_mode(mode, digits):
    images, _ = digits
    det = anogen.create("f_anogan", mode=mode, **TINY).fit(images[:24])
    assert [("d" in h, "e" in h) for h in det.history_] == [(True, False)] * 2 + [(False, True)]
    x = det.preprocess(images[40:48])
    G, D, E = det.nets_["G"], det.nets_["D"], det.nets_["E"]
    with torch.no_grad():
        z = E(x)
        assert z.abs().max() < 1  # tanh output
        x_rec = G(z)
        a_r = ((x - x_rec) ** 2).mean(dim=(1, 2, 3))
        a_d = ((D.features(x) - D.features(x_rec)) ** 2).flatten(1).mean(1)
        z_dist = ((z - E(x_rec)) ** 2).mean(1)
    expected = a_r + a_d if mode == "izi_f" else a_r  # izi, ziz: A(x) = A_R(x) (thesis 3.1)
    np.testing.assert_allclose(det.decision_function(images[40:48]), expected.double().numpy(), rtol=1e-5)
    det.score = "latent"
    np.testing.assert_allclose(det.decision_function(images[40:48]), z_dist.double().numpy(), rtol=1e-5)
    assert det.anomaly_maps(images[40:48]).shape == (8, 16, 16)


def test_encoder_stage_leaves_the_gan_untouched(digits):
    images, _ = digits
    train = images[:24]  # 3 batches of 8 per epoch
    both = anogen.create("f_anogan", **TINY, selection="last").fit(train)  # every image trains (no hold-out)
    gan_only = anogen.create("f_anogan", **dict(TINY, encoder_epochs=0, epochs=2, selection="last")).fit(train)
    for net in ["G", "D"]:  # weights and BatchNorm statistics bit-identical after the encoder epoch
        a, b = both.nets_[net].state_dict(), gan_only.nets_[net].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), net
    e_a, e_b = both.nets_["E"].state_dict(), gan_only.nets_["E"].state_dict()
    assert not all(torch.equal(e_a[k], e_b[k]) for k in e_a)  # E trained in stage 2 only
    # stage 1: one critic step per batch, one G step per n_dis = 2 critic steps
    assert both.critic_steps_ == 6
    g_steps = {int(s["step"]) for s in both.opt_g_.state.values()}
    d_steps = {int(s["step"]) for s in both.opt_d_.state.values()}
    assert g_steps == {3} and d_steps == {6}


def test_input_noise_decays_over_the_gan_epochs():
    det = anogen.create("f_anogan", input_noise=0.4, epochs=10, encoder_epochs=5)
    stds = []
    for e in range(10):
        det.epoch_ = e
        stds.append(det.input_noise_std())
    np.testing.assert_allclose(stds, [0.4, 0.32, 0.24, 0.16, 0.08] + [0.0] * 5, atol=1e-12)


def test_bad_fields():
    for bad in [dict(encoder_epochs=14), dict(epochs=3, encoder_epochs=5), dict(mode="zz"), dict(score="x"),
                dict(encoder_act="relu"), dict(normalize="unit"), dict(n_dis=0)]:
        with pytest.raises(ValueError):
            anogen.create("f_anogan", **bad)


@pytest.mark.slow
def test_f_anogan_learns_one_class_digits(digits):
    from anogen.detectors.f_anogan import PRESETS

    train, test, y = one_class_digits(*digits, normal=0, n_train=120, seed=0)
    cfg = dict(PRESETS["cpu"], epochs=20, encoder_epochs=10, verbose=False, seed=0)
    det = anogen.create("f_anogan", **cfg)  # mode izi_f (default)
    auc = auroc(y, det.fit(train).decision_function(test))
    print(f"f-AnoGAN (izi_f) one-class digits (0 normal) AUROC = {auc:.3f}")
    assert auc >= 0.85


def test_validation_keeps_only_stage_two_states(digits):
    """Model selection never keeps a state whose encoder has not trained (stage 1 of f-AnoGAN)."""
    import anogen
    from conftest import one_class_digits

    train, test, y = one_class_digits(*digits, normal=0, n_train=40, seed=0)
    det = anogen.create("f_anogan", epochs=4, encoder_epochs=2, val_every=1, image_size=16, channels=1, width=8,
                        max_width=16, latent_dim=8, batch_size=8, n_dis=1, verbose=False)
    assert det.selectable_from_epoch() == 3
    idx = list(range(30)) + list(range(len(y) - 30, len(y)))
    det.fit(train, val_x=test[idx], val_y=y[idx])
    validated = [h["epoch"] for h in det.history_ if "val_auroc" in h]
    assert validated == [3, 4] and det.best_epoch_ in (3, 4)
