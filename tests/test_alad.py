"""ALAD (thesis 2.3.3, Appendix A.3): the D losses of eqs. (2.83), (2.86), (2.87) on hand-made logits, the E / G
losses, the four scores of eq. (2.90) recomputed by hand from the nets, the architecture (spectral norm, pairing of
D_xx's images, EMA copies), and learning on one-class digits."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from torch import nn

import anogen
from anogen.detectors.alad import ALAD, PRESETS, fool_loss
from anogen.metrics import auroc
from conftest import one_class_digits

TINY = dict(image_size=16, channels=1, width=8, enc_width=8, max_width=16, latent_dim=8, hidden=16, xx_width=8,
            zz_hidden=8, batch_size=8, epochs=1, verbose=False, seed=0)


def _log_sig(v: float) -> float:  # log D = log sigmoid(logit)
    return -math.log1p(math.exp(-v))


def _log_one_minus_sig(v: float) -> float:  # log(1 - D)
    return -math.log1p(math.exp(v))


def _mean(f, xs) -> float:
    return sum(f(v) for v in xs) / len(xs)


def _t(xs):
    return torch.tensor(xs, dtype=torch.float64)


def _is_sn(m: nn.Module) -> bool:
    return hasattr(m, "parametrizations") and "weight" in m.parametrizations


# ------------------------------------------------------------------------------------------------ losses
def test_each_d_loss_is_minus_its_value_function_on_hand_made_logits():
    logits = {"xz": ([2.0, -0.5, 0.3], [-1.0, 0.7]), "xx": ([0.1], [1.5, -2.0, 0.0]), "zz": ([-3.0, 4.0], [0.25])}
    got = ALAD().d_losses({k: (_t(r), _t(f)) for k, (r, f) in logits.items()})
    assert set(got) == {"xz", "xx", "zz"}
    for k, (real, fake) in logits.items():
        value = _mean(_log_sig, real) + _mean(_log_one_minus_sig, fake)  # E[log D(real)] + E[log(1 - D(fake))]
        assert got[k].item() == pytest.approx(-value, rel=1e-12), k


def test_e_g_losses_nonsaturating_and_minimax():
    fake, enc = [0.3, -2.0, 1.5], [1.0, -0.4]
    # non-saturating (reference codes): G wants its fake pairs judged real, E wants its encoder pairs judged fake
    assert fool_loss(_t(fake), 0.0).item() == pytest.approx(-_mean(_log_sig, fake))
    assert fool_loss(_t(enc), 1.0).item() == pytest.approx(-_mean(_log_one_minus_sig, enc))
    # minimax: E and G minimise the value function (2.88) itself
    assert fool_loss(_t(fake), 0.0, "minimax").item() == pytest.approx(_mean(_log_one_minus_sig, fake))
    assert fool_loss(_t(enc), 1.0, "minimax").item() == pytest.approx(_mean(_log_sig, enc))
    with pytest.raises(ValueError, match="g_loss"):
        fool_loss(_t(fake), 0.0, "hinge")


# ------------------------------------------------------------------------------------------------ scores
@pytest.fixture(scope="module")
def tiny_fit(digits):
    images, _ = digits
    det = anogen.create("alad", **TINY).fit(images[:24])
    return det, images[100:106]


def test_four_scores_recomputed_by_hand(tiny_fit):
    det, imgs = tiny_fit
    x = det.preprocess(imgs)  # (6, 1, 16, 16) in [-1, 1]
    E, G, Dxx = det.nets_["E_ema"], det.nets_["G_ema"], det.nets_["Dxx_ema"]  # scores use the EMA weights
    with torch.no_grad():
        x_rec = G(E(x))
        diff = (x - x_rec).flatten(1)
        f_real = Dxx.body(torch.cat([x, x], dim=2))  # D_xx's image pair: stacked along the height
        f_fake = Dxx.body(torch.cat([x, x_rec], dim=2))
        d_fake = torch.sigmoid(Dxx.out(f_fake).squeeze(1))
    expected = {
        "l1": diff.abs().sum(1),
        "l2": diff.pow(2).sum(1).sqrt(),
        "logits": -torch.log(d_fake),  # -log D_xx(x, x'): eq. (2.90) with anogen's sign (higher = more anomalous)
        "features": (f_real - f_fake).abs().sum(1),  # eq. (2.89)
    }
    try:
        for name, want in expected.items():
            det.score = name
            np.testing.assert_allclose(det.decision_function(imgs), want.double().numpy(), rtol=1e-5, err_msg=name)
    finally:
        det.score = "features"


def test_ema_copies_are_updated_and_used(tiny_fit, digits):
    det, imgs = tiny_fit
    # after training the average differs from the trained weights, and scoring follows the average
    e, e_avg = det.nets_["E"].head.weight, det.nets_["E_ema"].head.weight
    assert not torch.equal(e, e_avg)
    x = det.preprocess(imgs)
    with torch.no_grad():
        raw = (x - det.nets_["G"](det.nets_["E"](x))).flatten(1).abs().sum(1)
    det.score = "l1"
    try:
        # (with the warm-up the average is near the trained weights after a short run, but not equal)
        assert not np.allclose(det.decision_function(imgs), raw.double().numpy(), rtol=1e-7, atol=0)
    finally:
        det.score = "features"
    # one step: average <- decay * average + (1 - decay) * current, decay = min(ema_decay, (1 + n) / (10 + n))
    step = ALAD(**dict(TINY, ema_decay=0.75))
    step.build((1, 16, 16))
    step.epoch_ = 0
    step.nets_.train()
    before = step.nets_["G_ema"].net[0].weight.clone()
    assert torch.equal(before, step.nets_["G"].net[0].weight)  # the average starts at the initial weights
    step.train_step(det.preprocess(digits[0][:8]))
    after_g = step.nets_["G"].net[0].weight
    d0 = min(0.75, 1 / 10)  # the first update's warm-up decay (nets.ema_decay_at)
    torch.testing.assert_close(step.nets_["G_ema"].net[0].weight, d0 * before + (1 - d0) * after_g)
    assert step.ema_updates_ == 1 and int(step.train_state()["ema_updates"]) == 1
    # without EMA there are no copies and the trained nets score
    plain = ALAD(**dict(TINY, ema_decay=0.0))
    plain.build((1, 16, 16))
    assert not [n for n in plain.nets_ if n.endswith("_ema")]
    assert plain.scoring_nets()[0] is plain.nets_["E"]


# ------------------------------------------------------------------------------------------------ architecture
def test_spectral_norm_on_encoder_and_discriminators_but_not_outputs_or_generator():
    det = ALAD(**TINY)
    det.build((1, 16, 16))
    nets = det.nets_
    assert not any(_is_sn(m) for m in nets["G"].modules())
    assert all(_is_sn(m) for m in nets["E"].body if isinstance(m, nn.Conv2d))
    assert not _is_sn(nets["E"].head)  # the last (latent) conv
    for name in ("Dxz", "Dxx", "Dzz"):
        layers = [m for m in nets[name].modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        assert all(_is_sn(m) for m in layers if m is not nets[name].out), name
        assert not _is_sn(nets[name].out), name
    assert all(m.momentum == pytest.approx(0.2) for m in nets.modules() if isinstance(m, nn.BatchNorm2d))
    # D's weights are trainable again after a step (they are frozen during the E / G pass)
    det.epoch_ = 0
    det.nets_.train()
    det.train_step(torch.rand(8, 1, 16, 16) * 2 - 1)
    assert all(p.requires_grad for n in ("Dxz", "Dxx", "Dzz") for p in nets[n].parameters())


@pytest.mark.parametrize("concat,shape", [("height", (3, 2, 32, 16)), ("channel", (3, 4, 16, 16))])
def test_dxx_pairs_images_by_height_or_channel(concat, shape):
    det = ALAD(**dict(TINY, channels=2, xx_concat=concat))
    det.build((2, 16, 16))
    dxx = det.nets_["Dxx"].eval()
    a, b = torch.randn(3, 2, 16, 16), torch.randn(3, 2, 16, 16)
    assert dxx.pair(a, b).shape == shape
    dim = 1 if concat == "channel" else 2
    assert torch.equal(dxx.pair(a, b), torch.cat([a, b], dim=dim))  # a first, then b
    with torch.no_grad():
        assert dxx(a, b).shape == (3,)
        assert dxx.features(a, b).shape == (3, 2 * 8 * (shape[2] // 4) * (shape[3] // 4))  # 2 xx_width channels


def test_without_dzz_there_is_no_latent_discriminator(digits):
    det = anogen.create("alad", **dict(TINY, use_dzz=False)).fit(digits[0][:16])
    assert "Dzz" not in det.nets_ and "d_zz" not in det.history_[0]
    assert np.isfinite(det.decision_scores_).all()


@pytest.mark.parametrize("bad", [dict(score="ch"), dict(g_loss="hinge"), dict(xx_concat="width"),
                                 dict(ema_decay=1.0), dict(dropout=1.0), dict(hidden=1), dict(image_size=24),
                                 dict(normalize="unit"), dict(width=64, max_width=32), dict(label_flip=2.0)])
def test_invalid_fields(bad):
    with pytest.raises(ValueError):
        ALAD(**bad)


# ------------------------------------------------------------------------------------------------ learning
@pytest.fixture(scope="module")
def cpu_fit(digits):
    train, test, y = one_class_digits(*digits, normal=0, n_train=120, seed=0)
    t0 = time.perf_counter()
    det = anogen.create("alad", **dict(PRESETS["cpu"], channels=1, verbose=False, seed=0)).fit(train)
    return det, train, test, y, time.perf_counter() - t0


@pytest.mark.slow
def test_alad_cpu_preset_learns_one_class_digits(cpu_fit):
    det, _, test, y, seconds = cpu_fit
    aucs = {}
    for s in ("features", "logits", "l1", "l2"):
        det.score = s
        aucs[s] = auroc(y, det.decision_function(test))
    det.score = "features"
    print(f"ALAD one-class digits (0 normal) AUROC {', '.join(f'{k} {v:.3f}' for k, v in aucs.items())}; "
          f"fit {seconds:.1f} s")
    assert aucs["features"] >= 0.9  # seeds 0-2 give 0.97-0.98; chance is 0.5
    assert aucs["l1"] >= 0.9


@pytest.mark.slow
def test_encoder_reconstructs_normal_images_better_than_anomalies(cpu_fit):
    det, train, test, y, _ = cpu_fit
    with torch.no_grad():
        def err(imgs):
            x = det.preprocess(imgs)
            return (x - det.reconstruct(x)).abs().flatten(1).mean(1)  # (N,) mean |x - G(E(x))|
        normal_train, anomalous = err(train).mean().item(), err(test[y == 1]).mean().item()
    print(f"mean L1 reconstruction error: normal training images {normal_train:.3f}, anomalies {anomalous:.3f}")
    assert normal_train < 0.8 * anomalous
