"""The Detector base, the registry, transforms and saved-model files, checked on hand-made detectors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import anogen
from anogen import InputError
from anogen._registry import register
from anogen.data.transforms import Preprocess, add_pool_channels, augment
from anogen.detector import Detector, TrainingDiverged


@dataclass(kw_only=True)
class _MeanDetector(Detector):
    """Score = signed distance of the image mean from a learned constant; ``flip_at`` flips the sign from then on."""

    flip_at: int = 0
    nan_at: int = 0

    def build(self, input_shape):
        self.nets_ = nn.ModuleDict({"m": nn.Linear(1, 1, bias=False)})
        nn.init.ones_(self.nets_["m"].weight)

    def train_step(self, x):
        if self.nan_at and self.epoch_ + 1 >= self.nan_at:
            return {"loss": float("nan")}
        with torch.no_grad():
            if self.flip_at and self.epoch_ + 1 >= self.flip_at:
                self.nets_["m"].weight.fill_(-1.0)
        return {"loss": 0.0}

    def score_batch(self, x):
        return self.nets_["m"](x.flatten(1).mean(1, keepdim=True)).squeeze(1)  # (B,)


def _bright_vs_dark(n=20, seed=0):
    rng = np.random.default_rng(seed)
    normal = rng.integers(0, 60, size=(n, 8, 8), dtype=np.uint8)
    anomalous = rng.integers(180, 255, size=(n, 8, 8), dtype=np.uint8)
    return normal, np.concatenate([normal, anomalous]), np.r_[np.zeros(n), np.ones(n)].astype(int)


def test_validation_keeps_best_state():
    normal, vx, vy = _bright_vs_dark()
    det = _MeanDetector(epochs=4, val_every=1, flip_at=3, image_size=8, channels=1, verbose=False)
    det.fit(normal, val_x=vx, val_y=vy)
    assert [h["val_auroc"] for h in det.history_] == [1.0, 1.0, 0.0, 0.0]
    assert det.best_epoch_ == 1 and det.val_auroc_ == 1.0
    assert det.nets_["m"].weight.item() == 1.0  # the epoch-1 state was restored
    # the threshold comes from the normal validation scores
    scores = det.decision_function(vx[:20])
    assert det.threshold_ == pytest.approx(np.quantile(scores, 1 - det.contamination))


def test_threshold_from_training_scores_without_validation():
    normal, vx, vy = _bright_vs_dark()
    det = _MeanDetector(epochs=1, image_size=8, channels=1, verbose=False, contamination=0.1, selection="last")
    det.fit(normal)
    assert det.threshold_ == pytest.approx(np.quantile(det.decision_scores_, 0.9))
    assert det.predict(vx)[20:].all()
    # the default without labels (selection "synthetic"): the held-out normals calibrate
    det = _MeanDetector(epochs=1, image_size=8, channels=1, verbose=False, contamination=0.1).fit(normal)
    from anogen.data.synthetic import holdout_indices

    held = holdout_indices(len(normal), det.holdout, det.seed)[1].numpy()
    assert det.threshold_ == pytest.approx(np.quantile(det.decision_scores_[held], 0.9))


def test_divergence_raises_and_writes_nothing(tmp_path):
    normal, _, _ = _bright_vs_dark()
    det = _MeanDetector(epochs=3, nan_at=2, image_size=8, channels=1, verbose=False)
    with pytest.raises(TrainingDiverged, match="epoch 2"):
        det.fit(normal)
    assert not hasattr(det, "threshold_")


def test_fit_refuses_anomalies_in_y():
    normal, _, _ = _bright_vs_dark()
    with pytest.raises(InputError, match="normal data only"):
        _MeanDetector(image_size=8, channels=1, verbose=False).fit(normal, y=np.ones(len(normal)), check_y=True)


def test_registry_rejects_duplicates():
    anogen.available()  # load the method files first, so "ae" is taken (also when this test runs alone)
    with pytest.raises(ValueError, match="already registered"):
        register("ae")(type("Other", (), {}))
    with pytest.raises(KeyError, match="unknown detector"):
        anogen.create("no-such-detector")


def test_save_is_atomic(tmp_path, digits, monkeypatch):
    images, _ = digits
    det = anogen.create("ae", epochs=1, image_size=16, channels=1, width=8, latent_dim=8, verbose=False)
    det.fit(images[:16])
    path = det.save(tmp_path / "m.anogen")
    before = path.read_bytes()

    import safetensors.torch

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a model")
        raise KeyboardInterrupt("simulated crash mid-save")

    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        det.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.anogen"]


def test_load_refuses_foreign_files(tmp_path):
    bad = tmp_path / "x.anogen"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="not an anogen model"):
        anogen.load(bad)
    with pytest.raises(FileNotFoundError):
        anogen.load(tmp_path / "missing.anogen")


# ----------------------------------------------------------------------------- transforms
def test_preprocess_scales_and_maps_channels():
    p = Preprocess(image_size=4, channels=3, normalize="tanh")
    x = p(np.full((2, 4, 4), 255, np.uint8))
    assert x.shape == (2, 3, 4, 4) and torch.all(x == 1.0)
    gray = Preprocess(image_size=4, channels=1, normalize="unit")
    rgb = np.zeros((1, 4, 4, 3), np.uint8)
    rgb[..., 0] = 255
    assert torch.allclose(gray(rgb), torch.full((1, 1, 4, 4), 0.299))
    with pytest.raises(InputError, match="expected 1-channel"):
        Preprocess(image_size=4, channels=1, channel_mode="strict")(rgb)


def test_preprocess_resizes_or_refuses():
    x = np.zeros((3, 10, 6), np.uint8)
    assert Preprocess(image_size=8, channels=1)(x).shape == (3, 1, 8, 8)
    with pytest.raises(InputError, match="expected images of 8x8"):
        Preprocess(image_size=8, channels=1, resize="none")(x)


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.full((2, 4, 4), np.nan, np.float32), "NaN"),
        (np.full((2, 4, 4), 3.0, np.float32), r"\[0, 1\]"),
        (np.zeros((0, 4, 4), np.uint8), "empty"),
        (np.zeros((2, 4, 4, 7), np.uint8), "C in 1-4"),
        ([], "empty list"),
        ({"a": 1}, "expected images"),
    ],
)
def test_preprocess_bad_inputs(bad, match):
    with pytest.raises(InputError, match=match):
        Preprocess(image_size=4, channels=1)(bad)


def test_preprocess_reads_paths_and_folders(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((5, 7), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    p = Preprocess(image_size=4, channels=1, normalize="unit")
    from_folder = p(tmp_path)
    from_list = p(sorted(tmp_path.glob("*.png")))
    assert from_folder.shape == (3, 1, 4, 4) and torch.equal(from_folder, from_list)
    Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(InputError, match="mixed channel counts"):
        p(sorted(tmp_path.glob("*.png")))
    (tmp_path / "broken.png").write_bytes(b"no image")
    with pytest.raises(ValueError, match="cannot read"):
        p([tmp_path / "broken.png"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no image files"):
        p(empty)


def test_pool_channels_and_augment():
    x = torch.tensor([[[[1.0]], [[3.0]]]])  # (1, 2, 1, 1)
    assert add_pool_channels(x).flatten().tolist() == [1.0, 3.0, 3.0, 2.0]
    g = torch.Generator().manual_seed(0)
    batch = torch.arange(2 * 16, dtype=torch.float32).view(2, 1, 4, 4)
    out = augment(batch, ("hflip", "vflip", "rot90"), g)
    for a, b in zip(out, batch):  # each output is a dihedral transform of its input: same multiset of values
        assert sorted(a.flatten().tolist()) == sorted(b.flatten().tolist())
    assert augment(batch, ("rotate",), g).shape == batch.shape
