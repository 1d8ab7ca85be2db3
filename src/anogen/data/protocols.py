"""Protocols: how a data source becomes train (normal only) / validation / test sets.

Every protocol returns a :class:`~anogen.data.base.Split` whose sets never share a sample, is reproducible for a
seed (``numpy.random.default_rng(seed)``) and, where it says so, stratified: each class (object, digit, defect type)
is shuffled on its own and dealt to the parts in the protocol's proportions (:func:`stratified_parts`), so every
class is split in those proportions to within a sample or two, and the whole to within one. Indices inside a part
keep the source's order (the training loop shuffles).

- :func:`one_class` / :func:`one_class_train_test`: chosen classes normal, the rest anomalous (digits, MNIST, ...).
- :func:`mvtec_split`: ALGAN's MVTec AD protocol (train/good; the test set halved into validation and test).
- :func:`mtd_split`: ALGAN's MTD protocol (normals 50/25/25; defects 50/50 between validation and test), or the
  lists of a splits file.
- :func:`coil_split`: ALGAN's COIL-100 protocol (n objects normal; normals 60/20/20; anomalies 50/50).
- :func:`folder_split`: anomalib's ``Folder`` defaults (normals into the test set where it has none; test halved).
- :func:`split_test`: any source with a normal train set and a labelled test set: the test set halved.
- :func:`erase_protocol`: Matsubara et al.'s SVHN toy (IV-A): anomalies are normal images with a k x k square
  erased; a contaminated training set; validation / test sets duplicated with one copy erased.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from anogen.data.base import ImageSet, Split


def _deal(n: int, fractions: Sequence[float]) -> np.ndarray:
    """Part index (n,) for each of n positions, so that every prefix is dealt in ``fractions`` to within one.

    Each position goes to the part furthest below its share so far (ties: the first part). Dealing a concatenation
    of shuffled classes with it splits each class, and the whole, in proportion.
    """
    f = np.asarray(fractions, dtype=np.float64)
    f = (f / f.sum()).tolist()
    got = [0] * len(f)
    out = np.empty(n, dtype=np.int64)
    for j in range(n):
        deficits = [fk * (j + 1) - g for fk, g in zip(f, got)]
        k = deficits.index(max(deficits))
        out[j] = k
        got[k] += 1
    return out


def stratified_parts(
    idx: np.ndarray, strata: np.ndarray, fractions: Sequence[float], rng: np.random.Generator
) -> list[np.ndarray]:
    """Split the indices ``idx`` into ``len(fractions)`` disjoint sorted parts, stratified by ``strata`` (per idx)."""
    idx, strata = np.asarray(idx, dtype=np.int64), np.asarray(strata)
    if len(idx) == 0:
        return [idx.copy() for _ in fractions]
    order = np.concatenate([rng.permutation(idx[strata == s]) for s in np.unique(strata)])
    part = _deal(len(order), fractions)
    return [np.sort(order[part == k]) for k in range(len(fractions))]


def _labelled(ds: ImageSet, anomalous: np.ndarray) -> ImageSet:
    return ImageSet(ds.x, anomalous.astype(np.int64), ds.masks, ds.names, ds.classes)


def _normal_mask(ds: ImageSet, normal: Sequence[Any], what: str) -> np.ndarray:
    """True where ``ds.classes`` is one of ``normal``; errors for unknown classes or no anomalies."""
    if ds.classes is None:
        raise ValueError(f"{what}: the image set has no classes to choose normal ones from")
    normal = list(normal)
    present = np.unique(ds.classes)
    unknown = [c for c in normal if c not in present]
    if not normal or unknown:
        raise ValueError(f"{what}: normal classes {normal} must be among the classes present, {present.tolist()}")
    is_normal = np.isin(ds.classes, normal)
    if is_normal.all():
        raise ValueError(f"{what}: every class is normal ({present.tolist()}); nothing is left as anomalous")
    return is_normal


def _one_class(
    ds: ImageSet, normal: Sequence[Any], val_fraction: float, test_fraction: float, labelled_val: bool,
    rng: np.random.Generator,
) -> tuple[ImageSet, ImageSet | None, ImageSet]:
    if not (0 <= val_fraction and 0 < test_fraction and val_fraction + test_fraction < 1):
        raise ValueError(f"need 0 <= val_fraction, 0 < test_fraction and their sum < 1; got {val_fraction}, "
                         f"{test_fraction}")
    is_normal = _normal_mask(ds, normal, "one_class")
    lab = _labelled(ds, ~is_normal)
    n_idx, a_idx = np.flatnonzero(is_normal), np.flatnonzero(~is_normal)
    tr, va, te = stratified_parts(n_idx, ds.classes[n_idx], (1 - val_fraction - test_fraction, val_fraction,
                                                             test_fraction), rng)
    if labelled_val and val_fraction > 0:
        # anomalies dealt val : test as the normals are, so both sets hold the same share of anomalies
        a_va, a_te = stratified_parts(a_idx, ds.classes[a_idx], (val_fraction, test_fraction), rng)
    else:
        a_va, a_te = a_idx[:0], a_idx
    val = lab.subset(np.sort(np.r_[va, a_va])) if val_fraction > 0 else None
    return lab.subset(tr), val, lab.subset(np.sort(np.r_[te, a_te]))


def _info(protocol: str, seed: int, **kw: Any) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple, np.ndarray)):
            return [plain(u) for u in v]
        return v.item() if isinstance(v, np.generic) else v

    return {"protocol": protocol, "seed": seed, **{k: plain(v) for k, v in kw.items()}}


def one_class(
    ds: ImageSet,
    normal: Sequence[Any],
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    labelled_val: bool = True,
    seed: int = 0,
    name: str = "",
) -> Split:
    """Chosen classes normal, the rest anomalous, from one pool of images.

    The normals are dealt train / val / test in ``1 - val_fraction - test_fraction`` : ``val_fraction`` :
    ``test_fraction``, stratified by class. With ``labelled_val`` the anomalies are dealt val : test in
    ``val_fraction`` : ``test_fraction`` (stratified by class), so validation holds the same share of anomalies as
    the test set; else every anomaly goes to test and validation is normal only (threshold calibration).

    Args:
        ds: images with ``classes`` (labels ``y`` are replaced: 1 = not a normal class).
        normal: the normal classes.
        val_fraction: share of the normals for validation (0: no validation set).
        test_fraction: share of the normals for the test set.
        labelled_val: whether validation gets anomalies too.
        seed: seed of ``numpy.random.default_rng``.
        name: the split's name.
    """
    rng = np.random.default_rng(seed)
    train, val, test = _one_class(ds, normal, val_fraction, test_fraction, labelled_val, rng)
    info = _info("one_class", seed, normal=list(normal), val_fraction=val_fraction, test_fraction=test_fraction,
                 labelled_val=labelled_val)
    return Split(train, val, test, name=name or f"one_class(normal={list(normal)})", info=info)


def one_class_train_test(
    train: ImageSet,
    test: ImageSet,
    normal: Sequence[Any],
    *,
    val_fraction: float = 0.2,
    labelled_val: bool = True,
    seed: int = 0,
    name: str = "",
) -> Split:
    """Chosen classes normal, for a source with its own test set (MNIST, Fashion-MNIST).

    The training normals are dealt train / val in ``1 - val_fraction`` : ``val_fraction`` (stratified by class);
    the test set is all of ``test``, relabelled. With ``labelled_val`` validation also gets anomalies drawn from
    the training set's other classes (stratified), as many as give it the test set's share of anomalies; the test
    set is never touched for validation.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"need 0 < val_fraction < 1, got {val_fraction}")
    rng = np.random.default_rng(seed)
    is_normal = _normal_mask(train, normal, "one_class_train_test")
    test_normal = _normal_mask(test, normal, "one_class_train_test (test set)")
    lab = _labelled(train, ~is_normal)
    n_idx, a_idx = np.flatnonzero(is_normal), np.flatnonzero(~is_normal)
    tr, va = stratified_parts(n_idx, train.classes[n_idx], (1 - val_fraction, val_fraction), rng)
    a_va = a_idx[:0]
    if labelled_val:
        ratio = (~test_normal).sum() / max(int(test_normal.sum()), 1)
        n_anom = min(int(round(len(va) * ratio)), len(a_idx))
        if 0 < n_anom:
            a_va = stratified_parts(a_idx, train.classes[a_idx], (n_anom, len(a_idx) - n_anom), rng)[0]
    info = _info("one_class_train_test", seed, normal=list(normal), val_fraction=val_fraction,
                 labelled_val=labelled_val)
    return Split(lab.subset(tr), lab.subset(np.sort(np.r_[va, a_va])), _labelled(test, ~test_normal),
                 name=name or f"one_class(normal={list(normal)})", info=info)


