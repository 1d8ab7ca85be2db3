"""ENCEBGAN of the Ozgumus thesis: EBGAN (``ebgan.py``), then an encoder E trained to invert the frozen G.

Paper: Y. Ozgumus, "Adversarially Learned Anomaly Detection Using Generative Adversarial Networks", MSc thesis,
Politecnico di Milano 2019 (``papers/003_5d7919a1dbf94176.txt``): Fig. 46 and Appendix A.6 (architecture and hyperparameters);
chapters 4.2.3-4.3 (the model and its anomaly score) are unfinished in the thesis, so what the text leaves out comes
from the thesis code, ``yigitozgumus/Polimi_Thesis`` (``models/new/encebgan.py``, ``configs/new/*.json``, the
trainers; ``research/reference-implementations.md`` section 9). A change of EBGAN: the base class, the losses and the
stage / EMA machinery are imported from ``ebgan.py``, whose docstring lists the choices the family shares (margin
hinge, pulling-away term, updates per batch, stages, frozen networks, EMA, architecture, hyperparameters, tricks).

- Stage 1 trains EBGAN; stage 2 freezes G and D and trains an encoder E to invert G with
  ||G(E(x)) - x||_2 + w_enc_feature * ||Enc_D(x) - Enc_D(G(E(x)))||_2 (reference). Score: 0.55 ||x - G(E(x))||_2 +
  0.45 ||AE_D(G(E(x))) - AE_D(x)||_2, AE_D = Dec_D o Enc_D.

Deviations / choices of its own:

- Scores (reference test graph; thesis 4.2.4 is empty), each selectable by ``score``, x~ = G(E(x)): ``image`` =
  ||x - x~||_2, ``feature`` = ||AE_D(x~) - AE_D(x)||_2, ``embedding`` = ||Enc_D(x~) - Enc_D(x)||_2, ``comb``
  (default) = (1 - score_weight) image + score_weight feature, score_weight = 0.45, and ``energy`` = D(x) (ours).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from anogen._registry import register
from anogen.detectors.ebgan import PRESETS, EBGANBase, energy, l2
from anogen.params import integer, non_negative, one_of, positive, tuple_of, unit_interval

__all__ = ["ENCEBGAN", "PRESETS"]


# ---------------------------------------------------------------------------------------------------- ENCEBGAN
@register("encebgan")
@dataclass(kw_only=True)
class ENCEBGAN(EBGANBase):
    """ENCEBGAN (thesis Fig. 46, Appendix A.6): EBGAN, then an encoder E trained to invert the frozen G."""

    epochs: int = 50
    """training epochs of all stages together (Table A6: 50), split by stage_epochs"""
    stage_epochs: tuple[int, int] = (100, 400)
    """relative lengths of the stages (GAN, encoder): the reference's epoch counts; epochs is split in proportion"""
    lr_e: float = 5e-5
    """Adam learning rate of the encoder E (Table A6)"""
    w_enc_feature: float = 0.4
    """weight of E's feature loss ||Enc_D(x) - Enc_D(G(E(x)))||_2 (reference encoder_f_factor)"""
    score: str = "comb"
    """anomaly score: comb, image, feature, embedding or energy"""
    score_weight: float = 0.45
    """weight w of the feature term in comb = (1 - w) image + w feature (reference feature_match_weight)"""

    SCORES: ClassVar[tuple[str, ...]] = ("comb", "image", "feature", "embedding", "energy")
    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "score": one_of(SCORES), "stage_epochs": tuple_of(2, integer(1)), "lr_e": positive(),
        "w_enc_feature": non_negative(), "score_weight": unit_interval(),
    }
    STAGES: ClassVar[tuple[str, ...]] = ("gan", "encoder")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.w_enc_feature < 0 or not 0 <= self.score_weight <= 1:
            raise ValueError(f"need w_enc_feature >= 0 and 0 <= score_weight <= 1; got {self.w_enc_feature}, "
                             f"{self.score_weight}")

    def build(self, input_shape: tuple[int, ...]) -> None:
        c, s, _ = input_shape
        self._build_nets(input_shape, {"E": self._encoder(c, s)}, averaged=("G", "D", "E"))
        self.opt_e_ = self._adam("E", self.lr_e)

    def _encoder_step(self, x: Tensor) -> dict[str, float]:
        E, G, D = self.nets_["E"], self.net("G"), self.net("D")
        self._frozen(G, D)
        x_g = G(E(x))  # (B, C, S, S) = G(E(x))
        with torch.no_grad():
            emb = D.enc(x)  # (B, L) = Enc_D(x)
        loss_rec, loss_f = l2(x_g, x).mean(), l2(emb, D.enc(x_g)).mean()
        loss_e = loss_rec + self.w_enc_feature * loss_f
        self.opt_e_.zero_grad(set_to_none=True)
        loss_e.backward(inputs=list(E.parameters()))  # G and D stay frozen
        self.opt_e_.step()
        self._ema_step("E")
        return {"e": loss_e.item(), "e_rec": loss_rec.item(), "e_feat": loss_f.item()}

    def score_terms(self, x: Tensor) -> dict[str, Tensor]:
        E, G, D = self.net("E"), self.net("G"), self.net("D")
        x_g = G(E(x))  # x~ = G(E(x))
        emb, ae = D(x)
        emb_g, ae_g = D(x_g)
        image, feature = l2(x, x_g), l2(ae_g, ae)
        return {
            "image": image, "feature": feature, "embedding": l2(emb_g, emb), "energy": energy(x, ae),
            "comb": (1 - self.score_weight) * image + self.score_weight * feature,
            "rec": ae if self.score == "energy" else x_g,
        }
