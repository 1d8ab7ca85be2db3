"""Benchmarks: a suite is a flat grid (detectors x datasets x classes x seeds x variants); each run appends one JSONL
record. Tables and figures are made from records (:mod:`anogen.report`), never typed by hand.

A record holds the suite, the detector and its full config, the data spec and split, the seed, the variant
(overrides such as a trick combination), the metrics (AUROC, AUPR, best F1 with its precision / recall, F1 / precision
/ recall at the calibrated threshold, pixel AUROC where the test set has masks and the detector has anomaly maps),
fit time, scoring ms / image, peak memory, validation AUROC and best epoch, and where it ran (git commit, library
versions, machine, device). Runs are resumable (a run whose successful record exists in the output file is skipped),
a crash in one run is written as a ``status: failed`` record and does not stop the suite, and nothing is selected on
test data: model selection and threshold calibration use the validation split only (``Detector.fit(val_x, val_y)``).

Scales: ``cpu`` applies the detector file's ``PRESETS["cpu"]`` (small sizes and widths, few epochs), then the
suite's own CPU overrides, and caps the training / test sets (``max_train`` / ``max_test``, random subsets drawn
with the run's seed); ``paper`` uses the paper defaults of every detector plus the suite's paper overrides (a GPU
job). Every override a record ran with is in its ``config``.

Size: about 670 lines, over DESIGN's ~600 prompt, because the suite table is data (one ``Suite`` per paper table,
about 200 lines of grid definitions); the runner itself (expand, run_one, run_suite, Ray) is about 350.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from anogen._util import jsonable as _jsonable

SCHEMA = 1
MAX_STORED_SCORES = 5000
"""test scores and labels are kept in a record (for ROC curves and histograms) when the test set is no larger"""


@dataclass
class Suite:
    """A flat grid. ``datasets`` are data-spec templates: ``{root}`` is the data root, ``{normal}`` a class."""

    name: str
    detectors: list[str] | str
    datasets: list[str]
    classes: list[Any] = field(default_factory=lambda: [None])
    seeds: list[int] = field(default_factory=lambda: [0])
    variants: dict[str, dict[str, Any]] = field(default_factory=lambda: {"default": {}})
    detector_variants: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """per-detector variants replacing ``variants`` for that detector (e.g. its own score fields)"""
    cpu: dict[str, Any] = field(default_factory=dict)
    """overrides on top of each detector's CPU preset at ``--scale cpu``"""
    paper: dict[str, Any] = field(default_factory=dict)
    """overrides on top of the paper defaults at ``--scale paper``"""
    paper_detector: dict[str, dict[str, Any]] = field(default_factory=dict)
    """per-detector overrides at ``--scale paper`` on top of ``paper`` (e.g. the paper's toy GMM settings)"""
    max_train: int | None = 1000
    """cap on training images at ``--scale cpu`` (None: all)"""
    max_test: int | None = 2000
    """cap on validation and test images each at ``--scale cpu`` (stratified by label; None: all)"""
    description: str = ""
    evaluate: str = ""
    """an extra measurement per run from :mod:`anogen.evaluations`: "selection" or "drift" ("" none)"""
    preset: str = "cpu"
    """the detector-file preset applied at ``--scale cpu``: ``PRESETS[preset]`` (or ``PRESETS["<preset>-..."]``,
    the first that fits the detector's fields), else ``PRESETS["cpu"]``"""
    feature_cache_mb: int = 0
    """MiB of backbone maps kept across this suite's runs in one process (:func:`anogen.features.cache_features`)"""
    timing_images: int = 256
    """test images whose scoring is timed (``score_ms_per_image``; 1 warm-up + 3 timed passes)"""


def _gans() -> list[str]:
    from anogen import losses
    from anogen._registry import available, get

    return [n for n in available() if losses.is_gan(get(n))]


def _tricks_variants() -> dict[str, dict[str, Any]]:
    from anogen.losses import TRICK_COMBINATIONS, trick_overrides

    return {("+".join(c) or "none"): trick_overrides(c) for c in TRICK_COMBINATIONS}


CE_BIGAN_VARIANTS = {f"{d}{'+cons' if c else ''}": {"discriminator": d, "consistency": c}
                     for d in ("concat", "projection") for c in (False, True)}
"""The consistency paper's Table 1 rows: BiGAN concat / projection, each with and without consistency."""

FIG5 = ["ae", "anogan", "bigan", "ce_bigan", "alad", "f_anogan"]
"""The detectors of the consistency paper's Fig. 5 (AnoGAN, EGBAD = bigan, CE-BiGAN variants, plus ALAD, f-AnoGAN)."""


