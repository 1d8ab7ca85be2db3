"""Shared fixtures: small real data from scikit-learn's digits (tests never read the project-wide data folder)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # tiny nets: one thread is faster than two on a busy 2-core machine


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn digits as uint8 images (1797, 8, 8) in 0-255 and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.round(d.images * 255.0 / 16.0).astype(np.uint8), d.target.astype(np.int64)


def one_class_digits(images: np.ndarray, labels: np.ndarray, normal: int, n_train: int, seed: int = 0):
    """Train on ``n_train`` images of digit ``normal``; test on the remaining normals and all other digits."""
    rng = np.random.default_rng(seed)
    norm_idx = rng.permutation(np.flatnonzero(labels == normal))
    train = images[norm_idx[:n_train]]
    test_idx = np.concatenate([norm_idx[n_train:], np.flatnonzero(labels != normal)])
    return train, images[test_idx], (labels[test_idx] != normal).astype(int)
