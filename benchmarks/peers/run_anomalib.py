"""anomalib's GANomaly on anogen's splits and seeds, written as anogen benchmark records.

Run inside the peers' environment (``bash benchmarks/peers/setup.sh`` makes it)::

    benchmarks/peers/.venv/bin/python benchmarks/peers/run_anomalib.py mtd --sizes 64 32 --seeds 0 1
    benchmarks/peers/.venv/bin/python benchmarks/peers/run_anomalib.py digits --classes 0 1 2 --seeds 0
    benchmarks/peers/.venv/bin/python benchmarks/peers/run_anomalib.py speed --size 256

What runs is anomalib's own Lightning model (``anomalib.models.Ganomaly``, its defaults: n_features 64, latent 100,
w_adv 1 / w_con 50 / w_enc 1, Adam 2e-4 (0.5, 0.999), its default pre-processor: resize + ImageNet normalisation,
3 input channels) trained by anomalib's own ``Engine`` (a Lightning ``Trainer``) on in-memory dataloaders of
anomalib ``ImageItem`` s (batch 32, shuffled, as anomalib's datamodules). Only two things are ours:

- the data: anogen's ``load_spec`` split (the MTD split file, the digits one-class protocol) and anogen's
  ``Preprocess`` to [0, 1] tensors at the run's size (gray images repeated to the 3 channels anomalib's GANomaly
  hard-codes); anomalib's pre-processor then normalises them;
- epoch selection: a callback scores the labelled validation split after every epoch (raw ``pred_score``, the
  mean squared difference of the two latent codes; anomalib's min-max normalisation is monotone and would not change
  an AUROC) and keeps the state with the best validation AUROC, as ``anogen.Detector.fit`` does. The test split is
  scored once, with that state. anomalib's own validation loop is not run (``limit_val_batches=0``): its
  normalisation statistics and adaptive threshold are not used; the threshold is anogen's (99 % quantile of the
  validation normal scores).

Records go to ``benchmarks/results/peers/anomalib.jsonl`` (accuracy; suites ``mtd`` and ``digits``) and
``benchmarks/results/peers/speed.jsonl`` (suite ``speed``); a run whose ``ok`` record exists is skipped.
"""

from __future__ import annotations

import argparse
import copy
import logging
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import common
import numpy as np
import torch

DETECTOR = "anomalib_ganomaly"
CHANNELS = 3  # anomalib's Ganomaly builds GanomalyModel(num_input_channels=3) whatever the data
BATCH = 32  # anomalib's default train_batch_size
SCORE_BATCH = 32  # anomalib's default eval_batch_size


def _quiet() -> None:
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "anomalib", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


def make_model(size: int, **kw: Any) -> Any:
    from anomalib.models import Ganomaly

    return Ganomaly(pre_processor=Ganomaly.configure_pre_processor(image_size=(size, size)), **kw)


@torch.no_grad()
def raw_scores(module: Any, x: torch.Tensor, batch: int = SCORE_BATCH) -> np.ndarray:
    """anomalib's inference path without the post-processor: pre-processor -> GanomalyModel (eval) -> pred_score."""
    was = module.model.training
    module.model.eval()
    out = []
    for i in range(0, len(x), batch):
        out.append(module.model(module.pre_processor(x[i : i + batch])).pred_score.reshape(-1).double().cpu())
    module.model.train(was)
    return torch.cat(out).numpy()


def _loader(x: torch.Tensor, shuffle: bool) -> Any:
    from anomalib.data import ImageBatch, ImageItem
    from torch.utils.data import DataLoader

    items = [ImageItem(image=x[i], gt_label=torch.tensor(0)) for i in range(len(x))]
    return DataLoader(items, batch_size=BATCH, shuffle=shuffle, collate_fn=ImageBatch.collate)


def _select_callback(val_x: torch.Tensor | None, val_y: np.ndarray | None) -> Any:
    from lightning.pytorch.callbacks import Callback

    class SelectOnValidation(Callback):
        """After each epoch: validation AUROC; keep the best state (the first best on ties, as anogen)."""

        def __init__(self) -> None:
            self.history: list[dict[str, Any]] = []
            self.best_auc, self.best_epoch, self.best_state = -np.inf, None, None
            self.sums: dict[str, float] = {}
            self.steps = 0

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            for k, v in (outputs or {}).items():  # Ganomaly.training_step returns its two losses
                self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.steps += 1

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            rec: dict[str, Any] = {"epoch": trainer.current_epoch + 1}
            rec.update({k: v / max(self.steps, 1) for k, v in self.sums.items()})
            self.sums, self.steps = {}, 0
            if val_x is not None:
                auc = common.val_auroc(val_y, raw_scores(pl_module, val_x))
                rec["val_auroc"] = auc
                if auc > self.best_auc:
                    self.best_auc, self.best_epoch = auc, trainer.current_epoch + 1
                    self.best_state = copy.deepcopy(pl_module.model.state_dict())
            self.history.append(rec)

    return SelectOnValidation()