def _halve(train: ImageSet, test: ImageSet, val_fraction: float, rng: np.random.Generator) -> tuple[ImageSet, ImageSet]:
    if not 0 < val_fraction < 1:
        raise ValueError(f"need 0 < val_fraction < 1, got {val_fraction}")
    if (train.y != 0).any():
        raise ValueError(f"the training set must be normal only; it holds {int(train.y.sum())} anomalies")
    strata = test.y.astype(str)
    if test.classes is not None:
        strata = np.char.add(np.char.add(strata, "/"), test.classes.astype(str))
    va, te = stratified_parts(np.arange(len(test)), strata, (val_fraction, 1 - val_fraction), rng)
    return test.subset(va), test.subset(te)


def split_test(train: ImageSet, test: ImageSet, *, val_fraction: float = 0.5, seed: int = 0, name: str = "") -> Split:
    """Train as given; ``test`` dealt val : test in ``val_fraction`` : rest, stratified by label and class."""
    val, test = _halve(train, test, val_fraction, np.random.default_rng(seed))
    return Split(train, val, test, name=name, info=_info("split_test", seed, val_fraction=val_fraction))


def mvtec_split(category: str | Path, seed: int = 0, *, val_fraction: float = 0.5) -> Split:
    """ALGAN's MVTec AD protocol (IV-B4): train = ``train/good``; half of the test set, stratified by defect type
    (``good`` included), is the validation set (the stopping rule), the other half the test set."""
    from anogen.data.mvtec import load_mvtec

    train, test = load_mvtec(category)
    val, test = _halve(train, test, val_fraction, np.random.default_rng(seed))
    info = _info("mvtec", seed, root=str(category), val_fraction=val_fraction)
    return Split(train, val, test, name=f"mvtec/{Path(category).resolve().name}", info=info)


