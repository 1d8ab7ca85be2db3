"""ALAD: a BiGAN with spectral normalisation and two conditional-entropy discriminators, scored in D_xx's features.

Paper: Zenati et al., "Adversarially Learned Anomaly Detection", ICDM 2018, as specified by the thesis
``papers/003_5d7919a1dbf94176.txt``, section 2.3.3 (spectral normalisation, eqs. 2.73-2.77; the ALICE cycle term,
eqs. 2.78-2.81; the value functions, eqs. 2.82-2.88; the scores, eqs. 2.89-2.90) and Appendix A.3 (Table A3:
architecture and hyperparameters).
Reference code: ``houssamzenati/Adversarially-Learned-Anomaly-Detection`` (TF1; read through
``research/reference-implementations.md`` section 4.1) and the thesis author's TF port
(``yigitozgumus/Polimi_Thesis``, ``models/new/alad_conv.py``). Nothing was copied.

An encoder E (x -> z) and a generator G (z -> x) are trained against three discriminators, each a binary classifier
on logits: D_xz tells encoder pairs (x, E(x)) (real) from generator pairs (G(z), z) (fake), eq. (2.83); D_xx tells
(x, x) (real) from (x, G(E(x))) (fake), eq. (2.86); D_zz tells (z, z) (real) from (z, E(G(z))) (fake), eq. (2.87).
E and G play the joint game (2.88). The anomaly score is the L1 distance between D_xx's features of (x, x) and of
(x, G(E(x))), eq. (2.89), or one of the other three of eq. (2.90) (``score`` field).

Deviations / choices (the thesis is silent or differs from the code on each):

- D losses: each D minimises BCE(real pairs, 1) + BCE(fake pairs, 0), group means, i.e. minus its value function;
  the thesis' "E[1 - log D(fake)]" in (2.83), (2.86), (2.87) is read as E[log(1 - D(fake))] (the standard GAN value,
  eq. 2.81, and the codes). BatchNorm layers in D_xz see real and fake pairs in separate forward passes, as the
  reference's.
- G / E losses: the non-saturating form, as both reference codes: G minimises BCE(D_xz(G(z), z), 1) and E minimises
  BCE(D_xz(x, E(x)), 0) (the labels D uses, swapped), and both minimise the cycle terms BCE(D_xx(x, G(E(x))), 1) +
  BCE(D_zz(z, E(G(z))), 1). The reference codes write the cycle terms with both labels of D_xx / D_zz flipped, i.e.
  they also add BCE(D_xx(x, x), 0) + BCE(D_zz(z, z), 0); those terms do not depend on E or G, so they change the
  logged value only, never a gradient, and are left out here. ``g_loss="minimax"`` gives eq. (2.88) as written
  (E and G minimise the value function: log(1 - D) on their fake pairs, log D on the encoder pair).
- One batch and one z ~ N(0, I) per step: E(x), G(z), G(E(x)), E(G(z)) are computed once; the D step uses them
  detached, then E and G take their step through the same tensors (the reference draws a second batch and a fresh z
  for the E / G step; the base loop hands one batch per step). D first, then E and G, as the reference. The three D
  losses are summed and take one step of one Adam; E and G have their own Adam each.
- Training tricks (:class:`anogen.losses.GANTricks`, off by default): in the D step every input of every D (x, E(x),
  G(z), z, G(E(x)), E(G(z))) goes through ``d_input`` once; the pairs (x, x) and (z, z) use the same noisy copy twice,
  so a real pair stays a pair of equal inputs. Every D term is ``d_loss`` (SL / LF). The E / G step sees no tricks.
- D_xx pairs its two images by concatenation along the height (``xx_concat="height"``, (B, C, 2H, W)), as both
  reference codes; ``"channel"`` stacks them as a (B, 2C, H, W) image instead, which lets D_xx's first convolution
  compare the two pixel by pixel.
- Spectral normalisation (one power iteration per training forward, as torch's and the reference's) on every conv /
  linear layer of E and of the three D's except their final output layers (E's last conv, each D's logit layer), as
  the reference; never on G. Scoring runs in eval mode, where the power iteration is frozen.
- Architecture, for any power-of-two size and channel count (the thesis: 32 x 32 grayscale patches, Table A3):
  G = ``nets.ConvDecoder`` (the reference's G: transposed convs 4 * ``width`` ... ``width`` with BatchNorm + ReLU,
  tanh output; Table A3 has LeakyReLU and an extra stride-1 output layer). E = ``nets.ConvEncoder`` with BatchNorm
  and spectral norm (no BN on its first layer, DCGAN style; Table A3 and the reference have one there too), widths
  from ``enc_width`` = 32 (Table A3: 32, 64, 128, 256, then the latent; this E reaches 4x4 and maps it to the latent
  with a 4x4 valid conv, one layer fewer).
  D_xz = the x path of ``nets.ConvEncoder`` (widths from ``width`` = 128: 128, 256, 512 at 32 px, BN but not on the
  first layer, as the reference) flattened, a z path of two linear layers of ``hidden`` / 2 = 512 units (Table A3's
  1x1 "convolutions" on a 1x1 map), then two joint layers of ``hidden`` = 1024 units and a linear logit (Table A3);
  dropout 0.2 after every z-path and joint layer. D_xx = two 4x4 stride-2 convs of ``xx_width`` = 64 and 128 with
  LeakyReLU + dropout, flattened (the feature layer f_xx of eq. 2.89), a linear logit. D_zz = linear layers of
  ``zz_hidden`` = 64 and 32 units with LeakyReLU + dropout (the 32 are its features) and a linear logit. LeakyReLU
  slope 0.2 everywhere, BatchNorm momentum 0.8 in Keras' convention (0.2 in torch's), DCGAN init N(0, 0.02) (the
  thesis code's; the ALAD code uses 0.01).
- Hyperparameters are Table A3's: latent 256, batch 64, 50 epochs, Adam betas (0.5, 0.999), lr 5e-5 for G and 1e-6
  for E and for the D's. Both codes train much faster (the thesis code's config: latent 100, lr 2e-4 for G and E,
  2e-5 for the D's; the ALAD code: latent 100, lr 2e-4 everywhere, batch 32); ``PRESETS["cpu"]`` uses 2e-4.
- EMA is part of the method here: both reference codes keep an exponential moving average (decay 0.999) of every
  network's weights and compute every score with it; the thesis text does not mention it. ``ema_decay`` = 0.999
  keeps averaged copies of E, G and D_xx (the nets the scores use) inside ``nets_`` (saved with the model), updated
  after every step by ``nets.ema_update`` (buffers -- BN statistics, spectral-norm vectors -- copied);
  ``ema_decay=0`` scores with the trained nets. The average starts from the initial weights, as the reference's,
  with TF's ``num_updates`` warm-up decay min(0.999, (1 + n) / (10 + n)) after n steps (``nets.ema_decay_at``, as the
  EBGAN family): with a fixed 0.999, ~350 steps (MTD at paper scale) leave 70 % of the average at the initialisation.
- Scores (eq. 2.90), all with the EMA nets in eval mode (BN running statistics, dropout off), x' = G(E(x)):
  ``l1`` = ||x - x'||_1 and ``l2`` = ||x - x'||_2 (norms over all pixels, not squared, not means, as the reference);
  ``features`` = ||f_xx(x, x) - f_xx(x, x')||_1 (eq. 2.89); ``logits`` = -log D_xx(x, x') = softplus(-logit). The
  thesis writes log D_xx(x, x'), which is high for a faithful reconstruction, i.e. a normality score; anogen scores
  are higher = more anomalous, so the sign is reversed (the reference's "ch" score, BCE of the logit against label 1,
  is the same number).
- The thesis trains on random 32 x 32 crops of its images and evaluates 32 x 32 test patches cut with stride 16,
  each labelled by its own mask (a data protocol). For whole images the closest setting is the base patch mode
  (``patch_size=32, patch_stride=16``: an image scores its highest patch); off by default, as for every detector.
- ``use_dzz=False`` drops D_zz and its cycle term (the reference's ``--enable_dzz`` switch; ALAD's results use it).
- Early stopping on the mean validation score of normal data (reference code, patience 10, and it tests the weights
  of the stop epoch, not the best ones) is not in the base loop and is left out: training runs ``epochs``. With
  labelled validation data the base ``fit(val_x=, val_y=)`` keeps the best state instead.
- Known behaviour at the CPU preset (issue 14, ``docs/selection.md``): after 10 epochs on ~100 digit images
  G(E(x)) hardly depends on x (reconstruction spread about 1 % of the inputs'), so every score compares x with
  about one template image; with "1" normal every score inverts (test AUROC 0.22-0.30), with "0" normal they work
  (0.88-1.0). Not a code defect: the method at a tiny training budget; the health check flags it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from anogen._registry import register
from anogen.detector import Detector
from anogen.losses import GANTricks, adversarial_loss, feature_matching
from anogen.nets import ConvDecoder, ConvEncoder, check_image_size, dcgan_init, ema_decay_at, ema_update
from anogen.params import flag, integer, one_of, positive, real, tuple_of

SCORES = ("l1", "l2", "logits", "features")
G_LOSSES = ("nonsaturating", "minimax")
CONCATS = ("height", "channel")
SLOPE = 0.2
"""LeakyReLU slope of E and the D's (Table A3)"""
BN_MOMENTUM = 0.2
"""BatchNorm running-statistics momentum in torch's convention (Table A3: 0.8 in Keras', = 1 - 0.2)"""


