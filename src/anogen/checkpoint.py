"""Safe model / checkpoint files: atomic writes, validated reads, and the training checkpoints of ``Detector.fit``.

Every file anogen writes is a safetensors file (tensors) with one JSON string in its header metadata (everything
else), so reading one never executes code from it: no pickle anywhere. A model file carries the key ``anogen``, a
training checkpoint the key ``anogen_checkpoint``; each reader refuses the other kind with a message saying what it is.

A training checkpoint (``fit(..., checkpoint=PATH, checkpoint_every=N)``) is written atomically at the end of every
N-th epoch and holds what an identical continuation needs:

- tensors: ``nets.*`` (every weight and buffer of ``nets_``: EMA copies, BatchNorm statistics, spectral-norm vectors),
  ``extra.*`` (``extra_state()``), ``train.*`` (``train_state()``: latents, replay buffers, step counters a method
  keeps outside ``nets_``), ``optim.<attribute>.<param index>.<key>`` (every optimizer's per-parameter state, e.g.
  Adam's ``step`` / ``exp_avg`` / ``exp_avg_sq``), ``rng.*`` (the loop's shuffling generator, torch's global CPU
  RNG, each CUDA device's RNG, numpy's global MT19937 keys) and ``best.nets.*`` / ``best.extra.*`` (the state kept by
  validation so far);
- JSON: the configuration, input shapes, a SHA-256 fingerprint of the prepared training / validation data, the
  number of finished epochs, the history, the best validation AUROC and epoch, each optimizer's ``param_groups`` and
  non-tensor state, the rest of the RNG states (numpy's position and cached Gaussian, Python's ``random`` state) and
  the seconds trained so far.

``fit(..., resume=True)`` rebuilds the detector as a fresh fit does, refuses a checkpoint of another detector,
configuration (``verbose`` and ``device`` may differ), input shape or data, then restores all of the above and
continues with the next epoch: on the same device and torch build the scores are bit-identical to an uninterrupted
run (tested for ALGAN, the AE and GANomaly). Under ``torchrun`` only rank 0 writes; a resumed multi-process run
gives every rank rank 0's RNG state, so it is not bit-identical to the uninterrupted multi-process run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

Detector = Any
"""A :class:`anogen.detector.Detector` (named, not imported: this module sits below the base class's layer)."""

MODEL_KEY = "anogen"
CHECKPOINT_KEY = "anogen_checkpoint"
CHECKPOINT_FORMAT = 1
RESUME_MAY_DIFFER = ("verbose", "device")
"""Fields that may differ between the run that wrote a checkpoint and the run resuming from it."""


# ---------------------------------------------------------------------------------------------------- files
def atomic_save(tensors: dict[str, Tensor], path: str | Path, metadata: dict[str, str]) -> Path:
    """Write ``tensors`` + ``metadata`` as safetensors to ``path`` atomically: a temporary file in the same folder,
    fsync, rename over ``path``, fsync of the folder. A crash leaves the old file or the new one, never a torn one."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}  # no shared storage
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a saved file gets the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    try:  # make the rename itself durable (not possible on every platform / file system)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def read_tagged(path: str | Path, key: str, what: str) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(metadata JSON object under ``key``, tensors) of an anogen safetensors file; a clear ``ValueError`` for
    anything else: not safetensors (a pickle, random bytes), truncated, no or other anogen metadata, broken JSON.

    Never executes code from the file: safetensors parses a JSON header and raw tensor bytes only.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = dict(f.metadata() or {})
        tensors = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types for foreign / truncated files
        raise ValueError(f"{path} is not an anogen {what} file (expected safetensors with anogen metadata; it is "
                         f"not safetensors, or truncated or corrupt): {' '.join(str(e).split())}") from e
    raw = header.get(key)
    if raw is None:
        other = {MODEL_KEY: "a model file (load it with anogen.load)",
                 CHECKPOINT_KEY: "a training checkpoint (continue it with fit(..., checkpoint=PATH, resume=True) "
                                 "or `anogen train ... --resume`)"}
        for k, desc in other.items():
            if k != key and k in header:
                raise ValueError(f"{path} is {desc}, not an anogen {what}")
        raise ValueError(f"{path} is a safetensors file without anogen metadata; not an anogen {what}")
    try:
        meta = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"{path}: the anogen metadata is not valid JSON ({e}); the file is damaged or was "
                         "edited") from e
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: the anogen metadata is a JSON {type(meta).__name__}, not an object; the file is "
                         "damaged or was edited")
    return meta, tensors


def split_prefixed(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The tensors whose key starts with ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _prefixed(prefix: str, d: dict[str, Tensor]) -> dict[str, Tensor]:
    return {prefix + k: v for k, v in d.items()}


# ---------------------------------------------------------------------------------------------------- plan
@dataclass
class CheckpointPlan:
    """Where and how often a fit writes checkpoints, and what a resumed fit found in one."""

    path: Path
    every: int
    resume: bool
    data: str = ""
    """SHA-256 of the prepared training / validation data (set by fit)"""
    seconds_before: float = 0.0
    """training seconds of the run(s) before a resume"""
    last_epoch: int | None = None
    """epochs held by the checkpoint on disk, once one is written or read"""
    t0: float = field(default_factory=time.perf_counter)


def make_plan(det: Detector, checkpoint: str | Path | None, every: int, resume: bool) -> CheckpointPlan | None:
    """Check ``fit``'s checkpoint arguments; ``None`` when no checkpoint is asked for."""
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 0:
        raise ValueError(f"checkpoint_every must be an integer >= 0 (0: write none), got {every!r}")
    if checkpoint is None:
        if resume:
            raise ValueError("resume=True needs checkpoint=PATH, the checkpoint to continue from")
        return None
    if not det.iterative:
        raise ValueError(f"{det.name} is fitted in closed form, without epochs; training checkpoints apply to "
                         "detectors trained epoch by epoch")
    path = Path(checkpoint)
    if resume and not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume from at {path} (write one with checkpoint_every > 0 / "
                                "--checkpoint-every N)")
    return CheckpointPlan(path=path, every=int(every), resume=bool(resume))


def data_fingerprint(*arrays: Any) -> str:
    """SHA-256 over the dtype, shape and bytes of each array / tensor (``None`` counted as such)."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"None;")
            continue
        arr = np.ascontiguousarray(a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a))
        h.update(f"{arr.dtype.str}{arr.shape};".encode())
        h.update(memoryview(arr.reshape(-1).view(np.uint8)))
    return h.hexdigest()


def kept_note(plan: CheckpointPlan | None) -> str:
    """The part of a divergence message that says which checkpoint is left on disk."""
    if plan is None:
        return ""
    if plan.last_epoch is None:
        return f"; no checkpoint had been written yet ({plan.path})"
    return f"; the last good checkpoint (after epoch {plan.last_epoch}) is kept at {plan.path}"


# ---------------------------------------------------------------------------------------------------- write
def optimizers_of(det: Detector) -> dict[str, torch.optim.Optimizer]:
    """The detector's optimizers, by attribute name (``opt_g_``, ...), sorted."""
    return {k: v for k, v in sorted(vars(det).items()) if isinstance(v, torch.optim.Optimizer)}


def write_checkpoint(det: Detector, plan: CheckpointPlan, epoch: int, gen: torch.Generator, best_auc: float,
                     best_state: tuple[dict[str, Tensor], dict[str, Tensor]] | None) -> None:
    """Write the state after ``epoch`` finished epochs to ``plan.path`` (atomically; rank 0 only)."""
    from anogen import distributed
    from anogen._util import library_version

    if not distributed.is_main():
        return
    tensors = {**_prefixed("nets.", det.nets_.state_dict()), **_prefixed("extra.", det.extra_state()),
               **_prefixed("train.", det.train_state())}
    optim_meta = {}
    for name, opt in optimizers_of(det).items():
        t, optim_meta[name] = _flatten_optimizer(opt.state_dict(), name)
        tensors.update(_prefixed(f"optim.{name}.", t))
    rng_t, rng_meta = _rng_state(gen)
    tensors.update(_prefixed("rng.", rng_t))
    if best_state is not None:
        tensors.update(_prefixed("best.nets.", best_state[0]))
        tensors.update(_prefixed("best.extra.", best_state[1]))
    meta = {
        "format": CHECKPOINT_FORMAT,
        "anogen_version": library_version(),
        "torch_version": torch.__version__,
        "detector": det.name,
        "config": json.loads(json.dumps(det.get_params())),
        "input_kind": det.input_kind_,
        "input_shape": list(det.input_shape_),
        "image_shape": list(det.image_shape_) if getattr(det, "image_shape_", None) is not None else None,
        "data": plan.data,
        "epoch": epoch,
        "history": det.history_,
        "best_auc": best_auc if best_state is not None else None,
        "best_epoch": getattr(det, "best_epoch_", None),
        "optimizers": optim_meta,
        "rng": rng_meta,
        "seconds": plan.seconds_before + time.perf_counter() - plan.t0,
    }
    atomic_save(tensors, plan.path, {CHECKPOINT_KEY: json.dumps(meta)})
    plan.last_epoch = epoch


def _flatten_optimizer(sd: dict[str, Any], name: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """An optimizer state dict -> (tensors "<param index>.<key>", JSON-able structure with everything else)."""
    tensors, state = {}, {}
    for idx, st in sd["state"].items():
        keys = sorted(k for k, v in st.items() if isinstance(v, Tensor))
        tensors.update({f"{idx}.{k}": st[k] for k in keys})
        state[str(idx)] = {"tensors": keys, "values": {k: v for k, v in st.items() if k not in keys}}
    meta = {"state": state, "param_groups": sd["param_groups"]}
    try:
        json.dumps(meta)
    except TypeError as e:
        raise ValueError(f"cannot checkpoint optimizer {name}: its state holds a value JSON cannot store ({e})") from e
    return tensors, meta


def _rng_state(gen: torch.Generator) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors = {"loop": gen.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss = random.getstate()
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(cached)], "python": [version, list(internal), gauss]}
    return tensors, meta


# ---------------------------------------------------------------------------------------------------- resume
def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(metadata, tensors) of a training checkpoint, refusing anything that is not one."""
    meta, tensors = read_tagged(path, CHECKPOINT_KEY, "training checkpoint")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} has checkpoint format {meta.get('format')!r}; this anogen reads format "
                         f"{CHECKPOINT_FORMAT}")
    return meta, tensors


def _mismatch(det: Detector, meta: dict[str, Any], plan: CheckpointPlan) -> str | None:
    """Why ``det`` (built, about to train on the data of ``plan``) cannot continue from ``meta``, or None."""
    if meta.get("detector") != det.name:
        return f"it was written by {meta.get('detector')!r}, not {det.name!r}"
    saved, now = meta.get("config") or {}, json.loads(json.dumps(det.get_params()))
    diff = sorted(k for k in set(saved) | set(now) if k not in RESUME_MAY_DIFFER and saved.get(k) != now.get(k))
    if diff:
        return "the configuration differs: " + ", ".join(f"{k}={saved.get(k)!r} there, {now.get(k)!r} here"
                                                         for k in diff)
    if meta.get("input_shape") != list(det.input_shape_) or meta.get("input_kind") != det.input_kind_:
        return f"its inputs were {meta.get('input_kind')} {meta.get('input_shape')}, here {det.input_kind_} " \
               f"{list(det.input_shape_)}"
    if meta.get("data") != plan.data:
        return "the training / validation data differ from the data it was trained on"
    epoch = meta.get("epoch")
    if not isinstance(epoch, int) or not 0 <= epoch <= det.epochs:
        return f"it holds epoch {epoch!r}, outside 0..{det.epochs}"
    return None


def restore(det: Detector, plan: CheckpointPlan, gen: torch.Generator) -> tuple[int, float, Any]:
    """Load ``plan.path`` into ``det`` (built, before its first epoch) and the loop's generator ``gen``.

    Returns:
        (finished epochs, best validation AUROC so far, best state so far as (nets state, extra state) or None).
    """
    meta, tensors = read_checkpoint(plan.path)
    why = _mismatch(det, meta, plan)
    if why:
        raise ValueError(f"cannot resume from {plan.path}: {why}. Resume with the configuration and data of the run "
                         "that wrote it, or start afresh without resume")
    try:
        _restore_state(det, meta, tensors, gen)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
        raise ValueError(f"cannot resume from {plan.path}: its state does not fit this {det.name} "
                         f"({' '.join(str(e).split())[:500]})") from e
    det.history_ = list(meta.get("history") or [])
    if meta.get("best_epoch") is not None:
        det.best_epoch_ = int(meta["best_epoch"])
    best_state = None
    if any(k.startswith("best.nets.") for k in tensors):
        best_state = (split_prefixed(tensors, "best.nets."), split_prefixed(tensors, "best.extra."))
    best_auc = meta["best_auc"] if best_state is not None and meta.get("best_auc") is not None else -math.inf
    plan.seconds_before = float(meta.get("seconds") or 0.0)
    plan.last_epoch = int(meta["epoch"])
    plan.t0 = time.perf_counter()
    return int(meta["epoch"]), float(best_auc), best_state


def _restore_state(det: Detector, meta: dict[str, Any], tensors: dict[str, Tensor], gen: torch.Generator) -> None:
    dev = det._device()
    det.nets_.load_state_dict(split_prefixed(tensors, "nets."), strict=True)
    extra = split_prefixed(tensors, "extra.")
    if extra:
        det.load_extra_state(extra)
    det.load_train_state({k: v.to(dev) for k, v in split_prefixed(tensors, "train.").items()})
    opts, saved = optimizers_of(det), meta.get("optimizers") or {}
    if sorted(opts) != sorted(saved):
        raise ValueError(f"optimizers {sorted(saved)} in the checkpoint, {sorted(opts)} here")
    for name, opt in opts.items():
        opt.load_state_dict(_unflatten_optimizer(split_prefixed(tensors, f"optim.{name}."), saved[name],
                                                 opt.state_dict(), name))
    _set_rng_state(split_prefixed(tensors, "rng."), meta["rng"], gen)


def _unflatten_optimizer(tensors: dict[str, Tensor], meta: dict[str, Any], current: dict[str, Any],
                         name: str) -> dict[str, Any]:
    groups, now = meta["param_groups"], current["param_groups"]
    if len(groups) != len(now) or any(len(g["params"]) != len(c["params"]) for g, c in zip(groups, now)):
        raise ValueError(f"optimizer {name}: parameter groups differ from the checkpoint's")
    state = {}
    for idx, entry in meta["state"].items():
        st = dict(entry["values"])
        st.update({k: tensors[f"{idx}.{k}"] for k in entry["tensors"]})
        state[int(idx)] = st
    # JSON turned tuples (Adam's betas) into lists: give each value the type it has in a fresh optimizer
    fixed = [{k: tuple(v) if isinstance(c.get(k), tuple) and isinstance(v, list) else v for k, v in g.items()}
             for g, c in zip(groups, now)]
    return {"state": state, "param_groups": fixed}


def _set_rng_state(tensors: dict[str, Tensor], meta: dict[str, Any], gen: torch.Generator) -> None:
    gen.set_state(tensors["loop"])
    torch.set_rng_state(tensors["torch"])
    cuda = sorted((int(k.split(".")[1]), v) for k, v in tensors.items() if k.startswith("cuda."))
    if cuda and torch.cuda.is_available():
        for i, s in cuda[: torch.cuda.device_count()]:
            torch.cuda.set_rng_state(s, i)
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))

