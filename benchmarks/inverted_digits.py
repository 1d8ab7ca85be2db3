"""Issue 14, part 4: why ALAD, f-AnoGAN and the EBGAN family score below chance on one-class digits with "1" normal.

For each detector (CPU preset, one-class digits, the digits suite's split and labelled validation, seed 0) and each
normal class given, one record with:

- ``scores``: the test AUROC of every anomaly score the method offers (switched after the fit: a score field only
  changes scoring), and each score's Spearman correlation with the amount of ink (mean pixel value) of the test
  images -- the hypothesis of the issue: "an L2 residual follows the amount of ink, and '1' has the least";
- ``ink_auroc``: the AUROC of the amount of ink itself (is there an ink difference to follow at all?);
- ``rec_spread``: the spread of the image reconstructions x' (mean over pixels and images of (x' - mean x')^2)
  divided by the spread of the inputs: near 0, x' hardly depends on x (the inverse map, or the generator, has
  collapsed to about one image);
- ``g_spread``: the same spread of G(z), z ~ N(0, I) (200 samples) over the spread of the inputs (generator diversity);
- ``template_auroc``: the AUROC of ||x - c||_2 with c = the mean reconstruction of the test images (a constant
  template): when it matches the residual score's AUROC, the score is a distance to one image;
- ``mean_auroc``: the AUROC of ||x - m||_2, m = the mean training image (what a template of the normal class gives).

Run: ``python benchmarks/inverted_digits.py --out benchmarks/results/inverted-digits.jsonl`` (about 3 min on one core).
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
import warnings

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

import anogen
from anogen._registry import get
from anogen.bench import provenance
from anogen.run import fit_kwargs as _fit_kwargs
from anogen.data.spec import load_spec

SCORES = {"alad": ("features", "logits", "l1", "l2"), "f_anogan": ("image_feature", "image", "latent")}


def reconstruction(det, x: torch.Tensor) -> torch.Tensor:
    if det.name == "alad":
        return det.reconstruct(x)
    if det.name == "f_anogan":
        return det.reconstruct(x)[1]
    return det.score_terms(x)["rec"]  # the EBGAN family: the image reconstruction of the default score


def generator(det):
    if det.name == "alad":
        return det.scoring_nets()[1]
    return det.net("G") if hasattr(det, "net") else det.nets_["G"]


def spread(t: torch.Tensor) -> float:
    return float(((t - t.mean(0, keepdim=True)) ** 2).mean())


def measure(name: str, normal: int) -> dict:
    cls = get(name)
    preset = importlib.import_module(cls.__module__).PRESETS["cpu"]
    cfg = {**{k: v for k, v in preset.items() if k in cls.field_names()}, "channels": 1, "verbose": False, "seed": 0}
    split = load_spec(f"digits:normal={normal}", seed=0)
    det = anogen.create(name, **cfg).fit(split.train.x, **_fit_kwargs(split.val))
    y = split.test.y
    x = det._prepare(split.test.x)
    ink = det._unit_images(split.test.x).mean(dim=(1, 2, 3)).numpy()
    default = det.score
    rec = {"detector": name, "normal": normal, "default_score": default, "best_epoch": getattr(det, "best_epoch_", None),
           "config": cfg, "ink_auroc": float(roc_auc_score(y, ink)), "scores": {}}
    for sc in getattr(cls, "SCORES", None) or SCORES[name]:
        det.score = sc
        s = det.decision_function(split.test.x)
        rec["scores"][sc] = {"auroc": float(roc_auc_score(y, s)), "spearman_ink": float(spearmanr(s, ink)[0])}
    det.score = default
    det.nets_.eval()
    with torch.no_grad():
        xr = reconstruction(det, x)
        rec["rec_spread"] = spread(xr) / spread(x)
        c = xr.mean(0, keepdim=True)
        rec["template_auroc"] = float(roc_auc_score(y, (x - c).flatten(1).norm(dim=1).numpy()))
        m = det._prepare(split.train.x).mean(0, keepdim=True)
        rec["mean_auroc"] = float(roc_auc_score(y, (x - m).flatten(1).norm(dim=1).numpy()))
        try:
            g = generator(det)(torch.randn(200, det.latent_dim, generator=torch.Generator().manual_seed(0)))
            rec["g_spread"] = spread(g) / spread(x)
        except Exception as e:  # a generator taking another latent shape
            rec["g_spread"], rec["g_spread_error"] = None, f"{type(e).__name__}: {e}"
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--detectors", default="alad,f_anogan,ebgan,encebgan,sencebgan")
    ap.add_argument("--normals", default="1,0")
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    prov = provenance()
    with open(args.out, "a") as f:
        for normal in [int(v) for v in args.normals.split(",")]:
            for name in args.detectors.split(","):
                t0 = time.perf_counter()
                rec = {"suite": "inverted-digits", **measure(name, normal), **prov,
                       "wall_seconds": time.perf_counter() - t0}
                f.write(json.dumps(rec, sort_keys=True) + "\n")
                f.flush()
                s = ", ".join(f"{k} {v['auroc']:.3f}" for k, v in rec["scores"].items())
                print(f"{name} normal={normal}: {s}; ink {rec['ink_auroc']:.3f}; rec spread {rec['rec_spread']:.3f}; "
                      f"template {rec['template_auroc']:.3f}; mean image {rec['mean_auroc']:.3f}", flush=True)


if __name__ == "__main__":
    main()
