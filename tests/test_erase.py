"""The erase protocol (Matsubara et al. IV-A, the SVHN toy), pixel AUROC on its masks, and the SVHN / CIFAR-10
loaders on small fixtures written in the real on-disk formats (``.mat`` files; pickled python batches)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from anogen import metrics
from anogen.data import protocols
from anogen.data.base import ImageSet
from anogen.data.cifar import label_names, load_cifar10, read_batch
from anogen.data.spec import describe, load_spec
from anogen.data.svhn import load_svhn, read_svhn_mat


def _set(n: int, size: int = 12, channels: int = 0, n_classes: int = 5, seed: int = 0) -> ImageSet:
    """Images with no black and no mid-gray pixel (so an erased pixel always changes, the default gray fill and a
    black one alike), classes 0..n_classes-1, names."""
    rng = np.random.default_rng(seed)
    shape = (n, size, size) + ((channels,) if channels else ())
    x = rng.integers(1, 256, size=shape, dtype=np.uint8)
    x[x == 128] = 129
    return ImageSet(x, np.zeros(n, dtype=np.int64), names=[f"s{i}" for i in range(n)],
                    classes=np.arange(n) % n_classes)


# ---------------------------------------------------------------------------------------------- erasing
def test_erase_squares_change_exactly_the_mask():
    ds = _set(50, size=10, channels=3)
    out, masks = protocols.erase_squares(ds.x, 4, np.random.default_rng(0), fill=0.0)
    assert masks.shape == (50, 10, 10) and masks.dtype == bool
    assert (masks.sum((1, 2)) == 16).all()
    changed = (out != ds.x).any(-1)  # (N, H, W): any channel differs
    np.testing.assert_array_equal(changed, masks)
    assert (out[masks] == 0).all()  # black in every channel
    for m in masks:  # 16 pixels forming a 4 x 4 block inside the image
        r, c = np.argwhere(m)[0]
        assert r <= 6 and c <= 6 and m[r : r + 4, c : c + 4].all()
    # the corner is uniform over every valid position: all of them occur
    _, many = protocols.erase_squares(_set(2000, size=6).x, 3, np.random.default_rng(1))
    corners = np.array([np.argwhere(m)[0] for m in many])
    assert set(map(tuple, corners)) == {(r, c) for r in range(4) for c in range(4)}
    with pytest.raises(ValueError, match="1..10"):
        protocols.erase_squares(ds.x, 11, np.random.default_rng(0))


def test_erase_fill_is_the_papers_gray_by_default_and_configurable():
    """VI-A: "the anomalous regions (the gray squares)": mid-gray, 0.5 of the range (128 of uint8) by default."""
    x = np.zeros((20, 8, 8), dtype=np.uint8)  # MNIST-like black background: a black square would change nothing
    out, masks = protocols.erase_squares(x, 4, np.random.default_rng(0))
    assert (out[masks] == 128).all() and (out[~masks] == 0).all()
    out, _ = protocols.erase_squares(x, 4, np.random.default_rng(0), fill=1.0)
    assert out.max() == 255
    xf = np.zeros((3, 8, 8, 3), dtype=np.float32)
    out, masks = protocols.erase_squares(xf, 2, np.random.default_rng(0), fill=0.25)
    assert np.allclose(out[masks], 0.25)
    with pytest.raises(ValueError, match="fraction"):
        protocols.erase_squares(x, 4, np.random.default_rng(0), fill=128)
    gray, black = load_spec("erase:digits,k=2"), load_spec("erase:digits,k=2,fill=0")
    assert gray.test.x.max() > 0 and "fill=0.5" in gray.name and "fill=0.0" in black.name
    anomalies = gray.test.y == 1
    assert (gray.test.x[anomalies][gray.test.masks[anomalies]] == 128).all()
    assert (black.test.x[black.test.y == 1][black.test.masks[black.test.y == 1]] == 0).all()
    with pytest.raises(ValueError, match="fill"):
        load_spec("erase:digits,fill=gray")


def test_erase_protocol_counts_and_masks():
    ds = _set(500)
    s = protocols.erase_protocol(ds, k=4, contamination=0.02, val_fraction=0.2, test_fraction=0.2, seed=3)
    assert len(s.train) == 300 and len(s.val) == 2 * 100 and len(s.test) == 2 * 100
    # training set: 2 % of its images erased, labels all 0 (unlabelled), masks telling which
    erased = s.train.masks.any((1, 2))
    assert erased.sum() == 6 and (s.train.y == 0).all()
    assert s.info["train_erased"] == np.flatnonzero(erased).tolist()
    assert (s.train.masks[erased].sum((1, 2)) == 16).all()
    originals = {n: ds.x[int(n[1:])] for n in ds.names}
    for img, name, m in zip(s.train.x, s.train.names, s.train.masks):
        np.testing.assert_array_equal(img != originals[name], m)
    # validation and test: originals first (label 0, empty masks), then an erased copy of each (label 1)
    for part in (s.val, s.test):
        n = len(part) // 2
        assert (part.y[:n] == 0).all() and (part.y[n:] == 1).all()
        assert not part.masks[:n].any() and (part.masks[n:].sum((1, 2)) == 16).all()
        np.testing.assert_array_equal(part.x[:n], np.stack([originals[m] for m in part.names[:n]]))
        np.testing.assert_array_equal(part.x[n:] != part.x[:n], part.masks[n:])
        assert part.names[n:] == [f"{m}#erased" for m in part.names[:n]]
        np.testing.assert_array_equal(part.classes[n:], part.classes[:n])
    # the three sets share no source image; stratified by class
    base = [set(p.names[: len(p) // 2] if p is not s.train else p.names) for p in (s.train, s.val, s.test)]
    assert not (base[0] & base[1] or base[0] & base[2] or base[1] & base[2])
    assert {c: (s.train.classes == c).sum() for c in range(5)} == {c: 60 for c in range(5)}


def test_erase_protocol_is_reproducible():
    ds = _set(200, channels=3)
    a, b = (protocols.erase_protocol(ds, seed=7) for _ in range(2))
    for pa, pb in ((a.train, b.train), (a.val, b.val), (a.test, b.test)):
        np.testing.assert_array_equal(pa.x, pb.x)
        np.testing.assert_array_equal(pa.masks, pb.masks)
        np.testing.assert_array_equal(pa.y, pb.y)
    c = protocols.erase_protocol(ds, seed=8)
    assert not np.array_equal(a.test.masks, c.test.masks)


def test_erase_protocol_with_a_test_set_and_normal_classes():
    train, test = _set(300, seed=1), _set(40, seed=2)
    test.y[:5] = 1  # a source's own anomalies are left out
    s = protocols.erase_protocol(train, test, contamination=0.01, val_fraction=0.1, seed=0)
    assert len(s.train) == 270 and s.train.masks.any((1, 2)).sum() == 3 and len(s.val) == 60
    assert len(s.test) == 70 and s.test.y.sum() == 35
    s = protocols.erase_protocol(train, test, normal=[1, 3], val_fraction=0, seed=0)
    assert s.val is None and set(np.unique(s.train.classes)) == {1, 3} and len(s.train) == 120
    assert set(np.unique(s.test.classes)) == {1, 3}
    with pytest.raises(ValueError, match="among the classes present"):
        protocols.erase_protocol(train, normal=[7])
    with pytest.raises(ValueError, match="contamination"):
        protocols.erase_protocol(train, contamination=1.0)
    with pytest.raises(ValueError, match="array images"):
        protocols.erase_protocol(ImageSet(["a.png", "b.png"], np.zeros(2)))


def test_pixel_auroc_on_erase_masks():
    s = protocols.erase_protocol(_set(100), seed=0)
    masks = s.test.masks
    rng = np.random.default_rng(0)
    perfect = masks.astype(np.float64) + rng.uniform(0, 0.5, masks.shape)
    assert metrics.pixel_auroc(masks, perfect) == 1.0
    assert metrics.pixel_auroc(list(masks), list(np.zeros(masks.shape))) == 0.5
    assert metrics.pixel_auroc(masks, rng.uniform(size=masks.shape)) == pytest.approx(0.5, abs=0.05)


def test_erase_spec_on_digits():
    s = load_spec("erase:digits,k=2,contamination=0.05,val=0.1", seed=1)
    assert len(s.train) == 1258 and s.train.masks.any((1, 2)).sum() == round(0.05 * 1258)
    assert len(s.val) == 2 * 180 and len(s.test) == 2 * 359
    assert (s.test.masks[s.test.y == 1].sum((1, 2)) == 4).all()
    assert s.info["spec"] == "erase:digits,k=2,contamination=0.05,val=0.1" and s.info["k"] == 2
    s = load_spec("erase:digits,normal=3+4", seed=0)
    assert set(np.unique(s.train.classes)) == {3, 4}
    assert "erase:SOURCE" in describe()
    for bad, match in [("erase:coil:/x", "array source"), ("erase:digits:/x", "takes no path"),
                       ("erase:svhn", "needs a path"), ("erase:svhn:/no/such", "path not found"),
                       ("erase:digits,k=x", "k must be an integer")]:
        with pytest.raises(ValueError, match=match):
            load_spec(bad)


# ---------------------------------------------------------------------------------------------- SVHN
def _svhn_dir(root: Path, n_train: int = 12, n_test: int = 7) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """train_32x32.mat / test_32x32.mat as scipy writes MATLAB 5 files: X (32, 32, 3, N) uint8, y (N, 1) 1-10."""
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for part, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)  # 1..10, 10 = digit 0
        savemat(root / f"{part}_32x32.mat", {"X": x, "y": y})
        out[part] = (x, y)
    return out


def test_svhn_round_trip(tmp_path):
    raw = _svhn_dir(tmp_path / "svhn")
    train, test = load_svhn(tmp_path / "svhn")
    for ds, (x, y) in ((train, raw["train"]), (test, raw["test"])):
        assert ds.x.shape == (len(y), 32, 32, 3) and ds.x.dtype == np.uint8 and (ds.y == 0).all()
        for i in range(len(y)):
            np.testing.assert_array_equal(ds.x[i], x[:, :, :, i])
        np.testing.assert_array_equal(ds.classes, y.ravel() % 10)
    assert train.classes[9] == 0 and train.classes[0] == 1  # label 10 -> digit 0
    s = load_spec(f"svhn:{tmp_path / 'svhn'},normal=3")
    assert (s.train.classes == 3).all() and len(s.test) == 7 and s.test.y.sum() == 6
    s = load_spec(f"erase:svhn:{tmp_path / 'svhn'},val=0.25", seed=0)
    assert len(s.train) == 9 and len(s.val) == 6 and len(s.test) == 14
    assert s.test.masks.shape == (14, 32, 32) and (s.test.masks[7:].sum((1, 2)) == 16).all()


def test_svhn_errors(tmp_path):
    from scipy.io import savemat

    with pytest.raises(FileNotFoundError, match="test_32x32.mat"):
        _svhn_dir(tmp_path / "a")
        os.remove(tmp_path / "a" / "test_32x32.mat")
        load_svhn(tmp_path / "a")
    savemat(tmp_path / "bad.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[11], [1]])})
    with pytest.raises(ValueError, match="labels must be 1-10"):
        read_svhn_mat(tmp_path / "bad.mat")
    savemat(tmp_path / "bad2.mat", {"X": np.zeros((32, 32, 2), np.uint8), "y": np.array([[1]])})
    with pytest.raises(ValueError, match="X uint8"):
        read_svhn_mat(tmp_path / "bad2.mat")
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ValueError, match="MATLAB"):
        read_svhn_mat(tmp_path / "junk.mat")


# ---------------------------------------------------------------------------------------------- CIFAR-10
_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def _cifar_dir(root: Path, per_batch: int = 4) -> dict[str, np.ndarray]:
    """cifar-10-batches-py as pickled dicts with byte keys (protocol 2, as the Python 2 originals)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = {}
    for b, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        img = rng.integers(0, 256, size=(per_batch, 32, 32, 3), dtype=np.uint8)  # (N, H, W, RGB)
        data = img.transpose(0, 3, 1, 2).reshape(per_batch, 3072)  # R plane, G plane, B plane, row-major
        labels = [(b * per_batch + i) % 10 for i in range(per_batch)]
        d = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
             b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(d, protocol=2))
        images[name] = img
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": _NAMES, b"num_vis": 3072}, protocol=2))
    return images


