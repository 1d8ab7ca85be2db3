"""Reports from benchmark records: tables (HTML and Markdown) and figures; nothing here trains or scores.

``anogen report RECORDS... -o DIR`` writes ``DIR/index.html`` (one section per suite: a table of mean +- std AUROC
over seeds with the paper's number beside ours where the paper has one, then the figures), ``DIR/results.md`` (the
same tables in Markdown, for the README and ``docs/methods``) and ``DIR/fig/*.png``. Every number comes from a
record; the papers' numbers come from :data:`PAPER` with the table they are quoted from and its settings, so a
reader sees when the settings differ (size, epochs, data).

Size: about 680 lines, over DESIGN's ~600 prompt: :data:`PAPER` (the quoted paper numbers) and one small table
builder per kind of suite (AUROC grids, tricks' precision / recall / F1, speed, load, selection, drift) share the
page assembly; splitting them would scatter one page's layout over several modules.
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from anogen.bench import SUITES, iter_ok, read_records

PAPER: dict[tuple[str, str], tuple[float, str]] = {
    ("mtd", "algan"): (0.956, "ALGAN paper Table 3: 256 px, 512 epochs, mean of 10 runs"),
    ("mtd", "algan_feature"): (0.824, "ALGAN paper Table 3: WideResNet-101 features, 192 epochs"),
    ("mtd", "ganomaly"): (0.683, "ALGAN paper Table 3"),
    ("mtd", "skip_ganomaly"): (0.504, "ALGAN paper Table 3"),
    ("coil", "algan"): (0.999, "ALGAN paper Table 4: full COIL-100, 10 runs"),
    ("coil", "algan_feature"): (1.000, "ALGAN paper Table 4: full COIL-100, 10 runs"),
    ("industrial", "algan"): (0.956, "ALGAN paper Table 3 (MTD): whole 256 px images, 512 epochs, mean of 10 runs"),
    ("industrial", "algan_feature"): (0.824, "ALGAN paper Table 3 (MTD): WideResNet-101 last block, 192 epochs"),
    ("industrial", "patchcore"): (0.979, "ALGAN paper Table 3 (MTD): PatchCore-10 (WideResNet features)"),
    ("industrial-coil", "algan"): (0.999, "ALGAN paper Table 4: full COIL-100, 10 runs"),
    ("industrial-coil", "algan_feature"): (1.000, "ALGAN paper Table 4: full COIL-100, 10 runs"),
    ("industrial-coil", "patchcore"): (1.000, "ALGAN paper Table 4: PatchCore-1, full COIL-100, 10 runs"),
}
"""(suite, detector) -> (the paper's AUROC, where it comes from and under which settings)."""

PAPER_VARIANTS: dict[tuple[str, str, str], tuple[float, str]] = {
    ("lamp-mnist", "ae", "L2"): (0.926, "LAMP paper Table 1: L2, batch 16, mean over the ten one-class tasks"),
    ("lamp-mnist", "ae", "LAMP-L2"): (0.932, "LAMP paper Table 1: LAMP-L2, batch 16, mean over the ten tasks"),
    ("erase", "vae", "elbo"): (0.745, "unregularized-score paper, SVHN toy (4 x 4 erased): the ELBO score"),
    ("erase", "vae", "unregularized"): (0.943, "unregularized-score paper, SVHN toy: the unregularized score M"),
    ("erase32", "vae", "elbo"): (0.745, "unregularized-score paper, SVHN toy (4 x 4 erased): the ELBO score"),
    ("erase32", "vae", "unregularized"): (0.943, "unregularized-score paper, SVHN toy: the unregularized score M"),
    ("algan-ablation", "algan", "none"): (0.643, "ALGAN Table 7 (MVTec AD mean, not MTD)"),
    ("algan-ablation", "algan", "both"): (0.878, "ALGAN Table 7 (MVTec AD mean, not MTD)"),
}


SCRIPT_SUITES = {"lamp-sgd-sweep": "benchmarks/lamp_sgd_sweep.py: the LAMP grid's SGD learning rate (momentum 0.9), "
                                   "chosen on validation AUROC only; the lamp suite's SGD cells use the choice"}
"""Descriptions of record sets made by scripts in ``benchmarks/`` rather than by a suite of :mod:`anogen.bench`."""

EXTRA_METRICS: dict[str, list[str]] = {"tricks": ["precision", "recall", "f1"]}
"""Suites whose papers report more than AUROC (thesis Tables 51-55: AUROC, precision, recall, F1)."""

METRIC_NAMES = {"precision": "Precision at the calibrated threshold", "recall": "Recall at the calibrated threshold",
                "f1": "F1 at the calibrated threshold", "best_f1": "Best F1 over thresholds"}


DIRTY_MARK = " †"
DIRTY_NOTE = ("† from a working tree with uncommitted changes (the record's `git_dirty`): its commit does not hold "
              "exactly the code that ran.")


def _dirty(recs: Iterable[dict[str, Any]]) -> bool:
    return any(r.get("git_dirty") for r in recs)


def _fmt(mean: float, std: float, n: int) -> str:
    return f"{mean:.3f}" if n == 1 else f"{mean:.3f} ± {std:.3f}"


def _mean_std(v: list[float]) -> tuple[float, float, int]:
    a = np.asarray(v, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0, len(a)


def _settings(r: dict[str, Any]) -> str:
    from anogen._registry import get

    c = r.get("config", {})
    try:
        iterative = get(r["detector"]).iterative
    except KeyError:  # a peer's record
        iterative = True
    bits = [f"{c.get('image_size')} px" if "image_size" in c else "",
            f"{c.get('epochs')} ep" if "epochs" in c and iterative else ""]
    if c.get("patch_size"):
        bits.append(f"{c['patch_size']} px patches")
    if r.get("max_train"):
        bits.append(f"<= {r['max_train']} train")
    return ", ".join(b for b in bits if b)


def selection(r: dict[str, Any]) -> str:
    """How a record's run chose the state it scored with, and among how many: anogen's detectors validate every
    ``val_every`` epochs and at the last (the best validation AUROC wins), anomalib's every epoch, PyOD's never."""
    from anogen._registry import get

    c = r.get("config") or {}
    checks = sum(1 for h in r.get("history") or [] if "val_auroc" in h)
    epochs = c.get("epochs")
    if r.get("peer"):
        how = str(c.get("selection") or "not stated")
        return how if not checks else f"{how}: {checks} of {epochs} epochs checked"
    try:
        iterative = get(r["detector"]).iterative
    except KeyError:
        iterative = True
    if not iterative:
        return "none (one fit, no epochs)"
    if not checks:
        return "none (no validation set)"
    return f"every {c.get('val_every')} epochs and the last: {checks} of {epochs} epochs checked"


def selection_note(records: list[dict[str, Any]]) -> str:
    """One line per suite: which detector selects its epoch on validation AUROC how often."""
    by: dict[str, set[str]] = defaultdict(set)
    for r in records:
        by[selection(r)].add(r["detector"])
    return "Epoch selection on validation AUROC: " + "; ".join(
        f"{', '.join(sorted(d))}: {how}" for how, d in sorted(by.items(), key=lambda kv: sorted(kv[1]))) + "."


def _source(r: dict[str, Any]) -> str:
    """The data source of a record without path and options: "mtd", "erase:mnist", "digits"."""
    head = r["data"].split(",")[0]
    parts = head.split(":")
    return ":".join(parts[:2]) if parts[0] == "erase" else parts[0]


def suite_table(records: list[dict[str, Any]], metric: str = "auroc") -> tuple[list[str], list[list[str]]]:
    """Header and rows for one suite: one row per (detector, variant); columns = normal classes (or variants)."""
    suite = records[0]["suite"]
    sources = {_source(r) for r in records}
    colkey = (lambda r: str(r.get("normal")) if len(sources) == 1 or r.get("normal") is not None else _source(r))
    classes = sorted({colkey(r) for r in records}, key=lambda c: (len(c), c))
    variants = list(dict.fromkeys(r["variant"] for r in records))
    by_variant_cols = len(classes) == 1 and len(variants) > 1
    cols = variants if by_variant_cols else classes
    cells: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    extra: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        row = (r["detector"], "" if by_variant_cols else r["variant"])
        col = r["variant"] if by_variant_cols else colkey(r)
        cells[row][col].append(r["metrics"][metric])
        extra[row]["dirty"].append(float(bool(r.get("git_dirty"))))
        extra[row]["fit"].append(r["fit_seconds"])
        extra[row]["ms"].append(r["metrics"].get("score_ms_per_image", np.nan))
        extra[row]["settings"] = [_settings(r)]  # type: ignore[list-item]
    show_cols = [c for c in cols if c != "None"]
    head = ["detector"] + ([] if by_variant_cols or len(variants) == 1 else ["variant"])
    head += [f"normal {c}" if not by_variant_cols and c.isdigit() else c for c in show_cols]
    if len(show_cols) > 1 and not by_variant_cols:
        head.append("mean")
    if not show_cols:
        head.append(metric.upper())
    head += ["paper", "fit s", "ms / image", "settings"]
    rows = []
    for (det, var) in sorted(cells):
        row = [det + (DIRTY_MARK if any(extra[(det, var)]["dirty"]) else "")]
        row += [] if by_variant_cols or len(variants) == 1 else [var]
        means = []
        for c in (show_cols or ["None"]):
            v = cells[(det, var)].get(c, [])
            if v:
                m, s, n = _mean_std(v)
                means.append(m)
                row.append(_fmt(m, s, n))
            else:
                row.append("")
        if len(show_cols) > 1 and not by_variant_cols:
            row.append(f"{np.mean(means):.3f}" if means else "")
        paper = PAPER_VARIANTS.get((suite, det, var)) or PAPER.get((suite, det))
        row.append(f"{paper[0]:.3f}" if paper and metric == "auroc" else "")
        row.append(f"{np.nanmean(extra[(det, var)]['fit']):.1f}")
        row.append(f"{np.nanmean(extra[(det, var)]['ms']):.3f}")
        row.append(str(extra[(det, var)]["settings"][0]))
        rows.append(row)
    return head, rows


def markdown(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _num(v: str) -> float | None:
    """The number a table cell starts with (``0.912 ± 0.010``, ``**0.900**``, ``0.95 †``), or None for a text cell."""
    try:
        return float(v.strip("*").split(" ")[0].strip("*"))
    except (ValueError, IndexError):
        return None


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    best_cols = [i for i, h in enumerate(head) if h not in ("detector", "variant", "paper", "fit s", "ms / image",
                                                             "settings", "runs", "data")]
    best = {}
    for i in best_cols:
        vals = [x for x in (_num(r[i]) for r in rows if r[i]) if x is not None]
        best[i] = max(vals) if vals else None
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = []
    for r in rows:
        tds = []
        for i, v in enumerate(r):
            cls = ""
            x = _num(v) if i in best and v else None
            if x is not None and best[i] is not None and x == best[i]:
                cls = ' class="best"'
            elif x is not None and 0 <= x < 0.5:
                cls = ' class="bad"'
            tds.append(f"<td{cls}>{html.escape(v)}</td>")
        trs.append("<tr>" + "".join(tds) + "</tr>")
    return f'<table><thead><tr>{th}</tr></thead><tbody>{"".join(trs)}</tbody></table>'


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def suite_figures(records: list[dict[str, Any]], fig_dir: Path) -> list[tuple[str, Path]]:
    """The figures of one suite, as (caption, path)."""
    from anogen import plots

    suite = records[0]["suite"]
    out: list[tuple[str, Path]] = []
    first_normal = sorted({str(r.get("normal")) for r in records})[0]
    first_seed = min(r["seed"] for r in records)
    chosen = [r for r in records if str(r.get("normal")) == first_normal and r["seed"] == first_seed
              and r.get("test_scores")]
    label = (lambda r: r["detector"] if len({x["variant"] for x in records}) == 1
             else f"{r['detector']} {r['variant']}")
    if chosen:
        p = fig_dir / f"{_slug(suite)}-roc.png"
        curves = {label(r): (r["test_labels"], r["test_scores"]) for r in chosen[:16]}
        plots.roc_curves(curves, p, title=f"{suite}: ROC (normal {first_normal}, seed {first_seed})")
        out.append((f"ROC curves on the test split (normal class {first_normal}, seed {first_seed}).", p))
        best = max(chosen, key=lambda r: r["metrics"]["auroc"])
        worst = min(chosen, key=lambda r: r["metrics"]["auroc"])
        for tag, r in (("best", best), ("worst", worst)):
            p = fig_dir / f"{_slug(suite)}-hist-{tag}.png"
            plots.score_histogram(r["test_labels"], r["test_scores"], r["metrics"].get("threshold"), p,
                                  title=f"{label(r)}: test scores ({tag} AUROC {r['metrics']['auroc']:.3f})")
            out.append((f"Score histogram of the {tag} detector, normal vs anomalous, with the threshold "
                        "calibrated on normal validation scores (ALGAN Fig. 5 style).", p))
            if tag == "best" and best is worst:
                break
    pts: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in records:
        pts[label(r)].append((r["metrics"].get("score_ms_per_image", np.nan), r["metrics"]["auroc"]))
    points = {k: (float(np.nanmean([a for a, _ in v])), float(np.mean([b for _, b in v]))) for k, v in pts.items()}
    points = {k: v for k, v in points.items() if np.isfinite(v[0]) and v[0] > 0}
    if len(points) > 1:
        p = fig_dir / f"{_slug(suite)}-auroc-time.png"
        plots.auroc_vs_time(points, p, title=f"{suite}: mean AUROC vs scoring time (this machine)")
        out.append(("Mean AUROC against scoring time per image on the machine of the records (ALGAN Fig. 6 style).",
                    p))
    hist = {label(r): r["history"] for r in chosen if any("val_auroc" in h for h in r.get("history") or [])}
    if hist:
        p = fig_dir / f"{_slug(suite)}-validation.png"
        plots.validation_curves(dict(list(hist.items())[:12]), p, title=f"{suite}: validation AUROC per epoch")
        out.append(("Validation AUROC per epoch (ALGAN Fig. 7 style); the best validated state is the one kept.", p))
    return out


def _first_tensor(out: Any, like: Any) -> Any:
    """A reconstruct() result that may be a tensor or a tuple holding one: the tensor shaped like the input."""
    if isinstance(out, (tuple, list)):
        return next(t for t in out if getattr(t, "shape", None) == like.shape)
    return out


def speed_table(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """One row per (detector, size) of the speed records (ours and the peers')."""
    head = ["detector", "px", "threads", "params (M)", "b1 ms/img", "b64 ms/img", "b64 GFLOP/s", "% of matmul",
            "b1 ms/img optimize()", "train s/epoch"]
    rows = []

    def g(d: Any, *ks: str) -> Any:
        for k in ks:
            d = d.get(k) if isinstance(d, dict) else None
        return d

    for r in sorted(records, key=lambda r: (r["detector"], r.get("image_size", 0))):
        if r.get("status") not in (None, "ok"):
            continue
        b64 = r.get("b64") or r.get("b32") or {}
        gf, mm = b64.get("gflops_per_second"), r.get("matmul_gflops")
        rows.append([r["detector"] + (f" ({r['peer']})" if r.get("peer") else ""), str(r.get("image_size", "")),
                     str(g(r, "machine", "torch_threads") or ""),
                     f"{r['params'] / 1e6:.2f}" if r.get("params") else "",
                     f"{g(r, 'b1', 'ms_per_image'):.2f}" if g(r, "b1", "ms_per_image") else "",
                     f"{b64['ms_per_image']:.2f}" if b64.get("ms_per_image") else "",
                     f"{gf:.1f}" if gf else "", f"{100 * gf / mm:.0f}" if gf and mm else "",
                     f"{g(r, 'b1_fast', 'ms_per_image'):.2f}" if g(r, "b1_fast", "ms_per_image") else "",
                     f"{r['train_seconds_per_epoch']:.2f}" if r.get("train_seconds_per_epoch") else ""])
    return head, rows


def _model_captions(name: str) -> dict[str, str]:
    """The caption of each figure kind :func:`model_figures` draws for the model called ``name``."""
    return {
        "samples": f"{name}: generated samples from N(0, I) latents (top) and from N(0, sigma^2 I) latents "
                   "(bottom), ALGAN Fig. 1 style.",
        "recon": f"{name}: test inputs (top; 5 normal, then 5 anomalous) and their reconstructions.",
        "heatmap": f"{name}: anomaly maps of the six highest-scoring test images, ground truth in cyan.",
        "parts": f"{name}: the negative ELBO's parts per test class, unregularized-score paper Fig. 5 style.",
    }


def model_figures(records: list[dict[str, Any]], fig_dir: Path, max_models: int = 6,
                  data_root: str | Path | None = None) -> list[tuple[str, Path]]:
    """Figures that need a saved model (``anogen bench --save-models``): generated samples (ALGAN Fig. 1),
    reconstructions, anomaly heat maps over test images with their ground-truth masks, and the VAE's score parts
    per class (unregularized-score paper Fig. 5). Loads models and the records' data specs (``DATA`` = ``data_root``);
    scores, never trains. Where a record's model is not on this machine, the figures an earlier report drew for it
    (same file names in ``fig_dir``) are kept."""
    import torch

    import anogen
    from anogen import plots
    from anogen.bench import resolve_spec
    from anogen.data.io import read_image
    from anogen.data.spec import load_spec

    out: list[tuple[str, Path]] = []
    suite = records[0]["suite"]
    seen: set[str] = set()
    with_models = [r for r in records if r.get("model_file")]
    for r in sorted(with_models, key=lambda r: (r["seed"], str(r.get("normal")))):
        tag = f"{r['detector']}-{r['variant']}"
        if tag in seen or len(seen) >= max_models * 3:
            continue
        seen.add(tag)
        base = f"{_slug(suite)}-{_slug(tag)}"
        name = f"{r['detector']} ({r['variant']})" if r["variant"] != "default" else r["detector"]
        captions = _model_captions(name)
        if not Path(r["model_file"]).is_file():
            out += [(c, fig_dir / f"{base}-{k}.png") for k, c in captions.items()
                    if (fig_dir / f"{base}-{k}.png").is_file()]
            continue
        try:
            det = anogen.load(r["model_file"])
            if det.input_kind_ != "image":
                continue
            test = load_spec(resolve_spec(r["data"], data_root), seed=r["seed"]).test
        except Exception:  # data not on this machine, or an old model: skip the figure, keep the report
            continue
        if callable(getattr(det, "generate", None)):
            p = fig_dir / f"{base}-samples.png"
            plots.sample_grid(det.generate(10, seed=0), det.generate(10, anomalous=True, seed=0), p,
                              title=f"{name}: fakes from normal vs anomalous latents")
            out.append((captions["samples"], p))
        pick = np.concatenate([np.flatnonzero(test.y == 0)[:5], np.flatnonzero(test.y == 1)[:5]])
        sub = test.subset(pick)
        if callable(getattr(det, "reconstruct", None)) and det.patch_size == 0:
            x = det._prepare(sub.x).to(det._device())
            det.nets_.eval()
            with torch.no_grad():
                rec = _first_tensor(det.reconstruct(x), x)
            p = fig_dir / f"{base}-recon.png"
            to01 = det.preprocess.denormalize
            plots.sample_grid(to01(x).clamp(0, 1).cpu(), to01(rec).clamp(0, 1).cpu(), p,
                              row_labels=("input", "reconstruction"),
                              title=f"{name}: 5 normal then 5 anomalous test images")
            out.append((captions["recon"], p))
        if test.masks is not None and det.has_anomaly_maps():
            scores = det.decision_function(test.x)
            order = np.argsort(-scores)[:6]
            hs = test.subset(order)
            masks = [None if k is None else (read_image(k) if isinstance(k, (str, Path)) else np.asarray(k))
                     for k in hs.masks]
            p = fig_dir / f"{base}-heatmap.png"
            plots.anomaly_heatmap(det.preprocess.denormalize(det.preprocess(hs.x)).numpy(), det.anomaly_maps(hs.x),
                                  masks, p, scores=scores[order].tolist(), title=f"{name}: most anomalous test images")
            out.append((captions["heatmap"], p))
        if callable(getattr(det, "score_parts", None)) and test.classes is not None:
            parts = det.score_parts(test.x)
            groups = {k: {str(c): parts[k][test.classes == c] for c in np.unique(test.classes)}
                      for k in ("D", "A", "M") if k in parts}
            p = fig_dir / f"{base}-parts.png"
            plots.box_by_class(groups, p, title=f"{name}: VAE score parts by class (D = KL, A = log-norm, "
                                                "M = unregularized)")
            out.append((captions["parts"], p))
    return out


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.7em;margin-bottom:0.2em} h2{border-bottom:2px solid #0072B2;padding-bottom:0.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:0.88em} th,td{padding:4px 9px;border-bottom:1px solid #ddd;
text-align:right} th{background:#f3f6fa;position:sticky;top:0} td:first-child,th:first-child{text-align:left;
font-weight:600} td.best{background:#d9f2e6;font-weight:700} td.bad{color:#D55E00}
.figs{display:flex;flex-wrap:wrap;gap:14px} figure{margin:0;flex:1 1 420px;max-width:560px}
figure img{width:100%;border:1px solid #eee} figcaption{font-size:0.82em;color:#555}
.meta{color:#666;font-size:0.85em} .note{background:#fff8e6;border-left:4px solid #E69F00;padding:0.5em 1em}
"""


def build(record_files: Iterable[str | Path], out_dir: str | Path, data_root: str | Path | None = None) -> Path:
    """Write ``index.html``, ``results.md`` and the figures for every suite in the records; returns the page.
    ``data_root``: where the records' ``DATA`` lies, for the figures that load test images (default
    ``../shared/data``)."""
    out_dir = Path(out_dir)
    fig_dir = out_dir / "fig"
    fig_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    every: list[dict[str, Any]] = []
    for f in record_files:
        recs = read_records(f)
        if not recs and not Path(f).exists():
            raise FileNotFoundError(f"records file not found: {f}")
        every.extend(recs)
        failed.extend(r for r in recs if r.get("status") == "failed")
    records.extend(iter_ok(every))  # across files too: a later file's record of the same run wins
    if not records:
        raise ValueError("no successful records to report")
    speed = [r for r in records if r["suite"] == "speed"]
    load = [r for r in records if r["suite"] == "load"]
    records = [r for r in records if r["suite"] not in ("speed", "load") and "auroc" in (r.get("metrics") or {})]
    by_suite: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:  # paper-scale runs (a GPU's) get their own table: a row never mixes scales
        by_suite[r["suite"] if r.get("scale") != "paper" else f"{r['suite']} (paper scale)"].append(r)
    md = ["# anogen benchmark results", "", "Generated by `anogen report` from benchmark records; do not edit by hand.",
          ""]
    body = ['<h1>anogen benchmark results</h1>',
            f'<p class="meta">{len(records)} runs from {len(by_suite)} suites; generated from records by '
            '<code>anogen report</code>. Green: best in its column; orange: below chance.</p>']
    for title, recs in sorted(by_suite.items()):
        suite = recs[0]["suite"]
        desc = SUITES[suite].description if suite in SUITES else SCRIPT_SUITES.get(suite, "")
        commits = sorted({(r.get("git_commit") or "?")[:8] for r in recs})
        machines = sorted({f"{r['machine'].get('processor')} x{r['machine'].get('cpu_count')}"
                           + (f" + {r['machine']['gpu']}" if r["machine"].get("gpu") else "") for r in recs})
        scales = sorted({str(r.get("scale", "peer")) for r in recs})
        seeds = sorted({r["seed"] for r in recs})
        meta = (f"scale {', '.join(scales)}; seeds {seeds}; commit {', '.join(commits)}; machine "
                f"{'; '.join(machines)}; data {recs[0]['data']}")
        head, rows = suite_table(recs)
        notes = sorted({f"{v[0]:.3f}: {v[1]}" for (s, d), v in PAPER.items() if s == suite
                        and any(r["detector"] == d for r in recs)}
                       | {f"{v[0]:.3f}: {v[1]}" for (s, d, _), v in PAPER_VARIANTS.items() if s == suite})
        md += [f"## {title}", "", desc, "", f"_{meta}_", "", markdown(head, rows), ""]
        md += [selection_note(recs), ""]
        if _dirty(recs):
            md += [DIRTY_NOTE, ""]
        if notes:
            md += ["Paper numbers: " + "; ".join(notes) + ". Our runs use the settings column.", ""]
        body.append(f'<h2 id="{_slug(title)}">{html.escape(title)}</h2><p>{html.escape(desc)}</p>'
                    f'<p class="meta">{html.escape(meta)}</p>' + _html_table(head, rows))
        body.append(f'<p class="meta">{html.escape(selection_note(recs))}</p>')
        if _dirty(recs):
            body.append(f'<p class="meta">{html.escape(DIRTY_NOTE.replace("`", ""))}</p>')
        for metric in EXTRA_METRICS.get(suite, []):
            h2, r2 = suite_table(recs, metric)
            h2 = [c for c in h2 if c not in ("paper", "fit s", "ms / image", "settings")]
            r2 = [row[: len(h2)] for row in r2]
            what = METRIC_NAMES.get(metric, metric)
            md += [f"{what}:", "", markdown(h2, r2), ""]
            body.append(f"<p><b>{html.escape(what)}</b></p>" + _html_table(h2, r2))
        if notes:
            body.append('<p class="note">Paper numbers: ' + html.escape("; ".join(notes))
                        + ". Our runs use the settings in the last column.</p>")
        fig_recs = recs if title == suite else [{**r, "suite": _slug(title)} for r in recs]  # own figure names
        figs = suite_figures(fig_recs, fig_dir) + model_figures(fig_recs, fig_dir, data_root=data_root)
        if figs:
            body.append('<div class="figs">' + "".join(
                f'<figure><img src="fig/{p.name}" alt="{html.escape(c)}"><figcaption>{html.escape(c)}</figcaption>'
                f'</figure>' for c, p in figs) + "</div>")
    without_labels = issue14_markdown(records, fig_dir)  # selection and drift suites (issue 14)
    if without_labels:
        md += ["## Working without labelled anomalies", "", without_labels]
        body.append("<h2 id='without-labels'>Working without labelled anomalies</h2>" + "".join(
            _html_table(*t(rs)) for t, rs in ((selection_table, [r for r in records if r.get("selection")]),
                                              (drift_table, [r for r in records if r.get("drift")])) if rs)
            + ("<img src='fig/drift.png' alt='drift'>" if (fig_dir / "drift.png").exists() else ""))
    if speed:
        head, rows = speed_table(speed)
        md += ["## speed", "", "Scoring time per image and throughput at batch 1 and 64, achieved GFLOP/s against the "
               "matmul rate measured in the same run, training seconds per epoch (32 random images).", "",
               markdown(head, rows), ""]
        body.append("<h2 id='speed'>speed</h2><p>Scoring ms per image (batch 1 / 64), achieved GFLOP/s against the "
                    "fp32 matmul rate measured in the same run, training seconds per epoch of 32 images.</p>"
                    + _html_table(head, rows))
    if load:
        head = ["detector", "px", "requests", "concurrency", "failed", "req / s", "p50 ms", "p99 ms", "mean group"]
        rows = [[r["detector"], str(r.get("image_size")), str(r["issued"]), str(r["settings"]["concurrency"]),
                 str(r["failed"]), f"{r['throughput_rps']:.1f}", f"{r['latency_ms']['p50']:.1f}",
                 f"{r['latency_ms']['p99']:.1f}", f"{r['server']['mean_group']:.1f}"] for r in load]
        md += ["## load", "", "`anogen serve` on loopback (benchmarks/load_test.py).", "", markdown(head, rows), ""]
        body.append("<h2 id='load'>serving load test</h2><p><code>anogen serve</code> on loopback, "
                    "benchmarks/load_test.py.</p>" + _html_table(head, rows))
    if failed:
        body.append(f"<h2>Failed runs ({len(failed)})</h2><ul>" + "".join(
            f"<li>{html.escape(r['suite'])} / {html.escape(r['detector'])} / {html.escape(str(r.get('variant')))}: "
            f"{html.escape(str(r.get('error'))[:300])}</li>" for r in failed) + "</ul>")
    page = out_dir / "index.html"
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>anogen results</title>"
                    f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")
    (out_dir / "results.md").write_text("\n".join(md) + "\n")
    return page


def latest_records(record_files: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The successful records of ``record_files``, the last one per run across the files (a later file's record of
    the same run, e.g. a showcase rerun with the model saved, supersedes the earlier one: counted once)."""
    return list(iter_ok([r for f in record_files for r in read_records(f)]))


def method_results(records: list[dict[str, Any]]) -> dict[str, str]:
    """``{detector: markdown}``: per detector, one row per suite x variant with mean +- std AUROC over every class and
    seed it ran, the paper's number where there is one, and the settings (for ``docs/methods/<name>.md``)."""
    groups: dict[str, dict[tuple[str, str], list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if "auroc" in (r.get("metrics") or {}):
            groups[r["detector"]][(r["suite"], r["variant"])].append(r)
    out = {}
    for det, by in groups.items():
        rows = []
        for (suite, variant), recs in sorted(by.items()):
            m, s, n = _mean_std([r["metrics"]["auroc"] for r in recs])
            paper = PAPER_VARIANTS.get((suite, det, variant)) or PAPER.get((suite, det))
            classes = sorted({str(r.get("normal")) for r in recs if r.get("normal") is not None})
            rows.append([suite + (DIRTY_MARK if _dirty(recs) else ""), variant, _fmt(m, s, n),
                         f"{paper[0]:.3f}" if paper else "", str(n), ",".join(classes) or "-", sorted({str(r["seed"]) for r in recs}).__str__(),
                         _settings(recs[0])])
        head = ["suite", "variant", "AUROC (mean ± std over runs)", "paper", "runs", "normal classes", "seeds",
                "settings"]
        out[det] = markdown(head, rows) + ("\n\n" + DIRTY_NOTE if any(r[0].endswith(DIRTY_MARK) for r in rows)
                                           else "")
    return out


def inject(path: str | Path, marker: str, text: str) -> bool:
    """Replace what sits between ``<!-- marker:begin -->`` and ``<!-- marker:end -->`` in ``path`` (appending the
    block at the end when the markers are missing); returns True when the file changed."""
    path = Path(path)
    old = path.read_text() if path.exists() else ""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in old and end in old:
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    if new != old:
        path.write_text(new)
    return new != old


# ---------------------------------------------------------------------------------------------------- issue 14
SELECTION_MODES = ("labels", "synthetic", "synthetic_best", "last")


def selection_results(r: dict[str, Any]) -> dict[str, float]:
    """Test AUROC per selection mode of one selection record, the modes' epochs taken from its history by
    :func:`anogen.evaluations.pick_epochs` (the rule of the current code; the record stores the test AUROC of every
    epoch its own rules picked, and the synthetic rule's pick is always one of its best and last epochs)."""
    from anogen.evaluations import pick_epochs

    n = (r.get("health") or {}).get("n_heldout")
    tested = {v["epoch"]: v["test_auroc"] for v in r["selection"].values() if v.get("epoch") is not None}
    picks = pick_epochs(r["history"], n, None if n is None else 5 * n)
    return {m: tested[picks[m]] for m in SELECTION_MODES}


def selection_table(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The selection suites: per data set and detector, mean test AUROC (over classes and seeds) of the state each
    mode picks, synthetic - labels, and the data set's mean over detectors (one row per data set, ``all``)."""
    recs = [{**r, "modes": selection_results(r)} for r in records if r.get("selection")]
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        by[(r["suite"].removeprefix("selection-"), r["detector"])].append(r)
    head = ["data", "detector", "runs", *[f"{m} AUROC" for m in SELECTION_MODES], "synthetic - labels",
            "synthetic - last"]
    rows: list[list[str]] = []
    for data in sorted({k[0] for k in by}):
        per_det = []
        for (d, det), rs in sorted(by.items()):
            if d != data:
                continue
            means = [float(np.mean([r["modes"][m] for r in rs])) for m in SELECTION_MODES]
            per_det.append(means)
            rows.append([data, det, str(len(rs)), *[f"{v:.3f}" for v in means], f"{means[1] - means[0]:+.3f}",
                         f"{means[1] - means[3]:+.3f}"])
        m = np.mean(per_det, axis=0)
        rows.append([data, "**mean over detectors**", str(sum(len(rs) for (d, _), rs in by.items() if d == data)),
                     *[f"**{v:.3f}**" for v in m], f"**{m[1] - m[0]:+.3f}**", f"**{m[1] - m[3]:+.3f}**"])
    return head, rows


def health_summary(records: list[dict[str, Any]]) -> str:
    """One generated sentence: how the health check's synthetic AUROC (< 0.6 warns) matched the test AUROC."""
    from scipy.stats import spearmanr

    from anogen.health import MIN_AUROC

    rs = [r for r in records if (r.get("health") or {}).get("synthetic_auroc") is not None]
    if not rs:
        return ""
    syn = np.array([r["health"]["synthetic_auroc"] for r in rs])
    test = np.array([r["metrics"]["auroc"] for r in rs])
    warned = syn < MIN_AUROC
    bad, good = test < 0.6, test >= 0.9
    ks = sum(any("overfitting" in w for w in r["health"]["warnings"]) for r in rs)
    return (f"Health check over these {len(rs)} runs (final states): the synthetic-defect AUROC warned (< {MIN_AUROC}) "
            f"on {int((warned & bad).sum())} of the {int(bad.sum())} runs with test AUROC < 0.6 and on "
            f"{int((warned & good).sum())} of the {int(good.sum())} with test AUROC >= 0.9; Spearman correlation "
            f"of synthetic and test AUROC {spearmanr(syn, test)[0]:.2f}; the overfitting test (KS) warned on {ks}.")


def drift_drops(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{variant: {detector: {shift: AUROC(shifted) - AUROC(unshifted)}}}``, means over seeds (the drift suite)."""
    acc: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in records:
        d = r.get("drift")
        if d:
            for shift, v in d.items():
                if shift != "none":
                    acc[r["variant"]][r["detector"]][shift].append(v - d["none"])
    return {var: {det: {s: float(np.mean(v)) for s, v in sh.items()} for det, sh in dets.items()}
            for var, dets in acc.items()}


def drift_table(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The drift suite: per detector and variant, test AUROC unshifted and under each shift, and the largest drop."""
    recs = [r for r in records if r.get("drift")]
    shifts = list(dict.fromkeys(s for r in recs for s in r["drift"] if s != "none"))
    head = ["detector", "intensity", "unshifted", *shifts, "largest drop"]
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        by[(r["detector"], r["variant"])].append(r)
    rows = []
    for (det, var), rs in sorted(by.items()):
        base = float(np.mean([r["drift"]["none"] for r in rs]))
        vals = [float(np.mean([r["drift"][s] for r in rs])) for s in shifts]
        rows.append([det, var, f"{base:.3f}", *[f"{v:.3f}" for v in vals], f"{max(base - v for v in vals):+.3f}"])
    return head, rows


def issue14_markdown(records: list[dict[str, Any]], fig_dir: Path | None = None) -> str:
    """Markdown of the selection and drift tables (and the drift figure into ``fig_dir``), "" without records."""
    out = []
    sel = [r for r in records if r["suite"].startswith("selection-") and r.get("selection")]
    if sel:
        head, rows = selection_table(sel)
        commits = sorted({(r.get("git_commit") or "?")[:8] for r in sel})
        out += ["### Model selection: labelled validation vs synthetic defects vs last epoch", "",
                "Test AUROC of the state each mode keeps, from one training run per detector, data set, class and "
                f"seed (`benchmarks/results/selection.jsonl`, commit {', '.join(commits)}).", "",
                markdown(head, rows), ""]
    if sel:
        out += [health_summary(sel), ""]
    dr = [r for r in records if r["suite"] == "drift" and r.get("drift")]
    if dr:
        head, rows = drift_table(dr)
        commits = sorted({(r.get("git_commit") or "?")[:8] for r in dr})
        out += ["### Lighting drift (MTD)", "", "Test AUROC with the test images (normal and defective alike) under "
                "each shift; training untouched; largest drop = unshifted - worst shift "
                f"(`benchmarks/results/drift.jsonl`, commit {', '.join(commits)}).", "", markdown(head, rows), ""]
        if fig_dir is not None:
            from anogen import plots

            plots.drift_bars(drift_drops(dr), Path(fig_dir) / "drift.png")
            out += ["![AUROC change under each shift, per detector, without and with intensity standardisation]"
                    "(fig/drift.png)", ""]
    return "\n".join(out)


def inverted_table(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """``benchmarks/inverted_digits.py`` records: per detector and normal digit, the test AUROC of every score (the
    default first), the ink AUROC, the reconstruction and generator spreads and the template AUROC."""
    head = ["detector", "normal", "AUROC per score (default first)", "ink AUROC", "x' spread / x spread",
            "G(z) spread / x spread", "distance to template: AUROC", "distance to mean image: AUROC"]
    rows = []
    last: dict[tuple[str, int], dict[str, Any]] = {}
    for r in records:
        last[(r["detector"], r["normal"])] = r  # the latest record of each
    for (det, normal), r in sorted(last.items(), key=lambda kv: (kv[0][1] != 1, kv[0])):
        default = {"auto": "image_feature"}.get(r["default_score"], r["default_score"])  # f-AnoGAN izi_f: eq. 3.4
        order = [default] + [s for s in r["scores"] if s != default]
        scores = ", ".join(f"{s} {r['scores'][s]['auroc']:.3f}" for s in order)
        g = r.get("g_spread")
        rows.append([det, str(normal), scores, f"{r['ink_auroc']:.3f}", f"{r['rec_spread']:.3f}",
                     "-" if g is None else f"{g:.3f}", f"{r['template_auroc']:.3f}", f"{r['mean_auroc']:.3f}"])
    return head, rows
