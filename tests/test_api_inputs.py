"""Every public scoring method takes every input form ``decision_function`` takes (numpy array, tensor, list of image
paths, folder), and the old name of the per-method map hook fails with a message saying what to call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import anogen
from anogen import Detector


@pytest.fixture(scope="module")
def fitted_ae(digits: tuple[np.ndarray, np.ndarray]) -> tuple[Detector, np.ndarray]:
    images, labels = digits
    det = anogen.create("ae", image_size=16, channels=1, epochs=1, batch_size=16, width=8, latent_dim=8,
                        max_width=16, verbose=False, seed=0)
    det.fit(images[labels == 0][:64])
    return det, images[labels != 0][:10]  # (10, 8, 8) uint8


def _forms(images: np.ndarray, folder: Path) -> dict[str, object]:
    folder.mkdir()
    paths = []
    for i, im in enumerate(images):
        p = folder / f"{i:02d}.png"
        Image.fromarray(im).save(p)  # PNG is lossless: the same pixels come back
        paths.append(p)
    return {
        "tensor": torch.from_numpy(images[:, None].astype(np.float32) / 255.0),  # (N, 1, H, W) in [0, 1]
        "paths": paths,
        "path strings": [str(p) for p in paths],
        "folder": folder,
    }


def test_every_public_method_takes_every_input_form(fitted_ae: tuple[Detector, np.ndarray], tmp_path: Path) -> None:
    det, images = fitted_ae
    maps, scores, labels = det.anomaly_maps(images), det.decision_function(images), det.predict(images)
    assert maps.shape == (len(images), 16, 16) and np.isfinite(maps).all() and maps.std() > 0
    for form, data in _forms(images, tmp_path / "imgs").items():
        np.testing.assert_array_equal(det.anomaly_maps(data), maps, err_msg=form)
        np.testing.assert_array_equal(det.decision_function(data), scores, err_msg=form)
        np.testing.assert_array_equal(det.predict(data), labels, err_msg=form)


def test_old_hook_name_gives_a_clear_error(fitted_ae: tuple[Detector, np.ndarray]) -> None:
    det, images = fitted_ae
    with pytest.raises(AttributeError, match=r"renamed: call anomaly_maps\(x\).*map_batch\(x\)"):
        det.anomaly_map(images)  # before the rename: a raw torch TypeError deep inside the network
    assert not hasattr(det, "anomaly_map")


def test_a_method_file_with_the_old_hook_name_is_refused() -> None:
    with pytest.raises(TypeError, match="map_batch"):
        class OldStyle(Detector):  # noqa: F841
            def anomaly_map(self, x: torch.Tensor) -> torch.Tensor:
                return x[:, 0]
