"""Working without labelled anomalies (issue 14): synthetic anomalies, selection modes, the health check, the
intensity option and the selection / drift measurements."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn

import anogen
from anogen import detector as detector_mod
from anogen.data.synthetic import KINDS, holdout_indices, synthetic_anomalies
from anogen.data.transforms import InputError, Preprocess, standardize_intensity
from anogen.detector import Detector, HealthWarning
from anogen.evaluations import pick_epochs, selection_metrics, shift_images
from anogen.health import health_report

from conftest import one_class_digits

TINY_AE = dict(image_size=16, channels=1, width=8, latent_dim=8, epochs=4, val_every=2, batch_size=16, verbose=False)


def _val(test: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A labelled validation set from the test pool: its first 30 normals and 30 anomalies."""
    idx = np.r_[np.flatnonzero(y == 0)[:30], np.flatnonzero(y == 1)[:30]]
    return test[idx], y[idx].copy()


def _unit(n: int = 12, seed: int = 0, c: int = 1, s: int = 16) -> Tensor:
    return torch.rand(n, c, s, s, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------ synthetic defects
def test_synthetic_anomalies_deterministic_for_a_seed():
    u = _unit()
    a1, m1 = synthetic_anomalies(u, seed=3)
    a2, m2 = synthetic_anomalies(u, seed=3)
    a3, _ = synthetic_anomalies(u, seed=4)
    assert torch.equal(a1, a2) and torch.equal(m1, m2)
    assert not torch.equal(a1, a3)
    torch.rand(100)  # the global stream does not matter
    assert torch.equal(synthetic_anomalies(u, seed=3)[0], a1)


def test_synthetic_anomalies_are_local_and_in_range():
    u = _unit(n=10, c=3)
    a, m = synthetic_anomalies(u, seed=0)
    assert a.shape == u.shape and m.shape == (10, 16, 16) and a.min() >= 0 and a.max() <= 1
    side = m.flatten(1).sum(1).float().sqrt()
    assert (side >= 3).all() and (side <= 6).all()  # 0.2 .. 0.4 of 16 px, rounded
    for i in range(10):
        kind = KINDS[i % len(KINDS)]
        changed = (a[i] - u[i]).abs().amax(0) > 1e-6  # (H, W)
        assert changed.any(), kind
        if kind != "blotch":  # the blotch's Gaussian tail reaches beyond its square
            assert not (changed & ~m[i]).any(), kind
        if kind == "erase":
            assert torch.all(a[i][:, m[i]] == 0.5)
    u0 = u.clone()
    synthetic_anomalies(u, seed=0)
    assert torch.equal(u, u0)  # inputs untouched


def test_synthetic_anomalies_reject_bad_input():
    with pytest.raises(ValueError, match="unit images"):
        synthetic_anomalies(_unit() * 2)
    with pytest.raises(ValueError, match="kinds"):
        synthetic_anomalies(_unit(), kinds=("scratch",))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        synthetic_anomalies(np.zeros((2, 8, 8)))


def test_holdout_indices_disjoint_cover_deterministic():
    keep, hold = holdout_indices(50, 0.1, seed=1)
    assert len(hold) == 5 and len(keep) == 45
    assert sorted(torch.cat([keep, hold]).tolist()) == list(range(50))
    k2, h2 = holdout_indices(50, 0.1, seed=1)
    assert torch.equal(hold, h2) and torch.equal(keep, k2)
    with pytest.raises(ValueError, match="fewer than 2"):
        holdout_indices(3, 0.5, seed=0)


# ------------------------------------------------------------------------------------------------ selection modes
def test_synthetic_selection_sees_no_label_and_holds_out_training_images_only(digits, monkeypatch):
    images, labels = digits
    train, test, y = one_class_digits(images, labels, 0, 100)
    val_x, val_y = _val(test, y)
    made_from: list[Tensor] = []
    real = detector_mod.defective_copies

    def spy(u, seed=0):
        made_from.append(u.clone())
        out = real(u, seed)
        assert len(out) == 5 * len(u)  # one copy per defect kind
        return out

    monkeypatch.setattr(detector_mod, "defective_copies", spy)
    det = anogen.create("ae", selection="synthetic", **TINY_AE).fit(train, val_x=val_x, val_y=val_y)
    # the defects were made from held-out training images, never from validation images
    tr_u, va_u = det._unit_images(train), det._unit_images(val_x)
    held = made_from[0]
    assert len(made_from) == 1 and len(held) == 10
    assert all((tr_u == h).flatten(1).all(1).any() for h in held)
    assert not any((va_u == h).flatten(1).all(1).any() for h in held)
    # the kept state is the synthetic choice, and flipping every validation label changes nothing but the
    # (informational) val_auroc entries
    assert det.best_epoch_ == pick_epochs(det.history_, 10, 50)["synthetic"] and not hasattr(det, "val_auroc_")
    flipped = anogen.create("ae", selection="synthetic", **TINY_AE).fit(train, val_x=val_x, val_y=1 - val_y)
    assert flipped.best_epoch_ == det.best_epoch_
    np.testing.assert_array_equal(flipped.decision_function(test), det.decision_function(test))
    # val_y=None: no labelled AUROC at all; same state as above (labels never steer)
    nolab = anogen.create("ae", selection="synthetic", **TINY_AE).fit(train)
    assert all("val_auroc" not in r for r in nolab.history_)
    assert [r["synthetic_auroc"] for r in nolab.history_ if "synthetic_auroc" in r] == \
           [r["synthetic_auroc"] for r in det.history_ if "synthetic_auroc" in r]
    np.testing.assert_array_equal(nolab.decision_function(test), det.decision_function(test))


def test_auto_without_labels_is_synthetic_with_holdout_threshold(digits):
    images, labels = digits
    train, test, y = one_class_digits(images, labels, 0, 100)
    det = anogen.create("ae", **TINY_AE).fit(train)
    assert det.selection_ == "synthetic" and det.health_["normals"] == "holdout"
    assert len(det.decision_scores_) == len(train)  # every training image, held-out ones included
    keep, hold = holdout_indices(len(train), det.holdout, det.seed)
    held_scores = det.decision_function(train[hold.numpy()])
    np.testing.assert_allclose(det.decision_scores_[hold.numpy()], held_scores, rtol=1e-5)
    assert det.threshold_ == pytest.approx(float(np.quantile(held_scores, 1 - det.contamination)), rel=1e-5)
    assert any("synthetic_auroc" in r for r in det.history_)
    # same seed, same result
    again = anogen.create("ae", **TINY_AE).fit(train)
    np.testing.assert_array_equal(again.decision_function(test), det.decision_function(test))
    # auto with labels: labelled selection, no hold-out (training on every image, as before)
    vx, vy = _val(test, y)
    lab = anogen.create("ae", **TINY_AE).fit(train, val_x=vx, val_y=vy)
    assert lab.selection_ == "labels" and lab.health_["normals"] == "validation" and lab.val_auroc_ is not None
    assert lab.train_stats_["n"] == len(train) and all("synthetic_auroc" not in r for r in lab.history_)


def test_last_keeps_the_final_state(digits):
    images, labels = digits
    train, test, y = one_class_digits(images, labels, 0, 100)
    vx, vy = _val(test, y)
    last = anogen.create("ae", selection="last", **TINY_AE).fit(train, val_x=vx, val_y=vy)
    assert not hasattr(last, "best_epoch_")
    cfg = {**TINY_AE, "val_every": 100}
    plain = anogen.create("ae", selection="last", **cfg).fit(train)  # no validation at all: the same training
    np.testing.assert_array_equal(plain.decision_function(test), last.decision_function(test))


def test_selection_errors(digits):
    images, labels = digits
    train, _, _ = one_class_digits(images, labels, 0, 100)
    with pytest.raises(InputError, match="selection='labels' needs labelled"):
        anogen.create("ae", selection="labels", **TINY_AE).fit(train)
    with pytest.raises(ValueError, match="selection must be one of"):
        anogen.create("ae", selection="best", **TINY_AE).fit(train)
    with pytest.raises(InputError, match="feature vectors"):
        anogen.create("gmm", selection="synthetic").fit(np.random.default_rng(0).normal(size=(50, 4)))
    gmm = anogen.create("gmm").fit(np.random.default_rng(0).normal(size=(50, 4)))  # auto on vectors: last
    assert gmm.selection_ == "last" and gmm.health_["checked"] is False


# ------------------------------------------------------------------------------------------------ health check
@dataclass(kw_only=True)
class _Constant(Detector):
    """Scores every input 0: a model trained to be useless."""

    name = "constant-test"
    iterative = False

    def build(self, input_shape):
        self.nets_ = nn.ModuleDict({"dummy": nn.Linear(1, 1)})

    def fit_once(self, x):
        pass

    def score_batch(self, x):
        return torch.zeros(len(x))


def test_health_warns_on_a_useless_model(digits, tmp_path):
    images, labels = digits
    train, _, _ = one_class_digits(images, labels, 0, 100)
    with pytest.warns(HealthWarning, match=r"does not separate normal images from synthetic defects \(AUROC 0.50"):
        det = _Constant(image_size=16, channels=1, verbose=False, selection="synthetic").fit(train)
    assert det.health_["ok"] is False and det.health_["synthetic_auroc"] == 0.5
    # an untrained network (one step at learning rate ~0) fares no better
    with pytest.warns(HealthWarning, match="does not separate"):
        anogen.create("ae", **{**TINY_AE, "epochs": 1, "lr": 1e-12}).fit(train)


def test_health_saved_with_the_model(digits, tmp_path):
    images, labels = digits
    train, _, _ = one_class_digits(images, labels, 0, 100)
    det = anogen.create("ae", **TINY_AE).fit(train)
    loaded = anogen.load(det.save(tmp_path / "m.anogen"))
    assert loaded.health_ == det.health_ and loaded.metadata_["selection"] == "synthetic"
    assert loaded.synthetic_auroc_ == det.synthetic_auroc_


def test_health_report_overfitting_and_auroc():
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, 300)
    same = health_report("x", train, rng.normal(0, 1, 40), rng.normal(3, 1, 40), "holdout")
    assert same["ok"] and same["synthetic_auroc"] > 0.9 and same["ks"] < 0.5
    over = health_report("x", train, rng.normal(4, 1, 40), rng.normal(8, 1, 40), "holdout")
    assert not over["ok"] and over["ks"] > 0.9 and over["shift"] > 0
    assert any("overfitting" in w for w in over["warnings"]) and len(over["warnings"]) == 1
    bad = health_report("x", train, rng.normal(0, 1, 40), rng.normal(0, 1, 40) - 1, "holdout")
    assert bad["synthetic_auroc"] < 0.5 and "below 0.5" in bad["warnings"][0]
    assert health_report("x", train, None, None, "")["checked"] is False


