"""Data-parallel training with ``torch.distributed`` for every registered detector (``anogen train`` under torchrun).

    torchrun --nproc_per_node=2 -m anogen.cli train algan --data digits:normal=0 --out run --preset cpu

Each process (rank) holds a full copy of the detector and the whole training set; :meth:`Detector.fit` notices an
initialised process group and then:

- after ``build`` and ``setup_data``, copies rank 0's ``nets_`` state (weights and buffers) to every rank
  (:func:`prepare`), so every rank starts from the same weights whatever happened in ``build``; ranks other than 0
  then reseed the global RNGs with a seed derived from (seed, rank), so each rank draws its own latents / noise /
  dropout masks (as separate DDP workers do) while rank 0 keeps the single-process stream;
- shards every epoch's batches (:func:`global_batch`): all ranks draw the same permutation (the loop's generator is
  seeded with ``seed``), take the same global batch of ``batch_size * world_size`` samples, apply crops and
  augmentations to it with the same generator, and keep their own disjoint slice of ``batch_size``. So
  ``batch_size`` is per rank, as in DDP, and N ranks x batch B see exactly the samples of one process x batch N B;
- averages gradients across ranks right before every optimizer step (:func:`averaged_gradients`): a global
  optimizer step pre-hook, installed for the duration of the training loop, all-reduces the gradients of the
  optimizer's parameters that belong to ``nets_`` and divides them by the world size;
- averages the logged losses across ranks (:func:`mean_losses`): the history is the global batch's, and a NaN on one
  rank stops every rank at the same step with the same error (no rank is left waiting in a collective);
- at the end of every epoch, copies rank 0's ``nets_`` state and ``extra_state()`` to every rank
  (:func:`sync_state`), so validation, model selection, the threshold and the training-score statistics are computed
  the same on every rank (each rank scores the whole validation / training set; nothing is gathered).

Files: :mod:`anogen.cli` writes the model, metrics and plots on rank 0 only (:func:`is_main`); a script of your own
does the same (``if anogen.distributed.is_main(): det.save(path)``).

Why gradient averaging before ``step`` and not ``DistributedDataParallel`` wrappers: a method owns its
``train_step`` and calls backward / step itself, and many call the same network several times per step (ALGAN's D
on real and fake data in the G step, BiGAN's D on two pairs, GANomaly's encoder twice, EBGAN's energy on real and
fake batches), backpropagate a G loss through D whose gradients are then thrown away, or take two backward passes
through one module before a step. DDP's autograd hooks fire once per parameter per backward and assume one forward
per backward (``find_unused_parameters`` / ``static_graph`` only cover part of this), and wrapping would rename the
keys of ``nets_.state_dict()`` that saved models rely on. Averaging what an optimizer is about to apply is exact
for all of these (the step uses the mean over the global batch of whatever the method accumulated, as one process
with the global batch would for losses that are batch means), needs no change in any method, and costs one
all-reduce per optimizer step (plus a tiny one for the "which parameters have gradients" flags). It does not overlap
communication with the backward pass as DDP does; for the network sizes here that is a small cost.

Exactness: for a method whose losses are means over the batch, that has no BatchNorm and draws no random numbers,
N ranks x batch B give the weights of one process x batch N B up to float summation order (``tests/
test_distributed.py``: 2 gloo ranks x batch 8 against 1 process x batch 16, 12 Adam steps of two optimizers, largest
weight difference 6e-8). Everything else trains as DDP would, but not bit-identically to one process:

- BatchNorm normalises with each rank's own batch statistics (B samples, not N B), as DDP does by default, and its
  running statistics are rank 0's (copied at every epoch end; DDP broadcasts rank 0's buffers at every forward).
  ``ANOGEN_SYNC_BN=1`` converts every BatchNorm of ``nets_`` to ``torch.nn.SyncBatchNorm`` (statistics over the
  global batch); torch implements it for GPUs only, so on CPU / gloo it is refused with an error.
- Random draws differ per rank (see above); batch-wide statistics inside a loss (LAMP's max over the batch, a
  minibatch-discrimination term) are per rank.

Assumptions: every rank runs the same control flow (the same optimizers step in the same order, the same loss keys
each step), which holds for every registered detector: their branches depend on the epoch and fields, not on the
data. Closed-form detectors (GMM, Isolation Forest) fit the whole training set on every rank; only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

Detector = Any
"""A :class:`anogen.detector.Detector` (named, not imported: this module sits below the base class's layer)."""

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
SYNC_BN_VAR = "ANOGEN_SYNC_BN"


# ---------------------------------------------------------------------------------------------------- process group
def rank_world() -> tuple[int, int]:
    """(rank, world size) of the default process group, or (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True on rank 0 (and in a plain single process): the one process that writes files."""
    return rank_world()[0] == 0


def launched_by_torchrun(env: dict[str, str] | None = None) -> bool:
    """Whether torchrun (or another launcher with its variables) started this process."""
    env = dict(os.environ) if env is None else env
    return all(k in env for k in TORCHRUN_VARS)


def init_from_env(device: str = "auto", timeout_s: float = 1800.0) -> bool:
    """Initialise the default process group from torchrun's environment (``env://``).

    The backend is NCCL when ``device`` resolves to CUDA (each rank then uses GPU ``LOCAL_RANK``) and gloo otherwise.
    Returns True when this call created the group (the caller then ends it with :func:`shutdown`); False outside
    torchrun or when a group already exists (e.g. made by the user's own script).
    """
    if not launched_by_torchrun() or not dist.is_available() or dist.is_initialized():
        return False
    from anogen._util import resolve_device

    dev = resolve_device(device)
    world = int(os.environ["WORLD_SIZE"])
    if dev.type == "cuda":
        if dev.index is not None and world > 1:
            raise ValueError(f"device {device!r} names one GPU for all {world} ranks; under torchrun use "
                             "--device auto or cuda (each rank takes GPU LOCAL_RANK)")
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    backend = "nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return True


def shutdown(barrier: bool = True) -> None:
    """End the default process group; with ``barrier`` (a normal end) after every rank got there. After an error
    pass ``barrier=False``: the other ranks may be gone, and a barrier would wait for them until the timeout."""
    if dist.is_available() and dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    """Where tensors travel: NCCL needs them on this rank's GPU, gloo takes CPU tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ---------------------------------------------------------------------------------------------------- collectives
def _broadcast_(tensors: list[Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` in place with rank ``src``'s values: one broadcast per dtype (flattened)."""
    groups: dict[torch.dtype, list[Tensor]] = {}
    for t in tensors:
        groups.setdefault(t.dtype, []).append(t)
    dev = _comm_device()
    for dtype, ts in groups.items():
        wire = torch.uint8 if dtype == torch.bool else dtype  # gloo has no bool collectives
        flat = torch.cat([t.detach().reshape(-1).to(dev, wire) for t in ts])
        dist.broadcast(flat, src=src)
        off = 0
        for t in ts:
            n = t.numel()
            with torch.no_grad():
                t.copy_(flat[off : off + n].view(t.shape).to(t.device, dtype))
            off += n


def average_gradients(params: list[nn.Parameter]) -> None:
    """Replace each parameter's gradient by its mean over the ranks (a missing gradient counts as zero).

    A parameter without a gradient on every rank keeps ``grad = None`` (an optimizer then skips it, as it would in
    one process); one with a gradient on some ranks only gets the mean with zeros from the others (as DDP's
    ``find_unused_parameters`` does).
    """
    world = rank_world()[1]
    if world == 1 or not params:
        return
    if any(p.grad is not None and p.grad.is_sparse for p in params):
        raise RuntimeError("anogen.distributed averages dense gradients only; a parameter has a sparse gradient")
    dev = _comm_device()
    present = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=dev)  # (P,)
    dist.all_reduce(present)
    keep = [p for p, k in zip(params, present.tolist()) if k > 0]
    groups: dict[torch.dtype, list[nn.Parameter]] = {}
    for p in keep:
        groups.setdefault(p.dtype, []).append(p)
    for ps in groups.values():
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(dev) for p in ps])
        dist.all_reduce(flat)
        flat.div_(world)
        off = 0
        for p in ps:
            g = flat[off : off + p.numel()].view(p.shape).to(p.device)
            off += p.numel()
            if p.grad is None:
                p.grad = g.clone()
            else:
                p.grad.copy_(g)


