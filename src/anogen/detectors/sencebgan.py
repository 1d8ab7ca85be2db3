"""SENCEBGAN of the Ozgumus thesis: EBGAN (``ebgan.py``), then an encoder E_G inverting G, then E_R re-encoding.

Paper: Y. Ozgumus, "Adversarially Learned Anomaly Detection Using Generative Adversarial Networks", MSc thesis,
Politecnico di Milano 2019 (``papers/003_5d7919a1dbf94176.txt``): Figs. 47-49 and Appendix A.7 (architecture and
hyperparameters); chapters 4.2.3-4.3 (the model and its anomaly score) are unfinished in the thesis, so what the text
leaves out comes from the thesis code, ``yigitozgumus/Polimi_Thesis`` (``models/new/sencebgan.py``,
``configs/new/*.json``, the trainers; ``research/reference-implementations.md`` section 9). A change of EBGAN: the
base class, the losses and the stage / EMA machinery are imported from ``ebgan.py``, whose docstring lists the
choices the family shares (margin hinge, pulling-away term, updates per batch, stages, frozen networks, EMA,
architecture, hyperparameters, tricks).

- Stage 1 EBGAN with an extra G term 0.1 ||Enc_D(x) - Enc_D(G(z))||_2; stage 2 trains E_G to invert G with
  ||G(E_G(x)) - x||_2 and the decoded features ||AE_D(x) - AE_D(G(E_G(x)))||_2 (AE_D = Dec_D o Enc_D) and an
  optional D_xx on (x, x) vs (x, G(E_G(x))); stage 3 trains a second encoder E_R mapping G(E_G(x)) back to E_G(x),
  with an optional D_zz on (z, z) vs (z, E_R(G(z))), z = E_G(x). Score: ||x - G(E_G(x))||_2 +
  0.25 ||E_G(x) - E_R(G(E_G(x)))||_2.

Deviations / choices of its own:

- The extra G term 0.1 * mean_b ||Enc_D(x_b) - Enc_D(G(z_b))||_2 (``g_embed_weight``; reference) pairs the b-th real
  and fake sample of the batch, as the reference does; Enc_D(x) is a constant for G.
- Scores (reference test graph; thesis 4.2.4 is empty), each selectable by ``score``, x~ = G(E_G(x)): ``image`` =
  ||x - x~||_2, ``latent`` = ||E_G(x) - E_R(x~)||_2, ``comb`` (default) = image + score_weight latent,
  score_weight = 0.25, and ``energy`` = D(x) (ours).
- D_xx / D_zz (``use_dxx`` / ``use_dzz``, off as in the reference config): D learns (x, x) real vs (x, x~) fake
  (resp. (z, z) vs (z, E_R(G(z)))) with BCE, through the tricks mixin; the encoder adds the reference's
  inverted-label BCE (real pair -> 0, fake pair -> 1, hard targets). One D_xx / D_zz update after each encoder update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from anogen._registry import register
from anogen.detectors.ebgan import PRESETS, EBGANBase, energy, l2
from anogen.losses import adversarial_loss
from anogen.nets import ConvEncoder, mlp
from anogen.params import flag, integer, non_negative, one_of, positive, tuple_of

__all__ = ["PRESETS", "SENCEBGAN"]


# ---------------------------------------------------------------------------------------------------- SENCEBGAN
@register("sencebgan")
@dataclass(kw_only=True)
class SENCEBGAN(EBGANBase):
    """SENCEBGAN (thesis Figs. 47-49, Appendix A.7): EBGAN, then E_G inverting G, then E_R re-encoding G(E_G(x))."""

    epochs: int = 50
    """training epochs of all stages together (Table A7: 50), split by stage_epochs"""
    stage_epochs: tuple[int, int, int] = (500, 200, 400)
    """relative lengths of the stages (GAN, E_G, E_R): the reference's epoch counts; epochs is split in proportion"""
    g_embed_weight: float = 0.1
    """weight of G's extra term ||Enc_D(x) - Enc_D(G(z))||_2 (reference)"""
    lr_e: float = 5e-5
    """Adam learning rate of the encoders E_G and E_R (Table A7)"""
    w_enc_feature: float = 0.4
    """weight of E_G's feature loss ||AE_D(x) - AE_D(G(E_G(x)))||_2 (reference encoder_f_factor)"""
    use_dxx: bool = False
    """train D_xx on (x, x) vs (x, G(E_G(x))) and add its adversarial loss to E_G's (reference: off)"""
    use_dzz: bool = False
    """train D_zz on (z, z) vs (z, E_R(G(z))), z = E_G(x), and add its adversarial loss to E_R's (reference: off)"""
    lr_dxz: float = 5e-6
    """Adam learning rate of D_xx and D_zz (the reference uses D's)"""
    dzz_hidden: int = 64
    """units of D_zz's hidden layers (reference: 64 and 32)"""
    score: str = "comb"
    """anomaly score: comb, image, latent or energy"""
    score_weight: float = 0.25
    """weight w of the latent term in comb = image + w latent (reference)"""

    SCORES: ClassVar[tuple[str, ...]] = ("comb", "image", "latent", "energy")
    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "score": one_of(SCORES), "stage_epochs": tuple_of(3, integer(1)), "g_embed_weight": non_negative(),
        "lr_e": positive(), "w_enc_feature": non_negative(), "use_dxx": flag(), "use_dzz": flag(),
        "lr_dxz": positive(), "dzz_hidden": integer(1), "score_weight": non_negative(),
    }
    STAGES: ClassVar[tuple[str, ...]] = ("gan", "encoder_g", "encoder_r")

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.g_embed_weight, self.w_enc_feature, self.score_weight) < 0 or self.dzz_hidden < 1:
            raise ValueError(f"need g_embed_weight, w_enc_feature, score_weight >= 0 and dzz_hidden >= 1; got "
                             f"{self.g_embed_weight}, {self.w_enc_feature}, {self.score_weight}, {self.dzz_hidden}")

    def build(self, input_shape: tuple[int, ...]) -> None:
        c, s, _ = input_shape
        extra: dict[str, nn.Module] = {"EG": self._encoder(c, s), "ER": self._encoder(c, s)}
        if self.use_dxx:  # (B, 2C, S, S) pair -> (B, 1) logit
            extra["Dxx"] = ConvEncoder(s, 2 * c, 1, width=self.width, max_width=self.max_width, norm="none")
        if self.use_dzz:  # (B, 2L) pair -> (B, 1) logit
            extra["Dzz"] = mlp(2 * self.latent_dim, self.dzz_hidden, 1, layers=3)
        self._build_nets(input_shape, extra, averaged=("G", "D", "EG", "ER"))
        self.opt_eg_ = self._adam("EG", self.lr_e)
        self.opt_er_ = self._adam("ER", self.lr_e)
        if self.use_dxx:
            self.opt_dxx_ = self._adam("Dxx", self.lr_dxz)
        if self.use_dzz:
            self.opt_dzz_ = self._adam("Dzz", self.lr_dxz)

    def _pair_d_step(self, name: str, opt: torch.optim.Optimizer, a: Tensor, rec: Tensor) -> float:
        """One BCE update of D_xx / D_zz: the pair (a, a) is real, (a, rec) fake. IN (losses.py rule 2): one noisy copy
        of ``a`` fills both halves of the real pair and the first of the fake one."""
        Dp, an = self.nets_[name], self.d_input(a)
        loss = (self.d_loss(Dp(torch.cat([an, an], 1)), real=True)
                + self.d_loss(Dp(torch.cat([an, self.d_input(rec.detach())], 1)), real=False))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    def _pair_fool(self, name: str, real_pair: Tensor, fake_pair: Tensor) -> Tensor:
        """The encoder's adversarial term (reference): BCE with inverted hard labels, real pair -> 0, fake pair -> 1."""
        Dp = self.nets_[name]
        return adversarial_loss(Dp(real_pair), 0.0, "bce") + adversarial_loss(Dp(fake_pair), 1.0, "bce")

    def _encoder_g_step(self, x: Tensor) -> dict[str, float]:
        EG, G, D = self.nets_["EG"], self.net("G"), self.net("D")
        self._frozen(G, D)
        x_g = G(EG(x))  # (B, C, S, S) = G(E_G(x))
        with torch.no_grad():
            ae = D(x)[1]  # (B, C, S, S) = AE_D(x)
        loss_rec, loss_f = l2(x_g, x).mean(), l2(ae, D(x_g)[1]).mean()
        loss = loss_rec + self.w_enc_feature * loss_f
        if self.use_dxx:
            loss = loss + self._pair_fool("Dxx", torch.cat([x, x], 1), torch.cat([x, x_g], 1))
        self.opt_eg_.zero_grad(set_to_none=True)
        loss.backward(inputs=list(EG.parameters()))
        self.opt_eg_.step()
        self._ema_step("EG")
        out = {"eg": loss.item(), "eg_rec": loss_rec.item(), "eg_feat": loss_f.item()}
        if self.use_dxx:
            out["dxx"] = self._pair_d_step("Dxx", self.opt_dxx_, x, x_g)
        return out

    def _encoder_r_step(self, x: Tensor) -> dict[str, float]:
        ER, EG, G = self.nets_["ER"], self.net("EG"), self.net("G")
        self._frozen(EG, G)
        with torch.no_grad():
            z = EG(x)  # (B, L) = E_G(x)
            x_g = G(z)  # (B, C, S, S)
        z_r = ER(x_g)  # (B, L) = E_R(G(E_G(x)))
        loss_rec = l2(z_r, z).mean()
        loss = loss_rec
        if self.use_dzz:
            loss = loss + self._pair_fool("Dzz", torch.cat([z, z], 1), torch.cat([z, z_r], 1))
        self.opt_er_.zero_grad(set_to_none=True)
        loss.backward(inputs=list(ER.parameters()))
        self.opt_er_.step()
        self._ema_step("ER")
        out = {"er": loss.item(), "er_rec": loss_rec.item()}
        if self.use_dzz:
            out["dzz"] = self._pair_d_step("Dzz", self.opt_dzz_, z, z_r)
        return out

    def score_terms(self, x: Tensor) -> dict[str, Tensor]:
        EG, ER, G, D = self.net("EG"), self.net("ER"), self.net("G"), self.net("D")
        z = EG(x)  # (B, L) = E_G(x)
        x_g = G(z)  # x~ = G(E_G(x))
        image, latent = l2(x, x_g), l2(z, ER(x_g))
        terms = {"image": image, "latent": latent, "comb": image + self.score_weight * latent, "rec": x_g}
        if self.score == "energy":
            ae = D(x)[1]
            terms.update(energy=energy(x, ae), rec=ae)
        return terms