LAMP_SGD = {"lr": 0.03, "momentum": 0.9}
"""The LAMP grid's SGD setting (the paper tunes learning rates and gives none): momentum 0.9 and the learning rate with
the best validation AUROC of ``benchmarks/lamp_sgd_sweep.py`` (records ``benchmarks/results/lamp-sgd-sweep.jsonl``:
lr 1e-3 / 1e-2 / 3e-2 / 1e-1 -> mean val AUROC 0.943 / 0.973 / 0.980 / 0.972 over L2 plain and LAMP). At lr 1e-3
without momentum the SGD cells did not train (test AUROC 0.39-0.48)."""

PAPER_TOY_GMM = {"pca_components": 0, "n_components": 2}
"""The unregularized-score paper's toy GMM (V-C): on the raw pixels (no PCA), N_z = 2 hidden classes."""

AE_LAMP_VARIANTS = {"lamp": {"lamp": True}, "plain": {"lamp": False}}
"""The erase suites' AE rows: anogen's default (LAMP-amplified L2) and the unregularized-score paper's AE baseline
(plain MSE)."""


PRECISION_VARIANTS = {"fp32": {"precision": "fp32"}, "bf16": {"precision": "bf16", "channels_last": True}}
"""Issue 13's accuracy check: the same runs in fp32 and in bf16."""


INDUSTRIAL = ["mahalanobis", "padim", "patchcore", "algan_feature", "algan", "ae", "vae"]
"""The industrial suite's detectors (each at its file's ``PRESETS["industrial"]``)."""

GRID_VARIANTS = {name: {"default": {}, "grid4-s16": {"layers": ("s16",), "pool_grid": 4}}
                 for name in ("mahalanobis", "algan_feature")}
"""Pooled-feature detectors: their preset (global pooling, the papers) and the stride-16 block pooled on a 4 x 4 grid
(chosen on the MTD validation split, seed 0)."""

MVTEC_CATEGORIES = ["bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill", "screw",
                    "tile", "toothbrush", "transistor", "wood", "zipper"]


def _preset(cls: type, name: str) -> dict[str, Any]:
    """The detector file's preset ``name`` (or ``name-*``) that fits ``cls``, else its ``cpu`` preset."""
    from anogen.run import presets

    found = presets(cls)
    for key, value in found.items():
        if key == name or key.startswith(name + "-"):
            return dict(value)
    return dict(found.get("cpu", {}))