@contextlib.contextmanager
def averaged_gradients(det: Detector) -> Iterator[None]:
    """While open (the training loop), every optimizer step first averages across ranks the gradients of its
    parameters that belong to ``det.nets_``; a no-op in one process.

    A global step pre-hook catches every optimizer of the method, wherever it is stored or created (a staged method
    may make one at a later stage). Parameters outside ``nets_`` (e.g. a per-sample latent searched by its own
    optimizer while scoring) are left alone.
    """
    if rank_world()[1] == 1:
        yield
        return
    owned = {id(p) for p in det.nets_.parameters()}

    def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        params = [p for g in opt.param_groups for p in g["params"] if id(p) in owned]
        average_gradients(params)

    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def mean_losses(losses: dict[str, Any]) -> dict[str, float]:
    """The logged losses averaged over the ranks (every rank must log the same keys); unchanged in one process."""
    world = rank_world()[1]
    if world == 1:
        return losses
    keys = sorted(losses)
    t = torch.tensor([float(losses[k]) for k in keys], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    mean = dict(zip(keys, (t / world).tolist()))
    return {k: mean[k] for k in losses}


# ---------------------------------------------------------------------------------------------------- fit hooks
def rank_seed(seed: int, rank: int, epoch: int = 0) -> int:
    """The seed of rank ``rank``'s RNG stream: rank 0 keeps ``seed``; the others a hash of (seed, rank), and of the
    epoch a resumed fit starts from."""
    if rank == 0:
        return seed
    entropy = [seed % 2**63, rank] + ([epoch] if epoch else [])
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 1)


