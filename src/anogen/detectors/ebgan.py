"""EBGAN of the Ozgumus thesis, and what its two variants share: ENCEBGAN (``encebgan.py``, EBGAN + an inverting
encoder) and SENCEBGAN (``sencebgan.py``, sequential encoders) import the base class and the losses from here.

Paper: Y. Ozgumus, "Adversarially Learned Anomaly Detection Using Generative Adversarial Networks", MSc thesis,
Politecnico di Milano 2019 (``papers/003_5d7919a1dbf94176.txt``): section 3.2 (EBGAN, eqs. 3.7-3.8, after Zhao et
al. [58]), 4.2.1 (the training tricks), eq. 4.1 (EBGAN adopted as the stable GAN), figures 46-49 and Appendix A.6-A.7
(ENCEBGAN, SENCEBGAN architectures and hyperparameters). Chapters 4.2.3-4.3 (the two proposed models and their
anomaly scores) are unfinished in the thesis: what the text leaves out comes from the thesis code,
``yigitozgumus/Polimi_Thesis`` (``models/new/{ebgan,encebgan,sencebgan}.py``, ``configs/new/*.json``, the trainers;
``research/reference-implementations.md`` section 9), and where that is silent too, from the choices below.

The discriminator D is an autoencoder (encoder Enc_D -> embedding of size ``latent_dim`` -> decoder Dec_D); its
energy is the per-sample L2 norm D(x) = ||Dec_D(Enc_D(x)) - x||_2 (eq. 3.7; the reference's ``mse_mode: norm``).

- ``ebgan``: D minimises D(x) + [m - D(G(z))]^+ (eq. 3.7 / 4.1), G minimises D(G(z)) + pt_weight * f_PT(S) with the
  pulling-away term (eq. 3.8) on S = Enc_D(G(z)). Scored through D's encoder as the inverse map (reference).

Deviations / choices of the family (the thesis is silent or unfinished on each unless said; the two variants' own
are in their files):

- Margin hinge: ``hinge="sample"`` (default) is eq. 3.7 read per sample, E_b[D(x_b) + [m - D(G(z_b))]^+] (as in Zhao
  et al.), built from the tricks mixin's ``d_loss(kind="energy")``. ``hinge="batch"`` is the reference's form
  mean_b D(x_b) + [m - mean_b D(G(z_b))]^+ (the hinge on the batch mean). With a per-sample target t (soft labels /
  flips) the batch form is mean_b(t_b E_b) + mean_b(1 - t_b) * [m - mean_b E_b]^+, which is the reference's loss for
  hard targets. Margin m = 20 (reference; the thesis gives no value). The energy is an L2 norm over all pixels, so m
  scales with image size and channels: small-image presets lower it.
- Pulling-away term: eq. 3.8 as printed, with SQUARED cosines, so f_PT is 0 for orthogonal and 1 for identical
  embeddings. The reference code sums the plain cosines (no square); we follow the thesis. Weight 0.25 (reference).
  f_PT = 0 for a batch of one.
- Updates per batch (reference trainers, mode "non_standard"): 1 D update, then ``n_gen`` = 3 G updates, each with
  fresh latents z ~ N(0, I) (the reference also draws a fresh real batch for each; here the batch is the fit loop's).
  The SENCEBGAN trainer runs D first, the EBGAN trainer G first; in a repeated loop this only moves the first update.
  D sees real and generated batches in separate forward passes (separate BatchNorm statistics, as the reference).
  D's BatchNorm running statistics are updated by D's own update only, not by the D passes inside G's updates (in
  the reference D's update ops run with D's step). G updates do not see the IN / SL / LF tricks (the mixin's rule:
  only D's inputs and targets do); IN decays over each stage, and D_xx / D_zz's pairs share one noisy copy
  (``losses.py``'s IN rule).
- Stages inside the one fit loop: ``epochs`` is split among the stages in proportion to ``stage_epochs`` (the
  reference's epoch counts: ENCEBGAN 100 GAN + 400 encoder, SENCEBGAN 500 + 200 + 400), rounding the cumulative
  boundaries, each stage at least one epoch while there are enough epochs; ``train_step`` dispatches on
  ``self.epoch_`` (:meth:`stage_of`). With fewer epochs than stages the later stages do not run (a warning says so;
  useful for smoke tests only): their networks still exist, are saved and score, untrained.
- Frozen networks in later stages: G and D (and E_G in stage 3) are in eval mode (BatchNorm running statistics; the
  reference feeds ``is_training=False``) and get no gradients (``backward(inputs=...)``); only the stage's encoder
  (and its optional discriminator) is updated.
- EMA: the reference scores with exponential moving averages (decay 0.999) of every trained network. We keep them
  (``ema_decay`` = 0.999; 0 turns EMA off and scores with the raw weights) as ``*_ema`` copies in ``nets_`` (saved),
  with TensorFlow's ``num_updates`` warm-up, decay_t = min(decay, (1 + t) / (10 + t)) after t updates of that
  network: the reference's runs have ~10^5 updates, while a short run with a plain 0.999 average would score with
  weights that are mostly the initialisation. BatchNorm statistics are copied, not averaged (``nets.ema_update``).
  The later stages train their encoder against the EMA copies of the frozen networks, i.e. the networks that score
  (the reference trains against the raw weights and scores with the averages, and builds E_R's scoring branch from
  raw weights: a mismatch we do not copy).
- Architecture: the shared DCGAN blocks of ``nets.py`` at any power-of-two size / channel count instead of the
  reference's 32 x 32 x 1 stacks of 5x5 convolutions: G = ``ConvDecoder`` (BatchNorm + ReLU; the thesis tables say
  LeakyReLU), Enc_D / E / E_G / E_R = ``ConvEncoder`` (4x4 stride-2 convs, LeakyReLU 0.2, BatchNorm except on the
  first layer, a 4x4 valid conv in place of the dense layer to ``latent_dim``), Dec_D = ``ConvDecoder`` with tanh.
  With ``width`` = 32 at 32 px D's encoder has the reference's 32 / 64 / 128 channels; E uses the same ``width``
  (the reference's E is twice as wide). ``d_norm="batch"`` (Tables A6 / A7); ``"spectral"`` is the reference EBGAN
  config's spectral norm, which the shared encoder cannot combine with BatchNorm, so it replaces it. BatchNorm
  momentum is PyTorch's 0.1 (the reference's TF momentum 0.8 is 0.2 here). DCGAN init N(0, 0.02) (the reference
  configs use Xavier-normal or N(0, 0.02)). D_xx = a ``ConvEncoder`` (no norm) on the channel-concatenated pair
  (the reference concatenates along the image height), D_zz = a 3-layer MLP with ``dzz_hidden`` units; no dropout.
- Reference versions: the thesis repository changed these models over many commits (e.g. E's feature loss on
  Enc_D embeddings vs decoded AE_D images, L1 vs L2 scores, 100 / 200 / 200 vs 500 / 200 / 400 SENCEBGAN epochs);
  we follow the commit read in ``research/reference-implementations.md`` (1e3a11397a).
- Patches: the thesis trains and tests on 32 x 32 patches of large SEM images; that is the base patch mode
  (``patch_size=32``: random crops in training, a sliding window at scoring, an image scores its worst patch).
- Hyperparameters (Tables A6 / A7, reference configs): latent 256, batch 64, Adam betas (0.5, 0.999), lr G 1e-5,
  D 5e-6, encoders 5e-5, D_xx / D_zz 5e-6 (the reference reuses D's optimizer settings), 32 x 32 gray images, epochs
  50 for ENCEBGAN / SENCEBGAN (tables) and 100 for EBGAN (reference config). Images are normalised to [-1, 1]
  (``normalize="tanh"``, required: G and Dec_D end in tanh); the reference standardises each patch instead.
- Scores (reference test graphs; thesis 4.2.4 is empty), each selectable by ``score``: every norm is per sample over
  the flattened tensor. ``energy`` = D(x) (eq. 3.7's energy; ours, for all three). EBGAN (D's encoder as the inverse
  map, x~ = G(Enc_D(x))): ``image`` = ||x - x~||_2 (default, the reference's first image score), ``ae_image`` =
  ||x - AE_D(x~)||_2, ``latent_l1`` / ``latent_l2`` = ||Enc_D(x) - Enc_D(x~)||_1 / _2. ``map_batch`` (all three):
  the squared residual of the score's image reconstruction, summed over channels.
- The training tricks (IN / SL / LF, thesis 4.2.1; :class:`anogen.losses.GANTricks`) are fields, off by default: IN
  noises every input of D (and of D_xx / D_zz) in their updates, and its energy is that of the noised input; SL / LF
  set the targets of every D loss term.
"""

