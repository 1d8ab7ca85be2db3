"""ONNX export of a fitted detector's scoring graph, preprocessing inside (``pip install anogen[export]``).

The graph is what :meth:`Detector.decision_function` computes after decoding, channel mapping and resizing:

- input ``images``: float32 (N, C, S, S) pixel values in [0, 1] at the model's size S = ``image_size`` and channel
  count C = ``channels`` (decode, map channels and resize beforehand, e.g. with PIL: ``np.asarray(img.resize((S, S),
  Image.BILINEAR), np.float32) / 255``, moved to channels-first). The declared normalisation (``tanh``: 2x - 1,
  ``imagenet``: mean / std, ``unit``: none), a frozen feature backbone (``embed``) and patch-mode sliding windows
  (image score = its highest window score) are inside the graph. Resizing is not: PyTorch's antialiased
  bilinear / bicubic resize (what :mod:`anogen.data.transforms` uses) has no bit-compatible ONNX Resize, so the graph
  refuses other sizes rather than score differently. For vector models the input is ``vectors``: float32 (N, D).
- outputs ``score`` (N,), higher = more anomalous, and, where the detector has per-pixel maps, ``anomaly_map``
  (N, S, S). Compare ``score`` with the ``threshold`` in the model's metadata (``anogen.threshold``; label 1 when
  score > threshold, as :meth:`Detector.predict`).
- metadata (``session.get_modelmeta().custom_metadata_map``): ``anogen.detector``, ``anogen.threshold``,
  ``anogen.input``, ``anogen.preprocess``, ``anogen.version``, ``anogen.config``.

Spectral-norm weights are frozen to their eval-mode value (:func:`anogen.inference.frozen_copy`), so the graph holds
plain convolutions. Tolerance: :data:`EXPORT_RTOL` relative to the score scale, checked at export time on random
inputs when onnxruntime is installed (float32 kernels of two runtimes agree to about 1e-6 relative).

Not exportable, with the reason in the error: methods whose scoring is an optimisation (``grad_at_scoring``: AnoGAN's
latent search by gradient descent) and methods declaring ``onnx_unsupported`` (Isolation Forest: a data-dependent
walk down every tree). The GMM's closed-form score exports (float64 inside).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

EXPORT_RTOL = 1e-4
"""|onnxruntime score - decision_function score| <= EXPORT_RTOL * max(|score|.max(), score.std()) (same for maps)."""

FORMATS = ("onnx",)


class ExportError(ValueError):
    """A detector (or configuration) whose scoring cannot be written as a fixed graph, or a failed export."""


def export_onnx(det: Any, path: str | Path, *, maps: bool | None = None, opset: int | None = None,
                check: bool = True) -> Path:
    """Write ``det``'s scoring graph to ``path`` (one self-contained .onnx file); returns the path.

    Args:
        det: a fitted detector.
        path: output file.
        maps: add the ``anomaly_map`` output (None: where the detector has maps; True: an error where it has none).
        opset: ONNX opset (default: the exporter's).
        check: when onnxruntime is installed, score random inputs with both and raise if they differ by more than
            :data:`EXPORT_RTOL`.
    """
    det._check_fitted()
    why = unsupported(det)
    if why:
        raise ExportError(f"{det.name} cannot be exported to ONNX: {why}")
    has_maps = det.has_anomaly_maps()
    if maps and not has_maps:
        raise ExportError(f"{det.name} has no anomaly maps to export (no map_batch and patch_size=0)")
    if det.input_kind_ == "image" and det._has_embed():  # load lazy parts (a backbone) so the graph registers them
        c, side = det.preprocess.channels, det.image_size
        det.decision_function(torch.rand(1, c, side, side, generator=torch.Generator().manual_seed(0)))
    graph = ScoringGraph(det, maps=has_maps if maps is None else bool(maps))
    example = graph.example_input(2, seed=det.seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = ["score"] + (["anomaly_map"] if graph.maps else [])
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress
            torch.onnx.export(
                graph, (example,), str(path), dynamo=True, input_names=[graph.input_name], output_names=names,
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), opset_version=opset, external_data=False,
                verbose=False,
            )
    except Exception as e:  # the exporter wraps the cause; its summary line says what could not be traced
        path.unlink(missing_ok=True)
        text = str(e)
        m = re.search(r"Exception summary\s*\n+(.+)", text)
        why = m.group(1) if m else next((ln for ln in text.splitlines() if ln.strip()), type(e).__name__)
        raise ExportError(f"{det.name}: torch.onnx.export failed: {why.strip()[:400]}") from e
    _write_metadata(path, det, graph)
    if check:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return path
        x = graph.example_input(5, seed=det.seed + 1)
        ref = reference_outputs(det, x, graph.maps)
        got = run_onnx(path, x.numpy())
        for key, want in ref.items():
            err, scale = _rel_error(got[key], want)
            if err > EXPORT_RTOL * scale:
                path.unlink(missing_ok=True)
                raise ExportError(f"{det.name}: onnxruntime's {key} differs from decision_function by {err:.3g} "
                                  f"(> {EXPORT_RTOL} x scale {scale:.3g}); the export is not trustworthy")
    return path


def unsupported(det: Any) -> str | None:
    """Why ``det``'s scoring is not a fixed graph, or None when it can be exported."""
    cls = type(det)
    if getattr(cls, "grad_at_scoring", False):
        return "its score is an optimisation run at scoring time (gradient steps on a latent code), not a fixed graph"
    reason = getattr(cls, "onnx_unsupported", None)
    return reason or None


class ScoringGraph(nn.Module):
    """``det``'s preprocessing (after resizing) and scoring as one module: unit images (N, C, S, S) -> score (N,)
    [, anomaly_map (N, S, S)]; for vector models (N, D) -> score (N,)."""

    def __init__(self, det: Any, *, maps: bool = False) -> None:
        super().__init__()
        from anogen.inference import frozen_copy

        view = copy.copy(det)  # the detector's methods, with nets whose spectral norm is a plain weight
        view.__dict__.pop("_inference_view", None)
        with torch.inference_mode(False), torch.no_grad():
            view.nets_ = frozen_copy(det.nets_)
        self.nets = view.nets_  # registered, so the exporter sees the weights as parameters
        for k, v in list(vars(view).items()):  # e.g. a frozen backbone outside nets_
            if isinstance(v, nn.Module) and v is not view.nets_:
                self.add_module("extra" + k.strip("_").replace(".", "_"), v)
        self.view = view
        self.maps = maps
        self.vector = det.input_kind_ == "vector"
        self.input_name = "vectors" if self.vector else "images"
        s = det.image_size
        self.input_shape = tuple(det.input_shape_) if self.vector else (det.preprocess.channels, s, s)
        if det.patch_size > 0 and not self.vector:
            from anogen.detector import window_starts

            h, w, p = *det.image_shape_[1:], det.patch_size
            self.tops = torch.tensor(window_starts(h, p, det.patch_stride))
            self.lefts = torch.tensor(window_starts(w, p, det.patch_stride))
            ar = torch.arange(p)
            rows, cols = self.tops[:, None] + ar, self.lefts[:, None] + ar  # (ny, p), (nx, p)
            self.pix = (rows[:, None, :, None] * w + cols[None, :, None, :]).reshape(-1)  # (n_win p p,) pixel ids
            self.count = torch.bincount(self.pix, minlength=h * w).double()  # (H W,) windows covering each pixel
        self.eval()

    def example_input(self, n: int, seed: int = 0) -> Tensor:
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(n, *self.input_shape, generator=g)
        return x  # unit images (any value in [0, 1] is a valid image) or vectors

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        v = self.view
        if self.vector:
            outs = [v.score_batch(x)]
            return tuple(outs + [v.map_batch(x)] if self.maps else outs)
        x = v.preprocess._normalize(x)  # the declared normalisation, exactly as at fit / scoring
        if v.patch_size > 0:
            return self._patches(x)
        if v._has_embed():  # images through the frozen backbone (vector inputs skip it, as in Detector._prepare)
            x = v.embed(x)
        outs = [v.score_batch(x)]
        if self.maps:
            outs.append(v.map_batch(x))
        return tuple(outs)

    def _patches(self, x: Tensor) -> tuple[Tensor, ...]:
        """Patch mode (Detector's sliding windows): score = highest window score; maps = mean over overlaps."""
        from anogen.detector import Detector, sliding_windows

        v, p = self.view, self.view.patch_size
        n_win = len(self.tops) * len(self.lefts)
        w = sliding_windows(x, self.tops, self.lefts, p)  # (N * n_win, C, p, p)
        if v._has_embed():
            w = v.embed(w)
        s = v.score_batch(w).reshape(-1, n_win)  # (N, n_win)
        outs = [s.amax(1)]
        if self.maps:  # as Detector._patch_maps: sum over the windows covering a pixel / their count
            h, wd = x.shape[-2:]
            if type(v).map_batch is not Detector.map_batch:
                vals = v.map_batch(w).double().reshape(-1, n_win * p * p)  # (N, n_win p p) per-pixel maps
            else:
                vals = s.double().reshape(-1, n_win, 1).expand(-1, -1, p * p).reshape(-1, n_win * p * p)
            acc = torch.zeros(vals.shape[0], h * wd, dtype=torch.float64).index_add(1, self.pix, vals)
            outs.append((acc / self.count).float().reshape(-1, h, wd))
        return tuple(outs)


def reference_outputs(det: Any, x: Tensor, maps: bool) -> dict[str, np.ndarray]:
    """What anogen itself gives for the graph input ``x`` (unit images or vectors): scores [and maps]."""
    out = {"score": det.decision_function(x)}
    if maps:
        out["anomaly_map"] = det.anomaly_maps(x)
    return out


def run_onnx(path: str | Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Outputs of the exported graph in onnxruntime (CPU) for the input array ``x``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    outs = sess.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})
    return {o.name: v for o, v in zip(sess.get_outputs(), outs)}