def test_cifar10_round_trip(tmp_path):
    images = _cifar_dir(tmp_path)
    train, test = load_cifar10(tmp_path)  # the parent folder works; so does the batches folder itself
    assert train.x.shape == (20, 32, 32, 3) and test.x.shape == (4, 32, 32, 3) and train.x.dtype == np.uint8
    np.testing.assert_array_equal(train.x, np.concatenate([images[f"data_batch_{i}"] for i in range(1, 6)]))
    np.testing.assert_array_equal(test.x, images["test_batch"])
    # channel order: the first 1024 values of a row are the red plane
    raw = read_batch(tmp_path / "cifar-10-batches-py" / "test_batch", tmp_path / "cifar-10-batches-py")
    np.testing.assert_array_equal(test.x[1, :, :, 0].ravel(), raw[b"data"][1, :1024])
    np.testing.assert_array_equal(test.x[1, :, :, 2].ravel(), raw[b"data"][1, 2048:])
    assert train.classes[:4].tolist() == [0, 1, 2, 3] and train.names[0] == "data_batch_1_0.png"
    assert label_names(tmp_path / "cifar-10-batches-py")[0] == "airplane"
    a = load_spec(f"cifar10:{tmp_path / 'cifar-10-batches-py'},normal=bird")
    b = load_spec(f"cifar10:{tmp_path},normal=2")
    np.testing.assert_array_equal(a.train.x, b.train.x)
    assert (a.train.classes == 2).all() and a.test.y.sum() == 3
    with pytest.raises(ValueError, match="unknown CIFAR-10 class"):
        load_spec(f"cifar10:{tmp_path},normal=unicorn")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar10_refuses_foreign_pickles_and_files_outside_the_folder(tmp_path):
    _cifar_dir(tmp_path / "c")
    folder = tmp_path / "c" / "cifar-10-batches-py"
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match="refusing to load"):
        load_cifar10(folder)
    outside = tmp_path / "elsewhere"
    outside.write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}, protocol=2))
    (folder / "test_batch").unlink()
    (folder / "test_batch").symlink_to(outside)
    with pytest.raises(ValueError, match="outside the dataset folder"):
        load_cifar10(folder)
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        (folder / "data_batch_3").unlink()
        load_cifar10(folder)