from __future__ import annotations

import copy
import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anogen._registry import register
from anogen.detector import Detector
from anogen.losses import GANTricks
from anogen.nets import ConvDecoder, ConvEncoder, check_image_size, dcgan_init, ema_decay_at, ema_update
from anogen.params import integer, non_negative, one_of, positive, real, tuple_of

HINGES = ("sample", "batch")
D_NORMS = ("batch", "spectral")


# ---------------------------------------------------------------------------------------------------- modules
class EnergyAE(nn.Module):
    """EBGAN's discriminator: an autoencoder (B, C, S, S) -> (embedding (B, L), reconstruction (B, C, S, S))."""

    def __init__(self, image_size: int, channels: int, latent_dim: int, *, width: int, max_width: int,
                 norm: str) -> None:
        super().__init__()
        self.enc = ConvEncoder(image_size, channels, latent_dim, width=width, max_width=max_width, norm=norm)
        self.dec = ConvDecoder(latent_dim, image_size, channels, width=width, max_width=max_width, out_act="tanh")

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        emb = self.enc(x)  # (B, L) = Enc_D(x)
        return emb, self.dec(emb)  # (B, C, S, S) = AE_D(x)


# ---------------------------------------------------------------------------------------------------- losses
def l2(a: Tensor, b: Tensor) -> Tensor:
    """(B,) per-sample L2 norm ||a - b||_2 over the flattened tensors (the reference's ``mse_mode: norm``)."""
    return (a - b).flatten(1).norm(p=2, dim=1)


