"""PatchCore: a coreset-subsampled memory bank of locally aware patch features; nearest-neighbour distances.

Paper: Roth, Pemula, Zepeda, Schoelkopf, Brox, Gehler, "Towards Total Recall in Industrial Anomaly Detection",
CVPR 2022 (arXiv 2106.08265); "PatchCore-10" in the ALGAN paper's Table 3 (``papers/000_346db876b8fe0885.txt``: MTD
AUROC 0.979, the strongest entry; PatchCore-25 in Table 2, PatchCore-1 in Table 4). It is not generative: anogen has
it as the reference a user would otherwise pick. Reference code: the paper (sections 3.1-3.3, eqs. 1-7) and the
public re-implementations (amazon-science/patchcore-inspection, anomalib), read, not copied.

Patch features (3.1, eqs. 1-2): for each chosen mid-level layer (the paper: WideResNet-50 blocks 2 and 3, strides 8
and 16) every position's feature is averaged over its 3 x 3 neighbourhood (``patch_size`` p = 3, "locally aware"),
the deeper map is upsampled (bilinear) to the first one's resolution, and the layers are concatenated; ``dim`` > 0
reduces the channels by adaptive average pooling over them. Every position of every training image is one patch
feature: the memory bank M.
Coreset (3.2, Algorithm 1): greedy k-center selection of ``coreset_ratio`` x |M| features, distances measured after a
random linear projection to ``projection_dim`` dimensions (Johnson-Lindenstrauss): start from one random feature,
repeatedly add the feature furthest from the selected set.
Score (3.3, eqs. 6-7): each test patch's distance to its nearest bank feature; the pixel map is the patch distances
upsampled (bilinear) to the side the backbone saw and smoothed by a Gaussian (sigma = 4); the image score is the
largest patch distance s* = ||m^test,* - m*||, optionally reweighted (``reweight``, eq. 7):
    s = (1 - exp(||m^test,* - m*||) / sum_{m in N_b(m*)} exp(||m^test,* - m||)) s*,
N_b(m*) the ``reweight_neighbors`` = b nearest bank features of m* (m* itself included).

Deviations / choices:
- Backbone: the offline MobileNetV2 (default; ``s8`` + ``s16``: 32 + 96 channels) or EfficientNet-Lite0, or
  WideResNet-101 where its weights are cached (the paper: WideResNet-50, layers 2 + 3, 1024-d after pooling).
- Neighbourhood aggregation is a 3 x 3 average pool over positions (borders: the mean of the positions inside).
- Coreset: starts from one seeded random feature (the reference code starts from ten); the projection is a seeded
  Gaussian matrix. ``coreset_ratio = 1`` keeps the whole bank. ``max_bank`` caps the bank before the coreset by a
  seeded random subset of patches (0 = no cap), to bound CPU time; the selected coreset is what is saved.
- No approximate search (the paper uses faiss): exact nearest neighbours with ``torch.cdist`` in chunks.
- ``backbone="none"`` takes the preprocessed image as the feature map (C values per pixel): used by the tests.
- With a centre crop (``crop``) the pixel map covers the crop; the border outside it gets each map's minimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anogen._registry import register
from anogen.data.transforms import InputError
from anogen.detector import Detector
from anogen.features import BackboneFeatures, concat_maps, image_map
from anogen.params import flag, integer, non_negative, real


def greedy_coreset(x: Tensor, k: int, projection_dim: int, seed: int) -> Tensor:
    """Indices (k,) of a greedy k-center coreset of the rows of ``x`` (N, D) (PatchCore Algorithm 1).

    Distances are measured after a seeded Gaussian projection to ``projection_dim`` dims (none when
    ``projection_dim`` <= 0 or >= D). Starts from one seeded random row; each step adds the row furthest from the
    selected set."""
    n = len(x)
    if k >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    z = x.float()
    if 0 < projection_dim < x.shape[1]:
        z = z @ torch.randn(x.shape[1], projection_dim, generator=g).to(z.device)  # (N, projection_dim)
    first = int(torch.randint(n, (1,), generator=g))
    chosen = torch.empty(k, dtype=torch.int64)
    chosen[0] = first
    dist = (z - z[first]).pow(2).sum(1)  # (N,) squared distance to the selected set
    for i in range(1, k):
        nxt = int(dist.argmax())
        chosen[i] = nxt
        dist = torch.minimum(dist, (z - z[nxt]).pow(2).sum(1))
    return chosen


def nearest(q: Tensor, bank: Tensor, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """For each row of ``q`` (M, D): the Euclidean distance to its nearest row of ``bank`` (K, D) and its index."""
    if torch.compiler.is_exporting():  # one block in an exported graph (its batch size is symbolic)
        return torch.cdist(q, bank).min(1)
    ds, idx = [], []
    for i in range(0, len(q), chunk):
        d = torch.cdist(q[i : i + chunk], bank)  # (m, K)
        v, j = d.min(1)
        ds.append(v)
        idx.append(j)
    return torch.cat(ds), torch.cat(idx)


@register("patchcore")
@dataclass(kw_only=True)
class PatchCore(BackboneFeatures, Detector):
    """Coreset memory bank of locally aware mid-level patch features; nearest-neighbour distance; pixel maps."""

    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "patch_neighborhood": integer(1), "dim": integer(0), "coreset_ratio": real(0.0, 1.0, lo_open=True),
        "projection_dim": integer(1), "max_bank": integer(0), "reweight": flag(), "reweight_neighbors": integer(1),
        "blur_sigma": non_negative(),
    }

    layers: tuple[str, ...] = ("s8", "s16")
    """backbone layers (the paper: WideResNet-50 blocks 2 and 3, strides 8 and 16)"""
    patch_neighborhood: int = 3
    """side p of the neighbourhood each position's feature is averaged over (the paper: 3)"""
    dim: int = 0
    """channels after adaptive average pooling over the concatenated features (0: keep all; the paper: 1024)"""
    coreset_ratio: float = 0.1
    """share of the memory bank kept by the greedy coreset (PatchCore-10 = 0.1, ALGAN Table 3)"""
    projection_dim: int = 128
    """dimension of the random projection the coreset distances are measured in (the paper: 128)"""
    max_bank: int = 0
    """cap on training patches before the coreset, a seeded random subset (0: all)"""
    reweight: bool = False
    """reweight the image score by eq. (7) (the paper's image-level score)"""
    reweight_neighbors: int = 9
    """b: bank neighbours of m* in eq. (7) (the paper: 9)"""
    blur_sigma: float = 4.0
    """std in pixels of the Gaussian smoothing of the upsampled map (the paper: 4; 0 = none)"""

    iterative: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self._check_backbone_fields()
        if self.patch_neighborhood < 1 or self.patch_neighborhood % 2 == 0:
            raise ValueError(f"patchcore: patch_neighborhood must be an odd size >= 1, got {self.patch_neighborhood}")
        if not 0 < self.coreset_ratio <= 1:
            raise ValueError(f"patchcore: coreset_ratio must be in (0, 1], got {self.coreset_ratio}")
        if self.dim < 0 or self.max_bank < 0 or self.reweight_neighbors < 1 or self.blur_sigma < 0:
            raise ValueError(f"patchcore: need dim >= 0, max_bank >= 0, reweight_neighbors >= 1, blur_sigma >= 0; got "
                             f"{self.dim}, {self.max_bank}, {self.reweight_neighbors}, {self.blur_sigma}")

    # ---------------------------------------------------------------------------------------------- embedding
    def embed(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) images -> (B, D, h, w) locally aware patch features at the first layer's resolution."""
        maps = [x] if self.backbone == "none" else self.feature_maps(x)
        p = self.patch_neighborhood
        if p > 1:  # eq. (2): aggregate each position's p x p neighbourhood
            maps = [F.avg_pool2d(m, p, stride=1, padding=p // 2, count_include_pad=False) for m in maps]
        f = concat_maps(maps, mode="bilinear")  # (B, C, h, w)
        if 0 < self.dim < f.shape[1]:
            b, c, h, w = f.shape
            f = F.adaptive_avg_pool1d(f.permute(0, 2, 3, 1).reshape(-1, 1, c), self.dim)  # (B h w, 1, dim)
            f = f.reshape(b, h, w, self.dim).permute(0, 3, 1, 2)
        return f.contiguous()

    # ---------------------------------------------------------------------------------------------- fit / score
    def build(self, input_shape: tuple[int, ...]) -> None:
        if len(input_shape) != 3:
            raise InputError(f"patchcore models feature maps (N, D, h, w); got inputs of shape {input_shape}")
        self.nets_ = nn.ModuleDict()  # everything learned lives in extra_state()

    def fit_once(self, x: Tensor) -> None:
        bank = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).float()  # (N h w, D): every training patch
        g = torch.Generator().manual_seed(self.seed + 1)
        if 0 < self.max_bank < len(bank):
            bank = bank[torch.randperm(len(bank), generator=g)[: self.max_bank].sort().values.to(bank.device)]
        k = max(1, math.ceil(self.coreset_ratio * len(bank)))
        idx = greedy_coreset(bank, k, self.projection_dim, self.seed)
        self.load_extra_state({"memory_bank": bank[idx.to(bank.device)].cpu()})

    def patch_scores(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D, h, w) -> (B, h, w) nearest-bank distances and (B, h, w) the nearest bank indices."""
        d, h, w = x.shape[1:]  # (no batch size in the graph: ONNX export keeps it dynamic)
        dist, idx = nearest(x.permute(0, 2, 3, 1).reshape(-1, d).float(), self.memory_bank_.to(x.device))
        return dist.reshape(-1, h, w), idx.reshape(-1, h, w)

    def map_batch(self, x: Tensor) -> Tensor:
        side = self.crop or self.image_size
        return image_map(self.patch_scores(x)[0], side, self.image_size, self.blur_sigma)  # (B, S, S)

    def score_batch(self, x: Tensor) -> Tensor:
        dist, idx = self.patch_scores(x)
        s_star, where = dist.flatten(1).max(1)  # eq. (6): s* and the position of m^test,*
        if not self.reweight:
            return s_star
        bank = self.memory_bank_.to(x.device)
        feats = x.flatten(2).float()  # (B, D, h w)
        m_test = feats.gather(2, where.view(-1, 1, 1).expand(-1, feats.shape[1], 1))[..., 0]  # (B, D) m^test,*
        m_star = bank[idx.flatten(1).gather(1, where[:, None])[:, 0]]  # (B, D) its nearest bank feature m*
        nb = min(self.reweight_neighbors, len(bank))
        support = torch.cdist(m_star, bank).topk(nb, largest=False).indices  # (B, b) N_b(m*), m* included
        d_sup = (m_test[:, None] - bank[support]).norm(dim=-1)  # (B, b) ||m^test,* - m||
        weight = 1 - torch.exp(s_star - torch.logsumexp(d_sup, dim=1))  # eq. (7), overflow-safe
        return weight * s_star

    def extra_state(self) -> dict[str, Tensor]:
        return {"memory_bank": self.memory_bank_}

    def load_extra_state(self, state: dict[str, Tensor]) -> None:
        if set(state) != {"memory_bank"} or state["memory_bank"].ndim != 2:
            raise ValueError(f"a patchcore model needs memory_bank (K, D), got {sorted(state)}")
        self.memory_bank_ = state["memory_bank"].float().cpu().clone()  # (K, D)


PRESETS: dict[str, dict] = {
    "cpu": dict(coreset_ratio=0.1, max_bank=40000),
    "industrial": dict(coreset_ratio=0.1, max_bank=40000),
}
"""Explicit overrides: the greedy coreset over at most 40 000 random training patches (about 1 minute on one
CPU thread at 4 000 selected), so PatchCore-10 fits on a CPU."""