def _suites() -> dict[str, Suite]:
    gray = {"channels": 1}
    return {s.name: s for s in [
        Suite("digits", "all", ["digits:normal={normal}"], classes=list(range(10)), seeds=[0],
              cpu=gray, paper=gray, max_train=None, max_test=None,
              description="scikit-learn digits one-class (embedded; every digit normal in turn)"),
        Suite("mnist", "all", ["mnist:{mnist},normal={normal}"], classes=list(range(10)), seeds=[0, 1],
              detector_variants={"ce_bigan": CE_BIGAN_VARIANTS},
              cpu=gray, paper={"channels": 1, "image_size": 32}, max_train=500, max_test=500,
              description="MNIST one-class, every digit normal in turn (LAMP Table 1; consistency paper Fig. 5 with "
                          "the four CE-BiGAN variants of its Table 1)"),
        Suite("fashion", "all", ["fashion:{fashion},normal={normal}"], classes=list(range(10)), seeds=[0],
              cpu=gray, max_train=500, max_test=500, paper={"channels": 1, "image_size": 32}, description="Fashion-MNIST one-class"),
        Suite("mtd", "all", ["mtd:{root}/mtd,splits={root}/mtd_splits.json"], seeds=[0, 1],
              cpu={"channels": 1, "image_size": 32}, paper={"channels": 1, "image_size": 256},
              max_train=None, max_test=None,
              description="Magnetic Tile Defects, ALGAN Table 3 protocol (shared split file, seeds 0 and 1)"),
        Suite("mtd-hires", ["algan", "vae"], ["mtd:{root}/mtd,splits={root}/mtd_splits.json"], seeds=[0],
              detector_variants={
                  "algan": {"64px": {"image_size": 64, "width": 32, "max_width": 256, "epochs": 60}},
                  "vae": {"patch32": {"image_size": 128, "patch_size": 32, "patch_stride": 16, "n_conv": 3,
                                      "epochs": 20}}},
              cpu={"channels": 1}, paper={"channels": 1, "image_size": 256}, max_train=None, max_test=None,
              description="MTD at higher resolution than the mtd suite's 32 px (ALGAN 64 px; VAE on 32 px patches "
                          "of 128 px images, the unregularized-score paper's patch scheme)"),
        Suite("coil", "all", ["coil:{root}/coil17,n_normal=10"], seeds=[0, 1],
              cpu={"channels": 3, "image_size": 32}, paper={"channels": 3, "image_size": 256},  # ALGAN IV-B5
              max_train=None, max_test=None,
              description="COIL-100 subset (17 objects), ALGAN Table 4 protocol: 10 objects normal"),
        Suite("algan-ablation", ["algan"], ["mtd:{root}/mtd,splits={root}/mtd_splits.json"], seeds=[0, 1],
              variants={"none": {"use_buffer": False, "use_anomalous_latent": False},
                        "buffer": {"use_buffer": True, "use_anomalous_latent": False},
                        "anomalous_latent": {"use_buffer": False, "use_anomalous_latent": True},
                        "both": {"use_buffer": True, "use_anomalous_latent": True}},
              cpu={"channels": 1, "image_size": 32}, paper={"channels": 1, "image_size": 256},
              max_train=None, max_test=None, description="ALGAN Table 7 (buffer x anomalous latent) on MTD"),
        Suite("algan-hparams", ["algan"], ["mtd:{root}/mtd,splits={root}/mtd_splits.json"], seeds=[0],
              variants={**{f"sigma={s}": {"sigma": s} for s in (1.0, 2.0, 4.0, 8.0, 16.0)},
                        **{f"alpha={a},xi={x}": {"alpha": a, "xi": x} for a in (0.5, 0.75, 1.0)
                           for x in (0.5, 0.75, 1.0)},
                        **{f"n_z={n}": {"n_z": n} for n in (1, 2, 4)},
                        **{f"n_dis={n}": {"n_dis": n} for n in (1, 2, 4)}},
              cpu={"channels": 1, "image_size": 32}, paper={"channels": 1, "image_size": 256},
              max_train=None, max_test=None, description="ALGAN Tables 8-11 (sigma, alpha x xi, n_z, n_dis) on MTD"),
        Suite("lamp", ["ae"], ["mnist:{mnist},normal={normal}"], classes=[0], seeds=[0],
              variants={f"{loss},{opt},{'lamp' if lamp else 'plain'}": {"base_loss": loss, "optimizer": opt,
                                                                        "lamp": lamp,
                                                                        **(LAMP_SGD if opt == "sgd" else {})}
                        for loss in ("l2", "l1", "ssim") for opt in ("sgd", "rmsprop", "adam")
                        for lamp in (False, True)},
              cpu=gray, paper={"channels": 1, "image_size": 32}, max_train=500, max_test=500,
              description="LAMP Table 2 grid (base loss x optimizer x LAMP) on MNIST one-class"),
        Suite("lamp-mnist", ["ae"], ["mnist:{mnist},normal={normal}"], classes=list(range(10)), seeds=[0, 1],
              variants={"L2": {"base_loss": "l2", "lamp": False}, "LAMP-L2": {"base_loss": "l2", "lamp": True}},
              cpu=gray, paper={"channels": 1, "image_size": 32, "batch_size": 16}, max_train=500, max_test=500,
              description="LAMP Table 1 protocol: AE with L2 vs LAMP-amplified L2, MNIST one-class"),
        Suite("erase", ["vae", "gmm", "ae", "iforest"],
              ["erase:mnist:{mnist},k=4,fill=0.5", "erase:fashion:{fashion},k=4,fill=0.5"], seeds=[0, 1],
              detector_variants={"vae": {s: {"score": s} for s in ("unregularized", "elbo", "kl", "lognorm")},
                                 "gmm": {s: {"score": s} for s in ("unregularized", "nll")},
                                 "ae": AE_LAMP_VARIANTS},
              cpu=gray, paper={"channels": 1, "image_size": 32}, paper_detector={"gmm": PAPER_TOY_GMM},
              max_train=2000, max_test=2000,
              description="unregularized-score toy protocol: 4x4 regions erased to gray (VI-A; records before issue 16 "
                          "erased to black, their spec has no fill=), 1 % contaminated training set"),
        Suite("erase32", ["vae", "gmm", "ae"], ["erase:fashion:{fashion},k=4,fill=0.5"], seeds=[0, 1],
              detector_variants={"vae": {s: {"score": s} for s in ("unregularized", "elbo")},
                                 "gmm": {s: {"score": s} for s in ("unregularized", "nll")},
                                 "ae": AE_LAMP_VARIANTS},
              cpu={"channels": 1, "image_size": 32}, paper={"channels": 1, "image_size": 32},
              paper_detector={"gmm": PAPER_TOY_GMM}, max_train=2000,
              max_test=2000, description="the erase protocol on Fashion-MNIST at 32 px (the erase suite's CPU "
                                         "preset is 16 px, where a 4 x 4 hole at 28 px shrinks to about 2 x 2)"),
        Suite("precision-mtd", ["algan", "ganomaly", "ae", "vae"], ["mtd:{root}/mtd,splits={root}/mtd_splits.json"],
              seeds=[0, 1], variants=PRECISION_VARIANTS, cpu={"channels": 1, "image_size": 32},
              paper={"channels": 1, "image_size": 256}, max_train=None, max_test=None,
              description="fp32 vs bf16 (autocast + channels-last) training and scoring on MTD, same seeds"),
        Suite("precision-digits", ["algan", "ganomaly", "ae", "vae"], ["digits:normal={normal}"],
              classes=list(range(10)), seeds=[0], variants=PRECISION_VARIANTS, cpu=gray, paper=gray,
              max_train=None, max_test=None,
              description="fp32 vs bf16 (autocast + channels-last) on one-class digits, every digit normal in turn"),
        *_issue14_suites(),
        Suite("industrial", INDUSTRIAL, ["mtd:{root}/mtd"], seeds=[0, 1, 2, 3, 4], detector_variants=GRID_VARIANTS,
              preset="industrial", feature_cache_mb=1500, timing_images=32, max_train=None, max_test=None,
              description="industrial accuracy (issue 12): feature detectors at the backbone's scale (224 px), "
                          "image detectors on patches at higher resolution; MTD by the ALGAN protocol (the split "
                          "procedure of mtd_splits.json, identical to its lists for seeds 0 and 1, for seeds 0-4)"),
        Suite("industrial-coil", INDUSTRIAL, ["coil:{root}/coil17,n_normal=10"], seeds=[0, 1, 2, 3, 4],
              detector_variants=GRID_VARIANTS,
              preset="industrial", feature_cache_mb=1500, timing_images=32, max_train=None, max_test=None,
              description="the industrial suite on COIL-17 (10 normal objects chosen by the seed, ALGAN Table 4)"),
        Suite("industrial-mvtec", INDUSTRIAL, ["mvtec:{root}/mvtec_anomaly_detection/{normal}"],
              classes=MVTEC_CATEGORIES, seeds=[0], preset="industrial", feature_cache_mb=1500, timing_images=32,
              max_train=None,
              max_test=None, description="the industrial suite on an MVTec AD tree (every category; the data root "
                                         "must hold mvtec_anomaly_detection/)"),
        Suite("tricks", "gans", ["digits:normal={normal}"], classes=[0], seeds=[0],
              variants=_tricks_variants(), cpu=gray, paper=gray, max_train=None, max_test=None,
              description="thesis Tables 51-55: every GAN x the 8 combinations of IN / SL / LF"),
    ]}