@pytest.mark.slow
def test_no_warning_on_the_demo_setting():
    """ALGAN, preset cpu, one-class digits with 0 normal (``anogen demo``): healthy."""
    from anogen.commands import DEMO_SPEC
    from anogen.run import fit_kwargs as _fit_kwargs
    from anogen.data.spec import load_spec
    from anogen.detectors.algan import PRESETS

    split = load_spec(DEMO_SPEC, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", HealthWarning)
        det = anogen.create("algan", **{**PRESETS["cpu"], "channels": 1, "verbose": False})
        det.fit(split.train.x, **_fit_kwargs(split.val))
    assert det.health_["ok"] and det.health_["synthetic_auroc"] >= 0.6


# ------------------------------------------------------------------------------------------------ intensity
def test_standardize_removes_brightness_and_contrast():
    u = _unit(4) * 0.5 + 0.2  # in [0.2, 0.7]: no clipping under x1.1
    s = standardize_intensity(u)
    torch.testing.assert_close(s.mean(dim=(1, 2, 3)), torch.full((4,), 0.5), atol=1e-5, rtol=0)
    torch.testing.assert_close(standardize_intensity(u * 1.1), s, atol=1e-5, rtol=0)
    torch.testing.assert_close(standardize_intensity(u * 0.8 + 0.1), s, atol=1e-5, rtol=0)
    flat = standardize_intensity(torch.full((1, 1, 4, 4), 0.3))
    assert torch.allclose(flat, torch.full_like(flat, 0.5))
    with pytest.raises(ValueError, match="intensity"):
        Preprocess(image_size=8, channels=1, intensity="equalize")


def test_intensity_option_applied_at_fit_and_scoring_and_saved(digits, tmp_path):
    images, labels = digits
    train, test, y = one_class_digits(images, labels, 0, 100)
    det = anogen.create("ae", intensity="standardize", **TINY_AE).fit(train)
    u = det._unit_images(test) * 0.5 + 0.25  # a darker, lower-contrast camera
    np.testing.assert_allclose(det.decision_function(u * 1.2), det.decision_function(u), rtol=1e-3, atol=1e-5)
    loaded = anogen.load(det.save(tmp_path / "m.anogen"))
    assert loaded.preprocess.intensity == "standardize" and loaded.metadata_["preprocess"]["intensity"] == "standardize"
    np.testing.assert_array_equal(loaded.decision_function(test), det.decision_function(test))
    plain = anogen.create("ae", **TINY_AE).fit(train)
    assert np.abs(plain.decision_function(u * 1.2) - plain.decision_function(u)).max() > 1e-3  # it would move


# ------------------------------------------------------------------------------------------------ measurements
def test_pick_epochs_and_selection_metrics():
    hist = [{"epoch": 1}, {"epoch": 2, "val_auroc": 0.7, "synthetic_auroc": 0.9},
            {"epoch": 4, "val_auroc": 0.8, "synthetic_auroc": 0.9}, {"epoch": 6, "val_auroc": 0.8, "synthetic_auroc": 0.85}]
    assert pick_epochs(hist) == {"labels": 4, "synthetic": 2, "synthetic_best": 2, "last": 6}
    sel = selection_metrics(hist, {2: 0.5, 4: 0.6, 6: 0.7})
    assert sel["labels"] == {"epoch": 4, "picked_on": 0.8, "test_auroc": 0.6}
    assert sel["synthetic"]["test_auroc"] == 0.5 and sel["last"]["test_auroc"] == 0.7
    # with the synthetic set's sizes: 0.9 vs 0.85 is clear for 1000 x 5000, not for 4 x 20 (the last state is kept)
    assert pick_epochs(hist, 1000, 5000)["synthetic"] == 2 and pick_epochs(hist, 4, 20)["synthetic"] == 6


def test_auroc_se_and_synthetic_choice():
    from anogen.health import auroc_se, synthetic_choice

    # Hanley & McNeil's Table 1 region: AUROC 0.9 with 50 + 50 cases has SE about 0.03
    assert 0.025 < auroc_se(0.9, 50, 50) < 0.035 and auroc_se(0.9, 500, 500) < auroc_se(0.9, 50, 50)
    hist = [{"epoch": 4, "synthetic_auroc": 0.70}, {"epoch": 8, "synthetic_auroc": 0.66}]
    assert synthetic_choice(hist, 11, 55) == 8 and synthetic_choice(hist, 2000, 10000) == 4
    assert synthetic_choice([{"epoch": 1}], 10, 50) is None


def test_shift_images():
    u = torch.tensor([[[[0.0, 0.25, 1.0]]]])
    torch.testing.assert_close(shift_images(u, "brightness", 1.1), torch.tensor([[[[0.0, 0.275, 1.0]]]]))
    torch.testing.assert_close(shift_images(u, "gamma", 2.0), torch.tensor([[[[0.0, 0.0625, 1.0]]]]))
    with pytest.raises(ValueError):
        shift_images(u, "hue", 1.0)


def test_selection_tracker_leaves_training_unchanged(digits):
    from anogen.evaluations import selection_tracker

    images, labels = digits
    train, test, y = one_class_digits(images, labels, 0, 100)
    cfg = dict(image_size=16, channels=1, n_conv=2, n_channels=8, latent_dim=4, epochs=4, val_every=2, verbose=False)
    ref = anogen.create("vae", **cfg)
    ref.fit(train)
    det = anogen.create("vae", **cfg)
    det._on_validate, aucs = selection_tracker(det, test, y)
    det.fit(train)
    assert sorted(aucs) == [2, 4]
    np.testing.assert_array_equal(det.decision_function(test), ref.decision_function(test))
    assert abs(aucs[det.best_epoch_] - roc_auc_score(y, det.decision_function(test))) < 1e-9


def test_report_tables_and_drift_figure(tmp_path):
    from anogen import report

    hist = [{"epoch": 1, "val_auroc": 0.9, "synthetic_auroc": 0.5}, {"epoch": 2, "val_auroc": 0.7, "synthetic_auroc": 0.9},
            {"epoch": 3, "val_auroc": 0.8, "synthetic_auroc": 0.1}]
    sel = [{"suite": "selection-digits", "detector": d, "history": hist, "health": {"n_heldout": 100}, "selection": {
        "labels": {"epoch": 1, "test_auroc": a}, "synthetic": {"epoch": 2, "test_auroc": b},
        "last": {"epoch": 3, "test_auroc": c}}}
        for d, a, b, c in [("ae", 0.9, 0.8, 0.7), ("ae", 0.7, 0.8, 0.7), ("vae", 1.0, 1.0, 0.9)]]
    head, rows = report.selection_table(sel)
    assert rows[0][:7] == ["digits", "ae", "2", "0.800", "0.800", "0.800", "0.700"] and rows[0][7] == "+0.000"
    assert rows[-1][1] == "**mean over detectors**" and rows[-1][3] == "**0.900**" and rows[-1][8] == "**+0.100**"
    drift = [{"suite": "drift", "detector": "ae", "variant": v, "drift": {"none": 0.8, "gamma 0.8": g}}
             for v, g in (("plain", 0.7), ("standardize", 0.79))]
    head, rows = report.drift_table(drift)
    assert head[-1] == "largest drop" and rows[0][-1] == "+0.100" and rows[1][-1] == "+0.010"
    drops = report.drift_drops(drift)
    assert drops["plain"]["ae"]["gamma 0.8"] == pytest.approx(-0.1)
    text = report.issue14_markdown([{**r, "git_commit": "abc"} for r in sel + drift], tmp_path)
    assert (tmp_path / "drift.png").stat().st_size > 1000 and "Lighting drift" in text and "Model selection" in text


def test_train_pipeline_and_info_show_health(tmp_path, capsys):
    import json

    from rich.console import Console

    from anogen import cli
    from anogen.run import train_and_report

    console = Console(record=True, width=200)
    cfg = {k: v for k, v in TINY_AE.items() if k != "verbose"} | {"epochs": 1, "lr": 1e-12, "verbose": False}
    with pytest.warns(HealthWarning):
        rec = train_and_report("ae", cfg, "digits:normal=0", tmp_path, console=console)
    from anogen.commands import _print_summary

    _print_summary(console, rec)  # what anogen train prints after training
    text = console.export_text()
    assert "health check on" in text and "WARNING" in text and "does not separate normal images" in text
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["health"] == rec["health"] and saved["health"]["ok"] is False and saved["selection"] == "labels"
    capsys.readouterr()
    assert cli.main(["info", str(tmp_path / "model.anogen")]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["health"]["synthetic_auroc"] == rec["health"]["synthetic_auroc"]
    assert "does not separate normal images" in out.err


def test_onnx_graph_standardizes_intensity(digits, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from anogen.export import EXPORT_RTOL, export_onnx, run_onnx

    images, labels = digits
    train, test, _ = one_class_digits(images, labels, 0, 100)
    det = anogen.create("ae", intensity="standardize", **TINY_AE).fit(train)
    path = export_onnx(det, tmp_path / "m.onnx", check=False)
    unit = det._unit_images(test[:16]).numpy()
    got, want = run_onnx(path, unit)["score"], det.decision_function(test[:16])
    assert np.abs(got - want).max() <= EXPORT_RTOL * max(np.abs(want).max(), 1e-12)