def global_batch(batch_size: int, n: int) -> tuple[int, slice]:
    """(global batch size, this rank's slice of a global batch) for ``n`` training samples.

    One process: (min(batch_size, n), the whole batch). N ranks: each takes min(batch_size, n // N) samples of a
    global batch N times as large, rank r the r-th slice.
    """
    rank, world = rank_world()
    per_rank = min(batch_size, n // world)
    if per_rank < 1:
        raise ValueError(f"{n} training samples cannot give each of {world} ranks a batch; use fewer processes")
    return per_rank * world, slice(rank * per_rank, (rank + 1) * per_rank)


def prepare(det: Detector) -> None:
    """After ``build`` / ``setup_data``: rank 0's ``nets_`` on every rank, SyncBatchNorm if asked, per-rank RNGs."""
    rank, world = rank_world()
    if world == 1:
        return
    if os.environ.get(SYNC_BN_VAR, "0") not in ("", "0"):
        _convert_sync_batchnorm(det)
    _broadcast_(list(det.nets_.state_dict().values()))
    reseed(det)


def reseed(det: Detector, epoch: int = 0) -> None:
    """Ranks > 0 reseed the global RNGs from (seed, rank[, epoch]); rank 0 keeps its stream. Called by
    :func:`prepare`, and after a resumed fit restored rank 0's RNG state from the checkpoint on every rank."""
    rank, world = rank_world()
    if world == 1 or rank == 0:
        return
    from anogen._util import seed_everything

    seed_everything(rank_seed(det.seed, rank, epoch))


def sync_state(det: Detector) -> None:
    """Rank 0's ``nets_`` state and ``extra_state()`` on every rank (end of each epoch; a no-op in one process)."""
    if rank_world()[1] == 1:
        return
    _broadcast_(list(det.nets_.state_dict().values()))
    extra = {k: v.detach().clone() for k, v in sorted(det.extra_state().items())}
    if extra:
        _broadcast_(list(extra.values()))
        det.load_extra_state(extra)


def _convert_sync_batchnorm(det: Detector) -> None:
    """Every BatchNorm of ``nets_`` -> SyncBatchNorm (same parameters and buffers, so optimizers and saved keys are
    unchanged). torch implements its synchronisation for GPUs only."""
    if det._device().type != "cuda":
        raise ValueError(f"{SYNC_BN_VAR}=1: torch's SyncBatchNorm works on GPUs only; this run is on "
                         f"{det._device()} (unset it to keep per-rank BatchNorm statistics)")
    for name, module in list(det.nets_.items()):
        det.nets_[name] = nn.SyncBatchNorm.convert_sync_batchnorm(module)
