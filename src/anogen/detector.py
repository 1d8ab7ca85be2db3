"""The Detector base: one fit loop, scoring, validation / model selection, threshold, save / load.

A method subclasses :class:`Detector` as a keyword-only dataclass and supplies ``build``, ``train_step`` and
``score_batch`` (and ``map_batch`` where it has one). Everything else -- seeding, preprocessing, the epoch x batch
loop, keeping the best validation state, threshold calibration, saving -- lives here, once.

Patch mode (``patch_size > 0``, any image detector; Matsubara et al. IV-B, ``papers/004_41020bdc449fbf6e.txt``): the
model is built for (C, patch_size, patch_size) inputs; every training step takes one random patch_size crop of each
image of its batch (offsets from the loop's seeded generator; augmentation then applies to the crops); scoring slides
a window with ``patch_stride`` over each preprocessed image (the last window touching the right / bottom border is
always included) and an image's score is its highest patch score ("anomalous if at least one patch is"). Validation,
threshold calibration and ``decision_scores_`` use these image scores. ``anomaly_maps`` assembles per-pixel patch
maps (mean where windows overlap), or, for methods without one, gives each pixel the mean score of the windows that
cover it. ``setup_data`` (and ``fit_once``) get one random crop per training image (generator seeded with ``seed``).
An ``embed`` map applies to each crop, after augmentation.

Size: about 980 lines, well over DESIGN's ~600 prompt, because the one training loop also owns what every method
shares and must not copy: patch training / sliding-window scoring, checkpoint / resume hooks, the torchrun hooks, the
cached inference view, save / load, the precision context (bf16 autocast), and selection without labels (hold-out,
synthetic validation, health check: about 150 lines, the next candidate to move into ``health.py`` behind two hooks). What could leave has left: atomic writing and checkpoint I/O live in
``checkpoint.py``, the torchrun machinery in ``distributed.py``, the fast scoring paths in ``inference.py``, the
version / device / seeding helpers in ``_util.py`` (``docs/architecture.md``); splitting the loop itself or save /
load away from the class would make the one contract harder to read in one place.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from anogen import distributed as _dist
from anogen._util import library_version, resolve_device  # noqa: F401  (resolve_device: also public here)
from anogen._util import params_jsonable as _jsonable
from anogen._util import seed_everything as _seed_everything
from anogen.checkpoint import (
    MODEL_KEY,
    CheckpointPlan,
    atomic_save,
    data_fingerprint,
    kept_note,
    make_plan,
    read_tagged,
    restore,
    split_prefixed,
    write_checkpoint,
)
from anogen.data.synthetic import defective_copies, holdout_indices
from anogen.data.transforms import (
    AUGMENTATIONS, CHANNEL_MODES, INTENSITIES, NORMALIZATIONS, RESIZE_MODES, InputError, Preprocess, augment, is_vector_input,
    reject_unsupported, to_vectors,
)
from anogen.estimator import EstimatorAPI, not_fitted
from anogen.params import ParameterError, flag, integer, one_of, real, subset_of
from anogen.params import device as device_name
from anogen.inference import scoring_mode, scoring_view

FORMAT_VERSION = 1
SELECTIONS = ("auto", "labels", "synthetic", "last")
MIN_SYNTHETIC_TRAIN = 20
"""``selection="auto"`` without labels holds out images only from at least this many training images"""


PRECISIONS = ("fp32", "bf16")
"""Values of the ``precision`` field."""

class NotFittedError(ValueError, AttributeError):
    """Raised when scoring or saving a detector before ``fit``."""


class HealthWarning(UserWarning):
    """Issued by ``fit`` when the health check finds a model that cannot tell normal images from synthetic defects,
    or that scores unseen normal images unlike its training images (see :mod:`anogen.health`)."""


class TrainingDiverged(RuntimeError):
    """Raised when a training loss becomes NaN or infinite; no model file is written, and the last training
    checkpoint written before it (``fit(checkpoint=...)``) stays on disk, intact."""


@dataclass(kw_only=True)
class Detector(EstimatorAPI):
    """Base of every anogen detector. Fields are hyperparameters; everything learned ends in ``_``.

    Every field has a domain (``param_domains``, :mod:`anogen.params`), checked at creation and by ``set_params``;
    the scikit-learn / PyOD methods come from :class:`anogen.estimator.EstimatorAPI`."""

    epochs: int = 10
    """training epochs"""
    batch_size: int = 16
    """training mini-batch size"""
    seed: int = 0
    """seed of weight init, shuffling, latent sampling and augmentation"""
    device: str = "auto"
    """torch device; "auto" picks CUDA when present"""
    image_size: int = 64
    """side of the square images the model sees (inputs are resized to it)"""
    channels: int = 0
    """channel count the model sees (0: as the training data, 1 for gray, 3 for color or normalize=imagenet)"""
    channel_mode: str = "convert"
    """"convert" maps gray <-> RGB and drops alpha; "strict" refuses other channel counts"""
    resize: str = "bilinear"
    """interpolation to image_size: bilinear, bicubic, nearest, area, or none (refuse other sizes)"""
    normalize: str = "tanh"
    """pixel scaling: tanh ([-1, 1]), unit ([0, 1]) or imagenet (mean / std)"""
    intensity: str = "none"
    """"standardize" removes each image's global intensity (mean and contrast) before normalize: lighting drift"""
    augment: tuple[str, ...] = ()
    """training augmentations, any of hflip, vflip, rotate, rot90"""
    patch_size: int = 0
    """side of square patches: random crops for training, a sliding window for scoring (0: whole images)"""
    patch_stride: int = 16
    """stride of the scoring window in patch mode (the last window touching each border is always added)"""
    val_every: int = 8
    """validate every this many epochs (labelled and / or synthetic validation; the selected best state is kept)"""
    selection: str = "auto"
    """state kept: labels (best labelled-validation AUROC), synthetic (best AUROC of held-out normals vs synthetic
    defects, no label used; the last state when within one standard error), last (the final epoch); auto = labels
    when val_y is given, else synthetic for images"""
    holdout: float = 0.1
    """share of the normal training images held out (selection synthetic): validation, threshold, health check"""
    contamination: float = 0.01
    """share of normal calibration scores above the threshold (threshold_ = their 1 - contamination quantile)"""
    eval_batch_size: int = 64
    """batch size for scoring"""
    verbose: bool = True
    """show a progress bar during fit"""
    precision: str = "fp32"
    """arithmetic of training and scoring: fp32, or bf16 (autocast on CPU and CUDA: convolutions and matrix products in
    bfloat16 with fp32 master weights; every network's output is cast back to fp32, so losses, log / softplus terms
    and score reductions run in fp32)"""
    channels_last: bool = False
    """keep 4-D weights and image batches in channels-last memory format (faster convolution kernels, most of all
    in bf16)"""

    param_domains: ClassVar[dict] = {
        "epochs": integer(1), "batch_size": integer(1), "seed": integer(0), "device": device_name(),
        "image_size": integer(1), "channels": integer(0), "channel_mode": one_of(CHANNEL_MODES),
        "resize": one_of(RESIZE_MODES), "normalize": one_of(NORMALIZATIONS), "augment": subset_of(AUGMENTATIONS),
        "patch_size": integer(0), "patch_stride": integer(1), "val_every": integer(1),
        "contamination": real(0.0, 0.5, lo_open=True, hi_open=True), "eval_batch_size": integer(1),
        "verbose": flag(), "precision": one_of(PRECISIONS), "channels_last": flag(),
        "intensity": one_of(INTENSITIES), "selection": one_of(SELECTIONS),
        "holdout": real(0.0, 1.0, lo_open=True, hi_open=True),
    }

    name: ClassVar[str] = "detector"
    input_kind: ClassVar[str] = "image"
    """ "image": images only; "vector": (N, D) vectors only; "any": either, decided by the data at fit """
    iterative: ClassVar[bool] = True
    """False for closed-form / scikit-learn detectors, which override fit_once instead of train_step"""
    grad_at_scoring: ClassVar[bool] = False
    """True for methods whose scoring runs autograd (a latent search): scored under no_grad, not inference_mode"""

    # ------------------------------------------------------------------ what a method supplies
    def build(self, input_shape: tuple[int, ...]) -> None:
        """Create ``self.nets_`` (an ``nn.ModuleDict``) and optimizers for inputs of ``input_shape``."""
        raise NotImplementedError

    def train_step(self, x: Tensor) -> dict[str, float]:
        """One update on the batch ``x``; returns the losses to log."""
        raise NotImplementedError

    def score_batch(self, x: Tensor) -> Tensor:
        """(B,) anomaly scores, higher = more anomalous, for a preprocessed batch."""
        raise NotImplementedError

    def map_batch(self, x: Tensor) -> Tensor:
        """(B, H, W) per-pixel anomaly maps of a preprocessed batch, for methods that have them (users call
        :meth:`anomaly_maps`, which takes any input)."""
        raise NotImplementedError(f"{self.name} has no anomaly map")

    @property
    def anomaly_map(self) -> Any:
        """The old name of the per-method hook (now :meth:`map_batch`): an AttributeError saying what to call."""
        raise AttributeError(
            f"{type(self).__name__}.anomaly_map was renamed: call anomaly_maps(x) for per-pixel maps of any input "
            "(numpy array, tensor, image paths, folder), or map_batch(x) for the per-method hook on a preprocessed "
            "tensor batch")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "anomaly_map" in vars(cls):  # a method file written for the old hook name would silently lose its maps
            raise TypeError(f"{cls.__qualname__} defines anomaly_map: the per-method hook is named "
                            "map_batch(self, x: Tensor) -> Tensor (B, H, W)")

    def selectable_from_epoch(self) -> int:
        """First 1-based epoch whose state may be kept by validation (methods trained in stages return the first
        epoch of their last stage, so model selection never keeps a half-trained pipeline)."""
        return 1

    def start_epoch(self, epoch: int) -> None:
        """Hook called before each epoch (0-based), e.g. to resample latents."""

    def setup_data(self, x: Tensor) -> None:
        """Hook called once with the whole preprocessed (and embedded) training set, after ``build``, before training.

        For statistics a method needs before its first step (e.g. feature standardisation)."""

    def fit_once(self, x: Tensor) -> None:
        """Closed-form fit on the whole preprocessed training set (only for ``iterative = False``)."""
        raise NotImplementedError

    def embed(self, x: Tensor) -> Tensor:
        """Optional fixed map applied to preprocessed inputs before the model (e.g. a pretrained backbone)."""
        return x

    def views(self, training: bool) -> int:
        """Views of each input that ``embed_views`` makes (e.g. rotations); 1 (the default): ``embed`` alone.

        With n > 1 views, each training view is a training sample (the training set holds N x n rows), and at scoring
        an input's score is the mean of its views' scores."""
        return 1

    def embed_views(self, x: Tensor, n: int) -> Tensor:
        """(B, ...) preprocessed inputs -> (B, n, ...) embedded views, for methods whose ``views`` exceeds 1."""
        raise NotImplementedError(f"{self.name} makes no views")

    def extra_state(self) -> dict[str, Tensor]:
        """Learned tensors outside ``nets_`` that a saved model must carry."""
        return {}

    def load_extra_state(self, state: dict[str, Tensor]) -> None:
        """Restore what :meth:`extra_state` returned."""

    def train_state(self) -> dict[str, Tensor]:
        """Training state outside ``nets_`` and the optimizers that an identical continuation needs (fixed latents,
        replay buffers, step counters; scalars as 0-d tensors). Saved in training checkpoints only, never in models."""
        return {}

    def load_train_state(self, state: dict[str, Tensor]) -> None:
        """Restore what :meth:`train_state` returned (tensors on the training device) when a fit resumes."""

    # ------------------------------------------------------------------ parameters
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def check_params(self) -> None:
        """Every field in its domain, then the rules between base fields (the patch window)."""
        super().check_params()
        p, stride = self.patch_size, self.patch_stride
        if p > 0 and stride > p:
            raise ParameterError(f"{self.name}: patch_stride={stride} must be in 1..patch_size ({p}) so that windows "
                                 f"cover every pixel")
        if p > self.image_size:
            raise ParameterError(f"{self.name}: patch_size={p} must be <= image_size ({self.image_size}): images of "
                                 f"{self.image_size}x{self.image_size} pixels are smaller than a patch of {p}x{p}")

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess(
            image_size=self.image_size,
            channels=getattr(self, "channels_", None) or self.channels or (3 if self.normalize == "imagenet" else 0),
            channel_mode=self.channel_mode,
            resize=self.resize,
            normalize=self.normalize,
            intensity=self.intensity,
        )

    # ------------------------------------------------------------------ data
    def _kind_of(self, data: Any) -> str:
        if hasattr(self, "input_kind_"):
            return self.input_kind_
        if self.input_kind == "vector" or (self.input_kind == "any" and is_vector_input(data)):
            return "vector"
        return "image"

    def _prepare(self, data: Any) -> Tensor:
        """Any accepted input -> the CPU tensor the model consumes (after ``embed``); whole preprocessed images in
        patch mode (crops are taken, and embedded, later)."""
        fitted = hasattr(self, "input_shape_")
        reject_unsupported(data)
        kind = self._kind_of(data)
        if kind == "vector":
            x = to_vectors(data, self.input_shape_[0] if fitted else None, who=type(self).__name__)
        else:
            if is_vector_input(data):
                raise InputError(
                    f"got a 2-D array {np.shape(data)}: this {self.name} model expects images (N, H, W[, C])"
                )
            x = self.preprocess(data)
            if not hasattr(self, "channels_"):
                self.channels_ = int(x.shape[1])  # what the model sees; inferred from the data when channels=0
        if kind == "image" and self.patch_size > 0:
            return self._check_patchable(x)
        n_views = self.views(not fitted) if kind == "image" and self._has_embed() else 1
        if kind == "image" and self._has_embed():
            if n_views == 1:
                x = self._batched(x, self.embed)  # e.g. images -> pretrained features
            else:  # (N, V, ...) views (e.g. rotations); at fit every view is a training sample
                x = self._batched(x, lambda b: self.embed_views(b, n_views))
                x = x if fitted else x.flatten(0, 1)
        shape = tuple(x.shape[2:] if fitted and n_views > 1 else x.shape[1:])
        if fitted and shape != self.input_shape_:
            raise InputError(f"expected inputs of shape {self.input_shape_}, got {shape}")
        return x

    def _batched(self, x: Tensor, fn: Any) -> Tensor:
        out = []
        dev = self._device()
        with torch.no_grad():
            for i in range(0, len(x), self.eval_batch_size):
                with self.amp():
                    out.append(fn(self._layout(x[i : i + self.eval_batch_size].to(dev))).float().cpu())
        return torch.cat(out)

    def _device(self) -> torch.device:
        if not hasattr(self, "device_"):
            self.device_ = resolve_device(self.device)
        return self.device_

    # ------------------------------------------------------------------ precision
    def amp(self) -> contextlib.AbstractContextManager[Any]:
        """The context training and scoring run under: nothing for ``precision="fp32"``; for ``"bf16"`` autocast to
        bfloat16 on this detector's device, with every network of ``nets_`` returning fp32 outputs."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        check_precision(self.precision)
        if hasattr(self, "nets_"):
            fp32_outputs(self.nets_)
        return torch.autocast(self._device().type, dtype=torch.bfloat16)

    def _layout(self, x: Tensor) -> Tensor:
        """``x`` (and, once, ``nets_``) in channels-last memory format when ``channels_last`` is set and x is 4-D."""
        if not self.channels_last or x.dim() != 4:
            return x
        if hasattr(self, "nets_") and not self.nets_.__dict__.get("_anogen_channels_last"):
            self.nets_.to(memory_format=torch.channels_last)
            self.nets_.__dict__["_anogen_channels_last"] = True
        return x.contiguous(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ fit
    def fit(self, x: Any, y: Any = None, *, val_x: Any = None, val_y: Any = None,
            checkpoint: str | Path | None = None, checkpoint_every: int = 1, resume: bool = False,
            check_y: bool = False, log_dir: str | Path | None = None) -> "Detector":
        """Train on normal data ``x`` and calibrate the threshold; returns ``self``.

        Args:
            x: normal training images (numpy (N, H, W[, C]), tensor (N, C, H, W), paths, a folder) or vectors (N, D)
                (a numpy array, a tensor, or a list of lists).
            y: ignored, as by scikit-learn's outlier detectors (accepted so that pipelines and model selection can
                pass it); every sample of ``x`` is trained on as normal. With ``check_y=True`` any 1 (anomaly) in
                ``y`` is an error instead.
            val_x: validation inputs. With ``val_y`` (1 = anomaly) the state with the best validation AUROC,
                checked every ``val_every`` epochs, is kept; the threshold comes from its normal scores.
            val_y: labels of ``val_x``; without them ``val_x`` is taken as normal and only calibrates the threshold.
            checkpoint: training checkpoint file (iterative detectors only): written atomically at the end of every
                ``checkpoint_every``-th epoch with everything an identical continuation needs (see
                ``docs/robustness.md``). Without ``resume`` a run starts from scratch and overwrites it.
            checkpoint_every: epochs between checkpoints; 0 writes none (with ``resume``: only continue from one).
            resume: continue from ``checkpoint`` (which must exist, from a run with the same configuration and data)
                instead of epoch 1; on the same device the result is bit-identical to an uninterrupted run.
            check_y: refuse a ``y`` that marks anomalies (a guard against training on them by mistake).
            log_dir: write TensorBoard event files there (losses per step, validation AUROC, image grids every few
                epochs; also MLflow where a run is active): see :mod:`anogen.logs`.
        """
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)  # a second fit starts from scratch
        check_precision(self.precision)
        _seed_everything(self.seed)
        dev = self._device()
        if check_y and y is not None and np.asarray(y).astype(int).any():
            raise InputError(f"fit trains on normal data only; y holds {int(np.asarray(y).sum())} anomalies (label 1)")
        reject_unsupported(x)  # sparse / complex inputs: scikit-learn's wording, before any hold-out is drawn
        self.input_kind_ = self._kind_of(x)
        self._check_patch_fields(self.input_kind_)
        ckpt = make_plan(self, checkpoint, checkpoint_every, resume)
        x, split_idx, held, val_x, val_unit = self._selection_setup(x, val_x, val_y)  # no label is read for a hold-out
        xt = self._prepare(x)
        x_fit = xt  # what setup_data / fit_once see: the training set, or one random crop per image in patch mode
        if self.patch_size > 0:
            self.image_shape_ = tuple(int(s) for s in xt.shape[1:])
            x_fit = self._embed_crops(random_crops(xt, self.patch_size, torch.Generator().manual_seed(self.seed)))
        self.input_shape_ = tuple(int(s) for s in x_fit.shape[1:])
        if self.input_kind_ == "vector":
            self.n_features_in_ = self.input_shape_[0]  # scikit-learn's name for the vector length
        if self.iterative and len(xt) < 2:
            raise InputError(f"{self.name}: got {len(xt)} sample; training needs at least 2 samples (a batch of one "
                             f"cannot be normalised)")
        vx = self._prepare(val_x) if val_x is not None else None
        vy = None if val_y is None else np.asarray(val_y).astype(int).ravel()
        if vy is not None and (vx is None or len(vy) != len(vx)):
            raise InputError("val_y needs val_x of the same length")
        if vy is not None and len(np.unique(vy)) < 2:
            raise InputError("labelled validation needs both normal (0) and anomalous (1) samples")
        if ckpt is not None:
            ckpt.data = data_fingerprint(xt, vx, vy)
        self.build(self.input_shape_)
        if not hasattr(self, "nets_"):
            self.nets_ = nn.ModuleDict()
        self.nets_.to(dev)
        self.setup_data(x_fit)
        self._synthetic_val = None if held is None else (self._prepare(held[0]), self._prepare(held[1]))
        _dist.prepare(self)  # under torch.distributed: rank 0's weights on every rank, per-rank RNG streams
        self.history_: list[dict[str, float]] = []
        self._log = _open_log(log_dir, self) if log_dir is not None and _dist.is_main() else None
        t0 = time.perf_counter()
        if self.iterative:
            self._train_loop(xt, vx, vy, ckpt)
        else:
            self.fit_once(x_fit.to(dev))
        self.fit_seconds_ = time.perf_counter() - t0 + (ckpt.seconds_before if ckpt is not None else 0.0)
        self.nets_.eval()
        self.decision_scores_ = self._score_prepared(xt)
        calib = self.decision_scores_
        trained_scores, checked = self.decision_scores_, self._health_scores(vx, vy, val_unit)
        if held is not None:  # scores of every training image, in the caller's order; calibrate on the hold-out
            calib = checked[0]
            keep, hold = split_idx
            self.decision_scores_ = np.empty(len(keep) + len(hold))
            self.decision_scores_[keep.numpy()], self.decision_scores_[hold.numpy()] = trained_scores, calib
        if vx is not None:
            vs = self._score_prepared(vx)
            calib = vs if vy is None else vs[vy == 0]
        self._check_health(trained_scores, checked)
        self.threshold_ = float(np.quantile(calib, 1.0 - self.contamination))
        s = self.decision_scores_
        self.train_stats_ = {
            "n": int(len(s)), "mean": float(s.mean()), "std": float(s.std()), "min": float(s.min()),
            "max": float(s.max()), "q50": float(np.quantile(s, 0.5)), "q99": float(np.quantile(s, 0.99)),
        }
        log = self.__dict__.pop("_log", None)
        if log is not None:
            log.close(self)  # the threshold, the fit time; closes the event files
        scoring_view(self)  # cache the inference view of the final state: scoring after fit reuses it
        return self

    def _train_loop(self, xt: Tensor, vx: Tensor | None, vy: np.ndarray | None,
                    ckpt: CheckpointPlan | None = None) -> None:
        dev = self._device()
        n = len(xt)
        bs, shard = _dist.global_batch(self.batch_size, n)  # N ranks: N x batch_size, this rank's slice of it
        steps = n // bs  # the last partial batch is dropped (BatchNorm needs > 1 sample)
        gen = torch.Generator().manual_seed(self.seed)
        xt = on_device(xt, dev)  # on a GPU the training set stays there as one tensor: no per-batch host copies
        best_auc, best_state = -math.inf, None
        log = getattr(self, "_log", None)  # TensorBoard / MLflow (fit(log_dir=...)), or None
        start = 0  # with resume: the epochs the checkpoint holds, and everything the run held after them
        if ckpt is not None and ckpt.resume:
            start, best_auc, best_state = restore(self, ckpt, gen)
            _dist.reseed(self, start)  # under torch.distributed: ranks > 0 leave rank 0's restored RNG stream
        with _progress(self.verbose and _dist.is_main()) as prog, _dist.averaged_gradients(self):
            task = prog.add_task(f"{self.name}", total=self.epochs * steps, completed=start * steps, losses="")
            self.epoch_seconds_: list[float] = []  # wall time of each epoch's steps (throughput records)
            for epoch in range(start, self.epochs):
                self.epoch_ = epoch
                t_epoch = time.perf_counter()
                self.start_epoch(epoch)
                self.nets_.train()
                perm = torch.randperm(n, generator=gen)
                sums: dict[str, float] = {}
                for i in range(steps):
                    xb = xt[perm[i * bs : (i + 1) * bs].to(xt.device)]
                    if self.patch_size > 0:
                        xb = random_crops(xb, self.patch_size, gen)  # (B, C, p, p): one random crop per image
                    if self.augment:
                        xb = augment(xb, self.augment, gen)
                    xb = xb[shard]  # this rank's part of the global batch (all of it in one process)
                    if self.patch_size > 0:
                        xb = self._embed_crops(xb)
                    with self.amp():
                        losses = _dist.mean_losses(self.train_step(self._layout(xb.to(dev))))  # averaged over ranks
                    for k, v in losses.items():
                        v = float(v)
                        if not math.isfinite(v):
                            raise TrainingDiverged(
                                f"{self.name}: loss {k} = {v} at epoch {epoch + 1}, step {i + 1} (training step "
                                f"{epoch * steps + i + 1}); training stopped and no model was written"
                                f"{kept_note(ckpt)} (lower the learning rates or check the inputs)"
                            )
                        sums[k] = sums.get(k, 0.0) + v
                    if log is not None:
                        log.step(epoch * steps + i + 1, losses)
                    text = " ".join(f"{k}={v / (i + 1):.3g}" for k, v in sums.items())
                    prog.update(task, advance=1, losses=f"ep {epoch + 1}/{self.epochs} {text}")
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                self.epoch_seconds_.append(time.perf_counter() - t_epoch)
                _dist.sync_state(self)  # ranks validate and continue from rank 0's state (BatchNorm buffers)
                rec: dict[str, float] = {"epoch": epoch + 1, **{k: v / max(steps, 1) for k, v in sums.items()}}
                last = epoch + 1 == self.epochs
                selectable = epoch + 1 >= self.selectable_from_epoch()
                if selectable and ((epoch + 1) % self.val_every == 0 or last):
                    auc = self._validate(rec, vx, vy)  # the AUROC that selects (selection_), or None ("last")
                    if auc is not None and auc > best_auc:
                        best_auc, self.best_epoch_ = auc, epoch + 1
                        best_state = (copy.deepcopy(self.nets_.state_dict()), copy.deepcopy(self.extra_state()))
                    if auc is not None:
                        prog.console.log(f"epoch {epoch + 1}: {self.selection_} validation AUROC {auc:.4f} "
                                         f"(best {best_auc:.4f})")
                self.history_.append(rec)
                if log is not None:
                    log.epoch(self, rec, xt)
                if ckpt is not None and ckpt.every > 0 and (epoch + 1) % ckpt.every == 0 and _dist.is_main():
                    write_checkpoint(self, ckpt, epoch + 1, gen, best_auc, best_state)
        syn = getattr(self, "_synthetic_val", None)
        if self.selection_ == "synthetic" and best_state is not None and syn is not None:
            from anogen.health import synthetic_choice  # the last state unless the best is clearly better

            self.best_epoch_ = synthetic_choice(self.history_, len(syn[0]), len(syn[1]))
            if self.best_epoch_ == self.history_[-1]["epoch"]:
                best_state, best_auc = None, self.history_[-1]["synthetic_auroc"]
                self.synthetic_auroc_ = best_auc
        if best_state is not None:
            self.nets_.load_state_dict(best_state[0])
            self.load_extra_state(best_state[1])
            setattr(self, "val_auroc_" if self.selection_ == "labels" else "synthetic_auroc_", best_auc)

    # ------------------------------------------------------------------ selection without labels, health check
    def _unit_images(self, data: Any) -> Tensor:
        """Images -> (N, C, S, S) unit tensors: this model's channels and size, before intensity / normalisation
        (``_prepare`` of them equals ``_prepare`` of ``data``, bit for bit)."""
        return dataclasses.replace(self.preprocess, normalize="unit", intensity="none")(data)

    def _selection_setup(self, x: Any, val_x: Any, val_y: Any) -> tuple[Any, Any, Any, Any, Any]:
        """Resolve ``selection_``; for "synthetic", hold out ``holdout`` of the normal training images ``x`` (never
        validation data; no label is read) and make one synthetic defective copy of each.

        Returns (training input, (kept, held) index tensors or None, (held normals, their defective copies) as unit
        images or None, validation input, validation unit images or None)."""
        sel, kind, labelled = self.selection, self.input_kind_, val_y is not None
        if sel not in SELECTIONS:
            raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}; got {sel!r}")
        if sel == "labels" and not labelled:
            raise InputError("selection='labels' needs labelled validation data (val_x with val_y); without labels "
                             "use selection='synthetic' (held-out normals vs synthetic defects) or 'last'")
        if sel == "synthetic" and kind != "image":
            raise InputError(f"selection='synthetic' makes defects in images; this {self.name} model was given "
                             "feature vectors (use selection='labels' with val_x / val_y, or 'last')")
        val_unit = None
        if kind == "image" and val_x is not None:
            val_x = val_unit = self._unit_images(val_x)
        # a closed-form detector has no states to choose among: "auto" holds nothing out of its training set (a
        # 10 % hold-out cost the GMM 0.10 AUROC on digit 9 with ~100 training images)
        if sel == "synthetic" or (sel == "auto" and not labelled and kind == "image" and self.iterative):
            x = self._unit_images(x)
            if sel == "auto":
                sel = "synthetic" if len(x) >= MIN_SYNTHETIC_TRAIN else "last"
        elif sel == "auto":
            sel = "labels" if labelled else "last"
        self.selection_ = sel
        if sel != "synthetic":
            return x, None, None, val_x, val_unit
        keep, hold = holdout_indices(len(x), self.holdout, self.seed)
        normals = x[hold]
        return x[keep], (keep, hold), (normals, defective_copies(normals, self.seed)), val_x, val_unit

    def _validate(self, rec: dict[str, float], vx: Tensor | None, vy: np.ndarray | None) -> float | None:
        """Validation of the current state into ``rec``: labelled AUROC (with val_y) and synthetic AUROC (with a
        hold-out); returns the one ``selection_`` selects on (None for "last")."""
        from sklearn.metrics import roc_auc_score

        if vy is not None and vx is not None:
            rec["val_auroc"] = float(roc_auc_score(vy, self._score_prepared(vx)))
        syn = getattr(self, "_synthetic_val", None)
        if syn is not None:
            s = np.r_[self._score_prepared(syn[0]), self._score_prepared(syn[1])]
            rec["synthetic_auroc"] = float(roc_auc_score(np.r_[np.zeros(len(syn[0])), np.ones(len(syn[1]))], s))
        hook = getattr(self, "_on_validate", None)
        if hook is not None:
            hook(self, rec)  # benchmarks: measure each candidate state (never part of the selection)
        return rec.get({"labels": "val_auroc", "synthetic": "synthetic_auroc"}.get(self.selection_, ""))

    def _health_scores(self, vx: Tensor | None, vy: np.ndarray | None,
                       val_unit: Tensor | None) -> tuple[np.ndarray, np.ndarray | None, str] | None:
        """Scores of held-out normals and of their synthetic defective copies: the hold-out, else the normal
        validation images (copies only for images), else None."""
        syn = getattr(self, "_synthetic_val", None)
        if syn is not None:
            return self._score_prepared(syn[0]), self._score_prepared(syn[1]), "holdout"
        if vx is None:
            return None
        normal = torch.from_numpy(np.ones(len(vx), dtype=bool) if vy is None else vy == 0)
        anomalies = None
        if val_unit is not None:
            anomalies = self._score_prepared(self._prepare(defective_copies(val_unit[normal], self.seed)))
        return self._score_prepared(vx[normal]), anomalies, "validation"

    def _check_health(self, trained_scores: np.ndarray, checked: tuple[Any, Any, str] | None) -> None:
        """``health_`` (:func:`anogen.health.health_report`); each finding is also a :class:`HealthWarning`."""
        from anogen.health import health_report

        normals, anomalies, source = checked if checked is not None else (None, None, "")
        self.health_ = health_report(self.name, trained_scores, normals, anomalies, source)
        self._synthetic_val = None
        if _dist.is_main():
            for w in self.health_["warnings"]:
                warnings.warn(w, HealthWarning, stacklevel=3)

    # ------------------------------------------------------------------ scoring
    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise not_fitted(NotFittedError, f"this {self.name} detector is not fitted yet: call fit(x) or "
                                             f"anogen.load(path) first")

    def _score_chunk(self, x: Tensor) -> Tensor:
        """``score_batch`` on one batch already on the device -> (B,) float64 on the CPU, checked for its length."""
        if hasattr(self, "input_shape_") and x.ndim == len(self.input_shape_) + 2:  # (B, V, ...) views: mean score
            s = self._score_chunk(x.flatten(0, 1)).reshape(x.shape[0], x.shape[1]).mean(1)
            return s
        with self.amp():
            s = self.score_batch(self._layout(x)).detach().double().cpu().reshape(-1)
        if len(s) != len(x):
            raise RuntimeError(f"{self.name}.score_batch returned {len(s)} scores for {len(x)} inputs")
        return s

    def _score_prepared(self, x: Tensor) -> np.ndarray:
        self.nets_.eval()
        dev = self._device()
        out = []
        fast = scoring_view(self)  # self, or a view whose nets_ hold spectral norm computed once (anogen.inference)
        with scoring_mode(self):  # torch.inference_mode (no_grad for methods that need autograd at scoring)
            if self.patch_size > 0:  # image score = the highest score of its windows (IV-B)
                out = [s.amax(1) for _, s in fast._over_windows(x, fast._score_chunk)]  # (k,) per image chunk
            else:
                for i in range(0, len(x), self.eval_batch_size):
                    out.append(fast._score_chunk(x[i : i + self.eval_batch_size].to(dev)))
        scores = torch.cat(out).numpy()
        if len(scores) != len(x):
            raise RuntimeError(f"{self.name} returned {len(scores)} scores for {len(x)} inputs")
        if not np.isfinite(scores).all():
            raise RuntimeError(f"{self.name} produced non-finite scores: the model has diverged")
        return scores

    def decision_function(self, x: Any) -> np.ndarray:
        """Anomaly scores (N,), higher = more anomalous."""
        self._check_fitted()
        return self._score_prepared(self._prepare(x))

    def predict(self, x: Any, return_confidence: bool = False) -> Any:
        """Labels (N,) in {0, 1}: 1 where the score exceeds ``threshold_``; with ``return_confidence`` (PyOD's
        argument) also each label's confidence (N,), as :meth:`predict_confidence`."""
        s = self.decision_function(x)
        labels = (s > self.threshold_).astype(np.int64)
        return (labels, self.confidence_of(s)) if return_confidence else labels

    def anomaly_maps(self, x: Any) -> np.ndarray:
        """Per-pixel anomaly maps (N, H, W) at the model's image size, for methods that have them.

        In patch mode every method has them: per-pixel patch maps averaged where windows overlap, or, for a method
        without ``map_batch``, the mean score of the windows covering each pixel."""
        self._check_fitted()
        return self._maps_prepared(self._prepare(x))

    def _maps_prepared(self, xt: Tensor) -> np.ndarray:
        self.nets_.eval()
        fast = scoring_view(self)
        with scoring_mode(self):
            if self.patch_size > 0:
                return fast._patch_maps(xt)
            return fast._batched(xt, fast.map_batch).numpy()

    def optimize(self, *, fold_batchnorm: bool = True, channels_last: bool = True) -> "Detector":
        """Opt in to faster scoring that is exact in arithmetic but not bit for bit (BatchNorm folded into the
        preceding layer, channels-last weights; tolerance ``anogen.inference.FAST_RTOL``); returns ``self``.

        The saved model is unaffected; ``anogen.inference.exact(det)`` turns it off."""
        from anogen.inference import optimize

        return optimize(self, fold_batchnorm=fold_batchnorm, channels_last=channels_last)

    def has_anomaly_maps(self) -> bool:
        """Whether :meth:`anomaly_maps` works: the method has a per-pixel ``map_batch``, or patch mode is on."""
        return type(self).map_batch is not Detector.map_batch or self.patch_size > 0

    # ------------------------------------------------------------------ patch mode
    def _has_embed(self) -> bool:
        return type(self).embed is not Detector.embed

    def _check_patch_fields(self, kind: str) -> None:
        p, stride = self.patch_size, self.patch_stride
        if p < 0:
            raise ValueError(f"patch_size must be >= 0 (0: whole images), got {p}")
        if p == 0:
            return
        if kind != "image":
            raise InputError(f"patch_size={p} applies to images; this {self.name} model was given feature vectors")
        if not 1 <= stride <= p:
            raise ValueError(f"patch_stride must be in 1..patch_size ({p}) so that windows cover every pixel, "
                             f"got {stride}")
        if p > self.image_size:
            raise InputError(f"images of {self.image_size}x{self.image_size} pixels (image_size) are smaller than "
                             f"a patch of {p}x{p} (patch_size)")

    def _check_patchable(self, x: Tensor) -> Tensor:
        """Whole preprocessed images (N, C, H, W) in patch mode: at least a patch large, and as at fit."""
        p = self.patch_size
        if x.shape[-2] < p or x.shape[-1] < p:
            raise InputError(f"images of {x.shape[-2]}x{x.shape[-1]} pixels are smaller than a patch of {p}x{p} "
                             f"(patch_size)")
        if hasattr(self, "image_shape_") and tuple(x.shape[1:]) != self.image_shape_:
            raise InputError(f"expected images of shape {self.image_shape_}, got {tuple(x.shape[1:])}")
        return x

    def _embed_crops(self, x: Tensor) -> Tensor:
        return self._batched(x, self.embed) if self._has_embed() else x

    def _over_windows(self, x: Tensor, fn: Any) -> Any:
        """Yield (first image index, ``fn`` of every window of a chunk of images, as (k, n_windows, ...)) over ``x``.

        Windows are cut by indexing (no per-pixel Python loops), embedded, and given to ``fn`` in batches of at most
        ``eval_batch_size``; ``fn``'s outputs are moved to the CPU. Call under ``torch.no_grad``.
        """
        tops, lefts = (torch.tensor(window_starts(n, self.patch_size, self.patch_stride)) for n in x.shape[-2:])
        n_win = len(tops) * len(lefts)
        per = max(1, self.eval_batch_size // n_win)  # images per chunk
        dev = self._device()
        for i in range(0, len(x), per):
            patches = sliding_windows(x[i : i + per], tops, lefts, self.patch_size)  # (k * n_win, C, p, p)
            outs = []
            for j in range(0, len(patches), self.eval_batch_size):
                pb = patches[j : j + self.eval_batch_size].to(dev)
                with self.amp():
                    outs.append(fn(self.embed(pb) if self._has_embed() else pb).detach().float().cpu())
            out = torch.cat(outs)
            yield i, out.reshape(-1, n_win, *out.shape[1:])

    def _patch_maps(self, x: Tensor) -> np.ndarray:
        """(N, C, H, W) whole images -> (N, H, W) maps assembled over the sliding windows (mean over overlaps)."""
        p, (h, w) = self.patch_size, x.shape[-2:]
        tops, lefts = (torch.tensor(window_starts(n, p, self.patch_stride)) for n in (h, w))
        ar = torch.arange(p)
        rows, cols = tops[:, None] + ar, lefts[:, None] + ar  # (ny, p), (nx, p)
        pix = (rows[:, None, :, None] * w + cols[None, :, None, :]).reshape(-1)  # (ny * nx * p * p,) flat pixel ids
        count = torch.zeros(h * w, dtype=torch.float64).index_add_(0, pix, torch.ones(len(pix), dtype=torch.float64))
        per_pixel = type(self).map_batch is not Detector.map_batch
        fn = self.map_batch if per_pixel else self._score_chunk
        maps = []
        with torch.no_grad():
            for _, out in self._over_windows(x, fn):  # (k, n_win, p, p) maps or (k, n_win) scores
                k = out.shape[0]
                vals = out.double().reshape(k, -1, 1).expand(-1, -1, p * p) if not per_pixel else out.double()
                acc = torch.zeros(k, h * w, dtype=torch.float64).index_add_(1, pix, vals.reshape(k, -1))
                maps.append((acc / count).float().reshape(k, h, w))
        return torch.cat(maps).numpy()

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | Path) -> Path:
        """Write one self-contained model file (safetensors + JSON metadata), atomically."""
        self._check_fitted()
        path = Path(path)
        tensors = {f"nets.{k}": v for k, v in self.nets_.state_dict().items()}
        tensors.update({f"extra.{k}": v for k, v in self.extra_state().items()})
        tensors["decision_scores_"] = torch.from_numpy(np.asarray(self.decision_scores_, dtype=np.float64))
        meta = {
            "format": FORMAT_VERSION,
            "anogen_version": library_version(),
            "torch_version": torch.__version__,
            "detector": self.name,
            "config": _jsonable(self.get_params()),
            "preprocess": self.preprocess.to_dict(),
            "input_kind": self.input_kind_,
            "input_shape": list(self.input_shape_),
            "image_shape": list(self.image_shape_) if self.patch_size > 0 else None,
            "threshold": self.threshold_,
            "train_stats": self.train_stats_,
            "history": self.history_,
            "best_epoch": getattr(self, "best_epoch_", None),
            "val_auroc": getattr(self, "val_auroc_", None),
            "selection": getattr(self, "selection_", None),
            "synthetic_auroc": getattr(self, "synthetic_auroc_", None),
            "health": getattr(self, "health_", None),
            "fit_seconds": getattr(self, "fit_seconds_", None),
            "machine": platform.platform(),
        }
        return atomic_save(tensors, path, {MODEL_KEY: json.dumps(meta)})


