"""Learning tests beyond digit 0 (issue 16, item 10): a representative subset of detectors (AE, VAE, GMM, ALGAN,
GANomaly, CE-BiGAN), each at its CPU preset on one-class digits with normal class 1, 2 and 9 -- the classes where the
trivial baseline is weakest (digit 0 is solved by it: AUROC 1.000) -- must beat the squared distance to the mean
training image, computed in the same test on the same split, by ``MARGIN`` AUROC. Where a detector is known not to,
the case is an xfail(strict=True) with the measured numbers, and its method doc says so.

About 35 s of CPU in total (one thread); the other detectors keep their own learning tests.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import anogen
from anogen.data.spec import load_spec
from anogen.metrics import auroc

MARGIN = 0.02
CLASSES = (1, 2, 9)
DETECTORS = ("ae", "vae", "gmm", "algan", "ganomaly", "ce_bigan")

KNOWN_FAILURES = {
    ("algan", 2): "ALGAN's CPU preset (16 px, 30 epochs) is within 0.02 of the mean-image baseline on digit 2 "
                  "(measured AUROC 0.971 vs 0.955)",
    ("algan", 9): "ALGAN's CPU preset is within 0.02 of the mean-image baseline on digit 9 (0.935 vs 0.928)",
    ("ce_bigan", 1): "CE-BiGAN's CPU preset scores digit 1 below the mean-image baseline (0.546 vs 0.871)",
    ("ce_bigan", 2): "CE-BiGAN's CPU preset scores digit 2 below the mean-image baseline (0.915 vs 0.955)",
    ("ce_bigan", 9): "CE-BiGAN's CPU preset is within 0.02 of the mean-image baseline on digit 9 (0.941 vs 0.928)",
}


def _cases():
    for det in DETECTORS:
        for c in CLASSES:
            reason = KNOWN_FAILURES.get((det, c))
            marks = [pytest.mark.slow] + ([pytest.mark.xfail(strict=True, reason=reason)] if reason else [])
            yield pytest.param(det, c, marks=marks, id=f"{det}-{c}")


def mean_image_auroc(split) -> float:
    """The trivial baseline: squared distance of each test image to the mean training image."""
    tr = split.train.x.reshape(len(split.train.x), -1).astype(np.float64)
    te = split.test.x.reshape(len(split.test.x), -1).astype(np.float64)
    return auroc(split.test.y, ((te - tr.mean(0)) ** 2).sum(1))


@pytest.mark.parametrize("name,normal", list(_cases()))
def test_beats_the_mean_image_baseline(name, normal):
    split = load_spec(f"digits:normal={normal}", seed=0)  # the digits suite's split (embedded data)
    baseline = mean_image_auroc(split)
    preset = importlib.import_module(f"anogen.detectors.{name}").PRESETS["cpu"]
    det = anogen.create(name, **preset, channels=1, verbose=False, seed=0).fit(split.train.x)
    got = auroc(split.test.y, det.decision_function(split.test.x))
    assert got >= baseline + MARGIN, f"{name} on digit {normal}: AUROC {got:.3f}, mean-image baseline {baseline:.3f}"
