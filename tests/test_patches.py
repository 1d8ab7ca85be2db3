"""Patch mode of the Detector base (Matsubara et al. IV-B): random training crops, sliding-window scoring with the
image score the highest patch score, anomaly maps assembled over the windows, save / load."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

import anogen
from anogen import InputError
from anogen._registry import _REGISTRY, register
from anogen.detector import Detector, random_crops, sliding_windows, window_starts
from anogen.nets import ConvDecoder, ConvEncoder, dcgan_init


@dataclass(kw_only=True)
class _PatchMean(Detector):
    """No per-pixel map; score = w * mean of the input; records every training batch it is given."""

    input_kind: ClassVar[str] = "any"

    def build(self, input_shape):
        self.nets_ = nn.ModuleDict({"w": nn.Linear(1, 1, bias=False)})
        nn.init.ones_(self.nets_["w"].weight)
        self.built_for_ = input_shape
        self.seen_: list[torch.Tensor] = []

    def train_step(self, x):
        self.seen_.append(x.clone())
        return {"loss": 0.0}

    def score_batch(self, x):
        return self.nets_["w"](x.flatten(1).mean(1, keepdim=True)).squeeze(1)  # (B,)


@dataclass(kw_only=True)
class _TinyAE(Detector):
    """A small DCGAN-shaped autoencoder (independent of the library's ``ae``, whose defaults may change)."""

    width: int = 16
    latent_dim: int = 16

    def build(self, input_shape):
        c, s, _ = input_shape
        self.nets_ = nn.ModuleDict({
            "enc": ConvEncoder(s, c, self.latent_dim, width=self.width, max_width=2 * self.width),
            "dec": ConvDecoder(self.latent_dim, s, c, width=self.width, max_width=2 * self.width),
        })
        dcgan_init(self.nets_)
        self.opt_ = torch.optim.Adam(self.nets_.parameters(), lr=3e-3)

    def train_step(self, x):
        loss = (self.nets_["dec"](self.nets_["enc"](x)) - x).pow(2).mean()
        self.opt_.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_.step()
        return {"l2": loss.item()}

    def map_batch(self, x):
        return (self.nets_["dec"](self.nets_["enc"](x)) - x).pow(2).mean(1)  # (B, H, W)

    def score_batch(self, x):
        return self.map_batch(x).flatten(1).mean(1)  # (B,)


@pytest.fixture
def registered():
    """Register the test detectors for save / load only while a test needs it (the contract test never sees them)."""
    names = {"_test_patch_mean": _PatchMean, "_test_tiny_ae": _TinyAE}
    for name, cls in names.items():
        register(name)(cls)
    yield
    for name in names:
        _REGISTRY.pop(name, None)


def _textures(n: int, seed: int, size: int = 32) -> np.ndarray:
    """Diagonal stripes of random phase with a little noise: a regular texture, uint8 (n, size, size)."""
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[:size, :size]
    img = 0.5 + 0.25 * np.sin(2 * np.pi * (r + c)[None] / 8 + rng.uniform(0, 2 * np.pi, (n, 1, 1)))
    img = img + rng.normal(0, 0.02, (n, size, size))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _hand_windows(x: torch.Tensor, p: int, stride: int) -> tuple[list[tuple[int, int]], torch.Tensor]:
    """Every window of (N, C, H, W) images cut by plain slicing: offsets and (N, n_win, C, p, p)."""
    offs = [(t, l) for t in window_starts(x.shape[-2], p, stride) for l in window_starts(x.shape[-1], p, stride)]
    return offs, torch.stack([x[:, :, t : t + p, l : l + p] for t, l in offs], 1)


# ---------------------------------------------------------------------------------------------- geometry
def test_window_starts_include_the_border():
    assert window_starts(32, 16, 16) == [0, 16]
    assert window_starts(40, 16, 16) == [0, 16, 24]  # the last window touches the border
    assert window_starts(16, 16, 4) == [0]
    assert window_starts(128, 96, 16) == [0, 16, 32]
    with pytest.raises(InputError, match="smaller than a patch"):
        window_starts(8, 16, 4)


def test_sliding_windows_and_random_crops_are_slices():
    x = torch.arange(2 * 3 * 10 * 12, dtype=torch.float32).reshape(2, 3, 10, 12)
    tops, lefts = torch.tensor(window_starts(10, 4, 3)), torch.tensor(window_starts(12, 4, 3))
    w = sliding_windows(x, tops, lefts, 4).reshape(2, len(tops) * len(lefts), 3, 4, 4)
    _, hand = _hand_windows(x, 4, 3)
    assert torch.equal(w, hand)
    crops = random_crops(x, 4, torch.Generator().manual_seed(0))
    assert crops.shape == (2, 3, 4, 4)
    for i in range(2):  # each crop is one window of its own image (values are unique: find its corner)
        t, l = divmod(int(crops[i, 0, 0, 0] - x[i, 0, 0, 0]), 12)
        assert torch.equal(crops[i], x[i, :, t : t + 4, l : l + 4])
    again = random_crops(x, 4, torch.Generator().manual_seed(0))
    assert torch.equal(crops, again)


# ---------------------------------------------------------------------------------------------- training / scoring
def test_training_sees_random_crops_and_model_is_built_for_patches():
    x = _textures(8, 0, size=16)
    det = _PatchMean(epochs=2, batch_size=4, image_size=16, channels=1, patch_size=8, patch_stride=4, verbose=False)
    det.fit(x)
    assert det.built_for_ == (1, 8, 8) and det.input_shape_ == (1, 8, 8) and det.image_shape_ == (1, 16, 16)
    assert len(det.seen_) == 4 and all(b.shape == (4, 1, 8, 8) for b in det.seen_)
    full = det.preprocess(x)
    windows = sliding_windows(full, torch.arange(9), torch.arange(9), 8).reshape(8, 81, 1, 8, 8)
    for b in det.seen_:  # every training patch is a crop of some training image
        for patch in b:
            assert (windows == patch).flatten(2).all(2).any()
    offsets = {tuple(p.flatten()[:4].tolist()) for b in det.seen_ for p in b}
    assert len(offsets) > 4  # not always the same crop
    det2 = _PatchMean(epochs=2, batch_size=4, image_size=16, channels=1, patch_size=8, patch_stride=4, verbose=False)
    det2.fit(x)
    assert all(torch.equal(a, b) for a, b in zip(det.seen_, det2.seen_))  # seeded


def test_image_score_is_the_max_patch_score():
    x = _textures(5, 1, size=20)
    x[2, 14:20, 0:6] = 255  # a bright corner: its window must win
    det = _PatchMean(epochs=1, batch_size=4, image_size=20, channels=1, patch_size=8, patch_stride=5,
                     eval_batch_size=7, verbose=False).fit(x)
    offs, hand = _hand_windows(det.preprocess(x), 8, 5)
    assert [o[0] for o in offs[::4]] == [0, 5, 10, 12]  # stride 5 plus the border window at 12
    per_patch = hand.flatten(2).mean(2).double()  # (N, n_win): the dummy's score of each window
    np.testing.assert_allclose(det.decision_function(x), per_patch.amax(1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(det.decision_scores_, per_patch.amax(1).numpy(), rtol=1e-6)
    assert offs[int(per_patch[2].argmax())] == (12, 0)


def test_image_score_is_the_max_patch_score_of_a_trained_net():
    x = _textures(16, 2)
    det = _TinyAE(epochs=1, batch_size=8, image_size=32, channels=1, width=8, latent_dim=8, patch_size=16,
                  patch_stride=8, verbose=False).fit(x)
    test = _textures(3, 3)
    _, hand = _hand_windows(det.preprocess(test), 16, 8)  # (3, 9, 1, 16, 16)
    with torch.no_grad():
        det.nets_.eval()
        s = det.score_batch(hand.reshape(-1, 1, 16, 16)).reshape(3, 9).double()
    np.testing.assert_allclose(det.decision_function(test), s.amax(1).numpy(), rtol=1e-5)


def test_anomaly_maps_average_overlapping_windows():
    x = _textures(12, 4, size=24)
    det = _TinyAE(epochs=1, batch_size=4, image_size=24, channels=1, width=8, latent_dim=8, patch_size=16,
                  patch_stride=6, verbose=False).fit(x)
    test = _textures(2, 5, size=24)
    maps = det.anomaly_maps(test)
    assert maps.shape == (2, 24, 24) and maps.dtype == np.float32 and np.isfinite(maps).all()
    offs, hand = _hand_windows(det.preprocess(test), 16, 6)  # offsets 0, 6, 8 per side
    acc, cnt = torch.zeros(2, 24, 24, dtype=torch.float64), torch.zeros(24, 24, dtype=torch.float64)
    with torch.no_grad():
        det.nets_.eval()
        for j, (t, l) in enumerate(offs):
            acc[:, t : t + 16, l : l + 16] += det.map_batch(hand[:, j]).double()
            cnt[t : t + 16, l : l + 16] += 1
    np.testing.assert_allclose(maps, (acc / cnt).numpy(), rtol=1e-4, atol=1e-7)


def test_maps_from_patch_scores_without_a_per_pixel_map():
    x = _textures(4, 6, size=12)
    plain = _PatchMean(epochs=1, batch_size=4, image_size=12, channels=1, verbose=False).fit(x)
    assert not plain.has_anomaly_maps()
    with pytest.raises(NotImplementedError):
        plain.anomaly_maps(x)  # without patches nothing changes
    det = _PatchMean(epochs=1, batch_size=4, image_size=12, channels=1, patch_size=8, patch_stride=2,
                     verbose=False).fit(x)
    assert det.has_anomaly_maps()
    maps = det.anomaly_maps(x)
    assert maps.shape == (4, 12, 12)
    offs, hand = _hand_windows(det.preprocess(x), 8, 2)
    scores = hand.flatten(2).mean(2).double()  # (N, n_win)
    acc, cnt = torch.zeros(4, 12, 12, dtype=torch.float64), torch.zeros(12, 12, dtype=torch.float64)
    for j, (t, l) in enumerate(offs):
        acc[:, t : t + 8, l : l + 8] += scores[:, j, None, None]
        cnt[t : t + 8, l : l + 8] += 1
    np.testing.assert_allclose(maps, (acc / cnt).numpy(), rtol=1e-5)


@dataclass(kw_only=True)
class _EmbeddedMean(_PatchMean):
    """The same score through an ``embed`` map (images -> per-channel means), as feature detectors do."""

    def embed(self, x):
        return x.mean((2, 3))  # (B, C)


def test_patches_with_embed_augment_and_validation():
    x = _textures(12, 12, size=16)
    vx = np.concatenate([_textures(6, 13, size=16), np.full((6, 16, 16), 250, np.uint8)])
    vy = np.r_[np.zeros(6), np.ones(6)].astype(int)
    kw = dict(epochs=2, batch_size=4, image_size=16, channels=1, patch_size=8, patch_stride=4, val_every=1,
              verbose=False)
    det = _EmbeddedMean(augment=("rot90", "hflip"), **kw).fit(x, val_x=vx, val_y=vy)
    assert det.input_shape_ == (1,) and det.built_for_ == (1,) and det.image_shape_ == (1, 16, 16)
    assert all(b.shape == (4, 1) for b in det.seen_)  # embedded crops
    plain = _PatchMean(**kw).fit(x, val_x=vx, val_y=vy)
    np.testing.assert_allclose(det.decision_function(vx), plain.decision_function(vx), rtol=1e-6)
    assert det.val_auroc_ == 1.0 and [h["val_auroc"] for h in det.history_] == [1.0, 1.0]
    # the threshold comes from the image scores of the normal validation images
    assert det.threshold_ == pytest.approx(np.quantile(det.decision_function(vx[:6]), 1 - det.contamination))


def test_default_path_is_untouched():
    x = _textures(8, 7, size=16)
    det = _PatchMean(epochs=1, batch_size=4, image_size=16, channels=1, verbose=False).fit(x)
    assert det.built_for_ == (1, 16, 16) and not hasattr(det, "image_shape_")
    assert all(b.shape == (4, 1, 16, 16) for b in det.seen_)
    np.testing.assert_allclose(det.decision_function(x), det.preprocess(x).flatten(1).mean(1).double().numpy(),
                               rtol=1e-6)


def test_defect_in_a_corner_lights_up_the_map():
    normal = _textures(128, 0)
    det = _TinyAE(epochs=12, batch_size=16, image_size=32, channels=1, patch_size=16, patch_stride=8, verbose=False,
                  seed=0).fit(normal)
    clean = _textures(4, 1)
    bad = clean.copy()
    bad[:, 3:9, 3:9] = 255  # a bright 6x6 spot near the top-left corner
    maps = det.anomaly_maps(bad)
    inside = maps[:, 3:9, 3:9].mean((1, 2))
    far = maps[:, 16:, 16:].mean((1, 2))
    for m in maps:
        r, c = np.unravel_index(m.argmax(), m.shape)
        assert r < 12 and c < 12, f"map maximum at {(r, c)}, far from the defect"
    assert (inside > 10 * far).all(), (inside, far)
    assert det.decision_function(bad).min() > det.decision_function(clean).max()


# ---------------------------------------------------------------------------------------------- checks / save
def test_patch_field_and_input_checks():
    x = _textures(4, 8, size=16)
    with pytest.raises(InputError, match="smaller than a patch"):
        _PatchMean(epochs=1, image_size=16, channels=1, patch_size=32, patch_stride=8, verbose=False).fit(x)
    with pytest.raises(ValueError, match="patch_stride"):
        _PatchMean(epochs=1, image_size=16, channels=1, patch_size=8, patch_stride=9, verbose=False).fit(x)
    with pytest.raises(ValueError, match="patch_stride"):
        _PatchMean(epochs=1, image_size=16, channels=1, patch_size=8, patch_stride=0, verbose=False).fit(x)
    with pytest.raises(ValueError, match="patch_size"):
        _PatchMean(epochs=1, image_size=16, channels=1, patch_size=-1, verbose=False).fit(x)
    with pytest.raises(InputError, match="feature vectors"):
        _PatchMean(epochs=1, patch_size=8, patch_stride=8, verbose=False).fit(np.zeros((4, 10), np.float32))
    det = _PatchMean(epochs=1, image_size=16, channels=1, patch_size=8, patch_stride=8, resize="none",
                     verbose=False).fit(x)
    with pytest.raises(InputError):
        det.decision_function(_textures(2, 9, size=8))  # smaller images than the model's


def test_save_load_in_patch_mode_is_identical(registered, tmp_path):
    x, test = _textures(16, 10), _textures(5, 11)
    det = anogen.create("_test_tiny_ae", epochs=1, batch_size=8, image_size=32, channels=1, width=8, latent_dim=8,
                        patch_size=16, patch_stride=4, verbose=False).fit(x)
    s, m = det.decision_function(test), det.anomaly_maps(test)
    loaded = anogen.load(det.save(tmp_path / "p.anogen"))
    assert loaded.input_shape_ == (1, 16, 16) and loaded.image_shape_ == (1, 32, 32)
    np.testing.assert_array_equal(loaded.decision_function(test), s)
    np.testing.assert_array_equal(loaded.anomaly_maps(test), m)
    assert loaded.threshold_ == det.threshold_
    mean = anogen.create("_test_patch_mean", epochs=1, image_size=32, channels=1, patch_size=16, patch_stride=16,
                         verbose=False).fit(x)
    again = anogen.load(mean.save(tmp_path / "m.anogen"))
    np.testing.assert_array_equal(again.anomaly_maps(test), mean.anomaly_maps(test))


def test_patch_flags_in_cli_help(capsys):
    from anogen.cli import main

    with pytest.raises(SystemExit):
        main(["train", "ae", "--help"])
    out = capsys.readouterr().out
    assert "--patch-size" in out and "--patch-stride" in out