def load(path: str | Path, device: str | None = None) -> Detector:
    """A fitted detector from a file written by :meth:`Detector.save`; never executes code from the file.

    Raises:
        FileNotFoundError: there is no such file.
        ValueError: the file is not an intact anogen model: another format (a pickle is refused, never unpickled),
            truncated, safetensors without anogen metadata, a training checkpoint, or metadata naming an unknown
            detector or fields, shapes the weights do not fit, missing or extra tensors.
    """
    path = Path(path)
    meta, tensors = read_tagged(path, MODEL_KEY, "model")
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path} has model format {meta.get('format')!r}; this anogen reads format {FORMAT_VERSION}")
    try:
        return _from_model_file(path, meta, tensors, device)
    except _Tampered as e:
        raise ValueError(f"{path} is not an intact anogen model (damaged or edited): {e}") from e
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as e:
        msg = " ".join(str(e).split())[:800]
        raise ValueError(f"{path} is not an intact anogen model (damaged or edited): {type(e).__name__}: {msg}") from e


class _Tampered(Exception):
    """A model file's contents contradict each other (raised inside :func:`load`, reported as ValueError)."""


def _from_model_file(path: Path, meta: dict[str, Any], tensors: dict[str, Tensor], device: str | None) -> Detector:
    from anogen._registry import available, get

    name = meta.get("detector")
    if not isinstance(name, str) or name not in available():
        raise _Tampered(f"it names detector {name!r}, which this anogen does not have (it has "
                        f"{', '.join(available())})")
    cls = get(name)
    config = meta.get("config")
    if not isinstance(config, dict):
        raise _Tampered("its metadata has no configuration object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise _Tampered(f"its configuration has fields {unknown} that {name} does not have")
    config = dict(config)
    for k, v in list(config.items()):
        if isinstance(v, list) and isinstance(fields[k].default, tuple):
            config[k] = tuple(v)
    if device is not None:
        config["device"] = device
    shape, kind = meta.get("input_shape"), meta.get("input_kind")
    if not (isinstance(shape, list) and shape and all(type(s) is int and s > 0 for s in shape)):
        raise _Tampered(f"its input shape {shape!r} is not a list of positive integers")
    if kind not in ("image", "vector"):
        raise _Tampered(f"its input kind {kind!r} is neither 'image' nor 'vector'")
    threshold = meta.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise _Tampered(f"its threshold {threshold!r} is not a number")
    stray = sorted(k for k in tensors if not k.startswith(("nets.", "extra.")) and k != "decision_scores_")
    if stray or "decision_scores_" not in tensors:
        raise _Tampered(f"unexpected tensors {stray[:5]}" if stray else "the tensor decision_scores_ is missing")
    det = cls(**config)
    det.input_kind_ = kind
    det.input_shape_ = tuple(shape)
    if meta.get("image_shape") is not None:
        det.image_shape_ = tuple(meta["image_shape"])  # patch mode: the whole images the windows slide over
    if kind == "image":  # the channel count the model sees (inferred from the training data when channels=0)
        pre = meta.get("preprocess") if isinstance(meta.get("preprocess"), dict) else {}
        det.channels_ = int(pre.get("channels") or det.channels or (shape[0] if not det._has_embed() else 3))
        if det.channels and det.channels_ != det.channels:
            raise _Tampered(f"its preprocessing sees {det.channels_} channels, its configuration {det.channels}")
    if kind == "image" and not det._has_embed():  # the network sees what the saved preprocessing produces
        side = det.patch_size if det.patch_size > 0 else det.image_size
        if tuple(shape) != (det.channels_, side, side):
            raise _Tampered(f"its input shape {tuple(shape)} contradicts its configuration ({det.channels_} channels, "
                            f"{side} px)")
    det.build(det.input_shape_)
    if not hasattr(det, "nets_"):
        det.nets_ = nn.ModuleDict()
    missing, unexpected = _state_keys_differ(det.nets_.state_dict(), split_prefixed(tensors, "nets."))
    if missing or unexpected:
        raise _Tampered(f"its weights do not match a {name} for inputs {tuple(shape)}: missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]}")
    det.nets_.load_state_dict(split_prefixed(tensors, "nets."), strict=True)  # also refuses shape mismatches
    det.nets_.to(det._device()).eval()
    det.load_extra_state(split_prefixed(tensors, "extra."))
    det.decision_scores_ = tensors["decision_scores_"].numpy()
    det.threshold_ = float(threshold)
    det.train_stats_ = meta.get("train_stats")
    det.history_ = meta.get("history") or []
    for key in ("best_epoch", "val_auroc", "fit_seconds", "selection", "synthetic_auroc", "health"):
        if meta.get(key) is not None:
            setattr(det, key + "_", meta[key])
    det.metadata_ = meta
    return det


def _state_keys_differ(expected: dict[str, Any], got: dict[str, Any]) -> tuple[list[str], list[str]]:
    return sorted(set(expected) - set(got)), sorted(set(got) - set(expected))


def check_precision(precision: str) -> None:
    """Refuse a ``precision`` this library does not run (fp16: every method steps its own optimizers, so a loss
    scaler would have to enter each ``train_step``; bf16 has fp32's range and needs none)."""
    if precision == "fp16":
        raise ValueError("precision='fp16' is not supported: it needs a gradient scaler inside every method's "
                         "train_step; use precision='bf16' (fp32's exponent range, no scaler needed) on CPU or GPU")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")


def _to_fp32(out: Any) -> Any:
    if isinstance(out, Tensor):
        return out.float() if out.dtype in (torch.bfloat16, torch.float16) else out
    if isinstance(out, (tuple, list)):
        return type(out)(_to_fp32(o) for o in out)
    if isinstance(out, dict):
        return {k: _to_fp32(v) for k, v in out.items()}
    return out


def fp32_outputs(nets: nn.ModuleDict) -> None:
    """Make every network of ``nets`` return fp32 tensors (a forward hook, installed once per network): under bf16
    autocast the layers inside run in bfloat16, and what a method computes from their outputs stays in fp32."""
    for net in nets.values():
        if not net.__dict__.get("_anogen_fp32_outputs"):
            net.register_forward_hook(lambda _m, _i, out: _to_fp32(out))
            net.__dict__["_anogen_fp32_outputs"] = True


def on_device(x: Tensor, device: torch.device, share: float = 0.25) -> Tensor:
    """``x`` moved to a CUDA ``device`` when it takes at most ``share`` of the free device memory, else as it is."""
    if device.type != "cuda" or x.device == device:
        return x
    free, _ = torch.cuda.mem_get_info(device)
    return x.to(device) if x.numel() * x.element_size() <= share * free else x


def window_starts(size: int, patch: int, stride: int) -> list[int]:
    """Offsets of the sliding windows along one side: 0, stride, 2 stride, ..., plus ``size - patch`` (the last
    window touching the border) when the stride does not land on it."""
    if size < patch:
        raise InputError(f"a side of {size} pixels is smaller than a patch of {patch}")
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def sliding_windows(x: Tensor, tops: Tensor, lefts: Tensor, patch: int) -> Tensor:
    """(B, C, H, W) -> (B * len(tops) * len(lefts), C, patch, patch): the windows at every (top, left) offset pair,
    image-major, then row-major (top, then left)."""
    b, c = x.shape[:2]
    ar = torch.arange(patch)
    rows, cols = (tops[:, None] + ar).reshape(-1), (lefts[:, None] + ar).reshape(-1)
    w = x[:, :, rows][:, :, :, cols]  # (B, C, ny * p, nx * p)
    w = w.reshape(b, c, len(tops), patch, len(lefts), patch).permute(0, 2, 4, 1, 3, 5)  # (B, ny, nx, C, p, p)
    return w.reshape(-1, c, patch, patch)


def random_crops(x: Tensor, patch: int, generator: torch.Generator) -> Tensor:
    """(B, C, H, W) -> (B, C, patch, patch): one crop per image at a uniform random offset drawn from ``generator``."""
    b, c, h, w = x.shape
    top = torch.randint(0, h - patch + 1, (b,), generator=generator).to(x.device)
    left = torch.randint(0, w - patch + 1, (b,), generator=generator).to(x.device)
    ar = torch.arange(patch, device=x.device)
    rows = (top[:, None] + ar)[:, None, :, None]  # (B, 1, p, 1)
    cols = (left[:, None] + ar)[:, None, None, :]  # (B, 1, 1, p)
    bi, ci = torch.arange(b, device=x.device), torch.arange(c, device=x.device)
    return x[bi[:, None, None, None], ci[None, :, None, None], rows, cols]


def _open_log(log_dir: str | Path, det: Detector) -> Any:
    from anogen.logs import TrainingLog

    return TrainingLog(log_dir, det)


class _NullProgress:
    console = type("C", (), {"log": staticmethod(lambda *a, **k: None)})()

    def __enter__(self) -> "_NullProgress":
        return self

    def __exit__(self, *a: Any) -> None:
        return None

    def add_task(self, *a: Any, **k: Any) -> int:
        return 0

    def update(self, *a: Any, **k: Any) -> None:
        return None


def _progress(verbose: bool) -> Any:
    if not verbose:
        return _NullProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[losses]}"),
    )
