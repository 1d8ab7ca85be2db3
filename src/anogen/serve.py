"""HTTP scoring service: ``anogen serve MODEL`` (FastAPI + uvicorn; ``pip install anogen[serve]``).

Endpoints:

- ``POST /score`` -- one or many inputs in one request, as

  * ``multipart/form-data``: every file part is one image file (any field name; ``curl -F files=@a.png -F
    files=@b.png``), decoded by :func:`anogen.data.io.decode_image` exactly as ``anogen score`` reads files;
  * ``application/json``: ``{"images": [IMAGE, ...]}`` with each IMAGE a nested array (H, W) or (H, W, C), integers
    0-255 or floats in [0, 1] (the rules of :mod:`anogen.data.transforms`), or ``{"vectors": [[...], ...]}`` for
    models of feature vectors.

  Query ``?maps=true`` (or ``"maps": true`` in the JSON) adds per-pixel anomaly maps for detectors that have them.
  Answer: ``{"scores": [...], "labels": [...], "threshold": t, "detector": name, "n": N[, "anomaly_maps": [...]]}``;
  labels are 1 where score > threshold, as :meth:`Detector.predict`. Every input is resized / normalised by the model's
  saved preprocessing, as :meth:`Detector.decision_function` does.
- ``GET /`` -- a web page (``static/index.html``: plain HTML and a little JavaScript): drop or choose images, see each
  one's score against the threshold, its label and its anomaly map over the image, and the model's name, settings
  and health (where the model carries one). The page holds no data; it calls ``/model`` and ``/score`` with the
  bearer token, which it asks for when the service has one.
- ``GET /health`` -- liveness and counters (requests, scoring calls, images, largest group); never needs the token.
- ``GET /model`` -- detector, config, threshold, preprocessing, input shape, training statistics, versions, limits.

Errors are 4xx with ``{"detail": message}`` and never a stack trace: 400 for an input the model cannot take (the
:class:`~anogen.InputError` message: undecodable / truncated image, wrong channel count, NaN, wrong vector length,
values out of range), 401 for a missing or wrong bearer token (when the service has one), 413 for a body over
``max_bytes``, more than ``max_batch`` inputs in one request or an image over ``max_pixels`` (checked from the file
header before decoding), 415 for another content type.

Batching: decoding and preprocessing run per request in worker threads; the preprocessed tensors then wait in one
queue, and a single scoring thread takes everything queued (up to ``max_batch`` inputs), waits up to
``batch_wait_ms`` for more, and scores the group in one call (one ``torch.cat``; the same scores as scoring each
request alone, up to float rounding of batched kernels). Scoring is the detector's fast path
(:mod:`anogen.inference`), and the opt-in :meth:`Detector.optimize` with ``fast=True``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Request  # module level: FastAPI resolves the endpoints' annotations in this namespace
from fastapi.responses import HTMLResponse, JSONResponse

DEFAULT_MAX_BYTES = 32 * 2**20
DEFAULT_MAX_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class Limits:
    """What one request may hold."""

    max_batch: int = 64
    """most inputs in one request, and most inputs scored in one call (requests are grouped up to it)"""
    max_bytes: int = DEFAULT_MAX_BYTES
    """largest request body in bytes"""
    max_pixels: int = DEFAULT_MAX_PIXELS
    """largest image, width x height, before resizing"""
    batch_wait_ms: float = 2.0
    """how long a scoring call waits for more requests to group with the first one"""

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_bytes < 1 or self.max_pixels < 1 or self.batch_wait_ms < 0:
            raise ValueError(f"limits must be positive (batch_wait_ms >= 0); got {self}")


class RequestError(Exception):
    """A client error: HTTP ``status`` with a one-line ``detail``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


# ---------------------------------------------------------------------------------------------------- batching
@dataclass
class _Job:
    x: torch.Tensor  # preprocessed inputs of one request
    maps: bool
    future: asyncio.Future