SELECTION_DETECTORS = ["ae", "vae", "algan", "bigan", "ce_bigan", "alad", "f_anogan", "ganomaly", "skip_ganomaly",
                       "ebgan", "encebgan", "sencebgan"]
"""the iterative detectors of the selection suites (AnoGAN's latent search and ALGAN-feature's backbone are left out
for CPU time; run them with --detectors anogan,algan_feature)"""
DRIFT_DETECTORS = ["ae", "vae", "gmm", "iforest", "algan", "ganomaly", "skip_ganomaly", "alad"]


def _issue14_suites() -> list[Suite]:
    """Model selection without labels (labels vs synthetic vs last epoch, one run each) and lighting drift."""
    mtd = "mtd:{root}/mtd,splits={root}/mtd_splits.json"
    sel = {"selection": "synthetic", "val_every": 4}  # selects on synthetic defects; labels are only measured
    desc = ("model selection: labelled validation vs synthetic defects of held-out normals vs last epoch (one run; "
            "validation every 4 epochs)")
    return [
        Suite("selection-digits", SELECTION_DETECTORS, ["digits:normal={normal}"], classes=list(range(10)),
              seeds=[0], cpu={"channels": 1, **sel}, paper={"channels": 1, **sel}, max_train=None, max_test=None,
              evaluate="selection", description=desc + ", one-class digits"),
        Suite("selection-mtd", SELECTION_DETECTORS, [mtd], seeds=[0], cpu={"channels": 1, "image_size": 32, **sel},
              paper={"channels": 1, "image_size": 256, **sel}, max_train=None, max_test=None, evaluate="selection",
              description=desc + ", MTD (shared split file)"),
        Suite("selection-coil", SELECTION_DETECTORS, ["coil:{root}/coil17,n_normal=10"], seeds=[0],
              cpu={"channels": 3, "image_size": 32, **sel}, paper={"channels": 3, "image_size": 128, **sel},
              max_train=None, max_test=None, evaluate="selection", description=desc + ", COIL-17 (10 normal)"),
        Suite("drift", DRIFT_DETECTORS, [mtd], seeds=[0],
              variants={"plain": {"intensity": "none"}, "standardize": {"intensity": "standardize"}},
              cpu={"channels": 1, "image_size": 32}, paper={"channels": 1, "image_size": 256},
              max_train=None, max_test=None, evaluate="drift",
              description="lighting drift: MTD test images under brightness x0.9 / x1.1 and gamma 0.8 / 1.25, "
                          "with and without per-image intensity standardisation"),
    ]


