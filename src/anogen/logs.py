"""Training logs a person can watch: TensorBoard event files (and MLflow metrics where MLflow runs).

``Detector.fit(x, log_dir=DIR)`` (CLI: ``anogen train ... --log-dir DIR``) writes, through
``torch.utils.tensorboard`` (the ``tensorboard`` package: ``pip install "anogen[logs]"``):

- ``loss/<name>``: every loss ``train_step`` returns, at every training step (x axis: the global step);
- ``epoch/<name>``: the epoch means of the losses, and ``epoch/val_auroc`` when labelled validation data is given
  (x axis: the epoch);
- ``images/generated`` (methods with ``generate``: fake-normal samples from fixed latents, then fake-anomalous ones)
  and ``images/reconstructions`` (methods with ``reconstruct``: a fixed batch of training images over their
  reconstructions), every ``image_every`` epochs and after the last one, for image models;
- ``fit/threshold`` and ``fit/seconds`` at the end, and the configuration as text (``config``).

View with ``tensorboard --logdir DIR``. Where MLflow is installed and a run is active (``mlflow.start_run()``, or
``anogen train --mlflow``), the same scalars go to it too (``mlflow.log_metric``; the configuration as params).
Nothing here trains or changes a detector; every call is wrapped so that logging never stops a fit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

N_IMAGES = 16
"""images in each logged grid"""


class TrainingLog:
    """One run's writers; ``step`` / ``epoch`` / ``close`` are called by the fit loop."""

    def __init__(self, log_dir: str | Path, det: Any, *, image_every: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:  # torch's module needs the tensorboard package
            raise ImportError("log_dir needs the tensorboard package: pip install 'anogen[logs]' (or tensorboard)") \
                from e
        self.dir = Path(log_dir)
        self.writer = SummaryWriter(str(self.dir))
        self.image_every = image_every or max(1, int(getattr(det, "epochs", 1)) // 8)
        self.mlflow = _active_mlflow()
        config = {k: list(v) if isinstance(v, tuple) else v for k, v in det.get_params().items()}
        self.writer.add_text("config", "```\n" + json.dumps({"detector": det.name, **config}, indent=1) + "\n```")
        if self.mlflow is not None:
            self.mlflow.log_params({"detector": det.name, **{k: str(v) for k, v in config.items()}})
        self._fixed: Tensor | None = None

    @classmethod
    def open(cls, log_dir: str | Path | None, det: Any) -> "TrainingLog | None":
        return None if log_dir is None else cls(log_dir, det)

    def _scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)
        if self.mlflow is not None:
            self.mlflow.log_metric(tag.replace("/", "_"), value, step=step)

    def step(self, step: int, losses: dict[str, float]) -> None:
        """The losses of training step ``step`` (1-based, counted over all epochs)."""
        for k, v in losses.items():
            self._scalar(f"loss/{k}", float(v), step)

    def epoch(self, det: Any, rec: dict[str, float], x: Tensor) -> None:
        """After epoch ``rec["epoch"]`` (1-based): its mean losses, validation AUROC, and the image grids."""
        ep = int(rec["epoch"])
        for k, v in rec.items():
            if k != "epoch":
                self._scalar(f"epoch/{k}", float(v), ep)
        if getattr(det, "input_kind_", None) == "image" and (ep % self.image_every == 0 or ep == det.epochs):
            self._images(det, x, ep)
        self.writer.flush()

    def close(self, det: Any) -> None:
        """At the end of fit: the threshold and the fit time; flush and close the files."""
        for tag, name in (("fit/threshold", "threshold_"), ("fit/seconds", "fit_seconds_")):
            if hasattr(det, name):
                self._scalar(tag, float(getattr(det, name)), int(getattr(det, "epochs", 1)))
        self.writer.close()

    # -------------------------------------------------------------- image grids
    def _images(self, det: Any, x: Tensor, ep: int) -> None:
        from torchvision.utils import make_grid

        if self._fixed is None:  # the same training images at every logged epoch
            idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(det.seed))[:N_IMAGES // 2]
            p = int(getattr(det, "patch_size", 0))
            self._fixed = x[idx] if p <= 0 else x[idx][..., :p, :p]  # patch mode: the model sees patches
        grids: dict[str, Tensor] = {}
        try:
            if callable(getattr(det, "generate", None)):
                half = N_IMAGES // 2
                normal = torch.as_tensor(np.asarray(det.generate(half)))  # (n, C, H, W) in [0, 1]
                anomalous = torch.as_tensor(np.asarray(det.generate(half, anomalous=True)))
                if normal.dim() == 4:  # images (a feature model generates vectors)
                    grids["generated"] = make_grid(torch.cat([normal, anomalous]).float(), nrow=half)
            if callable(getattr(det, "reconstruct", None)) and self._fixed.dim() == 4:
                rec = _reconstructions(det, self._fixed)
                if rec is not None:
                    pair = torch.cat([self._fixed, rec.cpu()])
                    grids["reconstructions"] = make_grid(det.preprocess.denormalize(pair.float()),
                                                         nrow=len(self._fixed))
        except Exception as e:  # a grid is a view, never a reason to stop training
            print(f"anogen: no image grid at epoch {ep} ({type(e).__name__}: {e})", file=sys.stderr)
        for name, grid in grids.items():
            self.writer.add_image(f"images/{name}", grid.clamp(0, 1), ep)


def _reconstructions(det: Any, x: Tensor) -> Tensor | None:
    """``det.reconstruct`` on ``x`` in eval mode without gradients: the output with the input's shape."""
    nets = det.nets_
    was_training = nets.training
    nets.eval()
    try:
        with torch.no_grad():
            out = det.reconstruct(x.to(det._device()))
    finally:
        nets.train(was_training)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return next((o for o in outs if isinstance(o, Tensor) and o.shape == x.shape), None)


def _active_mlflow() -> Any:
    """The mlflow module when it is installed and a run is active, else None."""
    try:
        import mlflow
    except ImportError:
        return None
    return mlflow if mlflow.active_run() is not None else None