def _spectral(module: nn.Module) -> nn.Module:
    """Spectral normalisation (eq. 2.77) on every conv / linear layer of ``module``, in place."""
    for m in [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]:
        spectral_norm(m)
    return module


def _dense(n_in: int, n_out: int, dropout: float) -> list[nn.Module]:
    """Spectral-norm linear layer, LeakyReLU, dropout: the hidden layer of every ALAD discriminator."""
    return [spectral_norm(nn.Linear(n_in, n_out)), nn.LeakyReLU(SLOPE), nn.Dropout(dropout)]


# ---------------------------------------------------------------------------------------------------- modules
class DiscriminatorXZ(nn.Module):
    """D_xz(x, z) -> (B,) logit: conv x path and linear z path, joined by two linear layers (Table A3)."""

    def __init__(self, image_size: int, channels: int, latent_dim: int, *, width: int, max_width: int, hidden: int,
                 dropout: float) -> None:
        super().__init__()
        trunk = ConvEncoder(image_size, channels, 1, width=width, max_width=max_width, norm="batch", slope=SLOPE)
        self.x_path = _spectral(trunk.body)  # (B, C, S, S) -> (B, W, 4, 4)
        h_z = hidden // 2
        self.z_path = nn.Sequential(*_dense(latent_dim, h_z, dropout), *_dense(h_z, h_z, dropout))  # (B, L) -> (B, h_z)
        n_joint = trunk.feature_channels * 16 + h_z
        self.joint = nn.Sequential(*_dense(n_joint, hidden, dropout), *_dense(hidden, hidden, dropout))
        self.out = nn.Linear(hidden, 1)  # no spectral norm on the output layer (reference)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        h = torch.cat([self.x_path(x).flatten(1), self.z_path(z)], dim=1)  # (B, 16 W + hidden / 2)
        return self.out(self.joint(h)).squeeze(1)  # (B,)


