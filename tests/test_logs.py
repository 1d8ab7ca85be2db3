"""Training logs: TensorBoard event files from fit(log_dir=...) / anogen train --log-dir, MLflow where a run is active."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

import anogen
from anogen.cli import main

pytest.importorskip("tensorboard", reason="the training logs need the tensorboard package (pip install 'anogen[logs]')")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def _events(path):
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def zeros(digits):
    images, labels = digits
    torch.set_num_threads(1)
    normal, other = images[labels == 0], images[labels == 1]
    return normal[:64], np.concatenate([normal[64:80], other[:16]]), np.r_[np.zeros(16), np.ones(16)]


def _algan(**kw):
    return anogen.create("algan", image_size=8, channels=1, width=8, max_width=16, latent_dim=8, epochs=4,
                        batch_size=16, val_every=2, verbose=False, device="cpu", **kw)


def test_algan_writes_losses_auroc_and_generated_images(tmp_path, zeros):
    train, vx, vy = zeros
    det = _algan().fit(train, val_x=vx, val_y=vy, log_dir=tmp_path)
    acc = _events(tmp_path)
    tags = acc.Tags()
    steps = 4 * (len(train) // 16)
    for loss in det.history_[0]:
        if loss not in ("epoch", "val_auroc"):
            assert [e.step for e in acc.Scalars(f"loss/{loss}")] == list(range(1, steps + 1))
            np.testing.assert_allclose([e.value for e in acc.Scalars(f"epoch/{loss}")],
                                       [h[loss] for h in det.history_], rtol=1e-5)
    auroc = acc.Scalars("epoch/val_auroc")
    assert [e.step for e in auroc] == [2, 4] and all(0 <= e.value <= 1 for e in auroc)
    assert "images/generated" in tags["images"] and len(acc.Images("images/generated")) == 4  # every epoch here
    assert acc.Scalars("fit/threshold")[0].value == pytest.approx(det.threshold_)
    assert not hasattr(det, "_log")  # the writer is closed and gone after fit


def test_logging_changes_nothing(tmp_path, zeros):
    train, vx, vy = zeros
    a = _algan().fit(train, log_dir=tmp_path)
    b = _algan().fit(train)
    np.testing.assert_array_equal(a.decision_function(vx), b.decision_function(vx))


def test_reconstructions_for_an_autoencoder(tmp_path, zeros):
    train, _, _ = zeros
    anogen.create("ae", image_size=8, channels=1, width=8, latent_dim=8, epochs=2, verbose=False,
                  device="cpu").fit(train, log_dir=tmp_path)
    acc = _events(tmp_path)
    imgs = acc.Images("images/reconstructions")
    assert len(imgs) == 2 and imgs[0].height > 0


def test_closed_form_detector_logs_its_threshold(tmp_path, zeros):
    train, _, _ = zeros
    det = anogen.create("gmm", image_size=8, pca_components=4, n_components=1, verbose=False).fit(train,
                                                                                                 log_dir=tmp_path)
    assert _events(tmp_path).Scalars("fit/threshold")[0].value == pytest.approx(det.threshold_)


def test_mlflow_gets_the_scalars_when_a_run_is_active(tmp_path, zeros, monkeypatch):
    calls = {"metric": [], "params": []}
    stub = types.SimpleNamespace(
        active_run=lambda: object(),
        log_metric=lambda k, v, step=None: calls["metric"].append((k, v, step)),
        log_params=lambda d: calls["params"].append(d),
    )
    monkeypatch.setitem(sys.modules, "mlflow", stub)
    train, vx, vy = zeros
    _algan().fit(train, val_x=vx, val_y=vy, log_dir=tmp_path)
    names = {k for k, _, _ in calls["metric"]}
    assert "epoch_val_auroc" in names and any(n.startswith("loss_") for n in names)
    assert calls["params"][0]["detector"] == "algan"


def test_cli_log_dir(tmp_path, capsys):
    rc = main(["train", "ae", "--data", "digits:normal=0", "--out", str(tmp_path / "o"), "--log-dir",
               str(tmp_path / "logs"), "--image-size", "8", "--width", "8", "--latent-dim", "8", "--epochs", "2",
               "--no-verbose"])
    assert rc == 0, capsys.readouterr().err
    tags = _events(tmp_path / "logs").Tags()
    assert any(t.startswith("loss/") for t in tags["scalars"]) and "images/reconstructions" in tags["images"]