def mtd_split(root: str | Path, seed: int = 0, splits_file: str | Path | None = None) -> Split:
    """ALGAN's MTD protocol (IV-B4), or the lists of a splits file.

    With ``splits_file`` the sets are exactly its lists for ``seed``, in its order, with its labels (which must agree
    with the folders). Without, ``numpy.random.default_rng(seed)`` permutes the sorted normal list (50 % train,
    25 % val, 25 % test), then the defect list (sorted within class, classes by name; 50 % val, 50 % test): the
    procedure that made ``mtd_splits.json``, so for its seeds both give the same lists. The defects are not
    stratified by class, to keep that identity.
    """
    from anogen.data.mtd import load_mtd, read_splits

    ds = load_mtd(root)
    info = _info("mtd", seed, root=str(root), splits_file=None if splits_file is None else str(splits_file))
    if splits_file is not None:
        entry = read_splits(splits_file, seed)
        pos = {n: i for i, n in enumerate(ds.names or [])}
        parts = {}
        for part in ("train", "val", "test"):
            missing = [n for n in entry[part] if n not in pos]
            if missing:
                raise ValueError(f"{len(missing)} {part} files of {splits_file} (seed {seed}) are not images of "
                                 f"{root}, e.g. {missing[:5]}")
            idx = np.array([pos[n] for n in entry[part]], dtype=np.int64)
            want = np.zeros(len(idx), dtype=np.int64) if part == "train" else np.asarray(entry[f"{part}_labels"])
            if (ds.y[idx] != want).any():
                bad = [entry[part][i] for i in np.flatnonzero(ds.y[idx] != want)[:5]]
                raise ValueError(f"{splits_file} (seed {seed}) labels disagree with the folders for {part} files "
                                 f"(MT_Free = 0, else 1), e.g. {bad}")
            parts[part] = idx
        all_idx = np.concatenate(list(parts.values()))
        if len(np.unique(all_idx)) != len(all_idx):
            raise ValueError(f"{splits_file} (seed {seed}) lists a file in more than one set, or twice")
        return Split(*(ds.subset(parts[k]) for k in ("train", "val", "test")), name="mtd", info=info)
    rng = np.random.default_rng(seed)
    n_idx, a_idx = np.flatnonzero(ds.y == 0), np.flatnonzero(ds.y == 1)
    pn, pa = n_idx[rng.permutation(len(n_idx))], a_idx[rng.permutation(len(a_idx))]
    n_tr, n_va = len(pn) // 2, (len(pn) - len(pn) // 2) // 2
    a_va = len(pa) // 2
    return Split(ds.subset(pn[:n_tr]), ds.subset(np.r_[pn[n_tr:n_tr + n_va], pa[:a_va]]),
                 ds.subset(np.r_[pn[n_tr + n_va:], pa[a_va:]]), name="mtd", info=info)