class DiscriminatorXX(nn.Module):
    """D_xx(a, b) -> (B,) logit on a pair of images; ``features`` is f_xx of eq. (2.89), the layer before the logit."""

    def __init__(self, image_size: int, channels: int, *, width: int, dropout: float, concat: str) -> None:
        super().__init__()
        self.concat = concat
        c_in = 2 * channels if concat == "channel" else channels
        height = 2 * image_size if concat == "height" else image_size
        self.body = nn.Sequential(
            spectral_norm(nn.Conv2d(c_in, width, 4, 2, 1)), nn.LeakyReLU(SLOPE), nn.Dropout(dropout),
            spectral_norm(nn.Conv2d(width, 2 * width, 4, 2, 1)), nn.LeakyReLU(SLOPE), nn.Dropout(dropout),
            nn.Flatten(),
        )
        self.out = nn.Linear(2 * width * (height // 4) * (image_size // 4), 1)

    def pair(self, a: Tensor, b: Tensor) -> Tensor:
        """(B, C, H, W) twice -> (B, C, 2H, W) (``height``) or (B, 2C, H, W) (``channel``)."""
        return torch.cat([a, b], dim=2 if self.concat == "height" else 1)

    def features(self, a: Tensor, b: Tensor) -> Tensor:
        return self.body(self.pair(a, b))  # (B, F)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.out(self.features(a, b)).squeeze(1)  # (B,)


class DiscriminatorZZ(nn.Module):
    """D_zz(a, b) -> (B,) logit on a pair of latents: two hidden linear layers and a logit (Table A3)."""

    def __init__(self, latent_dim: int, *, hidden: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(*_dense(2 * latent_dim, hidden, dropout), *_dense(hidden, hidden // 2, dropout))
        self.out = nn.Linear(hidden // 2, 1)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.out(self.body(torch.cat([a, b], dim=1))).squeeze(1)  # (B,)


# ---------------------------------------------------------------------------------------------------- losses
def fool_loss(logit: Tensor, d_label: float, kind: str = "nonsaturating") -> Tensor:
    """E / G loss on D's logits for pairs D should label ``d_label`` (1 = real, 0 = fake).

    ``nonsaturating``: BCE against the swapped label, -log D for fake pairs and -log(1 - D) for the encoder pair (the
    reference codes). ``minimax``: minus D's own BCE, i.e. the value function (2.88) that E and G minimise: log(1 - D)
    on fake pairs, log D on the encoder pair.
    """
    if kind == "nonsaturating":
        return adversarial_loss(logit, 1.0 - d_label, "bce")
    if kind == "minimax":
        return -adversarial_loss(logit, d_label, "bce")
    raise ValueError(f"g_loss must be one of {', '.join(G_LOSSES)}; got {kind!r}")


# ---------------------------------------------------------------------------------------------------- detector
@register("alad")
@dataclass(kw_only=True)
class ALAD(GANTricks, Detector):
    """ALAD: E, G and D_xz, D_xx, D_zz with spectral norm; score = L1 distance of D_xx features (eq. 2.89)."""

    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "latent_dim": integer(1), "width": integer(1), "enc_width": integer(1), "max_width": integer(1),
        "hidden": integer(2), "xx_width": integer(1), "zz_hidden": integer(2),
        "dropout": real(0.0, 1.0, hi_open=True), "lr_g": positive(), "lr_e": positive(), "lr_d": positive(),
        "betas": tuple_of(2, real(0.0, 1.0, hi_open=True)), "xx_concat": one_of(CONCATS), "use_dzz": flag(),
        "g_loss": one_of(G_LOSSES), "score": one_of(SCORES), "ema_decay": real(0.0, 1.0, hi_open=True),
    }

    epochs: int = 50
    """training epochs (Table A3)"""
    batch_size: int = 64
    """training mini-batch size (Table A3)"""
    image_size: int = 32
    """image side; a power of two (the thesis trains on 32 x 32 patches: see patch_size)"""
    channels: int = 1
    """channels the model sees (the thesis' SEM patches are grayscale)"""
    latent_dim: int = 256
    """dimension of z (Table A3)"""
    width: int = 128
    """first conv width of D_xz's image path, doubling per stage; G mirrors it (Table A3 / reference: 128-256-512)"""
    enc_width: int = 32
    """first conv width of the encoder E, doubling per stage (Table A3: 32-64-128-256)"""
    max_width: int = 512
    """cap on the channel count of any conv layer of E, G and D_xz"""
    hidden: int = 1024
    """units of D_xz's two joint layers; its z path has hidden / 2 (Table A3: 1024 and 512)"""
    xx_width: int = 64
    """D_xx's first conv width; its second has twice as many (Table A3: 64, 128)"""
    zz_hidden: int = 64
    """units of D_zz's first layer; its second has half (Table A3: 64, 32)"""
    dropout: float = 0.2
    """dropout rate after every hidden layer of D_xz's z / joint paths, D_xx and D_zz (Table A3)"""
    lr_g: float = 5e-5
    """Adam learning rate of G (Table A3)"""
    lr_e: float = 1e-6
    """Adam learning rate of E (Table A3)"""
    lr_d: float = 1e-6
    """Adam learning rate of the three discriminators (Table A3)"""
    betas: tuple[float, float] = (0.5, 0.999)
    """Adam betas of every optimizer (Table A3)"""
    xx_concat: str = "height"
    """how D_xx pairs two images: height (stacked, (B, C, 2H, W), the reference) or channel ((B, 2C, H, W))"""
    use_dzz: bool = True
    """train D_zz and the latent cycle term, eq. (2.87) (the reference's --enable_dzz)"""
    g_loss: str = "nonsaturating"
    """E / G adversarial loss: nonsaturating (the reference codes) or minimax (eq. 2.88 as written)"""
    score: str = "features"
    """anomaly score (eq. 2.90): features (eq. 2.89), logits (-log D_xx(x, x')), l1 or l2 (||x - G(E(x))||)"""
    ema_decay: float = 0.999
    """decay of the weight averages of E, G, D_xx used for scoring (reference code); 0 scores the trained nets"""

    def __post_init__(self) -> None:
        patch = getattr(self, "patch_size", 0)  # the base's patch mode builds the nets for patch_size inputs
        check_image_size(patch if patch > 0 else self.image_size)
        if self.normalize != "tanh":
            raise ValueError(f"alad's generator ends in tanh, so images must be normalised to [-1, 1] "
                             f"(normalize='tanh'); got normalize={self.normalize!r}")
        for k, v, allowed in (("score", self.score, SCORES), ("g_loss", self.g_loss, G_LOSSES),
                              ("xx_concat", self.xx_concat, CONCATS)):
            if v not in allowed:
                raise ValueError(f"{k} must be one of {', '.join(allowed)}; got {v!r}")
        sizes = dict(latent_dim=self.latent_dim, width=self.width, enc_width=self.enc_width, xx_width=self.xx_width)
        if min(sizes.values()) < 1 or self.hidden < 2 or self.zz_hidden < 2 or self.max_width < self.width:
            raise ValueError(f"need sizes >= 1 ({sizes}), hidden >= 2, zz_hidden >= 2 and width <= max_width; got "
                             f"hidden={self.hidden}, zz_hidden={self.zz_hidden}, max_width={self.max_width}")
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.ema_decay < 1.0):
            raise ValueError(f"need 0 <= dropout < 1 and 0 <= ema_decay < 1; got {self.dropout}, {self.ema_decay}")
        self._check_tricks()

    # -- build
    def _make(self, name: str, c: int, s: int) -> nn.Module:
        """A fresh network ``name`` (E, G, Dxz, Dxx, Dzz) for (c, s, s) images."""
        if name == "E":  # spectral norm on the conv body, not on the last (latent) conv
            net: nn.Module = ConvEncoder(s, c, self.latent_dim, width=self.enc_width, max_width=self.max_width,
                                         norm="batch", slope=SLOPE)  # (B, C, S, S) -> (B, L)
            _spectral(net.body)
        elif name == "G":
            net = ConvDecoder(self.latent_dim, s, c, width=self.width, max_width=self.max_width, norm="batch",
                              out_act="tanh")  # (B, L) -> (B, C, S, S)
        elif name == "Dxz":
            net = DiscriminatorXZ(s, c, self.latent_dim, width=self.width, max_width=self.max_width,
                                  hidden=self.hidden, dropout=self.dropout)
        elif name == "Dxx":
            net = DiscriminatorXX(s, c, width=self.xx_width, dropout=self.dropout, concat=self.xx_concat)
        else:
            net = DiscriminatorZZ(self.latent_dim, hidden=self.zz_hidden, dropout=self.dropout)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = BN_MOMENTUM
        return net

    def build(self, input_shape: tuple[int, ...]) -> None:
        c, s, _ = input_shape
        names = ["E", "G", "Dxz", "Dxx"] + (["Dzz"] if self.use_dzz else [])
        self.nets_ = nn.ModuleDict({n: self._make(n, c, s) for n in names})
        dcgan_init(self.nets_)
        if self.ema_decay > 0:  # averaged copies for scoring, starting from the initial weights
            for n in ("E", "G", "Dxx"):
                avg = self._make(n, c, s)
                avg.load_state_dict(self.nets_[n].state_dict())
                self.nets_[n + "_ema"] = avg.requires_grad_(False)
        d_params = [p for n in names if n.startswith("D") for p in self.nets_[n].parameters()]
        self.opt_e_ = torch.optim.Adam(self.nets_["E"].parameters(), lr=self.lr_e, betas=self.betas)
        self.opt_g_ = torch.optim.Adam(self.nets_["G"].parameters(), lr=self.lr_g, betas=self.betas)
        self.opt_d_ = torch.optim.Adam(d_params, lr=self.lr_d, betas=self.betas)
        self.ema_updates_ = 0

    def train_state(self) -> dict[str, Tensor]:
        """For checkpoints: the EMA update count (the warm-up decay depends on it)."""
        return {"ema_updates": torch.tensor(self.ema_updates_)}

    def load_train_state(self, state: dict[str, Tensor]) -> None:
        self.ema_updates_ = int(state.get("ema_updates", torch.tensor(0)))

    # -- losses of eq. (2.88)
    def d_losses(self, logits: dict[str, tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
        """Minus each value function of (2.88): {"xz": (2.83), "xx": (2.86), "zz": (2.87)} from (real, fake) logits.

        Each is BCE(real logits, 1) + BCE(fake logits, 0) with group means, i.e. -E[log D(real)] - E[log(1 - D(fake))]
        (the thesis' "1 - log D" is read as log(1 - D)); targets go through the SL / LF tricks.
        """
        return {k: self.d_loss(real, real=True) + self.d_loss(fake, real=False) for k, (real, fake) in logits.items()}

    def train_step(self, x: Tensor) -> dict[str, float]:
        E, G, Dxz, Dxx = (self.nets_[n] for n in ("E", "G", "Dxz", "Dxx"))
        z = torch.randn(len(x), self.latent_dim, device=x.device)  # (B, L), z ~ p_Z = N(0, I)
        z_x, x_z = E(x), G(z)  # (B, L) E(x); (B, C, H, W) G(z)
        x_rec, z_rec = G(z_x), E(x_z)  # G(E(x)), E(G(z)): the cycles of eqs. (2.80), (2.86), (2.87)

        # D step: the three discriminators on detached pairs, every input through the IN trick
        xn, zn = self.d_input(x), self.d_input(z)
        logits = {"xz": (Dxz(xn, self.d_input(z_x.detach())), Dxz(self.d_input(x_z.detach()), zn)),  # (2.83)
                  "xx": (Dxx(xn, xn), Dxx(xn, self.d_input(x_rec.detach())))}  # (2.86)
        if self.use_dzz:
            logits["zz"] = (self.nets_["Dzz"](zn, zn), self.nets_["Dzz"](zn, self.d_input(z_rec.detach())))  # (2.87)
        parts = self.d_losses(logits)
        loss_d = sum(parts.values())  # minus (2.88), D's side
        self.opt_d_.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d_.step()

        # E / G step: fool D_xz (G with (G(z), z), E with (x, E(x))) and close both cycles; (x, x), (z, z) carry no
        # E / G gradient. D's weights are frozen for this pass (its gradients would be unused).
        discs = [self.nets_[n] for n in ("Dxz", "Dxx", "Dzz") if n in self.nets_]
        for D in discs:
            D.requires_grad_(False)
        adv = fool_loss(Dxz(x_z, z), 0.0, self.g_loss) + fool_loss(Dxz(x, z_x), 1.0, self.g_loss)
        cycle = fool_loss(Dxx(x, x_rec), 0.0, self.g_loss)
        if self.use_dzz:
            cycle = cycle + fool_loss(self.nets_["Dzz"](z, z_rec), 0.0, self.g_loss)
        loss_ge = adv + cycle
        self.opt_e_.zero_grad(set_to_none=True)
        self.opt_g_.zero_grad(set_to_none=True)
        loss_ge.backward()
        self.opt_e_.step()
        self.opt_g_.step()
        for D in discs:
            D.requires_grad_(True)

        if self.ema_decay > 0:  # warm-up decay (nets.ema_decay_at), as the EBGAN family
            decay = ema_decay_at(self.ema_decay, self.ema_updates_)
            for n in ("E", "G", "Dxx"):
                ema_update(self.nets_[n + "_ema"], self.nets_[n], decay)
            self.ema_updates_ += 1
        return {"d": loss_d.item(), **{f"d_{k}": v.item() for k, v in parts.items()},
                "ge_adv": adv.item(), "cycle": cycle.item()}

    # -- scoring
    def scoring_nets(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        """E, G, D_xx used for scoring: the EMA copies when ``ema_decay`` > 0."""
        sfx = "_ema" if self.ema_decay > 0 else ""
        return self.nets_["E" + sfx], self.nets_["G" + sfx], self.nets_["Dxx" + sfx]

    def reconstruct(self, x: Tensor) -> Tensor:
        """x' = G(E(x)) with the scoring nets, (B, C, H, W)."""
        E, G, _ = self.scoring_nets()
        return G(E(x))

    def score_batch(self, x: Tensor) -> Tensor:
        _, _, Dxx = self.scoring_nets()
        x_rec = self.reconstruct(x)  # (B, C, H, W)
        if self.score in ("l1", "l2"):
            return feature_matching(x, x_rec, 1 if self.score == "l1" else 2, "none")  # (B,) ||x - x'||_p
        f_fake = Dxx.features(x, x_rec)  # (B, F) f_xx(x, x')
        if self.score == "logits":
            return nn.functional.softplus(-Dxx.out(f_fake).squeeze(1))  # (B,) -log D_xx(x, x')
        return feature_matching(Dxx.features(x, x), f_fake, 1, "none")  # (B,) eq. (2.89)


PRESETS: dict[str, dict] = {
    "cpu": dict(image_size=16, epochs=10, batch_size=16, latent_dim=32, width=16, enc_width=16, max_width=64,
                hidden=128, xx_width=16, zz_hidden=32, lr_g=2e-4, lr_e=2e-4, lr_d=2e-4, ema_decay=0.9),
}
"""Explicit overrides for small runs: ``anogen.create("alad", **PRESETS["cpu"])`` (one-class digits in seconds)."""
