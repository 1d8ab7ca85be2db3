"""Synthetic anomalies made from normal images: model selection, calibration and a health check without labels.

A production line usually has good parts only. To choose a training state and to check a fitted model without a
single labelled defect, :class:`anogen.Detector` holds out a share of the normal training images and gives each a
copy per defect kind (:func:`defective_copies`); the AUROC of the held-out normals against their defective copies
stands in for the AUROC on real defects (``selection="synthetic"``) and is reported as the model's health.

Every defect is a square region of side ``k`` drawn uniformly in ``[size_range[0] * S, size_range[1] * S]`` pixels
(S = the image side, at least 2 px; default 0.2-0.4 S) at a uniform position, changed in one of five ways, the kinds taken in turn
(image i gets ``kinds[i % len(kinds)]``) so every kind is equally represented:

- ``erase``: the region set to gray (0.5 in every channel): the erase protocol of the unregularized-score paper
  (Matsubara et al. IV-A, ``papers/004_41020bdc449fbf6e.txt``: "randomly erasing their 4 x 4 subregions" of 32 x 32
  images, i.e. a side of 1/8 of the image; its Fig. 7 shows the erased regions as "gray squares"). Choice: our
  squares are larger (0.2-0.4 of the side) because they serve model selection and a health check at the small CPU
  sizes (16-32 px), where a 1/8-side square covers about one pixel of an 8 x 8 digit and hardly moves the score of
  a model that separates real anomalies perfectly (measured: ALGAN / AE / VAE on one-class digits, test AUROC
  >= 0.999, synthetic AUROC 0.50-0.82 per kind at 1/8-1/4 of the side; see docs/selection.md).
- ``paste``: the region replaced by the same-sized region of another image of the batch, taken at another random
  position (CutPaste-like, Li et al. 2021, here across images: a plausible texture in the wrong place).
- ``noise``: Gaussian noise of standard deviation ``noise_std`` added inside the region.
- ``blur``: the region replaced by its box-blurred version (kernel of side ``k // 2 * 2 + 1``, reflection padding).
- ``blotch``: a smooth intensity blotch: ``delta * g`` added, ``g`` a Gaussian bump centred in the region with
  standard deviation k / 4, ``delta = U(0.3, 0.6)``, added where the region is darker than mid-gray (mean < 0.5),
  subtracted where it is lighter, so clipping at 0 or 1 never hides it.

Images are unit images (N, C, H, W) in [0, 1] (before normalisation, as a camera would show a defect); results are
clamped to [0, 1]. Everything random comes from one ``torch.Generator`` seeded with ``seed``: the same images and
seed give the same anomalies, bit for bit, whatever else the process has drawn.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

KINDS = ("erase", "paste", "noise", "blur", "blotch")
GRAY = 0.5
"""fill of the erase kind (the paper's gray squares)"""


def synthetic_anomalies(
    images: Tensor,
    seed: int = 0,
    *,
    kinds: Sequence[str] = KINDS,
    size_range: tuple[float, float] = (0.2, 0.4),
    noise_std: float = 0.4,
) -> tuple[Tensor, Tensor]:
    """One defective copy of each unit image; returns ``(anomalies (N, C, H, W), masks (N, H, W) bool)``.

    Args:
        images: normal unit images (N, C, H, W) in [0, 1].
        seed: seed of every random draw (positions, sizes, donors, noise, blotch signs).
        kinds: the defect kinds, from :data:`KINDS`, dealt in turn.
        size_range: the square's side as a share of the image side (min, max).
        noise_std: standard deviation of the ``noise`` kind.
    """
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(f"synthetic anomalies need unit images as a tensor (N, C, H, W), got "
                         f"{type(images).__name__}{tuple(getattr(images, 'shape', ()))}")
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty selection of {', '.join(KINDS)}; got {list(kinds)}")
    lo_f, hi_f = size_range
    if not 0 < lo_f <= hi_f <= 1:
        raise ValueError(f"size_range must satisfy 0 < min <= max <= 1, got {size_range}")
    n, c, h, w = images.shape
    if n == 0:
        raise ValueError("no images to make synthetic anomalies from")
    x = images.detach().float().cpu()
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError("synthetic anomalies are made on unit images in [0, 1]")
    g = torch.Generator().manual_seed(int(seed))
    side = min(h, w)
    lo, hi = max(2, round(lo_f * side)), max(2, round(hi_f * side))
    lo, hi = min(lo, side), min(hi, side)
    out, masks = x.clone(), torch.zeros(n, h, w, dtype=torch.bool)
    for i in range(n):
        kind = kinds[i % len(kinds)]
        k = int(torch.randint(lo, hi + 1, (1,), generator=g))
        top, left = (int(torch.randint(0, s - k + 1, (1,), generator=g)) for s in (h, w))
        region = (slice(None), slice(top, top + k), slice(left, left + k))
        patch = out[i][region]  # (C, k, k), a view
        if kind == "erase":
            patch.fill_(GRAY)
        elif kind == "paste":
            j = int(torch.randint(0, n - 1, (1,), generator=g)) if n > 1 else 0
            j = j + (j >= i) if n > 1 else i  # another image when there is one
            t2, l2 = (int(torch.randint(0, s - k + 1, (1,), generator=g)) for s in (h, w))
            patch.copy_(x[j, :, t2 : t2 + k, l2 : l2 + k])
        elif kind == "noise":
            patch.add_(torch.randn(patch.shape, generator=g) * noise_std)
        elif kind == "blur":
            kb = k // 2 * 2 + 1
            padded = F.pad(x[i : i + 1], (kb // 2,) * 4, mode="reflect" if kb // 2 < min(h, w) else "replicate")
            blurred = F.avg_pool2d(padded, kb, stride=1)[0]  # (C, H, W)
            patch.copy_(blurred[region])
        else:  # blotch
            delta = float(torch.empty(1).uniform_(0.3, 0.6, generator=g))
            delta *= 1.0 if float(patch.mean()) < GRAY else -1.0  # lighter where dark, darker where light
            yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                    indexing="ij")
            cy, cx, sd = top + (k - 1) / 2, left + (k - 1) / 2, k / 4
            bump = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sd * sd))  # (H, W), 1 at the centre
            out[i] += delta * bump
        masks[i, top : top + k, left : left + k] = True
    return out.clamp_(0, 1), masks


def defective_copies(images: Tensor, seed: int = 0) -> Tensor:
    """One copy of each unit image per defect kind (N * len(KINDS), C, H, W), image-major: every image gets each of
    the five defects once, so the synthetic set is balanced and five times larger than the normals (a steadier
    AUROC from a small hold-out). What ``Detector.fit`` validates and checks health on."""
    return synthetic_anomalies(images.repeat_interleave(len(KINDS), dim=0), seed)[0]


def holdout_indices(n: int, share: float, seed: int) -> tuple[Tensor, Tensor]:
    """Deterministic split of ``n`` training positions into (kept, held out) sorted index tensors.

    ``round(share * n)`` positions are held out, at least 2 (so both ranks of an AUROC exist); a random permutation
    from a generator seeded with ``seed``. Raises when fewer than 2 would be left for training."""
    if not 0 < share < 1:
        raise ValueError(f"holdout must be in (0, 1), got {share}")
    m = max(2, round(share * n))
    if n - m < 2:
        raise ValueError(f"holding out {m} of {n} training images leaves fewer than 2 to train on; give more normal "
                         f"images, or pass labelled validation data (val_x, val_y), or set selection='last'")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed) + 7919))
    return perm[m:].sort().values, perm[:m].sort().values