def energy(x: Tensor, x_rec: Tensor) -> Tensor:
    """(B,) eq. (3.7): D(x) = ||Dec(Enc(x)) - x||_2, from D's input ``x`` and its reconstruction ``x_rec``."""
    return l2(x_rec, x)


def pulling_away(s: Tensor) -> Tensor:
    """Eq. (3.8): f_PT(S) = 1 / (N (N - 1)) sum_i sum_{j != i} (S_i^T S_j / (||S_i|| ||S_j||))^2 for S (N, ...).

    0 for mutually orthogonal rows, 1 when all rows point the same way; 0 for N < 2 (no pairs)."""
    n = s.shape[0]
    if n < 2:
        return s.new_zeros(())
    u = F.normalize(s.flatten(1), dim=1)  # (N, F) unit rows
    cos2 = (u @ u.T).pow(2)  # (N, N) squared cosines
    return (cos2.sum() - cos2.diagonal().sum()) / (n * (n - 1))


def batch_margin_loss(e: Tensor, target: Tensor, margin: float) -> Tensor:
    """The reference's energy loss with the hinge on the batch mean, for per-sample targets t (1 real, 0 fake).

    mean(t E) + mean(1 - t) [m - mean(E)]^+: mean(E) for hard real targets, [m - mean(E)]^+ for hard fake ones."""
    e, t = e.reshape(-1), target.reshape(-1).to(e.dtype)
    return (t * e).mean() + (1 - t).mean() * F.relu(margin - e.mean())