def coil_split(root: str | Path, n_normal: int = 10, seed: int = 0) -> Split:
    """ALGAN's COIL-100 protocol (IV-B4): ``n_normal`` objects chosen by the seed are normal, the rest anomalous;
    normals 60/20/20 train / val / test, anomalies 50/50 val / test, both stratified by object."""
    from anogen.data.coil import load_coil

    ds = load_coil(root)
    objects = np.unique(ds.classes)
    if not 1 <= n_normal < len(objects):
        raise ValueError(f"n_normal must be in 1..{len(objects) - 1} for the {len(objects)} objects in {root}, "
                         f"got {n_normal}")
    rng = np.random.default_rng(seed)
    normal = np.sort(rng.choice(objects, size=n_normal, replace=False)).tolist()
    train, val, test = _one_class(ds, normal, 0.2, 0.2, True, rng)
    info = _info("coil", seed, root=str(root), n_normal=n_normal, normal=normal)
    return Split(train, val, test, name=f"coil(n_normal={n_normal})", info=info)


def folder_split(
    root: str | Path,
    seed: int = 0,
    *,
    normal_dir: str = "normal",
    abnormal_dir: str = "abnormal",
    mask_dir: str | None = None,
    normal_test_dir: str | None = None,
    normal_split_ratio: float = 0.2,
    val_fraction: float = 0.5,
) -> Split:
    """anomalib's ``Folder`` defaults: without ``normal_test_dir``, ``normal_split_ratio`` of the normals (random)
    join the test set (anomalib's ``test_split_ratio=0.2``, called ``normal_split_ratio`` before anomalib 1.0); then
    ``val_fraction`` of the test set, stratified by label and folder, is the validation set (anomalib's
    ``val_split_mode="from_test"``, ``val_split_ratio=0.5``)."""
    from anogen.data.folder import load_anomalib_folder

    pool, test = load_anomalib_folder(root, normal_dir, abnormal_dir, mask_dir, normal_test_dir)
    rng = np.random.default_rng(seed)
    if normal_test_dir is None:
        if not 0 < normal_split_ratio < 1:
            raise ValueError(f"need 0 < normal_split_ratio < 1, got {normal_split_ratio}")
        keep, move = stratified_parts(np.arange(len(pool)), pool.y, (1 - normal_split_ratio, normal_split_ratio), rng)
        test = _concat(pool.subset(move), test)
        pool = pool.subset(keep)
    val, test = _halve(pool, test, val_fraction, rng)
    info = _info("anomalib_folder", seed, root=str(root), normal_dir=normal_dir, abnormal_dir=abnormal_dir,
                 mask_dir=mask_dir, normal_test_dir=normal_test_dir, normal_split_ratio=normal_split_ratio,
                 val_fraction=val_fraction)
    return Split(pool, val, test, name="anomalib_folder", info=info)


def _concat(a: ImageSet, b: ImageSet) -> ImageSet:
    """Two path-list image sets as one (masks None on a side without them)."""
    masks = None
    if a.masks is not None or b.masks is not None:
        masks = list(a.masks or [None] * len(a)) + list(b.masks or [None] * len(b))
    names = None if a.names is None or b.names is None else list(a.names) + list(b.names)
    classes = None if a.classes is None or b.classes is None else np.concatenate([a.classes, b.classes])
    return ImageSet(list(a.x) + list(b.x), np.r_[a.y, b.y], masks, names, classes)


ERASE_FILL = 0.5
"""the erased square's value as a fraction of the value range: mid-gray, as the unregularized-score paper's
toy (VI-A: "the anomalous regions (the gray squares)"; Fig. 3 / 7 show gray squares)"""


