"""The IN / SL / LF training tricks (thesis 4.2.1): each does what it says, and each reaches every registered GAN
through the shared code in ``anogen.losses`` (no per-method copies)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor

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


# ---------------------------------------------------------------------------------------------- the IN rule (losses.py)
@pytest.mark.parametrize("name", GANS)
def test_input_noise_reaches_the_discriminator_step_only(name, digits, monkeypatch):
    """Rule 1: IN is applied to D's inputs in D's update only -- those are detached from the generator / encoder;
    a generator-side pass through D (which needs gradients into G / E) never goes through ``d_input``."""
    kw = dict(_tiny(name, 16, 1), epochs=2, input_noise=0.1)
    if "stage_epochs" in anogen.create(name).field_names():
        kw["epochs"] = 3 * len(get(name).STAGES)  # every stage trains
    seen: list[bool] = []
    orig = GANTricks.d_input

    def spy(self, x):
        seen.append(bool(x.requires_grad))
        return orig(self, x)

    monkeypatch.setattr(GANTricks, "d_input", spy)
    anogen.create(name, **kw).fit(_data(name, digits, 1, 24))
    assert seen, f"{name}: IN never applied"
    assert not any(seen), f"{name}: an input with gradients to G / E went through the IN noise"


def test_input_noise_decays_over_the_stage_whose_discriminator_trains():
    """Rule 3: to 0 over all epochs (one-stage GANs), over f-AnoGAN's GAN stage, over each EBGAN-family stage."""
    fa = anogen.create("f_anogan", epochs=10, encoder_epochs=4, input_noise=0.2)
    assert fa.noise_epochs() == (0, 6)
    fa.epoch_ = 3
    assert fa.input_noise_std() == pytest.approx(0.2 * (1 - 3 / 6))
    fa.epoch_ = 6
    assert fa.input_noise_std() == 0.0  # the critic's training is over
    for name in ("encebgan", "sencebgan"):
        det = anogen.create(name, epochs=12, input_noise=0.2)
        sched = det.stage_schedule()
        start = 0
        for n in sched:
            if n == 0:
                continue
            det.epoch_ = start
            assert det.noise_epochs() == (start, n) and det.input_noise_std() == pytest.approx(0.2)
            det.epoch_ = start + n - 1
            assert det.input_noise_std() == pytest.approx(0.2 / n)  # the last epoch of the stage
            start += n
    one = anogen.create("bigan", epochs=10, input_noise=0.2)
    one.epoch_ = 5
    assert one.noise_epochs() == (0, 10) and one.input_noise_std() == pytest.approx(0.1)


@pytest.mark.parametrize("disc", ["Dxx", "Dzz"])
def test_a_real_pair_gets_one_noisy_copy_in_both_places_sencebgan(disc):
    """Rule 2: D_xx's real pair (x, x) and D_zz's (z, z) stay pairs of equal inputs under IN; the fake pair's first
    half is the same noisy copy, its second half a noisy reconstruction."""
    det = anogen.create("sencebgan", **dict(_tiny("sencebgan", 16, 1), input_noise=0.5, use_dxx=True,
                                             use_dzz=True))
    det.build((1, 16, 16))
    det.epoch_ = 0
    seen: list[Tensor] = []
    det.nets_[disc].register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    a = torch.rand(8, 1, 16, 16) if disc == "Dxx" else torch.randn(8, 8)
    rec = torch.rand_like(a)
    det._pair_d_step(disc, det.opt_dxx_ if disc == "Dxx" else det.opt_dzz_, a, rec)
    real, fake = seen
    r1, r2 = real.chunk(2, dim=1)
    f1, f2 = fake.chunk(2, dim=1)
    torch.testing.assert_close(r1, r2)  # one noisy copy in both places
    torch.testing.assert_close(f1, r1)
    assert not torch.allclose(r1, a) and not torch.allclose(f2, rec)  # noised
    assert (f2 - rec).std() == pytest.approx(0.5, rel=0.2)


def test_a_real_pair_gets_one_noisy_copy_in_both_places_alad(digits):
    det = anogen.create("alad", **dict(_tiny("alad", 16, 1), input_noise=0.5))
    calls: list[tuple[Tensor, ...]] = []

    def hook(module, args):
        if torch.is_grad_enabled() and not any(a.requires_grad for a in args):  # D's update: detached inputs
            calls.append(tuple(a.detach().clone() for a in args))

    orig_build = det.build

    def build(shape):
        orig_build(shape)
        for disc in ("Dxx", "Dzz"):
            det.nets_[disc].register_forward_pre_hook(hook)

    det.build = build
    det.fit(_data("alad", digits, 1, 24))
    pairs = [c for c in calls if torch.equal(c[0], c[1])]
    assert len(pairs) == len(calls) // 2 > 0  # per D update and pair discriminator: one real pair of equal inputs