@contextmanager
def frozen_bn_stats(module: nn.Module) -> Iterator[None]:
    """BatchNorm layers of ``module`` keep normalising with batch statistics but leave their running ones unchanged."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0  # running = (1 - 0) running + 0 batch
    try:
        yield
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom


def stage_lengths(epochs: int, weights: tuple[int, ...]) -> list[int]:
    """Epochs of each stage: ``epochs`` split in proportion to ``weights`` (cumulative boundaries rounded half up).

    Each stage gets at least one epoch while ``epochs`` allows; with fewer epochs than stages the first stages get one
    each and the rest none."""
    n, total = len(weights), sum(weights)
    if epochs < n:
        return [1] * epochs + [0] * (n - epochs)
    bounds, cum, prev = [], 0, 0
    for k, w in enumerate(weights[:-1]):
        cum += w
        b = int(math.floor(epochs * cum / total + 0.5))
        prev = min(max(b, prev + 1), epochs - (n - 1 - k))  # >= 1 epoch for this stage and for each later one
        bounds.append(prev)
    bounds.append(epochs)
    return [b - a for a, b in zip([0] + bounds[:-1], bounds)]


# ---------------------------------------------------------------------------------------------------- EBGAN core
@dataclass(kw_only=True)
class EBGANBase(GANTricks, Detector):
    """EBGAN training (eqs. 3.7, 3.8, 4.1) shared by the three detectors, plus the stage / EMA machinery."""

    epochs: int = 100
    """training epochs (reference EBGAN config: 100)"""
    batch_size: int = 64
    """training mini-batch size (Tables A6 / A7)"""
    image_size: int = 32
    """image side; a power of two (the thesis trains on 32 x 32 patches of large images: see patch_size)"""
    channels: int = 1
    """channel count the model sees (the thesis' SEM images are gray)"""
    latent_dim: int = 256
    """size of the latent z and of D's embedding Enc_D(x) (Tables A6 / A7)"""
    width: int = 32
    """channels of the first conv layer of D's encoder and the encoders, doubling per stage (reference: 32)"""
    max_width: int = 512
    """cap on any layer's channel count"""
    d_norm: str = "batch"
    """normalisation in D's encoder: batch (Tables A6 / A7) or spectral (reference EBGAN config)"""
    margin: float = 20.0
    """EBGAN margin m of eq. (3.7) (reference: 20), in L2-norm units of the whole image"""
    hinge: str = "sample"
    """where the margin hinge applies: sample (eq. 3.7 per sample) or batch (the reference: on the batch mean)"""
    pt_weight: float = 0.25
    """weight of the pulling-away term (3.8) in G's loss (reference: 0.25; 0 turns it off)"""
    n_gen: int = 3
    """G updates per batch, each with fresh latents, after the one D update (reference mode non_standard: 3)"""
    lr_g: float = 1e-5
    """Adam learning rate of G (Tables A6 / A7)"""
    lr_d: float = 5e-6
    """Adam learning rate of D (Tables A6 / A7)"""
    betas: tuple[float, float] = (0.5, 0.999)
    """Adam betas of every network (Tables A6 / A7)"""
    ema_decay: float = 0.999
    """decay of the weight averages used for scoring (reference: 0.999, with a warm-up here); 0 = raw weights"""
    score: str = "image"
    """anomaly score (see the module docstring for the terms)"""

    SCORES: ClassVar[tuple[str, ...]] = ()
    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "latent_dim": integer(1), "width": integer(1), "max_width": integer(1), "d_norm": one_of(D_NORMS),
        "margin": positive(), "hinge": one_of(HINGES), "pt_weight": non_negative(), "n_gen": integer(1),
        "lr_g": positive(), "lr_d": positive(), "betas": tuple_of(2, real(0.0, 1.0, hi_open=True)),
        "ema_decay": real(0.0, 1.0, hi_open=True),
    }
    STAGES: ClassVar[tuple[str, ...]] = ("gan",)

    def __post_init__(self) -> None:
        self._check_tricks()
        patch = getattr(self, "patch_size", 0)  # the base's patch mode builds the nets for patch_size inputs
        check_image_size(patch if patch > 0 else self.image_size)
        if self.normalize != "tanh":
            raise ValueError(f"{self.name}'s generator and D's decoder end in tanh, so images must be normalised to "
                             f"[-1, 1] (normalize='tanh'); got normalize={self.normalize!r}")
        if self.width < 1 or self.max_width < self.width or self.latent_dim < 1:
            raise ValueError(f"need 1 <= width <= max_width and latent_dim >= 1; got width={self.width}, "
                             f"max_width={self.max_width}, latent_dim={self.latent_dim}")
        if self.margin <= 0 or self.pt_weight < 0 or self.n_gen < 1 or not 0 <= self.ema_decay < 1:
            raise ValueError(f"need margin > 0, pt_weight >= 0, n_gen >= 1, 0 <= ema_decay < 1; got {self.margin}, "
                             f"{self.pt_weight}, {self.n_gen}, {self.ema_decay}")
        for field, value, allowed in (("hinge", self.hinge, HINGES), ("d_norm", self.d_norm, D_NORMS),
                                      ("score", self.score, self.SCORES)):
            if value not in allowed:
                raise ValueError(f"{self.name}: {field} must be one of {', '.join(allowed)}; got {value!r}")
        stages = getattr(self, "stage_epochs", (1,))
        if len(stages) != len(self.STAGES) or min(stages) < 1:
            raise ValueError(f"{self.name}: stage_epochs needs {len(self.STAGES)} positive counts "
                             f"({', '.join(self.STAGES)}); got {stages}")

    # -- stages
    def stage_schedule(self) -> list[int]:
        """Epochs of each stage (``STAGES`` order) for this run's ``epochs``."""
        return stage_lengths(self.epochs, tuple(getattr(self, "stage_epochs", (1,))))

    def selectable_from_epoch(self) -> int:
        """Validation keeps states of the last stage that trains only (never a half-trained pipeline)."""
        sched = self.stage_schedule()
        last = max(i for i, n in enumerate(sched) if n > 0)
        return sum(sched[:last]) + 1

    def stage_of(self, epoch: int) -> str:
        """The stage trained in 0-based ``epoch``."""
        end = 0
        for name, n in zip(self.STAGES, self.stage_schedule()):
            end += n
            if epoch < end:
                return name
        raise ValueError(f"epoch {epoch} is past the last of {self.epochs} epochs")

    def noise_epochs(self) -> tuple[int, int]:
        """IN decays to 0 over the current stage, whose discriminator (D, then D_xx / D_zz) trains now (losses.py
        IN rule 3)."""
        start, epoch = 0, getattr(self, "epoch_", 0)
        for n in self.stage_schedule():
            if epoch < start + n:
                return start, n
            start += n
        return start, 1

    def setup_data(self, x: Tensor) -> None:
        skipped = [s for s, n in zip(self.STAGES, self.stage_schedule()) if n == 0]
        if skipped:
            warnings.warn(f"{self.name}: epochs={self.epochs} is fewer than its {len(self.STAGES)} stages; the "
                          f"stage(s) {', '.join(skipped)} will not train and their networks score untrained",
                          stacklevel=2)

    # -- networks, optimizers, EMA
    def _adam(self, name: str, lr: float) -> torch.optim.Adam:
        return torch.optim.Adam(self.nets_[name].parameters(), lr=lr, betas=self.betas)

    def _encoder(self, c: int, s: int) -> ConvEncoder:
        return ConvEncoder(s, c, self.latent_dim, width=self.width, max_width=self.max_width, norm="batch")

    def _build_nets(self, input_shape: tuple[int, ...], extra: dict[str, nn.Module], averaged: tuple[str, ...]) -> None:
        """nets_ = G, D, ``extra``, plus ``*_ema`` copies of the ``averaged`` ones; DCGAN init; G / D optimizers."""
        c, s, _ = input_shape
        nets = {
            "G": ConvDecoder(self.latent_dim, s, c, width=self.width, max_width=self.max_width, out_act="tanh"),
            "D": EnergyAE(s, c, self.latent_dim, width=self.width, max_width=self.max_width, norm=self.d_norm),
            **extra,
        }
        self.nets_ = nn.ModuleDict(nets)
        dcgan_init(self.nets_)
        if self.ema_decay > 0:
            for name in averaged:
                self.nets_[f"{name}_ema"] = copy.deepcopy(self.nets_[name]).requires_grad_(False)
        self.opt_g_ = self._adam("G", self.lr_g)
        self.opt_d_ = self._adam("D", self.lr_d)
        self.ema_updates_: dict[str, int] = {}

    def net(self, name: str) -> nn.Module:
        """The network that scores (and that later stages train against): its EMA copy, or itself without EMA."""
        return self.nets_[f"{name}_ema"] if self.ema_decay > 0 else self.nets_[name]

    def train_state(self) -> dict[str, Tensor]:
        """For checkpoints: the EMA update counts (their warm-up decay depends on them)."""
        return {f"ema_updates.{k}": torch.tensor(v) for k, v in self.ema_updates_.items()}

    def load_train_state(self, state: dict[str, Tensor]) -> None:
        self.ema_updates_ = {k.split(".", 1)[1]: int(v) for k, v in state.items() if k.startswith("ema_updates.")}

    def _ema_step(self, name: str) -> None:
        if self.ema_decay > 0:
            t = self.ema_updates_.get(name, 0)
            ema_update(self.nets_[f"{name}_ema"], self.nets_[name], ema_decay_at(self.ema_decay, t))
            self.ema_updates_[name] = t + 1

    @staticmethod
    def _frozen(*nets: nn.Module) -> None:
        for n in nets:
            n.eval()  # BatchNorm running statistics, as the reference's is_training=False

    # -- the EBGAN update (eqs. 3.7, 3.8, 4.1)
    def _d_energy_loss(self, e: Tensor, real: bool) -> Tensor:
        """D's margin loss of energies ``e`` (B,) judged real / fake, with the SL / LF targets of the tricks mixin."""
        if self.hinge == "sample":
            return self.d_loss(e, real=real, kind="energy", margin=self.margin)  # eq. (3.7) per sample
        return batch_margin_loss(e, self.d_targets(len(e), real, e.device), self.margin)  # reference form

    def _gan_step(self, x: Tensor) -> dict[str, float]:
        G, D = self.nets_["G"], self.nets_["D"]
        b, dev = len(x), x.device
        with torch.no_grad():
            fake = G(torch.randn(b, self.latent_dim, device=dev))  # (B, C, S, S), G in training mode
        x_in, fake_in = self.d_input(x), self.d_input(fake)  # IN trick
        e_real = energy(x_in, D(x_in)[1])  # (B,) separate passes: separate BatchNorm statistics
        e_fake = energy(fake_in, D(fake_in)[1])  # (B,)
        loss_d = self._d_energy_loss(e_real, True) + self._d_energy_loss(e_fake, False)  # eq. (3.7) L_D
        self.opt_d_.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d_.step()
        self._ema_step("D")
        g_embed_weight = getattr(self, "g_embed_weight", 0.0)
        with frozen_bn_stats(D):  # G's updates leave D's running statistics alone, as in the reference
            if g_embed_weight > 0:
                with torch.no_grad():
                    emb_real = D.enc(x)  # (B, L) constant target of SENCEBGAN's extra G term
            for _ in range(self.n_gen):
                fake = G(torch.randn(b, self.latent_dim, device=dev))  # (B, C, S, S), fresh latents
                emb, rec = D(fake)  # (B, L), (B, C, S, S)
                loss_g = energy(fake, rec).mean() + self.pt_weight * pulling_away(emb)  # eq. (3.7) L_G + (3.8)
                if g_embed_weight > 0:
                    loss_g = loss_g + g_embed_weight * l2(emb_real, emb).mean()
                self.opt_g_.zero_grad(set_to_none=True)
                loss_g.backward(inputs=list(G.parameters()))  # D gets no gradient from G's loss
                self.opt_g_.step()
                self._ema_step("G")
        return {"d": loss_d.item(), "g": loss_g.item(), "e_real": e_real.mean().item(),
                "e_fake": e_fake.mean().item()}

    def train_step(self, x: Tensor) -> dict[str, float]:
        return getattr(self, f"_{self.stage_of(self.epoch_)}_step")(x)

    # -- scoring
    def score_terms(self, x: Tensor) -> dict[str, Tensor]:
        """Every score term (B,) and ``rec``, the image reconstruction of the selected score, for a batch."""
        raise NotImplementedError

    def score_batch(self, x: Tensor) -> Tensor:
        return self.score_terms(x)[self.score]  # (B,)

    def map_batch(self, x: Tensor) -> Tensor:
        return (x - self.score_terms(x)["rec"]).pow(2).sum(1)  # (B, H, W); sums to ||x - rec||_2^2