SUITES = _suites()

DETECTOR_CPU: dict[str, dict[str, Any]] = {
    "algan_feature": {"epochs": 30, "hidden": 256},
}
"""CPU-scale overrides a detector needs whatever the suite says (the feature backbone takes RGB)."""


# ---------------------------------------------------------------------------------------------------- the grid
@dataclass
class Run:
    suite: str
    detector: str
    spec: str
    normal: Any
    seed: int
    variant: str
    overrides: dict[str, Any]
    scale: str
    max_train: int | None
    max_test: int | None
    data: str = ""
    """the data spec as recorded: the data root written as ``DATA`` (``spec`` holds the real path), so records and
    run ids carry no path of the machine that made them"""
    evaluate: str = ""

    @property
    def key(self) -> str:
        payload = json.dumps([self.suite, self.detector, self.data or self.spec, self.seed, self.variant, self.scale,
                              _jsonable(self.overrides), self.max_train, self.max_test], sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:16]


DEFAULT_DATA_ROOT = "../shared/data"
DATA = "DATA"
"""how a record writes the data root in its data spec (``mtd:DATA/mtd,...``): records name no machine's folders"""


def _paths(data_root: str | None, mnist: str | None, fashion: str | None) -> dict[str, str]:
    return {"root": data_root or DEFAULT_DATA_ROOT, "mnist": mnist or "pkg",
            "fashion": fashion or "/usr/share/datasets/fashion-mnist"}


def relative_spec(spec: str, data_root: str | Path) -> str:
    """``spec`` with the data root (as given, and as an absolute path) written as ``DATA``."""
    roots = {str(data_root).rstrip("/"), str(Path(data_root).resolve())}
    for root in sorted(roots, key=len, reverse=True):
        spec = re.sub(rf"(?<=[:=,]){re.escape(root)}(?=/|,|$)", DATA, spec)
    return spec


def resolve_spec(spec: str, data_root: str | Path | None = None) -> str:
    """The inverse of :func:`relative_spec`: ``DATA`` in a recorded spec becomes ``data_root`` (default
    ``../shared/data``), so a record's data can be loaded on the machine that reads it."""
    root = str(data_root or DEFAULT_DATA_ROOT).rstrip("/")
    return re.sub(rf"(?<=[:=,]){DATA}(?=/|,|$)", lambda _: root, spec)