def erase_squares(
    images: np.ndarray, k: int, rng: np.random.Generator, fill: float = ERASE_FILL
) -> tuple[np.ndarray, np.ndarray]:
    """Copies of ``images`` (N, H, W[, C]) with one k x k square each set to ``fill`` in every channel.

    ``fill`` is a fraction of the value range: 0 black, 0.5 mid-gray (the paper's "gray squares", the default), 1
    white; integer images get ``round(fill * max)`` of their dtype (128 for uint8), float images ``fill`` itself
    (values in [0, 1]).

    The top-left corner is uniform over the (H - k + 1) x (W - k + 1) valid positions (rows, then columns, drawn from
    ``rng``). Returns the erased copies and the masks (N, H, W), True inside each square.
    """
    if not isinstance(images, np.ndarray) or images.ndim not in (3, 4):
        raise ValueError("erasing needs images as an array (N, H, W[, C]); file-tree sources are not supported, got "
                         f"{type(images).__name__}" + (f" of shape {images.shape}" if hasattr(images, "shape") else ""))
    n, h, w = images.shape[:3]
    if not 1 <= k <= min(h, w):
        raise ValueError(f"the erased square side k must be in 1..{min(h, w)} for {h}x{w} images, got {k}")
    top = rng.integers(0, h - k + 1, size=n)
    left = rng.integers(0, w - k + 1, size=n)
    r, c = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    masks = ((r >= top[:, None, None]) & (r < top[:, None, None] + k)
             & (c >= left[:, None, None]) & (c < left[:, None, None] + k))  # (N, H, W)
    if not 0.0 <= fill <= 1.0:
        raise ValueError(f"fill is a fraction of the value range in [0, 1] (0 black, 0.5 gray, 1 white), got {fill}")
    value = (np.round(fill * np.iinfo(images.dtype).max) if np.issubdtype(images.dtype, np.integer) else fill)
    out = images.copy()
    out[masks] = value  # every channel of the masked pixels
    return out, masks


def _with_erased_copies(ds: ImageSet, k: int, fill: float, rng: np.random.Generator) -> ImageSet:
    """The normals of ``ds`` (label 0, empty masks) followed by an erased copy of each (label 1, their squares)."""
    erased, masks = erase_squares(ds.x, k, rng, fill)
    n = len(ds)
    names = None if ds.names is None else list(ds.names) + [f"{m}#erased" for m in ds.names]
    classes = None if ds.classes is None else np.concatenate([ds.classes, ds.classes])
    return ImageSet(np.concatenate([ds.x, erased]), np.r_[np.zeros(n), np.ones(n)].astype(np.int64),
                    np.concatenate([np.zeros_like(masks), masks]), names, classes)


def _normal_pool(ds: ImageSet, normal: Sequence[Any] | None, what: str) -> np.ndarray:
    """Indices of the normal images: label 0, and one of ``normal`` when classes are chosen."""
    keep = ds.y == 0
    if normal is not None:
        if ds.classes is None:
            raise ValueError(f"{what}: the image set has no classes to choose normal ones from")
        present = np.unique(ds.classes)
        unknown = [c for c in normal if c not in present]
        if not list(normal) or unknown:
            raise ValueError(f"{what}: normal classes {list(normal)} must be among the classes present, "
                             f"{present.tolist()}")
        keep &= np.isin(ds.classes, list(normal))
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        raise ValueError(f"{what}: no normal images (label 0{' in the chosen classes' if normal else ''})")
    return idx