# ---------------------------------------------------------------------------------------------------- EBGAN
@register("ebgan")
@dataclass(kw_only=True)
class EBGAN(EBGANBase):
    """EBGAN (thesis 3.2, eqs. 3.7-3.8, 4.1): autoencoder discriminator with a margin; scored through D's encoder."""

    score: str = "image"
    """anomaly score: image, ae_image, latent_l1, latent_l2 or energy (x~ = G(Enc_D(x)); see the module docstring)"""

    SCORES: ClassVar[tuple[str, ...]] = ("image", "ae_image", "latent_l1", "latent_l2", "energy")
    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "score": one_of(SCORES),
    }

    def build(self, input_shape: tuple[int, ...]) -> None:
        self._build_nets(input_shape, {}, averaged=("G", "D"))

    def score_terms(self, x: Tensor) -> dict[str, Tensor]:
        G, D = self.net("G"), self.net("D")
        emb, ae = D(x)  # Enc_D(x) (B, L), AE_D(x) (B, C, S, S)
        x_g = G(emb)  # x~ = G(Enc_D(x)): D's encoder as the inverse map (reference)
        emb_g, ae_g = D(x_g)
        recs = {"energy": ae, "ae_image": ae_g}
        return {
            "image": l2(x, x_g), "ae_image": l2(x, ae_g), "energy": energy(x, ae),
            "latent_l1": (emb - emb_g).abs().sum(1), "latent_l2": l2(emb, emb_g),
            "rec": recs.get(self.score, x_g),
        }


PRESETS: dict[str, dict] = {
    # margin 8: at 16 x 16 x 1 a residual's L2 norm is at most 32 and starts near 11 for digits; the reference's 20
    # (for 32 x 32 patches) would ask D for fake energies far above any real one. Larger learning rates: few steps.
    "cpu": dict(image_size=16, width=16, latent_dim=32, batch_size=16, epochs=15, lr_g=2e-4, lr_d=2e-4, margin=8.0),
}
"""Explicit overrides for small runs of all three detectors (one-class digits in seconds); ``encebgan.py`` and
``sencebgan.py`` use these too."""