def train(size: int, epochs: int, train_x: torch.Tensor, val_x: torch.Tensor | None, val_y: np.ndarray | None,
          seed: int) -> tuple[Any, Any, float]:
    """anomalib's Engine.fit of a fresh Ganomaly; returns (model with the selected state, callback, fit seconds)."""
    from anomalib.engine import Engine
    from lightning.pytorch import seed_everything

    seed_everything(seed, workers=True, verbose=False)
    model = make_model(size)
    cb = _select_callback(val_x, val_y)
    with tempfile.TemporaryDirectory(prefix="anomalib-") as tmp:
        engine = Engine(max_epochs=epochs, callbacks=[cb], default_root_dir=tmp, accelerator="auto", devices=1,
                        limit_val_batches=0, num_sanity_val_steps=0, enable_progress_bar=False,
                        enable_model_summary=False, logger=False, barebones=True)
        t0 = time.perf_counter()
        engine.fit(model, train_dataloaders=_loader(train_x, shuffle=True))
        fit_seconds = time.perf_counter() - t0
    if cb.best_state is not None:
        model.model.load_state_dict(cb.best_state)
    model.model.eval()
    return model, cb, fit_seconds


def warm_up() -> None:
    """One tiny Engine.fit and scoring pass, so that one-time costs (lazy imports, first kernels) are not timed."""
    x = torch.rand(4, CHANNELS, 32, 32)  # at 16 px anomalib's GANomaly fails (latent shapes differ)
    model, _, _ = train(32, 1, x, None, None, 0)
    raw_scores(model, x)


def config_of(size: int, epochs: int) -> dict[str, Any]:
    from anomalib.models import Ganomaly

    m = make_model(size)
    hp = {k: v for k, v in dict(m.hparams).items() if isinstance(v, (int, float, str, bool))}
    del Ganomaly
    return {"image_size": size, "channels": CHANNELS, "epochs": epochs, "batch_size": BATCH,
            "selection": "best validation AUROC per epoch", "contamination": common.CONTAMINATION, **hp}


def run_accuracy(suite: str, spec: str, normal: Any, seed: int, size: int, epochs: int, out: Path,
                 prov: dict[str, Any]) -> None:
    variant = f"{size}px"
    config = config_of(size, epochs)
    key = common.run_key(suite, DETECTOR, common.shown(spec), seed, variant, "cpu", config)
    if key in common.done_ids(out):
        print(f"skip {suite} {normal} seed {seed} {variant} (recorded)", flush=True)
        return
    started, t0 = common.now(), time.perf_counter()
    base = {"schema": 1, "run_id": key, "suite": suite, "detector": DETECTOR, "peer": "anomalib",
            "peer_version": common.peer_versions()["anomalib"], "data": common.shown(spec),
            "normal": normal, "seed": seed,
            "variant": variant, "scale": "cpu", "overrides": config, "started": started, **prov}
    try:
        split = common.load(spec, seed)
        tr, va, te = split.train, split.val, split.test
        xtr, xva = common.preprocess(tr.x, size, CHANNELS), common.preprocess(va.x, size, CHANNELS)
        common.reset_peak()
        model, cb, fit_s = train(size, epochs, xtr, xva, va.y, seed)
        thr = common.threshold_from_val(raw_scores(model, xva), va.y)
        scorer = common.Scorer(lambda raw: raw_scores(model, common.preprocess(raw, size, CHANNELS)))
        m, scores = common.evaluate(scorer, te, thr)
        params = {"params": int(sum(p.numel() for p in model.model.parameters())),
                  "params_generator": int(sum(p.numel() for p in model.model.generator.parameters()))}
        rec = common.record(suite=suite, detector=DETECTOR, peer="anomalib", spec=spec, normal=normal, seed=seed,
                            variant=variant, config=config, split=split, train=tr, val=va, test=te, metrics=m,
                            scores=scores, fit_seconds=fit_s, val_auroc_=cb.best_auc, best_epoch=cb.best_epoch,
                            history=cb.history, started=started, wall_seconds=time.perf_counter() - t0, prov=prov,
                            extra={**params, "threshold": thr,
                                   "driver": "anomalib Engine (Lightning Trainer) + validation-selection callback"})
        print(f"{DETECTOR} {suite} normal={normal} seed={seed} {variant}: test AUROC {m['auroc']:.3f} "
              f"(val {cb.best_auc:.3f} @ epoch {cb.best_epoch}/{epochs}), fit {fit_s:.0f} s, "
              f"{m['score_ms_per_image']:.2f} ms/img", flush=True)
    except Exception as e:  # noqa: BLE001 -- one crash is a record, as in anogen.bench.run_suite
        rec = common.failed(base, e)
        print(f"FAILED {suite} {normal} seed {seed} {variant}: {rec['error']}", flush=True)
    common.append(out, rec)


