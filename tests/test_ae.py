"""The plain convolutional autoencoder: its score equals the L2 error it claims, and it learns digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import anogen
from anogen.metrics import auroc
from conftest import one_class_digits


def test_score_is_mean_squared_reconstruction_error(digits):
    images, _ = digits
    det = anogen.create("ae", epochs=1, image_size=16, channels=1, width=8, latent_dim=8, verbose=False)
    det.fit(images[:32])
    x = det.preprocess(images[40:44])
    with torch.no_grad():
        expected = ((det.reconstruct(x) - x) ** 2).mean(dim=(1, 2, 3))
    np.testing.assert_allclose(det.decision_function(images[40:44]), expected.double().numpy(), rtol=1e-6)
    maps = det.anomaly_maps(images[40:44])
    assert maps.shape == (4, 16, 16)
    np.testing.assert_allclose(maps.mean(axis=(1, 2)), expected.numpy(), rtol=1e-5)


@pytest.mark.slow
def test_ae_learns_one_class_digits(digits):
    train, test, y = one_class_digits(*digits, normal=0, n_train=120, seed=0)
    det = anogen.create("ae", epochs=15, batch_size=16, image_size=16, channels=1, width=16, latent_dim=16,
                        verbose=False, seed=0)
    auc = auroc(y, det.fit(train).decision_function(test))
    print(f"AE one-class digits (0 normal) AUROC = {auc:.3f}")
    assert auc >= 0.85
