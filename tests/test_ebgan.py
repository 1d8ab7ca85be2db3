"""The EBGAN family (Ozgumus thesis 3.2, 4.2, A.6-A.7): the margin loss (eq. 3.7) and the pulling-away term (eq. 3.8)
on hand-made inputs, the stage schedule, which networks each stage trains, the EMA, every score recomputed by hand,
D_xx / D_zz, and one learning test per detector."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import anogen
from anogen.run import presets as _presets
from anogen.detectors.ebgan import (
    EBGAN, PRESETS, batch_margin_loss, energy, frozen_bn_stats, pulling_away, stage_lengths,
)
from anogen.detectors.encebgan import ENCEBGAN
from anogen.detectors.sencebgan import SENCEBGAN
from anogen.metrics import auroc
from conftest import one_class_digits

TINY = dict(image_size=16, channels=1, width=8, max_width=16, latent_dim=8, batch_size=8, verbose=False, seed=0)
NAMES = ("ebgan", "encebgan", "sencebgan")


def _t(xs):
    return torch.tensor(xs, dtype=torch.float64)


# ------------------------------------------------------------------------------------------------ losses
def test_energy_is_the_l2_norm_of_the_residual():
    x = torch.zeros(2, 1, 2, 2)
    rec = torch.tensor([[[[3.0, 0.0], [0.0, 4.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    assert energy(x, rec).tolist() == [5.0, 2.0]  # sqrt(9 + 16), sqrt(4 * 1): a norm, not squared, not a mean


@pytest.mark.parametrize("hinge", ["sample", "batch"])
def test_margin_loss_against_hand_computation(hinge):
    e_real, e_fake, m = _t([1.0, 3.0]), _t([2.0, 4.0, 12.0]), 8.0
    det = anogen.create("ebgan", margin=m, hinge=hinge)
    got = det._d_energy_loss(e_real, True) + det._d_energy_loss(e_fake, False)
    if hinge == "sample":  # eq. (3.7) per sample: mean D(x) + mean [m - D(G(z))]^+ = 2 + (6 + 4 + 0) / 3
        expected = 2.0 + (6.0 + 4.0 + 0.0) / 3
    else:  # reference: mean D(x) + [m - mean D(G(z))]^+ = 2 + [8 - 6]^+
        expected = 2.0 + 2.0
    assert got.item() == pytest.approx(expected, rel=1e-12)
    # the hinge is inactive once the fakes' energy exceeds the margin
    far = det._d_energy_loss(_t([9.0, 30.0]), False)
    assert far.item() == 0.0


def test_batch_margin_loss_with_soft_targets():
    e, t, m = _t([1.0, 5.0]), _t([0.2, 0.0]), 10.0
    # mean(t E) + mean(1 - t) [m - mean E]^+ = (0.2 + 0) / 2 + 0.9 * 7
    assert batch_margin_loss(e, t, m).item() == pytest.approx(0.1 + 0.9 * 7.0)
    assert batch_margin_loss(e, torch.ones(2, dtype=torch.float64), m).item() == pytest.approx(3.0)


def test_pulling_away_term():
    eye = torch.eye(4)
    assert pulling_away(eye).item() == 0.0  # orthogonal features
    same = torch.tensor([1.0, 2.0, -3.0]).repeat(5, 1) * torch.tensor([[1.0], [2.0], [0.5], [3.0], [7.0]])
    assert pulling_away(same).item() == pytest.approx(1.0, abs=1e-6)  # identical directions (any lengths)
    opposite = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    assert pulling_away(opposite).item() == pytest.approx(1.0, abs=1e-6)  # squared cosines, as eq. (3.8) prints
    # by hand: cos(s1, s2)^2 = 1/2, cos(s1, s3)^2 = 0, cos(s2, s3)^2 = 1/2; each pair twice / (3 * 2)
    s = _t([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    assert pulling_away(s).item() == pytest.approx(2 * (0.5 + 0.0 + 0.5) / 6, rel=1e-12)
    assert pulling_away(torch.ones(1, 3)).item() == 0.0  # no pairs
    s4 = torch.randn(6, 5, 2, 2)  # any shape: rows are flattened
    assert pulling_away(s4).item() == pytest.approx(pulling_away(s4.flatten(1)).item())


def test_frozen_bn_stats_keeps_running_statistics():
    bn = torch.nn.BatchNorm1d(3).train()
    with frozen_bn_stats(bn):
        out = bn(torch.randn(8, 3) * 5 + 2)
    assert torch.equal(bn.running_mean, torch.zeros(3)) and torch.equal(bn.running_var, torch.ones(3))
    assert out.mean(0).abs().max() < 1e-5  # still normalised with the batch statistics
    assert bn.momentum == 0.1


# ------------------------------------------------------------------------------------------------ stages
def test_stage_lengths():
    assert stage_lengths(500, (100, 400)) == [100, 400]  # the reference's counts
    assert stage_lengths(50, (100, 400)) == [10, 40]
    assert stage_lengths(50, (500, 200, 400)) == [23, 9, 18]
    assert stage_lengths(3, (500, 200, 400)) == [1, 1, 1]  # every stage at least one epoch
    assert stage_lengths(2, (1, 100)) == [1, 1]
    assert stage_lengths(1, (1, 4)) == [1, 0]  # too few epochs: later stages are skipped
    assert stage_lengths(2, (5, 2, 4)) == [1, 1, 0]
    for n in range(1, 40):
        assert sum(stage_lengths(n, (500, 200, 400))) == n
    det = anogen.create("sencebgan", epochs=4)
    assert [det.stage_of(e) for e in range(4)] == ["gan", "gan", "encoder_g", "encoder_r"]
    assert [anogen.create("ebgan", epochs=3).stage_of(e) for e in range(3)] == ["gan"] * 3
    with pytest.raises(ValueError, match="past the last"):
        det.stage_of(4)


def test_too_few_epochs_for_the_stages_warns(digits):
    with pytest.warns(UserWarning, match="encoder will not train"):
        anogen.create("encebgan", **dict(TINY, epochs=1)).fit(digits[0][:16])


def _state(det, names):
    return {n: {k: v.clone() for k, v in det.nets_[n].state_dict().items()} for n in names}


def _changed(before, det):
    return {n for n, sd in before.items()
            if any(not torch.equal(v, det.nets_[n].state_dict()[k]) for k, v in sd.items())}


@pytest.mark.parametrize("name,epoch,trained", [
    ("encebgan", 0, {"G", "D", "G_ema", "D_ema"}),
    ("encebgan", 1, {"E", "E_ema"}),
    ("sencebgan", 0, {"G", "D", "G_ema", "D_ema"}),
    ("sencebgan", 1, {"EG", "EG_ema"}),
    ("sencebgan", 2, {"ER", "ER_ema"}),
])
def test_each_stage_updates_only_its_networks(name, epoch, trained, digits):
    det = anogen.create(name, **dict(TINY, epochs=3))
    x = det.preprocess(digits[0][:8])
    torch.manual_seed(0)
    det.build(tuple(x.shape[1:]))
    det.nets_.train()
    det.epoch_ = epoch
    before = _state(det, list(det.nets_.keys()))
    losses = det.train_step(x)
    assert losses and all(math.isfinite(v) for v in losses.values())
    assert _changed(before, det) == trained


# ------------------------------------------------------------------------------------------------ EMA
def test_ema_warm_up_and_switch(digits):
    det = anogen.create("ebgan", **TINY)
    det.build((1, 16, 16))
    assert {"G_ema", "D_ema"} <= set(det.nets_) and det.net("G") is det.nets_["G_ema"]
    assert not any(p.requires_grad for p in det.nets_["G_ema"].parameters())
    w0 = det.nets_["G_ema"].net[0].weight.clone()
    with torch.no_grad():
        det.nets_["G"].net[0].weight.add_(1.0)
    det._ema_step("G")  # first update: decay min(0.999, 1 / 10) = 0.1
    np.testing.assert_allclose(det.nets_["G_ema"].net[0].weight, 0.1 * w0 + 0.9 * (w0 + 1.0), rtol=1e-6)
    det._ema_step("G")  # second: min(0.999, 2 / 11)
    expected = 2 / 11 * (0.1 * w0 + 0.9 * (w0 + 1.0)) + 9 / 11 * (w0 + 1.0)
    np.testing.assert_allclose(det.nets_["G_ema"].net[0].weight, expected, rtol=1e-5)
    raw = anogen.create("ebgan", **dict(TINY, ema_decay=0.0))
    raw.build((1, 16, 16))
    assert set(raw.nets_) == {"G", "D"} and raw.net("G") is raw.nets_["G"]


# ------------------------------------------------------------------------------------------------ scores
def _norm(a, p=2):
    return a.flatten(1).abs().pow(p).sum(1).pow(1 / p)


def _hand_scores(det, x):
    """Every score of ``det`` from its scoring (EMA) networks, written out again."""
    n = det.nets_
    enc_d, dec_d, G = n["D_ema"].enc, n["D_ema"].dec, n["G_ema"]
    e_x = enc_d(x)
    out = {"energy": _norm(dec_d(e_x) - x)}
    if det.name == "ebgan":
        xg = G(e_x)
        out.update(image=_norm(x - xg), ae_image=_norm(x - dec_d(enc_d(xg))),
                   latent_l1=_norm(e_x - enc_d(xg), 1), latent_l2=_norm(e_x - enc_d(xg)))
    elif det.name == "encebgan":
        xg = G(n["E_ema"](x))
        image, feature = _norm(x - xg), _norm(dec_d(enc_d(xg)) - dec_d(e_x))
        out.update(image=image, feature=feature, embedding=_norm(enc_d(xg) - e_x),
                   comb=0.55 * image + 0.45 * feature)
    else:
        z = n["EG_ema"](x)
        xg = G(z)
        image, latent = _norm(x - xg), _norm(z - n["ER_ema"](xg))
        out.update(image=image, latent=latent, comb=image + 0.25 * latent)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_score_by_hand(name, digits):
    images = digits[0]
    det = anogen.create(name, **dict(TINY, epochs=3)).fit(images[:24])
    x = det.preprocess(images[40:46])
    det.nets_.eval()
    with torch.no_grad():
        hand = _hand_scores(det, x)
    assert set(hand) == set(det.SCORES)
    for score in det.SCORES:
        det.score = score
        np.testing.assert_allclose(det.decision_function(images[40:46]), hand[score].double().numpy(), rtol=1e-5,
                                   err_msg=f"{name} score {score}")
    det.score = "image"  # the map sums to the squared image score
    maps = det.anomaly_maps(images[40:46])
    assert maps.shape == (6, 16, 16)
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), hand["image"].numpy() ** 2, rtol=1e-4)


def test_default_scores_and_settings_are_the_references():
    e, enc, senc = EBGAN(), ENCEBGAN(), SENCEBGAN()
    assert (e.score, enc.score, senc.score) == ("image", "comb", "comb")
    assert (enc.score_weight, senc.score_weight) == (0.45, 0.25)
    assert e.margin == 20 and e.pt_weight == 0.25 and e.n_gen == 3 and e.latent_dim == 256 and e.batch_size == 64
    assert (e.lr_g, e.lr_d, enc.lr_e, e.betas, e.ema_decay) == (1e-5, 5e-6, 5e-5, (0.5, 0.999), 0.999)
    assert enc.stage_epochs == (100, 400) and senc.stage_epochs == (500, 200, 400) and senc.g_embed_weight == 0.1
    assert not senc.use_dxx and not senc.use_dzz and enc.w_enc_feature == senc.w_enc_feature == 0.4


def test_bad_settings_are_loud():
    with pytest.raises(ValueError, match="hinge"):
        anogen.create("ebgan", hinge="mean")
    with pytest.raises(ValueError, match="score"):
        anogen.create("ebgan", score="comb")  # an encoder score on the encoder-less EBGAN
    with pytest.raises(ValueError, match="stage_epochs"):
        anogen.create("sencebgan", stage_epochs=(1, 2))
    with pytest.raises(ValueError, match="stage_epochs"):
        anogen.create("encebgan", stage_epochs=(1, 0))
    with pytest.raises(ValueError, match="tanh"):
        anogen.create("encebgan", normalize="unit")
    with pytest.raises(ValueError, match="margin"):
        anogen.create("ebgan", margin=0.0)


# ------------------------------------------------------------------------------------------------ D_xx / D_zz
def test_sencebgan_with_dxx_and_dzz(digits, tmp_path, monkeypatch):
    from anogen import losses

    calls = {"n": 0}
    orig = losses.soft_targets

    def spy(*a, **k):
        calls["n"] += 1
        return orig(*a, **k)

    monkeypatch.setattr(losses, "soft_targets", spy)
    kw = dict(TINY, epochs=3, use_dxx=True, use_dzz=True, soft_labels=True)
    det = anogen.create("sencebgan", **kw)
    images = digits[0]
    det.build((1, 16, 16))
    assert {"Dxx", "Dzz"} <= set(det.nets_)
    det.fit(images[:24])
    assert "dxx" in det.history_[1] and "dzz" in det.history_[2]
    n_gan = calls["n"]
    assert n_gan > 0
    s = det.decision_function(images[40:50])
    loaded = anogen.load(det.save(tmp_path / "s.anogen"))
    np.testing.assert_array_equal(loaded.decision_function(images[40:50]), s)
    # the pair discriminators take their targets from the tricks mixin in stages 2 and 3 too
    calls["n"] = 0
    det.epoch_ = 1
    det.train_step(det.preprocess(images[:8]))
    det.epoch_ = 2
    det.train_step(det.preprocess(images[:8]))
    assert calls["n"] == 4  # real and fake pair targets of D_xx, then of D_zz


def test_presets_fit_every_detector():
    for name in NAMES:
        assert _presets(anogen._registry.get(name))["cpu"] == PRESETS["cpu"], name


# ------------------------------------------------------------------------------------------------ learning
LEARN = dict(PRESETS["cpu"], epochs=10, channels=1, verbose=False, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_learns_one_class_digits(name, digits):
    train, test, y = one_class_digits(*digits, normal=0, n_train=120, seed=0)
    det = anogen.create(name, **LEARN).fit(train)
    auc = auroc(y, det.decision_function(test))
    print(f"{name} ({det.score}) one-class digits (0 normal) AUROC = {auc:.3f}")
    assert auc >= 0.85  # seeds 0-4: 0.92-0.99 (ebgan), 0.93-0.95 (encebgan, sencebgan)


def test_validation_keeps_only_last_stage_states(digits):
    import anogen
    from conftest import one_class_digits

    train, test, y = one_class_digits(*digits, normal=0, n_train=40, seed=0)
    det = anogen.create("encebgan", epochs=5, val_every=1, image_size=16, channels=1, width=8, max_width=16,
                        latent_dim=8, batch_size=8, verbose=False)
    first = det.selectable_from_epoch()
    assert first == sum(det.stage_schedule()[:-1]) + 1 > 1
    idx = list(range(30)) + list(range(len(y) - 30, len(y)))
    det.fit(train, val_x=test[idx], val_y=y[idx])
    assert [h["epoch"] for h in det.history_ if "val_auroc" in h] == list(range(first, 6))