# ---------------------------------------------------------------------------------------------------- speed
def _time_batch(model: Any, x: torch.Tensor, repeats: int = 3) -> dict[str, Any]:
    """As ``anogen.speed.speed_one``: median of ``repeats`` timed scoring calls after a warm-up; FLOPs counted."""
    from torch.utils.flop_counter import FlopCounterMode

    raw_scores(model, x, batch=len(x))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        raw_scores(model, x, batch=len(x))
        times.append(time.perf_counter() - t0)
    t = float(np.median(times))
    try:
        with FlopCounterMode(display=False) as fc:
            raw_scores(model, x, batch=len(x))
        flops: float | None = float(fc.get_total_flops())
    except Exception:  # noqa: BLE001 -- no FLOP count is not an error (as anogen.speed._flops)
        flops = None
    n = len(x)
    return {"ms_per_image": 1000 * t / n, "images_per_second": n / t,
            "gflop": None if flops is None else flops / 1e9,
            "gflops_per_second": None if flops is None else flops / t / 1e9}


def run_speed(size: int, out: Path, prov: dict[str, Any], n_train: int = 32, seed: int = 0) -> None:
    """The ``speed`` record of ``anogen.speed.run_speed`` for anomalib's GANomaly at its defaults (3 channels)."""
    from anogen.speed import matmul_gflops
    from anogen.metrics import time_scoring

    key = common.run_key("speed", DETECTOR, size, torch.get_num_threads(), common.peer_versions()["anomalib"])
    if key in common.done_ids(out):
        print(f"skip speed {size} px (recorded)", flush=True)
        return
    rec: dict[str, Any] = {"schema": 1, "run_id": key, "suite": "speed", "detector": DETECTOR, "peer": "anomalib",
                           "peer_version": common.peer_versions()["anomalib"], "image_size": size, "overrides": {},
                           "matmul_gflops": matmul_gflops(), "started": common.now(), **prov}
    t0 = time.perf_counter()
    try:
        rng = np.random.default_rng(seed)
        train_imgs = rng.integers(0, 256, size=(n_train, size, size, CHANNELS), dtype=np.uint8)
        model, _, fit_s = train(size, 1, common.preprocess(train_imgs, size, CHANNELS), None, None, seed)
        rec.update({"train_seconds_per_epoch": fit_s, "n_train": n_train,
                    "params": int(sum(p.numel() for p in model.model.parameters())),
                    "params_generator": int(sum(p.numel() for p in model.model.generator.parameters())),
                    "params_note": "params = generator + discriminator (as anogen counts nets_); scoring uses the "
                                   "generator only"})
        scorer = common.Scorer(lambda raw: raw_scores(model, common.preprocess(raw, size, CHANNELS)))
        for batch in (1, 32, 64):
            imgs = rng.integers(0, 256, size=(batch, size, size, CHANNELS), dtype=np.uint8)
            rec[f"b{batch}"] = _time_batch(model, common.preprocess(imgs, size, CHANNELS))
            rec[f"b{batch}_end_to_end_ms_per_image"] = time_scoring(scorer, imgs, repeats=3)
        rec["config"] = config_of(size, 1)
        rec["status"] = "ok"
        print(f"{DETECTOR} speed {size} px: b1 {rec['b1']['ms_per_image']:.2f} ms, b32 "
              f"{rec['b32']['ms_per_image']:.2f} ms/img, b64 {rec['b64']['ms_per_image']:.2f} ms/img, "
              f"{rec['params']} params, {fit_s:.1f} s / epoch of {n_train}", flush=True)
    except Exception as e:  # noqa: BLE001
        rec = common.failed(rec, e)
        print(f"FAILED speed {size}: {rec['error']}", flush=True)
    rec["wall_seconds"] = time.perf_counter() - t0
    common.append(out, rec)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("suite", choices=["mtd", "digits", "speed"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="image sides (mtd: 64 32, digits: 32)")
    ap.add_argument("--classes", type=int, nargs="+", default=[0, 1, 2], help="digits: normal classes")
    ap.add_argument("--epochs", type=int, default=None, help="maximum epochs (mtd: 20, digits: 30)")
    ap.add_argument("--size", type=int, default=256, help="speed: image side")
    ap.add_argument("--data-root", default=common.SHARED_DATA, help="folder with mtd/ and mtd_splits.json")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (anogen's CPU records use 1)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    common.data_root = a.data_root
    torch.set_num_threads(a.threads)
    _quiet()
    prov = common.provenance()
    warm_up()
    if a.suite == "speed":
        run_speed(a.size, a.out or common.RESULTS / "speed.jsonl", prov)
        return
    out = a.out or common.RESULTS / "anomalib.jsonl"
    if a.suite == "mtd":
        for size in a.sizes or [64, 32]:
            for seed in a.seeds:
                run_accuracy("mtd", common.mtd_spec(a.data_root), None, seed, size, a.epochs or 20, out, prov)
    else:
        for size in a.sizes or [32]:
            for normal in a.classes:
                for seed in a.seeds:
                    run_accuracy("digits", f"digits:normal={normal}", normal, seed, size, a.epochs or 30, out, prov)


if __name__ == "__main__":
    main()
