"""Convolutional autoencoder with the L2 reconstruction score: the plain baseline of the LAMP and VAE papers.

Paper: the AE baseline of ``papers/004_41020bdc449fbf6e.txt`` (section V) and the AE that LAMP trains
(``papers/001_062f5a639b3079e6.txt``, section 3.1: "the anomaly score is the L2 reconstruction error").
Reference code: none (a DCGAN-shaped encoder / decoder from ``nets.py``).

Deviations / choices:
- Encoder and decoder are the shared DCGAN stacks (4x4 stride-2 convs, BatchNorm, LeakyReLU / ReLU, tanh output to
  match the [-1, 1] normalisation); the LAMP paper's upsample-conv AE and its amplified loss come with the
  reconstruction-detectors issue.
- Trained with the mean squared error and Adam (lr 1e-3, betas 0.9 / 0.999); scored by the per-image mean squared
  error in eval mode (BatchNorm running statistics, never batch statistics at test time).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from anogen._registry import register
from anogen.detector import Detector
from anogen.nets import ConvDecoder, ConvEncoder, dcgan_init


@register("ae")
@dataclass(kw_only=True)
class AE(Detector):
    """Convolutional autoencoder; score = per-image mean squared reconstruction error."""

    latent_dim: int = 100
    """size of the bottleneck"""
    width: int = 64
    """channels of the first conv layer (doubling per stage)"""
    max_width: int = 512
    """cap on the channel count of any layer"""
    lr: float = 1e-3
    """Adam learning rate"""

    def build(self, input_shape: tuple[int, ...]) -> None:
        c, s, _ = input_shape
        self.nets_ = nn.ModuleDict({
            "enc": ConvEncoder(s, c, self.latent_dim, width=self.width, max_width=self.max_width, norm="batch"),
            "dec": ConvDecoder(self.latent_dim, s, c, width=self.width, max_width=self.max_width, out_act="tanh"),
        })
        dcgan_init(self.nets_)
        self.opt_ = torch.optim.Adam(self.nets_.parameters(), lr=self.lr)

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.nets_["dec"](self.nets_["enc"](x))  # (B, C, H, W)

    def train_step(self, x: Tensor) -> dict[str, float]:
        loss = (self.reconstruct(x) - x).pow(2).mean()
        self.opt_.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_.step()
        return {"l2": loss.item()}

    def score_batch(self, x: Tensor) -> Tensor:
        return (self.reconstruct(x) - x).pow(2).flatten(1).mean(1)  # (B,)

    def anomaly_map(self, x: Tensor) -> Tensor:
        return (self.reconstruct(x) - x).pow(2).mean(1)  # (B, H, W)