def erase_protocol(
    train: ImageSet,
    test: ImageSet | None = None,
    *,
    k: int = 4,
    contamination: float = 0.01,
    normal: Sequence[Any] | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    fill: float = ERASE_FILL,
    seed: int = 0,
    name: str = "",
) -> Split:
    """Matsubara et al.'s erase protocol (IV-A, the SVHN toy): anomalies are normal images with a k x k square erased.

    1. The normal images are those labelled 0 (every image of an array source), optionally only of the classes
       ``normal`` (default: all classes, as the paper's SVHN toy). Images labelled 1 are left out.
    2. Without ``test``, the normals are dealt train / val / test in ``1 - val_fraction - test_fraction`` :
       ``val_fraction`` : ``test_fraction``; with ``test``, the normals of ``train`` are dealt train / val in
       ``1 - val_fraction`` : ``val_fraction`` and the test normals are those of ``test``. Stratified by class.
    3. Training set: ``round(contamination * n_train)`` of its images, chosen at random, get a square erased (the
       paper's 1 % of "anomalous samples" in the unlabelled training set). Their labels stay 0 -- a training set is
       unlabelled and ``Detector.fit`` refuses anomalies -- but their ``masks`` hold the square (the others are all
       False) and ``info["train_erased"]`` lists their positions in the training set.
    4. Validation and test: every normal image twice, first the original (label 0, empty mask), then a copy with a
       square erased (label 1, mask = the square), as the paper duplicates its test set. Validation comes only from
       the training source, so the test set is never used for model selection. ``val_fraction=0`` gives no
       validation set (the paper's use of every training image).

    The square is set to ``fill`` (a fraction of the value range; default 0.5, mid-gray: the paper's "gray squares",
    VI-A) in every channel, at the source's native resolution (32 x 32 for SVHN, as in the paper); masks are
    (N, H, W) bool at that resolution (resize them to a model's maps with nearest neighbours, as the CLI does). Its
    top-left corner is uniform over the valid positions. A gray square changes every pixel it covers on MNIST's
    black background too (with ``fill=0``, a black square over background pixels changed nothing).

    Args:
        train: array images (N, H, W[, C]) with labels 0 (normal) and optionally ``classes``.
        test: the source's own test set, if it has one.
        k: side of the erased square in pixels (paper: 4).
        contamination: share of the training set erased (paper: 0.01), in [0, 1).
        normal: the classes whose images are normal (None: all).
        val_fraction: share of the training normals for validation (0: none).
        test_fraction: share of the normals for the test set when ``test`` is None.
        fill: the square's value as a fraction of the value range (0 black, 0.5 gray = the paper, 1 white).
        seed: seed of ``numpy.random.default_rng``.
        name: the split's name.
    """
    if not 0 <= contamination < 1:
        raise ValueError(f"contamination must be in [0, 1), got {contamination}")
    for part in (train, test):
        if part is not None and not (isinstance(part.x, np.ndarray) and part.x.ndim in (3, 4)):
            raise ValueError("erase_protocol needs array images (N, H, W[, C]) (digits, MNIST, SVHN, CIFAR-10, ...); "
                             f"got {type(part.x).__name__}")
    rng = np.random.default_rng(seed)
    normal = None if normal is None else list(normal)
    idx = _normal_pool(train, normal, "erase_protocol")
    strata = train.classes[idx] if train.classes is not None else np.zeros(len(idx), dtype=np.int64)
    if test is None:
        if not (0 <= val_fraction and 0 < test_fraction and val_fraction + test_fraction < 1):
            raise ValueError(f"need 0 <= val_fraction, 0 < test_fraction and their sum < 1; got {val_fraction}, "
                             f"{test_fraction}")
        tr, va, te = stratified_parts(idx, strata, (1 - val_fraction - test_fraction, val_fraction, test_fraction),
                                      rng)
        test_set = train.subset(te)
    else:
        if not 0 <= val_fraction < 1:
            raise ValueError(f"need 0 <= val_fraction < 1, got {val_fraction}")
        tr, va = stratified_parts(idx, strata, (1 - val_fraction, val_fraction), rng)
        test_set = test.subset(_normal_pool(test, normal, "erase_protocol (test set)"))
    tr_set = train.subset(tr)
    n_erased = int(round(contamination * len(tr_set)))
    chosen = np.sort(rng.choice(len(tr_set), size=n_erased, replace=False))
    x, masks = np.array(tr_set.x, copy=True), np.zeros(tr_set.x.shape[:3], dtype=bool)
    x[chosen], masks[chosen] = erase_squares(tr_set.x[chosen], k, rng, fill)
    tr_set = ImageSet(x, np.zeros(len(x), dtype=np.int64), masks, tr_set.names, tr_set.classes)
    val = _with_erased_copies(train.subset(va), k, fill, rng) if val_fraction > 0 else None
    info = _info("erase", seed, k=k, contamination=contamination, normal=normal, val_fraction=val_fraction,
                 test_fraction=None if test is not None else test_fraction, fill=fill, train_erased=chosen)
    return Split(tr_set, val, _with_erased_copies(test_set, k, fill, rng),
                 name=name or f"erase(k={k}, contamination={contamination})", info=info)