def _rel_error(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return float("inf"), 1.0
    scale = max(float(np.abs(want).max()), float(want.std()), 1e-12)
    return float(np.abs(got - want).max()), scale


def _write_metadata(path: Path, det: Any, graph: ScoringGraph) -> None:
    import onnx

    from anogen._util import __version__
    from anogen._util import params_jsonable as _jsonable

    model = onnx.load(str(path))
    if graph.vector:
        desc = f"vectors: float32 (N, {graph.input_shape[0]}) feature vectors"
    else:
        c, s, _ = graph.input_shape
        desc = (f"images: float32 (N, {c}, {s}, {s}) pixel values in [0, 1], channels first, already resized to "
                f"{s}x{s} (the model's image_size) and mapped to {c} channel(s); normalisation "
                f"({det.normalize}) is inside the graph")
    props = {
        "anogen.detector": det.name, "anogen.threshold": repr(float(det.threshold_)), "anogen.input": desc,
        "anogen.outputs": "score (N,) higher = more anomalous; label = score > threshold"
                          + ("; anomaly_map (N, H, W)" if graph.maps else ""),
        "anogen.preprocess": json.dumps(det.preprocess.to_dict()), "anogen.version": __version__,
        "anogen.config": json.dumps(_jsonable(det.get_params())),
    }
    onnx.helper.set_model_props(model, props)
    model.doc_string = f"anogen {det.name} scoring graph ({desc})"
    onnx.save(model, str(path))