def expand(suite: Suite, scale: str = "cpu", *, detectors: list[str] | None = None, data_root: str | None = None,
           mnist: str | None = None, fashion: str | None = None, classes: list[Any] | None = None,
           seeds: list[int] | None = None, variants: list[str] | None = None,
           extra: dict[str, Any] | None = None) -> list[Run]:
    """Every run of ``suite`` at ``scale`` (``cpu`` or ``paper``), optionally restricted."""
    from anogen._registry import available, get

    if scale not in ("cpu", "paper"):
        raise ValueError(f"scale must be cpu or paper, got {scale!r}")
    names = (available() if suite.detectors == "all" else _gans() if suite.detectors == "gans"
             else list(suite.detectors))
    if detectors:
        unknown = sorted(set(detectors) - set(names))
        if unknown:
            raise ValueError(f"suite {suite.name} has no detector(s) {unknown}; it runs {names}")
        names = [n for n in names if n in detectors]
    paths = _paths(data_root, mnist, fashion)
    runs = []
    for name in names:
        own_variants = suite.detector_variants.get(name, suite.variants)
        chosen = {k: v for k, v in own_variants.items() if not variants or k in variants}
        fields = set(get(name).field_names())
        base = _preset(get(name), suite.preset) if scale == "cpu" else {}
        # feature detectors keep their backbone's scale (224 px, RGB): a suite's image size is for image detectors
        own_scale = ("image_size", "channels", "normalize") if getattr(get(name), "backbone_scale", False) else ()
        base.update({k: v for k, v in (suite.cpu if scale == "cpu" else suite.paper).items()
                     if k in fields and k not in own_scale})
        if scale == "paper":
            base.update(suite.paper_detector.get(name, {}))
        for template in suite.datasets:
            for normal in classes or suite.classes:
                spec = template.format(normal=normal, **paths)
                shown = template.format(normal=normal, **{**paths, "root": DATA})
                for seed in seeds or suite.seeds:
                    for vname, vover in chosen.items():
                        if not set(vover) <= fields:
                            continue  # e.g. a GAN trick on a detector without it
                        own = DETECTOR_CPU.get(name, {}) if scale == "cpu" else {}
                        ov = {**base, **own, **vover, **(extra or {}), "seed": seed, "verbose": False}
                        runs.append(Run(suite.name, name, spec, normal, seed, vname, ov, scale,
                                        suite.max_train if scale == "cpu" else None,
                                        suite.max_test if scale == "cpu" else None, data=shown,
                                        evaluate=suite.evaluate))
    return runs


# ---------------------------------------------------------------------------------------------------- one run
def _cap(ds: Any, n: int | None, rng: np.random.Generator) -> Any:
    """A random subset of at most ``n`` samples, stratified by label (both classes keep their share)."""
    if ds is None or n is None or len(ds) <= n:
        return ds
    idx = []
    for label in np.unique(ds.y):
        members = np.flatnonzero(ds.y == label)
        k = max(1, int(round(n * len(members) / len(ds))))
        idx.append(rng.choice(members, size=min(k, len(members)), replace=False))
    return ds.subset(np.sort(np.concatenate(idx)))


def run_one(run: Run, models_dir: str | Path | None = None) -> dict[str, Any]:
    """Fit and evaluate one run; the record (metrics, times, memory, provenance). Raises on failure.

    With ``models_dir`` the fitted model is saved there as ``<run id>.anogen`` (for the report's sample,
    reconstruction and heat-map figures)."""
    import anogen
    from anogen.data.spec import load_spec
    from anogen.features import cache_features, cache_paused
    from anogen.run import evaluate, fit_kwargs

    t0 = time.perf_counter()
    suite = SUITES.get(run.suite)
    cache_features(suite.feature_cache_mb if suite is not None else 0)  # backbone maps shared by a suite's runs
    split = load_spec(run.spec, seed=run.seed)
    rng = np.random.default_rng(run.seed)
    train = _cap(split.train, run.max_train, rng)
    val, test = _cap(split.val, run.max_test, rng), _cap(split.test, run.max_test, rng)
    det = anogen.create(run.detector, **run.overrides)
    _reset_peak()
    extra: dict[str, Any] = {}
    if run.evaluate == "selection":
        from anogen.evaluations import selection_tracker

        det._on_validate, test_aucs = selection_tracker(det, test.x, test.y)  # reported only for picked states
    det.fit(train.x, **fit_kwargs(val))
    # image metrics, scoring time (with the backbone, as a user scores new images), pixel AUROC where there are maps
    scores, m = evaluate(det, test, timing_images=suite.timing_images if suite is not None else None,
                         timing_context=cache_paused)
    if run.evaluate == "selection":
        from anogen.evaluations import selection_metrics

        n = det.health_.get("n_heldout")  # the hold-out normals; five defective copies each
        extra["selection"] = selection_metrics(det.history_, test_aucs, n, None if n is None else 5 * n)
    elif run.evaluate == "drift":
        from anogen.evaluations import drift_metrics

        extra["drift"] = drift_metrics(det, test.x, test.y)
    model_file = None
    if models_dir is not None:
        model_file = str(det.save(Path(models_dir) / f"{run.key}.anogen"))
    return {
        "model_file": model_file, "metrics": m, "fit_seconds": det.fit_seconds_, "val_auroc": getattr(det, "val_auroc_", None),
        "best_epoch": getattr(det, "best_epoch_", None), "history": det.history_,
        "n_train": len(train), "n_val": 0 if val is None else len(val), "n_test": len(test),
        "split": split.name, "config": _jsonable(det.get_params()), "memory": _peak(),
        "test_labels": test.y.astype(int).tolist() if len(test) <= MAX_STORED_SCORES else None,
        "test_scores": [float(f"{v:.6g}") for v in scores] if len(test) <= MAX_STORED_SCORES else None,
        "wall_seconds": time.perf_counter() - t0, "device": str(det._device()),
        "selection_mode": getattr(det, "selection_", None), "health": getattr(det, "health_", None), **extra,
    }


