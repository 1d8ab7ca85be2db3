"""f-AnoGAN: a WGAN-GP trained on normal images, then an encoder E trained to invert the frozen generator.

Paper: T. Schlegl et al., "f-AnoGAN: Fast Unsupervised Anomaly Detection with Generative Adversarial Networks",
Medical Image Analysis 54, 2019, as described in the thesis ``papers/003_5d7919a1dbf94176.txt``, section 3.1
(training strategies izi, izi_f, ziz: eqs. 3.1-3.3; anomaly score: eqs. 3.4-3.6).
Reference code: ``tSchlegl/f-AnoGAN`` (TF 1, ``research/reference-implementations.md`` section 6): WGAN-GP (5 critic
steps per G step, GP weight 10, Adam lr 1e-4 betas (0, 0.9), batch 64, z 128 ~ N(0, I), 64 x 64 x 1 images), then
izi_f encoder training (RMSprop lr 5e-5, kappa 1.0, means of squares) and the "dual image loss" score. We took those
constants, the loss and score reductions, the frozen eval-mode G and D in stage 2 and E's tanh output from it.

Two stages inside the one fit loop (``epochs`` in total): the first ``epochs - encoder_epochs`` epochs train the GAN,
the last ``encoder_epochs`` train E with G and D frozen. Modes of stage 2 (``mode``), x an image, z ~ N(0, I):

    izi    L = 1/n ||x - G(E(x))||^2                                          (3.1)
    izi_f  L = 1/n ||x - G(E(x))||^2 + kappa / n_d ||f(x) - f(G(E(x)))||^2    (3.2)
    ziz    L = 1/d ||z - E(G(z))||^2                                          (3.3)

with n pixels, f = the critic's last intermediate feature map (n_d values) and d = latent size. Score:
A(x) = A_R(x) + kappa A_D(x) (3.4) with A_R = 1/n ||x - G(E(x))||^2 (3.5), A_D = 1/n_d ||f(x) - f(G(E(x)))||^2
(3.6) for izi_f; A(x) = A_R(x) for izi and ziz (the thesis: "for IZI and ZIZ the anomaly score reduces to A_R").

Deviations / choices (the thesis is silent or the reference does otherwise):

- Networks: G = ``nets.ConvDecoder`` (DCGAN transposed convs, BatchNorm + ReLU, tanh output), critic D =
  ``nets.ConvEncoder(norm="none")`` (DCGAN convs + LeakyReLU(0.2), no normalisation, one output), E =
  ``nets.ConvEncoder(norm="batch")`` with ``latent_dim`` outputs. The reference uses Gulrajani's ResNet 64x64 model
  (residual up / down blocks, layer norm in the critic); a WGAN-GP critic must not use BatchNorm (the penalty is per
  sample), and the plain DCGAN critic without normalisation is the WGAN-GP paper's other tested choice. E is D's
  trunk with BatchNorm, as in the reference. PyTorch default initialisation (Kaiming-uniform; the reference uses He
  initialisation), PyTorch's BatchNorm momentum 0.1 (the reference: TensorFlow's 0.99).
- f(x): the critic's last 4 x 4 feature map, flattened (at 64 px with width 64: 512 x 4 x 4 = 8192 values, as the
  reference's flattened 4x4x512 map before the critic's last linear layer).
- Critic steps: each training step is one critic update on a fresh real batch (fresh z, fresh interpolation eps) and
  G is updated after every ``n_dis``-th critic update (reference: CRITIC_ITERS = 5 real batches per G step, an epoch
  counts critic batches), so one epoch is one pass over the data by the critic, as in the reference. The logged "g" is
  the latest generator loss (0 before the first G update).
- Critic loss: mean D(fake) - mean D(real) + 10 * GP, through the tricks mixin (``d_loss(..., kind="wasserstein")``);
  with input noise (IN) on, the penalty's interpolates are drawn between the noisy real and noisy fake inputs the
  critic saw. G loss: -mean D(G(z)), plain. Fakes for the critic come from G in training mode (batch statistics), as
  in the reference.
- Stage 2: G and D are put in eval mode (BatchNorm running statistics, frozen) at every encoder step and only E's
  parameters receive gradients (``backward(inputs=E's parameters)``); E trains in training mode. RMSprop lr 5e-5
  (reference; PyTorch alpha 0.99 and eps 1e-8 vs TensorFlow's 0.9 and 1e-10). The reference implements izi_f only;
  izi and ziz follow eqs. (3.1) and (3.3): ziz draws a fresh z ~ N(0, I) batch per step, the size of the real batch.
- E's output: tanh (``encoder_act="tanh"``, the reference's "paper version" ``tanh_fc``; the stored reference commit
  leaves it linear) although z ~ N(0, I): E then reaches only the central cube (-1, 1)^d of the latent space. In ziz
  mode targets outside it cannot be matched; ``encoder_act="linear"`` drops the tanh.
- Scores: means of squares per image as the reference (``score="auto"``: per mode as above). ``score="latent"``
  gives the reference's logged z-distance mean((E(x) - E(G(E(x))))^2) over the d latents (not the paper's score);
  ``score="image"`` / ``"image_feature"`` force A_R / A_R + kappa A_D in any mode. All nets in eval mode.
- Epochs: the reference trains the WGAN for 7 epochs and E for 50 000 iterations of 64 images (a dataset-dependent
  number of epochs); the defaults give E as many epochs as the GAN: ``epochs=14``, ``encoder_epochs=7``.
  ``encoder_epochs=0`` trains the GAN only (E stays at its random initialisation).
- Image defaults follow the reference: 64 x 64, one channel, batch 64, latent 128; ``normalize="tanh"`` is required.
- The IN / SL / LF tricks (thesis 4.2.1) are fields, off by default; they act on stage 1 only, and the input
  noise decays linearly to 0 over the GAN epochs (the mixin's default decays over all ``epochs``).
- Model selection: the base loop's validation (``val_x`` / ``val_y``, every ``val_every`` epochs and at the last)
  only considers epochs of stage 2 (``selectable_from_epoch``), so a kept state always has a trained E.
- Known behaviour at the CPU preset (issue 14, ``docs/selection.md``): E maps every digit to about one code (G(E(x))
  spreads 6-7 % as much as the inputs, while G(z) is diverse), so the scores measure the distance to one template;
  with "1" normal all three invert (test AUROC 0.05-0.12), with "0" normal they work. Not a code defect (the
  reference's encoder training at a tiny budget); the health check flags such a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from anogen._registry import register
from anogen.detector import Detector
from anogen.losses import GANTricks, adversarial_loss, gradient_penalty
from anogen.nets import ConvDecoder, ConvEncoder, check_image_size
from anogen.params import integer, non_negative, one_of, positive, power_of_two, real, tuple_of

MODES = ("izi", "ziz", "izi_f")
SCORES = ("auto", "image", "image_feature", "latent")
ENCODER_ACTS = ("tanh", "linear")


# ---------------------------------------------------------------------------------------------------- scores / losses
def image_residual(x: Tensor, x_rec: Tensor) -> Tensor:
    """(B,) A_R(x) = 1/n ||x - G(E(x))||^2, the mean of squares over the n values of each image (eq. 3.5)."""
    return (x - x_rec).pow(2).flatten(1).mean(1)


def feature_residual(f_x: Tensor, f_rec: Tensor) -> Tensor:
    """(B,) A_D(x) = 1/n_d ||f(x) - f(G(E(x)))||^2 over the n_d critic features of each image (eq. 3.6)."""
    return (f_x - f_rec).pow(2).flatten(1).mean(1)


def izi_f_score(x: Tensor, x_rec: Tensor, f_x: Tensor, f_rec: Tensor, kappa: float) -> Tensor:
    """(B,) A(x) = A_R(x) + kappa A_D(x) (eq. 3.4); its batch mean is the izi_f loss (eq. 3.2)."""
    return image_residual(x, x_rec) + kappa * feature_residual(f_x, f_rec)


def ziz_loss(z: Tensor, z_rec: Tensor) -> Tensor:
    """L_ziz = 1/d ||z - E(G(z))||^2 averaged over the batch (eq. 3.3)."""
    return (z - z_rec).pow(2).mean()


# ---------------------------------------------------------------------------------------------------- detector
@register("f_anogan")
@dataclass(kw_only=True)
class FAnoGAN(GANTricks, Detector):
    """f-AnoGAN: WGAN-GP, then an encoder trained with G and D frozen (izi / ziz / izi_f, thesis 3.1); score eq. 3.4.
    Defaults are the reference code's (the thesis gives no f-AnoGAN hyperparameters)."""
    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "image_size": power_of_two(8, 1024), "encoder_epochs": integer(0), "latent_dim": integer(1),
        "width": integer(1), "max_width": integer(1), "n_dis": integer(1), "gp_weight": non_negative(),
        "lr": positive(), "betas": tuple_of(2, real(0.0, 1.0, hi_open=True)), "lr_e": positive(),
        "mode": one_of(MODES), "kappa": non_negative(), "encoder_act": one_of(ENCODER_ACTS), "score": one_of(SCORES),
    }

    epochs: int = 14
    """training epochs in total: the first epochs - encoder_epochs train the GAN, the rest the encoder"""
    encoder_epochs: int = 7
    """the last epochs, which train the encoder E with G and D frozen (0: GAN only)"""
    batch_size: int = 64
    """training mini-batch size (reference)"""
    image_size: int = 64
    """image side (reference: 64 x 64); a power of two"""
    channels: int = 1
    """channel count (reference: gray-scale)"""
    latent_dim: int = 128
    """size of z ~ N(0, I) (reference)"""
    width: int = 64
    """channels of the first conv layer of the critic and E, doubling per stage; G uses the widths in reverse"""
    max_width: int = 512
    """cap on any layer's channel count"""
    n_dis: int = 5
    """critic updates per generator update (reference CRITIC_ITERS)"""
    gp_weight: float = 10.0
    """weight of the gradient penalty (WGAN-GP)"""
    lr: float = 1e-4
    """Adam learning rate of G and the critic (reference)"""
    betas: tuple[float, float] = (0.0, 0.9)
    """Adam betas of G and the critic (reference)"""
    lr_e: float = 5e-5
    """RMSprop learning rate of the encoder (reference)"""
    mode: str = "izi_f"
    """encoder training: izi (eq. 3.1), ziz (eq. 3.3) or izi_f (eq. 3.2, the paper's best)"""
    kappa: float = 1.0
    """weight of the critic-feature term in the izi_f loss and score (eqs. 3.2, 3.4)"""
    encoder_act: str = "tanh"
    """activation of E's output: tanh (reference) or linear"""
    score: str = "auto"
    """anomaly score: auto (izi_f: eq. 3.4; izi, ziz: A_R, eq. 3.5), image, image_feature or latent"""

    def __post_init__(self) -> None:
        check_image_size(self.image_size)
        if self.normalize != "tanh":
            raise ValueError(f"f_anogan's generator ends in tanh, so images must be normalised to [-1, 1] "
                             f"(normalize='tanh'); got normalize={self.normalize!r}")
        if not 0 <= self.encoder_epochs < self.epochs:
            raise ValueError(f"need 0 <= encoder_epochs < epochs (at least one GAN epoch); got "
                             f"encoder_epochs={self.encoder_epochs}, epochs={self.epochs}")
        if self.width < 1 or self.max_width < self.width or self.latent_dim < 1 or self.n_dis < 1:
            raise ValueError(f"need 1 <= width <= max_width, latent_dim >= 1, n_dis >= 1; got width={self.width}, "
                             f"max_width={self.max_width}, latent_dim={self.latent_dim}, n_dis={self.n_dis}")
        if self.gp_weight < 0 or self.kappa < 0:
            raise ValueError(f"need gp_weight >= 0 and kappa >= 0; got {self.gp_weight}, {self.kappa}")
        for value, allowed, what in [(self.mode, MODES, "mode"), (self.score, SCORES, "score"),
                                     (self.encoder_act, ENCODER_ACTS, "encoder_act")]:
            if value not in allowed:
                raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
        self._check_tricks()

    @property
    def gan_epochs(self) -> int:
        """Epochs of stage 1 (the WGAN-GP)."""
        return self.epochs - self.encoder_epochs

    def selectable_from_epoch(self) -> int:
        """Validation keeps states of stage 2 only (with a trained E); without a stage 2, any epoch."""
        return self.gan_epochs + 1 if self.encoder_epochs > 0 else 1

    def noise_epochs(self) -> tuple[int, int]:
        """IN decays to 0 over the GAN epochs (losses.py IN rule 3: the critic stops at stage 2)."""
        return 0, max(self.gan_epochs, 1)

    # ------------------------------------------------------------------ build
    def build(self, input_shape: tuple[int, ...]) -> None:
        c, s, _ = input_shape
        w = dict(width=self.width, max_width=self.max_width)
        self.nets_ = nn.ModuleDict({
            "G": ConvDecoder(self.latent_dim, s, c, norm="batch", out_act="tanh", **w),  # (B, L) -> (B, C, S, S)
            "D": ConvEncoder(s, c, 1, norm="none", **w),  # critic (B, C, S, S) -> (B, 1), no BatchNorm
            "E": nn.Sequential(
                ConvEncoder(s, c, self.latent_dim, norm="batch", **w),  # (B, C, S, S) -> (B, L)
                nn.Tanh() if self.encoder_act == "tanh" else nn.Identity(),
            ),
        })
        self.opt_g_ = torch.optim.Adam(self.nets_["G"].parameters(), lr=self.lr, betas=self.betas)
        self.opt_d_ = torch.optim.Adam(self.nets_["D"].parameters(), lr=self.lr, betas=self.betas)
        self.opt_e_ = torch.optim.RMSprop(self.nets_["E"].parameters(), lr=self.lr_e)
        self.critic_steps_ = 0
        self.last_g_ = 0.0

    # ------------------------------------------------------------------ training
    def train_state(self) -> dict[str, Tensor]:
        """For checkpoints: the critic step count (G steps every n_dis-th) and the last G loss logged."""
        return {"critic_steps": torch.tensor(self.critic_steps_),
                "last_g": torch.tensor(self.last_g_, dtype=torch.float64)}

    def load_train_state(self, state: dict[str, Tensor]) -> None:
        self.critic_steps_, self.last_g_ = int(state["critic_steps"]), float(state["last_g"])

    def train_step(self, x: Tensor) -> dict[str, float]:
        if self.epoch_ < self.gan_epochs:
            return self._gan_step(x)  # stage 1
        return self._encoder_step(x)  # stage 2

    def _gan_step(self, x: Tensor) -> dict[str, float]:
        """One critic update (WGAN-GP) and, after every n_dis-th, one generator update."""
        G, D = self.nets_["G"], self.nets_["D"]
        with torch.no_grad():
            fake = G(torch.randn(len(x), self.latent_dim, device=x.device))  # (B, C, S, S)
        real_in, fake_in = self.d_input(x), self.d_input(fake)  # IN trick (identity when off)
        loss_w = (self.d_loss(D(real_in), real=True, kind="wasserstein")  # -mean D(x)
                  + self.d_loss(D(fake_in), real=False, kind="wasserstein"))  # +mean D(G(z))
        gp = gradient_penalty(D, real_in, fake_in)  # E[(||grad D(x_hat)||_2 - 1)^2]
        loss_d = loss_w + self.gp_weight * gp
        self.opt_d_.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d_.step()
        self.critic_steps_ += 1
        if self.critic_steps_ % self.n_dis == 0:
            z = torch.randn(len(x), self.latent_dim, device=x.device)  # (B, L)
            loss_g = adversarial_loss(D(G(z)), 1.0, "wasserstein")  # -mean D(G(z))
            self.opt_g_.zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt_g_.step()  # (the critic's gradients from this pass are cleared before its next step)
            self.last_g_ = loss_g.item()
        return {"d": loss_d.item(), "wd": -loss_w.item(), "gp": gp.item(), "g": self.last_g_}

    def _encoder_step(self, x: Tensor) -> dict[str, float]:
        """One encoder update with G and D frozen: eq. (3.1), (3.2) or (3.3) by ``mode``."""
        G, D, E = self.nets_["G"], self.nets_["D"], self.nets_["E"]
        G.eval()  # frozen: BatchNorm running statistics, as at scoring
        D.eval()
        if self.mode == "ziz":
            z = torch.randn(len(x), self.latent_dim, device=x.device)  # (B, L) ~ N(0, I)
            with torch.no_grad():
                x_gen = G(z)  # (B, C, S, S)
            loss = ziz_loss(z, E(x_gen))  # eq. (3.3)
        else:
            x_rec = G(E(x))  # (B, C, S, S)
            if self.mode == "izi":
                loss = image_residual(x, x_rec).mean()  # eq. (3.1)
            else:
                with torch.no_grad():
                    f_x = D.features(x)  # (B, W, 4, 4)
                loss = izi_f_score(x, x_rec, f_x, D.features(x_rec), self.kappa).mean()  # eq. (3.2)
        self.opt_e_.zero_grad(set_to_none=True)
        loss.backward(inputs=list(E.parameters()))  # only E learns; G and D get no gradients
        self.opt_e_.step()
        return {"e": loss.item()}

    # ------------------------------------------------------------------ scoring
    def reconstruct(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(z, x_rec): E(x) (B, L) and G(E(x)) (B, C, S, S)."""
        z = self.nets_["E"](x)
        return z, self.nets_["G"](z)

    def score_batch(self, x: Tensor) -> Tensor:
        kind = self.score if self.score != "auto" else ("image_feature" if self.mode == "izi_f" else "image")
        z, x_rec = self.reconstruct(x)
        if kind == "image":
            return image_residual(x, x_rec)  # (B,) eq. (3.5)
        if kind == "latent":
            return image_residual(z, self.nets_["E"](x_rec))  # (B,) mean (E(x) - E(G(E(x))))^2
        D = self.nets_["D"]
        return izi_f_score(x, x_rec, D.features(x), D.features(x_rec), self.kappa)  # (B,) eq. (3.4)

    def map_batch(self, x: Tensor) -> Tensor:
        return (x - self.reconstruct(x)[1]).pow(2).mean(1)  # (B, S, S) squared residual image


PRESETS: dict[str, dict] = {
    "cpu": dict(image_size=16, width=16, max_width=64, latent_dim=32, epochs=30, encoder_epochs=15, batch_size=16,
                n_dis=2, lr=2e-4),
}
"""Explicit overrides for small runs: ``anogen.create("f_anogan", **PRESETS["cpu"])`` (one-class digits in seconds)."""
