"""Figures from arrays: ROC curve, score histogram, generated samples, anomaly heat maps, validation curves.

Nothing here trains or scores: every function takes numbers (labels, scores, images, maps, ``det.history_``) and
returns a matplotlib :class:`~matplotlib.figure.Figure`, also written as a PNG when ``path`` is given. Figures are
made with the object API on an Agg canvas (no pyplot, no display, the user's chosen backend left alone), so this
module is safe in scripts, servers, notebooks and tests.
Colours are the Okabe-Ito palette (colour-blind safe); heat maps use the perceptually uniform ``inferno`` map.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from anogen import metrics

# Okabe & Ito, "Color Universal Design" (2008): distinguishable under every common colour-vision deficiency.
BLUE, ORANGE, VERMILLION, GREEN, SKY, PURPLE, YELLOW = (
    "#0072B2", "#E69F00", "#D55E00", "#009E73", "#56B4E9", "#CC79A7", "#F0E442"
)
NORMAL_COLOR, ANOMALY_COLOR = BLUE, VERMILLION
_CYCLE = [BLUE, VERMILLION, GREEN, ORANGE, PURPLE, SKY, YELLOW]

_STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 9,
    "figure.dpi": 100,
    "savefig.dpi": 150,
}


@contextmanager
def _style() -> Iterator[None]:
    with matplotlib.rc_context(_STYLE):
        yield


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150, facecolor="white")
    return fig


# ---------------------------------------------------------------------------------------------- score plots
def roc_curve(
    y: Any, s: Any, path: str | Path | None = None, *, label: str | None = None, title: str = "ROC curve"
) -> Figure:
    """ROC curve of scores ``s`` for labels ``y`` (1 = anomaly), with the AUROC in the legend."""
    from sklearn.metrics import roc_curve as sk_roc_curve

    y, s = metrics._check(y, s)
    fpr, tpr, _ = sk_roc_curve(y, s)
    auc = metrics.auroc(y, s)
    with _style():
        fig = _figure(4.6, 4.4)
        ax = fig.add_subplot()
        name = f"{label}: " if label else ""
        ax.plot(fpr, tpr, color=BLUE, lw=2, label=f"{name}AUROC = {auc:.3f}")
        ax.fill_between(fpr, tpr, step=None, color=BLUE, alpha=0.08)
        ax.plot([0, 1], [0, 1], color="0.55", lw=1, ls="--", label="chance (0.500)")
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal", title=title)
        ax.set_xlabel("false positive rate (normal flagged)")
        ax.set_ylabel("true positive rate (anomalies found)")
        ax.legend(loc="lower right")
    return _save(fig, path)


def score_histogram(
    y: Any,
    s: Any,
    threshold: float | None = None,
    path: str | Path | None = None,
    *,
    bins: int = 40,
    density: bool = True,
    title: str = "Anomaly scores",
) -> Figure:
    """Overlaid histograms of the scores of normal and anomalous samples, the threshold as a vertical line.

    As the ALGAN paper's Fig. 5. ``density=True`` (default) scales each class to unit area, so a small class stays
    visible next to a large one; the legend gives the counts.
    """
    y, s = metrics._check(y, s)
    edges = np.histogram_bin_edges(s if threshold is None else np.append(s, threshold), bins=bins)
    with _style():
        fig = _figure(6.0, 3.8)
        ax = fig.add_subplot()
        for cls, name, color in ((0, "normal", NORMAL_COLOR), (1, "anomalous", ANOMALY_COLOR)):
            v = s[y == cls]
            ax.hist(v, bins=edges, density=density, color=color, alpha=0.45, label=f"{name} (n={len(v)})")
            ax.hist(v, bins=edges, density=density, color=color, histtype="step", lw=1.6)
        if threshold is not None:
            ax.axvline(threshold, color="black", ls="--", lw=1.4, label=f"threshold = {threshold:.4g}")
        ax.set_xlabel("anomaly score")
        ax.set_ylabel("density" if density else "count")
        ax.set_title(title)
        ax.grid(axis="x", visible=False)
        ax.legend(loc="upper right")
    return _save(fig, path)


def validation_curve(
    history: Sequence[dict[str, float]], path: str | Path | None = None, *, title: str = "Training"
) -> Figure:
    """Validation AUROC per epoch (the ALGAN paper's Fig. 7) beside the mean training losses per epoch.

    ``history`` is ``det.history_``: one dict per epoch with ``epoch``, the loss means and, on validated epochs,
    ``val_auroc``. Without any ``val_auroc`` only the loss panel is drawn.
    """
    if not history:
        raise ValueError("history is empty: fit the detector first (det.history_)")
    epochs = np.array([h["epoch"] for h in history], dtype=float)
    val = [(h["epoch"], h["val_auroc"]) for h in history if "val_auroc" in h]
    losses = sorted({k for h in history for k in h if k not in ("epoch", "val_auroc")})
    panels = (1 if val else 0) + (1 if losses else 0)
    if panels == 0:
        raise ValueError("history holds neither losses nor val_auroc")
    with _style():
        fig = _figure(5.0 * panels + 0.4, 3.8)
        axes = fig.subplots(1, panels, squeeze=False)[0]
        i = 0
        if val:
            ax = axes[i]
            i += 1
            ve, va = np.array(val).T
            b = int(np.argmax(va))
            ax.plot(ve, va, color=BLUE, lw=2, marker="o", ms=5, label="validation AUROC")
            ax.plot(ve[b], va[b], marker="*", ms=15, color=ORANGE, mec="black", mew=0.6, ls="none",
                    label=f"best: {va[b]:.3f} (epoch {int(ve[b])})", zorder=3)
            lo = min(0.5, float(va.min()) - 0.02)
            ax.set_ylim(max(0.0, lo), 1.03)
            ax.axhline(0.5, color="0.55", lw=1, ls="--")
            ax.set(xlabel="epoch", ylabel="AUROC", title="Validation AUROC")
            ax.legend(loc="lower right")
        if losses:
            ax = axes[i]
            for k, color in zip(losses, _CYCLE * (len(losses) // len(_CYCLE) + 1)):
                pts = [(h["epoch"], h[k]) for h in history if k in h]
                e, v = np.array(pts).T
                ax.plot(e, v, color=color, lw=1.8, marker="." if len(e) < 40 else None, label=k)
            ax.set(xlabel="epoch", ylabel="mean loss", title="Training losses")
            ax.legend(loc="best", ncols=2 if len(losses) > 4 else 1)
        for ax in axes:  # the same epoch axis on both panels, integer ticks only
            ax.set_xlim(epochs.min() - 0.5, epochs.max() + 0.5)
            _int_ticks(ax)
        fig.suptitle(title, fontweight="bold")
    return _save(fig, path)


def _int_ticks(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


# ---------------------------------------------------------------------------------------------- image plots
def _as_images(a: Any, what: str) -> np.ndarray:
    """Images (N, C, H, W) or (N, H, W) or (N, H, W, C), uint8 or float in [0, 1] -> float (N, H, W, C) in [0, 1]."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4:
        raise ValueError(f"{what}: expected images (N, C, H, W), (N, H, W) or (N, H, W, C), got shape {a.shape}")
    if a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3):  # channels first, as the library's tensors
        a = np.moveaxis(a, 1, -1)
    if a.shape[-1] not in (1, 3):
        raise ValueError(f"{what}: expected 1 or 3 channels, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    if a.min() < -1e-6 or a.max() > 1 + 1e-6:
        raise ValueError(f"{what}: float images must be in [0, 1], got [{a.min():.3g}, {a.max():.3g}]")
    return a.clip(0, 1)


def _show(ax: Any, img: np.ndarray, **kw: Any) -> None:
    if img.shape[-1] == 1:
        ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest", **kw)
    else:
        ax.imshow(img, interpolation="nearest", **kw)


def _bare(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for sp in ax.spines.values():
        sp.set_visible(False)


def sample_grid(
    normal: Any,
    anomalous: Any,
    path: str | Path | None = None,
    *,
    row_labels: tuple[str, str] = ("fake normal", "fake anomalous"),
    title: str = "Generated samples",
) -> Figure:
    """Two labelled rows of images: fake-normal above fake-anomalous (the ALGAN paper's Fig. 1).

    ``normal`` and ``anomalous`` are image batches (N, C, H, W) in [0, 1], e.g. from ``det.generate(n)`` and
    ``det.generate(n, anomalous=True)``; the rows may differ in length.
    """
    rows = [_as_images(normal, "normal samples"), _as_images(anomalous, "anomalous samples")]
    cols = max(len(r) for r in rows)
    if cols == 0:
        raise ValueError("no samples to draw")
    with _style():
        fig = _figure(0.95 * cols + 1.3, 2.2)
        axes = fig.subplots(2, cols, squeeze=False, gridspec_kw={"wspace": 0.03, "hspace": 0.03})
        for r, (imgs, label) in enumerate(zip(rows, row_labels)):
            for c in range(cols):
                ax = axes[r, c]
                _bare(ax)
                if c < len(imgs):
                    _show(ax, imgs[c])
                if c == 0:
                    ax.set_ylabel(label.replace(" ", "\n", 1), rotation=0, ha="right", va="center", fontsize=10,
                                  color=(NORMAL_COLOR, ANOMALY_COLOR)[r], fontweight="bold")
        fig.suptitle(title, fontweight="bold")
    return _save(fig, path)


def anomaly_heatmap(
    images: Any,
    maps: Any,
    masks: Any = None,
    path: str | Path | None = None,
    *,
    scores: Sequence[float] | None = None,
    max_images: int = 8,
    alpha: float = 0.55,
    title: str = "Anomaly maps",
) -> Figure:
    """Inputs (top row) and their anomaly maps over the gray input (bottom row), with the ground-truth contour.

    Args:
        images: inputs (N, C, H, W) / (N, H, W[, C]), uint8 or [0, 1] floats, at any resolution.
        maps: (N, h, w) anomaly maps (``det.anomaly_maps``), stretched over the image; one colour scale for all.
        masks: optional ground truth (N, H', W') (nonzero = anomalous) or a list with None for all-normal; drawn as
            a cyan contour.
        scores: optional image scores shown above each column.
        max_images: draw at most this many (the first ones).
    """
    imgs = _as_images(images, "images")[:max_images]
    maps = np.asarray(maps.detach().cpu().numpy() if hasattr(maps, "detach") else maps, dtype=np.float64)
    if maps.ndim != 3:
        raise ValueError(f"maps: expected (N, H, W), got shape {maps.shape}")
    maps = maps[:max_images]
    if len(maps) != len(imgs):
        raise ValueError(f"got {len(imgs)} images but {len(maps)} maps")
    if not np.isfinite(maps).all():
        raise ValueError("maps contain NaN or infinite values")
    n = len(imgs)
    vmin, vmax = float(maps.min()), float(maps.max())
    vmax = vmax if vmax > vmin else vmin + 1e-12
    with _style():
        fig = _figure(1.7 * n + 1.4, 3.9)
        axes = fig.subplots(2, n, squeeze=False)
        im = None
        for i in range(n):
            h, w = imgs[i].shape[:2]
            ext = (0, w, h, 0)
            top, bot = axes[0, i], axes[1, i]
            _bare(top)
            _bare(bot)
            _show(top, imgs[i], extent=ext)
            gray = imgs[i].mean(-1)
            bot.imshow(gray, cmap="gray", vmin=0, vmax=1, extent=ext, interpolation="nearest")
            im = bot.imshow(maps[i], cmap="inferno", vmin=vmin, vmax=vmax, alpha=alpha, extent=ext,
                            interpolation="bilinear")
            if masks is not None and masks[i] is not None:
                m = np.asarray(masks[i], dtype=np.float64)
                m = m[..., 0] if m.ndim == 3 else m
                if (m > 0).any():
                    mh, mw = m.shape
                    yy = (np.arange(mh) + 0.5) * h / mh
                    xx = (np.arange(mw) + 0.5) * w / mw
                    for ax in (top, bot):
                        ax.contour(xx, yy, (m > 0).astype(float), levels=[0.5], colors=[SKY], linewidths=1.5)
                    bot.set_xlim(0, w)
                    bot.set_ylim(h, 0)
                    top.set_xlim(0, w)
                    top.set_ylim(h, 0)
            if scores is not None:
                top.set_title(f"score {scores[i]:.3g}", fontsize=9, fontweight="normal")
        axes[0, 0].set_ylabel("input")
        axes[1, 0].set_ylabel("anomaly map")
        if im is not None:
            fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.45, anchor=(0.0, 0.05), label="pixel anomaly",
                         pad=0.01)
        sub = " (cyan: ground truth)" if masks is not None else ""
        fig.suptitle(title + sub, fontweight="bold")
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------- benchmark plots
def roc_curves(
    curves: dict[str, tuple[Any, Any]], path: str | Path | None = None, *, title: str = "ROC curves"
) -> Figure:
    """Several ROC curves in one panel: ``{label: (y, s)}``, each with its AUROC in the legend (best first)."""
    from sklearn.metrics import roc_curve as sk_roc_curve

    if not curves:
        raise ValueError("no curves to draw")
    items = sorted(((metrics.auroc(*metrics._check(y, s)), k, y, s) for k, (y, s) in curves.items()), reverse=True)
    with _style():
        fig = _figure(5.6, 4.6)
        ax = fig.add_subplot()
        colors = _CYCLE * (len(items) // len(_CYCLE) + 1)
        styles = ["-", "--", ":", "-."]
        for i, (auc, k, y, s) in enumerate(items):
            fpr, tpr, _ = sk_roc_curve(*metrics._check(y, s))
            ax.plot(fpr, tpr, color=colors[i], lw=1.8, ls=styles[(i // len(_CYCLE)) % 4], label=f"{k}: {auc:.3f}")
        ax.plot([0, 1], [0, 1], color="0.55", lw=1, ls="--")
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal", title=title)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.legend(loc="lower right", fontsize=8, ncols=1 if len(items) <= 8 else 2)
    return _save(fig, path)


def auroc_vs_time(
    points: dict[str, tuple[float, float]], path: str | Path | None = None, *,
    title: str = "AUROC vs scoring time",
) -> Figure:
    """One labelled dot per detector: scoring ms / image (log x) against AUROC (the ALGAN paper's Fig. 6)."""
    if not points:
        raise ValueError("no points to draw")
    with _style():
        fig = _figure(6.2, 4.2)
        ax = fig.add_subplot()
        colors = _CYCLE * (len(points) // len(_CYCLE) + 1)
        for (k, (ms, auc)), c in zip(sorted(points.items()), colors):
            ax.scatter([ms], [auc], s=60, color=c, edgecolor="black", linewidth=0.5, zorder=3)
            ax.annotate(k, (ms, auc), textcoords="offset points", xytext=(6, 4), fontsize=8)
        ax.set_xscale("log")
        ax.axhline(0.5, color="0.55", lw=1, ls="--")
        ax.set(xlabel="scoring time per image (ms, log scale)", ylabel="mean AUROC", title=title)
    return _save(fig, path)


def box_by_class(
    groups: dict[str, dict[str, Sequence[float]]], path: str | Path | None = None, *, title: str = "Scores by class",
    ylabel: str = "score",
) -> Figure:
    """Box plots, one panel per part: ``{part: {class label: values}}`` (the unregularized-score paper's Fig. 5)."""
    if not groups:
        raise ValueError("no groups to draw")
    with _style():
        fig = _figure(3.4 * len(groups) + 0.4, 3.6)
        axes = fig.subplots(1, len(groups), squeeze=False)[0]
        for ax, (part, by_class) in zip(axes, groups.items()):
            labels = list(by_class)
            ax.boxplot([np.asarray(by_class[k], dtype=float) for k in labels], tick_labels=labels, showfliers=False,
                       patch_artist=True, boxprops={"facecolor": SKY, "alpha": 0.6}, medianprops={"color": "black"})
            ax.set(title=part, xlabel="class", ylabel=ylabel)
            ax.grid(axis="x", visible=False)
        fig.suptitle(title, fontweight="bold")
    return _save(fig, path)


def validation_curves(
    histories: dict[str, Sequence[dict[str, float]]], path: str | Path | None = None, *,
    title: str = "Validation AUROC per epoch",
) -> Figure:
    """Validation AUROC against epoch for several detectors (the ALGAN paper's Fig. 7); ``{label: history}``."""
    series = {k: [(h["epoch"], h["val_auroc"]) for h in v if "val_auroc" in h] for k, v in histories.items()}
    series = {k: v for k, v in series.items() if v}
    if not series:
        raise ValueError("no history holds val_auroc")
    with _style():
        fig = _figure(6.2, 4.0)
        ax = fig.add_subplot()
        colors = _CYCLE * (len(series) // len(_CYCLE) + 1)
        for (k, pts), c in zip(sorted(series.items()), colors):
            e, v = np.array(pts).T
            ax.plot(e, v, color=c, lw=1.8, marker="o", ms=4, label=k)
        ax.axhline(0.5, color="0.55", lw=1, ls="--")
        ax.set(xlabel="epoch", ylabel="validation AUROC", title=title)
        _int_ticks(ax)
        ax.legend(loc="lower right", fontsize=8, ncols=1 if len(series) <= 8 else 2)
    return _save(fig, path)


def drift_bars(
    drops: dict[str, dict[str, dict[str, float]]], path: str | Path | None = None, *,
    title: str = "AUROC change under lighting shifts",
) -> Figure:
    """One panel per preprocessing variant: per detector, the test AUROC under each shift minus the unshifted one.

    ``drops``: ``{variant: {detector: {shift: AUROC(shifted) - AUROC(unshifted)}}}`` (the drift suite)."""
    if not drops:
        raise ValueError("no drift results to plot")
    variants = list(drops)
    dets = sorted({d for v in drops.values() for d in v})
    shifts = list(dict.fromkeys(s for v in drops.values() for d in v.values() for s in d))
    with _style():
        fig = _figure(max(6.0, 0.8 * len(dets) + 1.5), 2.6 * len(variants) + 0.4)
        axes = fig.subplots(len(variants), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
        width = 0.8 / max(len(shifts), 1)
        for ax, var in zip(axes, variants):
            for k, (shift, c) in enumerate(zip(shifts, _CYCLE * 2)):
                vals = [drops[var].get(d, {}).get(shift, np.nan) for d in dets]
                ax.bar(np.arange(len(dets)) + (k - (len(shifts) - 1) / 2) * width, vals, width, color=c, label=shift)
            for y in (-0.02, 0.02):
                ax.axhline(y, color="0.55", lw=1, ls="--")
            ax.axhline(0, color="0.2", lw=0.8)
            ax.set(ylabel="AUROC change", title=f"{title}: {var}")
        axes[-1].set_xticks(np.arange(len(dets)), dets, rotation=30, ha="right")
        axes[0].legend(loc="lower left", fontsize=8, ncols=len(shifts))
    return _save(fig, path)