def _reset_peak() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
    except Exception:  # pragma: no cover - no CUDA build
        pass


def _peak() -> dict[str, float]:
    """Peak resident memory of this process so far (MiB) and, on CUDA, the run's peak allocated GPU memory."""
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    import torch

    if torch.cuda.is_available():
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


# ---------------------------------------------------------------------------------------------------- provenance
def provenance() -> dict[str, Any]:
    """Where a record was made: git commit (and whether the tree was dirty), library versions, machine, threads."""
    import sklearn
    import torch
    import torchvision

    import anogen

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                                  cwd=Path(__file__).resolve().parent).stdout.strip()
        except Exception:
            return None

    if os.environ.get("ANOGEN_GIT_COMMIT"):  # a copy of a checkout on another machine (a lent GPU host), whose own
        # .git, if any, may not hold the commit it was copied from: the launcher states the commit and cleanliness
        commit = os.environ["ANOGEN_GIT_COMMIT"]
        dirty = os.environ.get("ANOGEN_GIT_DIRTY", "1") != "0"
    else:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {
        "git_commit": commit, "git_dirty": dirty,
        "versions": {"anogen": anogen.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
                     "numpy": np.__version__, "sklearn": sklearn.__version__, "python": platform.python_version()},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
    }


def require_clean(allow_dirty: bool = False) -> dict[str, Any]:
    """:func:`provenance`, raising when the working tree has uncommitted changes to tracked files (a record's commit
    would not hold the code that ran) unless ``allow_dirty``."""
    prov = provenance()
    if prov["git_dirty"] and not allow_dirty:
        raise RuntimeError("the working tree has uncommitted changes, so records would not say which code ran: "
                           "commit first (benchmarks run from a clean commit), or pass --allow-dirty (the report "
                           "marks such records with †)")
    return prov


# ---------------------------------------------------------------------------------------------------- suite runner
def read_records(path: str | Path) -> list[dict[str, Any]]:
    """All records of a JSONL file (a torn last line, from a killed run, is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def append_record(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(_jsonable(record), sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def run_suite(runs: list[Run], out: str | Path, *, console: Any = None, rerun_failed: bool = True,
              models_dir: str | Path | None = None) -> dict[str, int]:
    """Run every run not already recorded as ``ok`` in ``out``; append one record per run. Returns counts."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    out = Path(out)
    done = {r["run_id"] for r in read_records(out) if r.get("status") == "ok" or not rerun_failed}
    todo = [r for r in runs if r.key not in done]
    prov = provenance()
    counts = {"total": len(runs), "skipped": len(runs) - len(todo), "ok": 0, "failed": 0}
    console = console or Console(stderr=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[now]}"), console=console) as prog:
        task = prog.add_task(f"suite {runs[0].suite if runs else ''}", total=len(todo), now="")
        for run in todo:
            prog.update(task, now=f"{run.detector} {run.spec.split(',')[-1]} seed {run.seed} {run.variant}")
            rec = _run_record(run, prov, models_dir)  # one crash is a failed record, not the end of the suite
            counts[rec["status"]] += 1
            if rec["status"] == "ok":
                prog.console.print(f"{run.detector:>14} {run.variant:<18} {run.spec.split(':')[0]} {run.normal} "
                                   f"s{run.seed}: AUROC {rec['metrics']['auroc']:.3f} ({rec['fit_seconds']:.1f} s)")
            else:
                prog.console.print(f"[red]{run.detector} {run.variant} failed: {rec['error']}[/]")
            append_record(out, rec)
            prog.advance(task)
    return counts