class Batcher:
    """Groups the preprocessed inputs of concurrent requests into one scoring call on a single worker thread."""

    def __init__(self, det: Any, max_batch: int, wait_s: float) -> None:
        self.det, self.max_batch, self.wait_s = det, max_batch, wait_s
        self.stats = {"requests": 0, "scoring_calls": 0, "images": 0, "largest_group": 0}
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._carry: _Job | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="anogen-score")

    async def score(self, x: torch.Tensor, maps: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores (n,) [and maps (n, H, W)] of the preprocessed inputs ``x`` (n, ...)."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._queue, self._carry = asyncio.Queue(), None  # started lazily, in the loop that serves
            self._task = loop.create_task(self._run())
        job = _Job(x, maps, loop.create_future())
        await self._queue.put(job)
        return await job.future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _gather(self) -> list[_Job]:
        assert self._queue is not None
        first = self._carry or await self._queue.get()
        self._carry = None
        group, n = [first], len(first.x)
        deadline = time.monotonic() + self.wait_s
        while n < self.max_batch:
            try:
                job = self._queue.get_nowait()  # whatever queued while the last group was scored
            except asyncio.QueueEmpty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), left)
                except asyncio.TimeoutError:
                    break
            if n + len(job.x) > self.max_batch:
                self._carry = job  # starts the next group
                break
            group.append(job)
            n += len(job.x)
        return group

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = await self._gather()
            live = [j for j in group if not j.future.done()]  # a client that went away is not scored
            if not live:
                continue
            try:
                results: list[Any] = await loop.run_in_executor(self._pool, self._score_group, live)
            except Exception:  # noqa: BLE001 - e.g. non-finite scores: retry one by one, so only its request fails
                results = []
                for j in live:
                    try:
                        results.append((await loop.run_in_executor(self._pool, self._score_group, [j]))[0])
                    except Exception as e:  # noqa: BLE001 - handed to the request that caused it
                        results.append(e)
            for j, r in zip(live, results):
                if j.future.done():
                    continue
                if isinstance(r, BaseException):
                    j.future.set_exception(r)
                else:
                    j.future.set_result(r)

    def _score_group(self, group: list[_Job]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        det = self.det
        x = torch.cat([j.x for j in group]) if len(group) > 1 else group[0].x
        scores = det._score_prepared(x)  # the decision_function path after preprocessing (anogen.inference)
        want = [j.maps for j in group]
        maps = None
        if any(want):
            xm = torch.cat([j.x for j in group if j.maps])
            maps = det._maps_prepared(xm)
        out, i, k = [], 0, 0
        for j in group:
            n = len(j.x)
            m = None
            if j.maps:
                m, k = maps[k : k + n], k + n
            out.append((scores[i : i + n], m))
            i += n
        s = self.stats
        s["scoring_calls"] += 1
        s["requests"] += len(group)
        s["images"] += len(x)
        s["largest_group"] = max(s["largest_group"], len(x))
        return out


# ---------------------------------------------------------------------------------------------------- inputs
def _image_size(data: bytes, name: str) -> tuple[int, int] | None:
    """(width, height) from the file header, without decoding pixels; None if Pillow cannot tell."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # noqa: BLE001 - decode_image gives the proper error for what it cannot read
        return None


def decode_files(files: list[tuple[str, bytes]], limits: Limits) -> list[np.ndarray]:
    """Image files (name, bytes) -> arrays, with the pixel limit checked from each header first."""
    from anogen.data.io import decode_image

    out = []
    for name, data in files:
        size = _image_size(data, name)
        if size is not None and size[0] * size[1] > limits.max_pixels:
            raise RequestError(413, f"image {name} has {size[0]}x{size[1]} = {size[0] * size[1]:,} pixels; this "
                                    f"service takes at most {limits.max_pixels:,} (--max-pixels)")
        out.append(decode_image(data, name))
    return out


def arrays_from_json(payload: Any, det: Any, limits: Limits) -> tuple[Any, bool]:
    """``{"images": [...]}`` or ``{"vectors": [[...]]}`` (+ optional ``"maps"``) -> model input and the maps flag."""
    if not isinstance(payload, dict) or not ({"images", "vectors"} & set(payload)):
        raise RequestError(400, 'expected a JSON object {"images": [IMAGE, ...]} (each image a nested (H, W) or '
                                '(H, W, C) array) or {"vectors": [[...], ...]}')
    maps = payload.get("maps", False)
    if not isinstance(maps, bool):
        raise RequestError(400, f'"maps" must be true or false, got {maps!r}')
    key = "vectors" if "vectors" in payload else "images"
    items = payload[key]
    if not isinstance(items, list) or not items:
        raise RequestError(400, f'"{key}" must be a non-empty list')
    if len(items) > limits.max_batch:
        raise RequestError(413, f"{len(items)} inputs in one request; this service takes at most "
                                f"{limits.max_batch} (--max-batch)")
    kind = det.input_kind_
    if key == "vectors":
        if kind != "vector":
            raise RequestError(400, f'this {det.name} model takes images ("images"), not vectors')
        try:
            return np.asarray(items, dtype=np.float64), maps
        except (ValueError, TypeError) as e:
            raise RequestError(400, f'"vectors" must be a list of equal-length lists of numbers ({e})') from None
    if kind == "vector":
        raise RequestError(400, f'this {det.name} model takes feature vectors ("vectors"), not images')
    arrays = []
    for i, item in enumerate(items):
        try:
            a = np.asarray(item)
        except (ValueError, TypeError) as e:
            raise RequestError(400, f"image {i}: not a rectangular array ({e})") from None
        if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise RequestError(400, f"image {i}: expected numbers in a rectangular (H, W) or (H, W, C) array")
        if a.ndim in (2, 3) and a.shape[0] * a.shape[1] > limits.max_pixels:
            raise RequestError(413, f"image {i} has {a.shape[1]}x{a.shape[0]} pixels; this service takes at most "
                                    f"{limits.max_pixels:,} (--max-pixels)")
        arrays.append(a)
    return arrays, maps


def stack_if_uniform(arrays: list[np.ndarray]) -> Any:
    """One (N, H, W[, C]) batch when all images share shape and dtype (preprocessed in one vectorised pass), else the
    list (each image resized on its own)."""
    if len(arrays) > 1 and len({(a.shape, a.dtype) for a in arrays}) == 1 and arrays[0].ndim in (2, 3):
        return np.stack(arrays)
    if len(arrays) == 1 and arrays[0].ndim in (2, 3):
        return arrays[0][None]
    return arrays


def prepare(det: Any, data: Any) -> torch.Tensor:
    """Preprocess one request's inputs as ``decision_function`` does (InputError for what the config cannot take)."""
    if isinstance(data, list):
        data = stack_if_uniform(data)
    return det._prepare(data)


# ---------------------------------------------------------------------------------------------------- the app
def model_info(det: Any, limits: Limits) -> dict[str, Any]:
    import anogen
    from anogen._util import params_jsonable as _jsonable
    from anogen.inference import options

    meta = getattr(det, "metadata_", {}) or {}
    return {
        "detector": det.name,
        "config": _jsonable(det.get_params()),
        "threshold": det.threshold_,
        "preprocess": det.preprocess.to_dict(),
        "input_kind": det.input_kind_,
        "input_shape": list(det.input_shape_),
        "anomaly_maps": det.has_anomaly_maps(),
        "train_stats": getattr(det, "train_stats_", None),
        "version": {"anogen": anogen.__version__, "model_anogen": meta.get("anogen_version"),
                    "model_format": meta.get("format"), "torch": torch.__version__},
        "fast_inference": options(det),
        "limits": asdict(limits),
        "health": _jsonable(health) if isinstance(health := getattr(det, "health_", meta.get("health")), dict) else None,
    }


def create_app(model: Any, *, token: str | None = None, limits: Limits | None = None, fast: bool = False,
               device: str | None = None) -> Any:
    """The FastAPI app serving ``model`` (a fitted detector or a model file path).

    Args:
        model: a fitted detector, or the path of a saved model.
        token: when given, ``/score`` and ``/model`` need ``Authorization: Bearer TOKEN``.
        limits: request limits and batching (:class:`Limits`).
        fast: score with :meth:`Detector.optimize` (not bit-identical; anogen.inference.FAST_RTOL).
        device: torch device when loading a model file (default: the saved one).
    """
    import anogen

    limits = limits or Limits()
    det = anogen.load(model, device=device) if isinstance(model, (str, Path)) else model
    det._check_fitted()
    if fast:
        det.optimize()
    batcher = Batcher(det, limits.max_batch, limits.batch_wait_ms / 1000.0)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any):  # noqa: ANN202
        yield
        await batcher.close()

    app = FastAPI(title=f"anogen {det.name}", version=anogen.__version__, lifespan=lifespan,
                  description="Anomaly scores from a saved anogen model (higher = more anomalous).")
    app.state.detector, app.state.batcher, app.state.limits = det, batcher, limits

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    def check_token(request: Request) -> None:
        if token is None:
            return
        got = request.headers.get("authorization", "")
        scheme, _, value = got.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise RequestError(401, "missing or wrong bearer token (Authorization: Bearer TOKEN)")

    page = (Path(__file__).parent / "static" / "index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "detector": det.name, **batcher.stats}

    @app.get("/model")
    async def model_endpoint(request: Request) -> dict[str, Any]:
        check_token(request)
        return model_info(det, limits)

    @app.post("/score")
    async def score(request: Request) -> dict[str, Any]:
        check_token(request)
        body = await _read_body(request, limits.max_bytes)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        maps = _flag(request.query_params.get("maps", "false"))
        if ctype == "multipart/form-data":
            files = await _form_files(request, body, limits)
            data: Any = await _in_thread(decode_files, files, limits)
        elif ctype in ("application/json", ""):
            try:
                payload = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise RequestError(400, f"the body is not valid JSON ({e})") from None
            data, json_maps = arrays_from_json(payload, det, limits)
            maps = maps or json_maps
        else:
            raise RequestError(415, f"content type {ctype!r}: send multipart/form-data image files or "
                                    "application/json arrays")
        if maps and not det.has_anomaly_maps():
            raise RequestError(400, f"this {det.name} model has no anomaly maps")
        x = await _in_thread(prepare, det, data)
        try:
            scores, amaps = await batcher.score(x, maps)
        except RuntimeError as e:  # the model, not the request: e.g. non-finite scores from a diverged model
            raise RequestError(500, f"scoring failed: {' '.join(str(e).split())}") from None
        out: dict[str, Any] = {
            "detector": det.name, "n": int(len(scores)), "threshold": det.threshold_,
            "scores": [float(s) for s in scores], "labels": [int(s > det.threshold_) for s in scores],
        }
        if amaps is not None:
            out["anomaly_maps"] = np.asarray(amaps, dtype=np.float32).tolist()
        return out

    return app


async def _in_thread(fn: Any, *args: Any) -> Any:
    """Run blocking input work off the event loop; input errors become 400 with their message."""
    from starlette.concurrency import run_in_threadpool

    try:
        return await run_in_threadpool(fn, *args)
    except RequestError:
        raise
    except (ValueError, OSError) as e:  # InputError (a ValueError) and decoding errors: the client's input
        raise RequestError(400, " ".join(str(e).split()) or type(e).__name__) from None


def _flag(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off", ""):
        return False
    raise RequestError(400, f"maps must be true or false, got {text!r}")


async def _read_body(request: Any, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    too_big = RequestError(413, f"request body over {limit:,} bytes (--max-bytes)")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise too_big
        except ValueError:
            raise RequestError(400, f"bad Content-Length {declared!r}") from None
    chunks, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


async def _form_files(request: Any, body: bytes, limits: Limits) -> list[tuple[str, bytes]]:
    """The file parts of a multipart body already read (``body``), as (file name, bytes)."""
    from starlette.datastructures import UploadFile

    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, receive).form(max_files=limits.max_batch + 1, max_fields=100)
    except Exception as e:  # noqa: BLE001 - a malformed multipart body, too many parts
        status = 413 if "too many" in str(e).lower() else 400
        raise RequestError(status, f"cannot parse the multipart body: {e} (--max-batch {limits.max_batch})") from None
    files = []
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            files.append((value.filename or key, await value.read()))
    await form.close()
    if not files:
        raise RequestError(400, "no image file in the multipart body (send each image as a file part)")
    if len(files) > limits.max_batch:
        raise RequestError(413, f"{len(files)} images in one request; this service takes at most {limits.max_batch} "
                                "(--max-batch)")
    return files


def serve(model: str | Path, *, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          limits: Limits | None = None, fast: bool = False, device: str | None = None,
          log_level: str = "info") -> None:
    """Serve ``model`` with uvicorn until interrupted."""
    import uvicorn

    app = create_app(model, token=token, limits=limits, fast=fast, device=device)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
