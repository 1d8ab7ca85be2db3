"""AnoGAN: a DCGAN trained on normal images; each test image is scored by searching G's latent space for it.

Paper: T. Schlegl et al., "Unsupervised Anomaly Detection with Generative Adversarial Networks to Guide Marker
Discovery", IPMI 2017, as described and implemented in the thesis ``papers/003_5d7919a1dbf94176.txt``: section 2.3.1
(eqs. 2.32-2.33, the loss L(z) = (1 - lambda) L_R + lambda L_D and the score A(x) = (1 - lambda) R(x) + lambda D(x)),
Appendix A.1 (Table A1: architecture and hyperparameters).
Reference code: no official code (``research/reference-implementations.md`` section 7). Taken from the reference
ports: Adam for the latent search with lr 1e-3 and 500 steps (ALAD / EGBAD repos), lambda = 0.1 on the feature term
(paper; the ALAD repo swaps the weights, we do not), L1 sums, G and D in eval mode during the search (the PyTorch book
port keeps G in train mode; we do not).

Training is a plain DCGAN: D (one logit) separates real normal images from G(z), z ~ N(0, I), with binary
cross-entropy; G minimises the non-saturating loss. At scoring, G and D are frozen and a latent z is optimised for each
image by gradient descent on

    L(z) = (1 - lambda) ||x - G(z)||_1 + lambda ||f(x) - f(G(z))||_1          (2.32, 2.33; lambda = 0.1)

with f = D's last intermediate feature map (feature matching, the variant of 2.3.1 that uses D "as a feature
extractor"). The anomaly score is L at the final z.

Deviations / choices (the thesis is silent or the reference codes disagree):

- Architecture (Table A1, 32 x 32 x 1 patches): D = ``nets.ConvEncoder`` with BatchNorm on every conv (the first
  too, ``first_norm``: Table A1 ticks BN there, unlike DCGAN) and LeakyReLU(0.2): 4x4 stride-2 convs 64, 128, 256
  (Table A1 at 32 px) and one logit from a 4x4 valid conv (= Table A1's dense
  layer on the 4x4x256 map; the sigmoid is inside the BCE-with-logits loss). G = ``nets.ConvDecoder``: a 4x4
  transposed conv from z (Table A1: dense to 4x4x512), then 4x4 stride-2 transposed convs with BatchNorm, tanh
  output. Table A1's G is wider (512-512-256-128, then a 5x5 stride-1 conv to 1 channel) and uses LeakyReLU; the
  shared decoder uses ReLU, the D widths in reverse and no extra stride-1 layer. ``width`` / ``max_width`` set both.
- BatchNorm momentum 0.8 (Table A1, TensorFlow's convention: running = 0.8 running + 0.2 batch) is PyTorch momentum
  0.2, set on every BatchNorm of G and D. DCGAN initialisation (N(0, 0.02)).
- Optimisers per Table A1: Adam betas (0.5, 0.999), lr 5e-5 for G and 1e-6 for D, 50 epochs, batch 64, latent 256.
  (D's lr 1e-6 is the table's value; it learns slowly -- the CPU preset raises it.)
- GAN losses: D minimises BCE(D(x), 1) + BCE(D(G(z)), 0) (the sum of the two means, through the IN / SL / LF tricks
  mixin); G minimises the non-saturating BCE(D(G(z)), 1) instead of the minimax log(1 - D(G(z))) of eq. (2.3), as
  every reference port does. One D step then one G step per batch, on the same fakes.
- Latent search: all latents of a scoring batch are optimised together, with the loss summed over the batch so each
  z gets exactly its own gradient (Adam is element-wise, so the searches do not interact). Every search starts from
  the same z0 ~ N(0, I), drawn once from a generator seeded with ``seed`` (the thesis: "z is sampled randomly as
  initialization"); a shared start makes an image's score independent of its batch and of its position in it, and
  reproducible after save / load. z is unconstrained (no clipping). ``search_steps`` (Gamma, 500) updates with
  ``search_optimizer`` (adam or sgd) at ``search_lr`` (1e-3), then the score is L at the final z (one more forward
  pass: the loss "at the last update iteration"). Only z is updated: gradients are taken with respect to z alone
  (``torch.autograd.grad``), so G's and D's parameters never receive gradients.
- lambda weights the feature term, (1 - lambda) the image term, both L1 norms summed over pixels / features of one
  image (``losses.residual_score``); the ALAD repository's swapped weights are not reproduced.
- ``map_batch`` is the absolute residual |x - G(z)| averaged over channels (the original paper's pixel-level map).
- Images must be normalised to [-1, 1] (``normalize="tanh"``), G's output range.
- The IN / SL / LF tricks (thesis 4.2.1, Table 51) are fields, off by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from anogen._registry import register
from anogen.detector import Detector
from anogen.losses import GANTricks, adversarial_loss, residual_score
from anogen.nets import ConvDecoder, ConvEncoder, check_image_size, dcgan_init
from anogen.params import integer, one_of, positive, power_of_two, real, tuple_of, unit_interval

SEARCH_OPTIMIZERS = ("adam", "sgd")


@register("anogan")
@dataclass(kw_only=True)
class AnoGAN(GANTricks, Detector):
    """AnoGAN: DCGAN on normal images; score = (1 - lambda) L1 image residual + lambda L1 feature residual after a
    latent search (thesis 2.3.1). Defaults are the thesis' (Table A1, section 2.3.1)."""
    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "image_size": power_of_two(8, 1024), "latent_dim": integer(1), "width": integer(1), "max_width": integer(1),
        "lr_g": positive(), "lr_d": positive(), "betas": tuple_of(2, real(0.0, 1.0, hi_open=True)),
        "bn_momentum": unit_interval(), "lam": unit_interval(), "search_steps": integer(1), "search_lr": positive(),
        "search_optimizer": one_of(SEARCH_OPTIMIZERS),
    }

    epochs: int = 50
    """training epochs (Table A1)"""
    batch_size: int = 64
    """training mini-batch size (Table A1)"""
    image_size: int = 32
    """image side (Table A1: 32 x 32 patches); a power of two"""
    channels: int = 1
    """channel count (Table A1: gray-scale patches)"""
    latent_dim: int = 256
    """size of G's latent z (Table A1)"""
    width: int = 64
    """channels of D's first conv layer, doubling per stage; G uses the same widths in reverse (Table A1: 64)"""
    max_width: int = 512
    """cap on any layer's channel count"""
    lr_g: float = 5e-5
    """Adam learning rate of G (Table A1)"""
    lr_d: float = 1e-6
    """Adam learning rate of D (Table A1)"""
    betas: tuple[float, float] = (0.5, 0.999)
    """Adam betas of G and D (Table A1)"""
    bn_momentum: float = 0.2
    """PyTorch BatchNorm momentum (Table A1's TensorFlow momentum 0.8 = PyTorch 0.2)"""
    lam: float = 0.1
    """lambda: weight of the feature (discrimination) loss L_D; (1 - lambda) weights the residual loss L_R"""
    search_steps: int = 500
    """Gamma: gradient steps of the latent search per image"""
    search_lr: float = 1e-3
    """learning rate of the latent search"""
    search_optimizer: str = "adam"
    """optimizer of the latent search: adam or sgd"""

    grad_at_scoring: ClassVar[bool] = True  # the latent search runs autograd: scored under no_grad, not inference_mode

    def __post_init__(self) -> None:
        check_image_size(self.image_size)
        if self.normalize != "tanh":
            raise ValueError(f"anogan's generator ends in tanh, so images must be normalised to [-1, 1] "
                             f"(normalize='tanh'); got normalize={self.normalize!r}")
        if self.width < 1 or self.max_width < self.width or self.latent_dim < 1:
            raise ValueError(f"need 1 <= width <= max_width and latent_dim >= 1; got width={self.width}, "
                             f"max_width={self.max_width}, latent_dim={self.latent_dim}")
        if not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"lam is a weight in [0, 1]; got {self.lam}")
        if self.search_steps < 1 or self.search_lr <= 0:
            raise ValueError(f"need search_steps >= 1 and search_lr > 0; got {self.search_steps}, {self.search_lr}")
        if self.search_optimizer not in SEARCH_OPTIMIZERS:
            raise ValueError(f"search_optimizer must be one of {', '.join(SEARCH_OPTIMIZERS)}; "
                             f"got {self.search_optimizer!r}")
        if not 0.0 < self.bn_momentum <= 1.0:
            raise ValueError(f"bn_momentum must be in (0, 1]; got {self.bn_momentum}")
        self._check_tricks()

    # ------------------------------------------------------------------ build
    def build(self, input_shape: tuple[int, ...]) -> None:
        c, s, _ = input_shape
        self.nets_ = nn.ModuleDict({
            "G": ConvDecoder(self.latent_dim, s, c, width=self.width, max_width=self.max_width, norm="batch",
                             out_act="tanh"),  # (B, L) -> (B, C, S, S)
            "D": ConvEncoder(s, c, 1, width=self.width, max_width=self.max_width, norm="batch",
                             first_norm=True),  # -> (B, 1); Table A1: BatchNorm on every conv, the first too
        })
        dcgan_init(self.nets_)
        for m in self.nets_.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = self.bn_momentum  # Table A1
        self.opt_g_ = torch.optim.Adam(self.nets_["G"].parameters(), lr=self.lr_g, betas=self.betas)
        self.opt_d_ = torch.optim.Adam(self.nets_["D"].parameters(), lr=self.lr_d, betas=self.betas)

    # ------------------------------------------------------------------ training: a DCGAN
    def train_step(self, x: Tensor) -> dict[str, float]:
        G, D = self.nets_["G"], self.nets_["D"]
        z = torch.randn(len(x), self.latent_dim, device=x.device)  # (B, L) ~ N(0, I)
        fake = G(z)  # (B, C, S, S)
        loss_d = (self.d_loss(D(self.d_input(x)), real=True, kind="bce")  # real -> 1
                  + self.d_loss(D(self.d_input(fake.detach())), real=False, kind="bce"))  # fake -> 0
        self.opt_d_.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d_.step()
        loss_g = adversarial_loss(D(fake), 1.0, "bce")  # non-saturating: -log D(G(z))
        self.opt_g_.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g_.step()  # (D's gradients from this pass are cleared before its next step)
        return {"d": loss_d.item(), "g": loss_g.item()}

    # ------------------------------------------------------------------ scoring: the latent search
    def initial_latent(self, n: int, device: torch.device) -> Tensor:
        """(n, L) copies of the search's start z0 ~ N(0, I), drawn from a generator seeded with ``seed``."""
        gen = torch.Generator().manual_seed(self.seed)
        z0 = torch.randn(self.latent_dim, generator=gen)  # (L,)
        return z0.to(device).expand(n, -1).clone()  # (n, L)

    def search_loss(self, x: Tensor, f_x: Tensor, z: Tensor) -> Tensor:
        """(B,) L(z) = (1 - lambda) ||x - G(z)||_1 + lambda ||f(x) - f(G(z))||_1 (eqs. 2.32, 2.33)."""
        x_gen = self.nets_["G"](z)  # (B, C, S, S)
        return residual_score(x, x_gen, f_x, self.nets_["D"].features(x_gen), lam=self.lam, p=1)

    def search_latents(self, x: Tensor, steps: int | None = None) -> tuple[Tensor, Tensor]:
        """Latent search for a preprocessed batch, with G and D frozen and in eval mode.

        Args:
            x: (B, C, S, S) preprocessed images.
            steps: number of updates (default ``search_steps``; 0 gives the loss at z0).

        Returns:
            z (B, L) after the updates and the loss L(z) (B,) at that z.
        """
        steps = self.search_steps if steps is None else steps
        was_training = self.nets_.training
        self.nets_.eval()  # BatchNorm running statistics: an image's search does not depend on its batch
        try:
            with torch.no_grad():
                f_x = self.nets_["D"].features(x)  # (B, W, 4, 4), fixed during the search
            z = self.initial_latent(len(x), x.device).requires_grad_(True)  # (B, L)
            if self.search_optimizer == "adam":
                opt: torch.optim.Optimizer = torch.optim.Adam([z], lr=self.search_lr)
            else:
                opt = torch.optim.SGD([z], lr=self.search_lr)
            with torch.enable_grad():  # the base scores under no_grad
                for _ in range(steps):
                    loss = self.search_loss(x, f_x, z).sum()  # summed: each z_i gets its own gradient
                    (z.grad,) = torch.autograd.grad(loss, z)  # w.r.t. z only: G and D get no gradients
                    opt.step()
            z = z.detach()
            with torch.no_grad():
                return z, self.search_loss(x, f_x, z)
        finally:
            self.nets_.train(was_training)

    def score_batch(self, x: Tensor) -> Tensor:
        return self.search_latents(x)[1]  # (B,) A(x) = (1 - lambda) R(x) + lambda D(x) at the last iteration

    def map_batch(self, x: Tensor) -> Tensor:
        z, _ = self.search_latents(x)
        return (x - self.nets_["G"](z)).abs().mean(1)  # (B, S, S) residual image


PRESETS: dict[str, dict] = {
    "cpu": dict(image_size=16, width=16, max_width=64, latent_dim=32, epochs=30, batch_size=16, lr_g=2e-4,
                lr_d=2e-4, search_steps=100, search_lr=5e-2),
}
"""Explicit overrides for small runs: ``anogen.create("anogan", **PRESETS["cpu"])`` (one-class digits in seconds)."""
