"""PyOD's AutoEncoder, VAE, AnoGAN and ALAD on flattened images of anogen's splits, written as anogen records.

Run inside the peers' environment (``bash benchmarks/peers/setup.sh`` makes it)::

    benchmarks/peers/.venv/bin/python benchmarks/peers/run_pyod.py mtd --seeds 0 1            # 32x32 gray
    benchmarks/peers/.venv/bin/python benchmarks/peers/run_pyod.py digits --classes 0 1 2 --seeds 0   # 8x8

Every model runs with PyOD's own defaults (the installed version's class defaults: AutoEncoder 10 epochs, VAE 30,
AnoGAN 500 + 20 query steps, ALAD 200 one-batch "epochs"; PyOD's own preprocessing: per-feature standardisation
for AutoEncoder and VAE, none for AnoGAN and ALAD). The only settings we pass: ``random_state`` = the run's seed
(AutoEncoder, VAE; the GANs take none, so torch / numpy / random are seeded with it before they are built) and
``verbose=0``. Nothing is selected: PyOD trains a fixed number of epochs and has no validation hook; the labelled
validation split only gives the threshold (anogen's: 99 % quantile of its normal scores) and a ``val_auroc`` for
information.

Inputs: anogen's ``load_spec`` split and anogen's ``Preprocess`` (same decoding and antialiased bilinear resize as
anogen's detectors) to gray [0, 1] images, flattened: 32x32 = 1024 features for MTD, the native 8x8 = 64 for
digits. ``score_ms_per_image`` is timed from the raw inputs (MTD: JPEG paths) as anogen's records are.

Records go to ``benchmarks/results/peers/pyod.jsonl``; a run whose ``ok`` record exists is skipped.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import common
import numpy as np
import torch

MODELS = ("autoencoder", "vae", "anogan", "alad")


def make(name: str, seed: int) -> Any:
    """A PyOD detector with its defaults; seeded."""
    common.seed_all(seed)
    if name == "autoencoder":
        from pyod.models.auto_encoder import AutoEncoder

        return AutoEncoder(random_state=seed, verbose=0)
    if name == "vae":
        from pyod.models.vae import VAE

        return VAE(random_state=seed, verbose=0)
    if name == "anogan":
        from pyod.models.anogan import AnoGAN

        return AnoGAN(verbose=0)
    if name == "alad":
        from pyod.models.alad import ALAD

        return ALAD(verbose=0)
    raise ValueError(f"unknown PyOD model {name!r}; known: {MODELS}")


def warm_up() -> None:
    """Pay the one-time costs before anything is timed: PyOD scores AutoEncoder / VAE with a numba function whose
    first call JIT-compiles it (10-25 s here), which would otherwise land in the first run's fit time."""
    rng = np.random.default_rng(0)
    x = rng.random((64, 16))
    for name in MODELS:
        det = make(name, 0)
        for k in ("epoch_num", "epochs", "epochs_query"):
            if k in det.get_params():
                det.set_params(**{k: 1})
        det.fit(x)
        det.decision_function(x)


def flat(x: Any, size: int) -> np.ndarray:
    return common.preprocess(x, size, 1).reshape(len(x), -1).double().numpy()


def _config(det: Any, size: int) -> dict[str, Any]:
    params = {}
    for k, v in det.get_params().items():
        if isinstance(v, (int, float, str, bool, type(None))):
            params[k] = v
        elif isinstance(v, (list, tuple)) and all(isinstance(e, (int, float, str, bool)) for e in v):
            params[k] = list(v)
        elif isinstance(v, dict):
            params[k] = {str(a): b for a, b in v.items() if isinstance(b, (int, float, str, bool))}
        else:
            params[k] = str(v)
    epochs = params.get("epoch_num", params.get("epochs"))
    return {"image_size": size, "channels": 1, "input": f"flattened {size}x{size} gray in [0, 1]",
            "epochs": epochs, "class": type(det).__name__, "selection": "none (fixed epochs)",
            "contamination_threshold": common.CONTAMINATION, **params}


def run(name: str, suite: str, spec: str, normal: Any, seed: int, size: int, out: Path,
        prov: dict[str, Any]) -> None:
    detector, variant = f"pyod_{name}", f"{size}px"
    config = _config(make(name, seed), size)
    key = common.run_key(suite, detector, common.shown(spec), seed, variant, "cpu", config)
    if key in common.done_ids(out):
        print(f"skip {detector} {suite} {normal} seed {seed} (recorded)", flush=True)
        return
    started, t0 = common.now(), time.perf_counter()
    base = {"schema": 1, "run_id": key, "suite": suite, "detector": detector, "peer": "pyod",
            "peer_version": common.peer_versions()["pyod"], "data": common.shown(spec),
            "normal": normal, "seed": seed,
            "variant": variant, "scale": "cpu", "overrides": config, "started": started, **prov}
    try:
        split = common.load(spec, seed)
        tr, va, te = split.train, split.val, split.test
        xtr, xva = flat(tr.x, size), flat(va.x, size)
        common.reset_peak()
        det = make(name, seed)
        t1 = time.perf_counter()
        det.fit(xtr)
        fit_s = time.perf_counter() - t1
        vs = np.asarray(det.decision_function(xva), dtype=np.float64)
        thr = common.threshold_from_val(vs, va.y)
        auc_val = common.val_auroc(va.y, vs)
        scorer = common.Scorer(lambda raw: det.decision_function(flat(raw, size)))
        m, scores = common.evaluate(scorer, te, thr)
        rec = common.record(suite=suite, detector=detector, peer="pyod", spec=spec, normal=normal, seed=seed,
                            variant=variant, config=config, split=split, train=tr, val=va, test=te, metrics=m,
                            scores=scores, fit_seconds=fit_s, val_auroc_=auc_val, best_epoch=None, history=[],
                            started=started, wall_seconds=time.perf_counter() - t0, prov=prov,
                            extra={"threshold": thr, "pyod_threshold": float(getattr(det, "threshold_", np.nan)),
                                   "val_auroc_note": "final model (PyOD selects nothing)"})
        print(f"{detector} {suite} normal={normal} seed={seed} {variant}: test AUROC {m['auroc']:.3f} "
              f"(val {auc_val:.3f}), fit {fit_s:.1f} s, {m['score_ms_per_image']:.3f} ms/img", flush=True)
    except Exception as e:  # noqa: BLE001
        rec = common.failed(base, e)
        print(f"FAILED {detector} {suite} {normal} seed {seed}: {rec['error']}", flush=True)
    common.append(out, rec)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("suite", choices=["mtd", "digits"])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--classes", type=int, nargs="+", default=[0, 1, 2], help="digits: normal classes")
    ap.add_argument("--size", type=int, default=None, help="image side before flattening (mtd: 32, digits: 8)")
    ap.add_argument("--data-root", default=common.SHARED_DATA, help="folder with mtd/ and mtd_splits.json")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (anogen's CPU records use 1)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    common.data_root = a.data_root
    torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore")
    prov = common.provenance()
    out = a.out or common.RESULTS / "pyod.jsonl"
    warm_up()
    for name in a.models:
        if a.suite == "mtd":
            for seed in a.seeds:
                run(name, "mtd", common.mtd_spec(a.data_root), None, seed, a.size or 32, out, prov)
        else:
            for normal in a.classes:
                for seed in a.seeds:
                    run(name, "digits", f"digits:normal={normal}", normal, seed, a.size or 8, out, prov)


if __name__ == "__main__":
    main()
