"""The scikit-learn and PyOD faces of a detector: validated parameters, tags, and PyOD's labels / probabilities.

Mixed into :class:`anogen.detector.Detector`, whose dataclass fields are the parameters; this mixin relies on its
``field_names``, ``decision_function``, ``decision_scores_``, ``threshold_`` and ``contamination``.

- scikit-learn: ``get_params(deep=True)``, ``set_params`` (validated, rolled back when a value is refused),
  ``sklearn.base.clone`` works, ``__sklearn_tags__`` says "outlier detector" (vectors accepted where the detector
  takes them), ``__sklearn_is_fitted__``. Labels and the sign of ``decision_function`` are PyOD's, not
  scikit-learn's: 1 = anomaly, 0 = normal, higher score = more anomalous (scikit-learn's outlier detectors predict
  -1 / 1 and score the other way round).
- Parameter domains (:mod:`anogen.params`): every class declares ``param_domains`` for its own fields; the merged
  dict is checked for every field when a detector is created and when ``set_params`` is called, before the class's
  own cross-field checks in ``__post_init__``. A subclass's ``__post_init__`` is wrapped (``__init_subclass__``) so
  that the generic check runs first even where the method's ``__post_init__`` does not call ``super()``.
- PyOD (``pyod.models.base.BaseDetector``): ``labels_`` (training labels against ``threshold_``), ``fit_predict``,
  ``predict_proba(method="linear" | "unify")`` and ``predict_confidence``, with PyOD's definitions:
  "linear" min-max scales a score with the training scores' min and max and clips to [0, 1]; "unify" is Kriegel et
  al.'s Gaussian scaling (SDM 2011, "Interpreting and unifying outlier scores"), erf((s - mu) / (sigma sqrt 2))
  clipped to [0, 1], mu / sigma the mean / standard deviation of the training scores; ``predict_confidence`` is
  ExCeeD (Perini, Vercruyssen, Davis, ECML-PKDD 2020): with n training scores and k of them <= s, the outlier
  probability p = (1 + k) / (2 + n), and the confidence that x is an anomaly is
  P(Binomial(n, p) > n - floor(n * contamination)); for a point predicted normal it is one minus that.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Any, ClassVar

import numpy as np

from anogen.params import Domain, ParameterError, check_all

PROBA_METHODS = ("linear", "unify")


def not_fitted(cls: type[Exception], msg: str) -> Exception:
    """An instance of ``cls`` (anogen's NotFittedError) that is also scikit-learn's NotFittedError where scikit-learn
    is loaded (so ``check_is_fitted`` users catch it), without importing scikit-learn otherwise."""
    if "sklearn.exceptions" in sys.modules:
        return _with_sklearn(cls)(msg)
    return cls(msg)


@functools.cache
def _with_sklearn(cls: type[Exception]) -> type[Exception]:
    from sklearn.exceptions import NotFittedError

    return type(cls.__name__, (cls, NotFittedError), {"__module__": cls.__module__, "__doc__": cls.__doc__})


class EstimatorAPI:
    """scikit-learn / PyOD methods shared by every detector (see the module docstring)."""

    param_domains: ClassVar[dict[str, Domain]] = {}
    """domain of each field this class declares (merged along the class hierarchy by :meth:`domains`)"""
    _estimator_type: ClassVar[str] = "outlier_detector"  # scikit-learn < 1.6 reads this instead of the tags

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__post_init__")
        if own is None or getattr(own, "_checks_domains", False):
            return

        def __post_init__(self: Any) -> None:
            self.check_params()  # every field in its domain first, then the class's own cross-field rules
            own(self)

        __post_init__._checks_domains = True  # type: ignore[attr-defined]
        __post_init__.__doc__ = own.__doc__
        __post_init__.__wrapped__ = own  # type: ignore[attr-defined]
        cls.__post_init__ = __post_init__  # type: ignore[attr-defined]

    def __post_init__(self) -> None:
        self.check_params()

    # ------------------------------------------------------------------ parameters
    @classmethod
    def domains(cls) -> dict[str, Domain]:
        """The domain of every field, merged from the ``param_domains`` of the class and its bases."""
        out: dict[str, Domain] = {}
        for klass in reversed(cls.__mro__):
            out.update(klass.__dict__.get("param_domains", {}))
        return out

    def check_params(self) -> None:
        """Raise :class:`anogen.params.ParameterError` for the first field outside its domain."""
        names = self.field_names()  # type: ignore[attr-defined]
        check_all(getattr(self, "name", type(self).__name__), {f: getattr(self, f) for f in names}, self.domains())

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyperparameters as a dict (scikit-learn's ``get_params``; no field holds an estimator, so ``deep``
        changes nothing)."""
        return {f: getattr(self, f) for f in self.field_names()}  # type: ignore[attr-defined]

    def set_params(self, **params: Any) -> Any:
        """Set hyperparameters (scikit-learn's ``set_params``), checked like at creation; returns ``self``.

        Raises:
            ParameterError: an unknown name, or a value outside its domain (nothing is changed then).
        """
        names = self.field_names()  # type: ignore[attr-defined]
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise ParameterError(f"{self.name} has no parameter(s) {unknown}; its parameters are: "  # type: ignore
                                 f"{', '.join(names)}")
        old = {k: getattr(self, k) for k in params}
        for k, v in params.items():
            setattr(self, k, v)
        try:
            self.__post_init__()  # type: ignore[misc]
        except BaseException:
            for k, v in old.items():
                setattr(self, k, v)
            raise
        return self

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import InputTags, Tags, TargetTags

        vectors = getattr(self, "input_kind", "image") != "image"
        return Tags(estimator_type="outlier_detector", target_tags=TargetTags(required=False),
                    input_tags=InputTags(two_d_array=vectors, three_d_array=not vectors), requires_fit=True)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "threshold_")

    # ------------------------------------------------------------------ pickle (joblib, GridSearchCV(n_jobs=...))
    def __getstate__(self) -> dict[str, Any]:
        """The instance dict with ``nets_`` as its state dict (spectral-norm parametrizations do not pickle); caches,
        optimizers and lazily loaded modules outside ``nets_`` are left out (rebuilt by ``build`` / on use), so a
        pickled detector scores exactly as before but does not resume training."""
        import torch

        state = {}
        for k, v in self.__dict__.items():
            if isinstance(v, torch.optim.Optimizer) or k == "_inference_view":
                continue
            if k.startswith("_") and isinstance(v, torch.nn.Module):
                continue
            state[k] = v
        if "nets_" in state:
            state["nets_"] = {k: t.detach().cpu() for k, t in state["nets_"].state_dict().items()}
        return state

    def __copy__(self) -> Any:
        """A plain shallow copy (the instance dict, values shared), as without ``__getstate__`` (the cached
        inference view of :mod:`anogen.inference` is one)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __setstate__(self, state: dict[str, Any]) -> None:
        nets = state.pop("nets_", None)
        self.__dict__.update(state)
        if nets is None:
            return
        self.build(self.input_shape_)  # type: ignore[attr-defined]
        self.__dict__.update(state)  # what build reset (training state) comes back as it was
        if not hasattr(self, "nets_"):
            import torch

            self.nets_ = torch.nn.ModuleDict()
        self.nets_.load_state_dict(nets)
        self.nets_.to(self._device()).eval()  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ PyOD
    @property
    def labels_(self) -> np.ndarray:
        """(N,) training labels in {0, 1}: 1 where a training score exceeds ``threshold_`` (PyOD's ``labels_``)."""
        self._check_fitted()  # type: ignore[attr-defined]
        return (np.asarray(self.decision_scores_) > self.threshold_).astype(np.int64)  # type: ignore[attr-defined]

    def fit_predict(self, x: Any, y: Any = None, **fit_kwargs: Any) -> np.ndarray:
        """``fit(x, y, **fit_kwargs)``, then the training labels ``labels_`` (PyOD's and scikit-learn's)."""
        return self.fit(x, y, **fit_kwargs).labels_  # type: ignore[attr-defined]

    def predict_proba(self, x: Any, method: str = "linear") -> np.ndarray:
        """(N, 2) [P(normal), P(anomaly)] with PyOD's definitions (module docstring): ``"linear"`` min-max scaling
        by the training scores, or ``"unify"`` (Gaussian scaling). Rows sum to 1; the anomaly column is in [0, 1]."""
        if method not in PROBA_METHODS:
            raise ParameterError(f"predict_proba: method={method!r} is outside its domain: one of "
                                 f"{', '.join(repr(m) for m in PROBA_METHODS)}")
        s = self.decision_function(x)  # type: ignore[attr-defined]
        train = np.asarray(self.decision_scores_, dtype=np.float64)  # type: ignore[attr-defined]
        if method == "linear":
            lo, span = train.min(), train.max() - train.min()
            p = (s - lo) / (span if span > 0 else 1.0)
        else:
            from scipy.special import erf

            sigma = train.std()
            p = erf((s - train.mean()) / ((sigma if sigma > 0 else 1.0) * math.sqrt(2.0)))
        p = np.clip(p, 0.0, 1.0)
        return np.stack([1.0 - p, p], axis=1)

    def predict_confidence(self, x: Any) -> np.ndarray:
        """(N,) confidence in [0, 1] of each ``predict`` label (ExCeeD, as PyOD's ``predict_confidence``)."""
        return self.confidence_of(self.decision_function(x))  # type: ignore[attr-defined]

    def confidence_of(self, s: np.ndarray) -> np.ndarray:
        """ExCeeD confidence (N,) of the labels of scores ``s`` (see :meth:`predict_confidence`)."""
        from scipy.stats import binom

        train = np.sort(np.asarray(self.decision_scores_, dtype=np.float64))  # type: ignore[attr-defined]
        n = len(train)
        k = np.searchsorted(train, s, side="right")  # training scores <= s
        p_out = (1.0 + k) / (2.0 + n)  # Bayesian outlier probability (uniform prior)
        conf = 1.0 - binom.cdf(n - int(n * self.contamination), n, p_out)  # type: ignore[attr-defined]
        anomalous = s > self.threshold_  # type: ignore[attr-defined]
        return np.where(anomalous, conf, 1.0 - conf)
