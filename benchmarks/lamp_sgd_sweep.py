"""The learning rate of the LAMP suite's SGD cells, chosen on validation AUROC only (issue 16, item 3).

    python benchmarks/lamp_sgd_sweep.py --out benchmarks/results/lamp-sgd-sweep.jsonl

The LAMP paper tunes each optimizer's learning rate and gives no values. At the suite's first setting (lr 1e-3, no
momentum, 15 epochs at CPU scale) SGD does not train (test AUROC 0.39-0.48 where RMSprop and Adam reach 0.95-0.98).
This sweep runs the suite's L2 SGD cells (plain and LAMP, MNIST normal 0, seed 0) with momentum 0.9 over a few
learning rates and picks the one with the best mean validation AUROC; ``anogen.bench`` sets it as the suite's SGD
setting (``LAMP_SGD``). Test AUROC is recorded but not used for the choice.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

from anogen.bench import SUITES, expand, read_records, require_clean, run_suite

LRS = (1e-3, 1e-2, 3e-2, 1e-1)
MOMENTUM = 0.9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--allow-dirty", action="store_true")
    a = ap.parse_args(argv)
    require_clean(a.allow_dirty)
    runs = []
    for lr in LRS:
        for r in expand(SUITES["lamp"], "cpu", variants=["l2,sgd,plain", "l2,sgd,lamp"], seeds=[0],
                        extra={"lr": lr, "momentum": MOMENTUM}):
            runs.append(dataclasses.replace(r, suite="lamp-sgd-sweep", variant=f"{r.variant},lr={lr:g}"))
    run_suite(runs, a.out)
    recs = [r for r in read_records(a.out) if r.get("status") == "ok"]
    by_lr: dict[float, list[float]] = {}
    for r in recs:
        print(f"{r['variant']:<24} val AUROC {r['val_auroc']:.3f}  test AUROC {r['metrics']['auroc']:.3f}")
        by_lr.setdefault(r["config"]["lr"], []).append(r["val_auroc"])
    best = max(by_lr, key=lambda lr: np.mean(by_lr[lr]))
    print(f"chosen on validation: lr {best:g}, momentum {MOMENTUM} (mean val AUROC {np.mean(by_lr[best]):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
