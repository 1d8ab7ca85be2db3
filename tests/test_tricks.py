"""The IN / SL / LF training tricks (thesis 4.2.1): each does what it says, and each reaches every registered GAN
through the shared code in ``anogen.losses`` (no per-method copies)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import anogen
from anogen import losses
from anogen._registry import get
from anogen.losses import GANTricks, adversarial_loss, flip_targets, soft_targets, trick_overrides
from test_contract import _data, _tiny

GANS = [n for n in anogen.available() if losses.is_gan(get(n))]


class _Probe(GANTricks):
    def __init__(self, **kw):
        for k, v in dict(input_noise=0.0, soft_labels=False, soft_label_width=0.3, label_flip=0.0).items():
            setattr(self, k, kw.get(k, v))
        self.epochs = kw.get("epochs", 10)


def test_input_noise_decays_linearly_to_zero():
    p = _Probe(input_noise=0.5, epochs=10)
    stds = []
    for e in range(10):
        p.epoch_ = e
        stds.append(p.input_noise_std())
    np.testing.assert_allclose(stds, [0.5 * (1 - e / 10) for e in range(10)])
    torch.manual_seed(0)
    p.epoch_ = 0
    x = torch.zeros(20000)
    assert p.d_input(x).std().item() == pytest.approx(0.5, rel=0.03)
    p.epoch_ = 5
    assert p.d_input(x).std().item() == pytest.approx(0.25, rel=0.03)
    assert _Probe().d_input(x) is x  # off: untouched


def test_soft_labels_in_range():
    torch.manual_seed(0)
    real, fake = soft_targets(5000, True, 0.3, torch.device("cpu")), soft_targets(5000, False, 0.3, torch.device("cpu"))
    assert real.min() >= 0.7 and real.max() <= 1.0 and fake.min() >= 0.0 and fake.max() <= 0.3
    assert real.std() > 0.05 and fake.std() > 0.05  # really drawn, not constants
    hard = _Probe().d_targets(7, True, torch.device("cpu"))
    assert torch.equal(hard, torch.ones(7))


def test_flip_rate_near_probability():
    torch.manual_seed(0)
    t = torch.ones(20000)
    rate = (flip_targets(t, 0.05) == 0).float().mean().item()
    assert rate == pytest.approx(0.05, abs=0.006)
    soft = torch.full((10,), 0.8)
    assert torch.allclose(flip_targets(soft, 1.0), torch.full((10,), 0.2))


def test_adversarial_losses_with_hard_targets_are_the_textbook_ones():
    out = torch.tensor([0.5, -1.0, 2.0])
    np.testing.assert_allclose(adversarial_loss(out, 1.0, "bce"), torch.nn.functional.softplus(-out).mean(), 1e-6)
    np.testing.assert_allclose(adversarial_loss(out, 0.0, "bce"), torch.nn.functional.softplus(out).mean(), 1e-6)
    assert adversarial_loss(out, 1.0, "wasserstein").item() == pytest.approx(-out.mean().item())
    assert adversarial_loss(out, 0.0, "wasserstein").item() == pytest.approx(out.mean().item())
    e = torch.tensor([1.0, 3.0, 7.0])
    assert adversarial_loss(e, 1.0, "energy", margin=5.0).item() == pytest.approx(11 / 3)
    assert adversarial_loss(e, 0.0, "energy", margin=5.0).item() == pytest.approx((4 + 2 + 0) / 3)
    assert adversarial_loss(out, 1.0, "hinge").item() == pytest.approx((0.5 + 2.0 + 0.0) / 3)


def test_trick_overrides():
    assert trick_overrides(("IN", "LF")) == {"input_noise": 0.1, "label_flip": 0.05}
    with pytest.raises(ValueError, match="unknown training trick"):
        trick_overrides(("XX",))


def test_every_gan_registers_the_tricks():
    assert "algan" in GANS and "algan_feature" in GANS
    for name in GANS:
        fields = anogen.create(name).field_names()
        assert {"input_noise", "soft_labels", "label_flip"} <= set(fields), name


@pytest.mark.parametrize("name", GANS)
@pytest.mark.parametrize("trick,fn", [("IN", "add_input_noise"), ("SL", "soft_targets"), ("LF", "flip_targets")])
def test_trick_reaches_gan(name, trick, fn, digits, monkeypatch):
    """Switching a trick on calls the shared trick function during training and changes the trained model."""
    kw = _tiny(name, 16, 1)
    kw["epochs"] = 2
    train, test = _data(name, digits, 1, 24), _data(name, digits, 1, 10, offset=100)
    base = anogen.create(name, **kw).fit(train).decision_function(test)

    calls = {"n": 0}
    orig = getattr(losses, fn)

    def spy(*a, **k):
        calls["n"] += 1
        return orig(*a, **k)

    monkeypatch.setattr(losses, fn, spy)
    on = dict(kw, **trick_overrides((trick,)))
    if trick == "LF":
        on["label_flip"] = 0.5  # tiny runs: make the flips certain to happen
    s = anogen.create(name, **on).fit(train).decision_function(test)
    assert calls["n"] > 0, f"{name}: trick {trick} never reached the shared {fn}"
    assert not np.array_equal(s, base), f"{name}: trick {trick} did not change training"