def iter_ok(records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The successful records, the last one per run (suite, detector, data, seed, variant, scale): a rerun, also with
    a changed configuration (e.g. a detector's CPU preset), supersedes the earlier record, which stays in the file."""
    last: dict[tuple, dict[str, Any]] = {}
    for r in records:
        if r.get("status") == "ok":
            last[(r["suite"], r["detector"], r.get("data"), r.get("seed"), r.get("variant"), r.get("scale"),
                  r.get("image_size"), r.get("peer"))] = r
    yield from last.values()


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: anogen bench SUITE --out FILE.jsonl")


# ---------------------------------------------------------------------------------------------------- Ray (extra)
def _record_head(run: Run, prov: dict[str, Any]) -> dict[str, Any]:
    """The fields of a record that describe the run and where it ran (as :func:`run_suite` writes them)."""
    return {
        "schema": SCHEMA, "run_id": run.key, "suite": run.suite, "detector": run.detector,
        "data": run.data or run.spec,
        "normal": run.normal, "seed": run.seed, "variant": run.variant, "scale": run.scale,
        "overrides": run.overrides, "max_train": run.max_train, "max_test": run.max_test,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **prov,
    }


def _run_record(run: Run, prov: dict[str, Any], models_dir: str | Path | None) -> dict[str, Any]:
    """One run as a complete record, ``status`` ok or failed (with the error and a short traceback)."""
    rec = _record_head(run, prov)
    try:
        rec.update(run_one(run, models_dir))
        rec["status"] = "ok"
    except Exception as e:
        rec.update({"status": "failed", "error": f"{type(e).__name__}: {e}",
                    "traceback": traceback.format_exc(limit=8)})
    return rec


def _ray_task(run: Run, cwd: str, models_dir: str | None) -> dict[str, Any]:
    """One run as a complete record, made on the Ray worker that runs it (its provenance is that node's); a crash
    inside the run is a ``failed`` record, as in :func:`run_suite`."""
    if Path(cwd).is_dir():
        os.chdir(cwd)  # relative data paths (the default ../shared/data) resolve as on the driver
    return _run_record(run, provenance(), models_dir)


def run_suite_ray(runs: list[Run], out: str | Path, address: str = "local", *, num_cpus: float = 1.0,
                  num_gpus: float = 0.0, rerun_failed: bool = True, console: Any = None,
                  models_dir: str | Path | None = None, init_kwargs: dict[str, Any] | None = None) -> dict[str, int]:
    """:func:`run_suite` with each run a Ray task: same records, same resumability, failures recorded.

    Args:
        runs: the grid (:func:`expand`).
        out: the JSONL records file; only the driver (this process) appends to it, one record as each task ends.
        address: the Ray cluster (``ray.init(address=...)``): ``"local"`` starts a local instance for this call,
            ``"auto"`` joins the one started on this machine by ``ray start``, ``"ray://host:10001"`` a remote one.
        num_cpus: CPUs reserved per task (Ray sets the task's ``OMP_NUM_THREADS`` to it).
        num_gpus: GPUs per task (0: CPU tasks; a detector with ``device="auto"`` uses the GPU Ray assigns).
        rerun_failed: retry runs recorded as failed (True) or skip them too.
        models_dir: each worker saves its fitted model there (a folder every node can write, e.g. a shared mount).
        init_kwargs: more arguments for ``ray.init`` (e.g. ``num_cpus`` of a local instance, ``runtime_env``).

    Every node needs anogen (same version) and the data at the same paths (an absolute ``--data-root``, or the same
    working directory). A task whose worker dies (out of memory, node lost) is recorded as failed with the error.
    """
    try:
        import ray
    except ImportError as e:
        raise ImportError("anogen bench --ray needs Ray: pip install 'anogen[distributed]'") from e
    from rich.console import Console

    out = Path(out)
    done = {r["run_id"] for r in read_records(out) if r.get("status") == "ok" or not rerun_failed}
    todo = [r for r in runs if r.key not in done]
    counts = {"total": len(runs), "skipped": len(runs) - len(todo), "ok": 0, "failed": 0}
    if not todo:
        return counts
    console = console or Console(stderr=True)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, **(init_kwargs or {}))
    try:
        task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)(_ray_task)
        models = None if models_dir is None else str(Path(models_dir).resolve())
        pending = {task.remote(run, os.getcwd(), models): run for run in todo}
        console.print(f"suite {todo[0].suite}: {len(todo)} runs submitted to Ray ({address})")
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                run = pending.pop(ref)
                try:
                    rec = ray.get(ref)
                except Exception as e:  # the task itself died: worker crash, out of memory, node lost
                    rec = {**_record_head(run, provenance()), "status": "failed",
                           "error": f"{type(e).__name__}: {' '.join(str(e).split())[:2000]}", "traceback": None}
                counts[rec["status"]] += 1
                if rec["status"] == "ok":
                    console.print(f"{run.detector:>14} {run.variant:<18} {run.spec.split(':')[0]} {run.normal} "
                                  f"s{run.seed}: AUROC {rec['metrics']['auroc']:.3f} ({rec['fit_seconds']:.1f} s)")
                else:
                    console.print(f"[red]{run.detector} {run.variant} failed: {rec['error'][:300]}[/]")
                append_record(out, rec)
    finally:
        if started:
            ray.shutdown()
    return counts
