"""Robustness: training checkpoints and resume, divergence, bad image files, foreign and tampered model files.

Every file is generated in ``tmp_path``; the fuzz test of the image loader is in ``test_image_fuzz.py``.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import anogen
from anogen.checkpoint import CHECKPOINT_KEY, MODEL_KEY, read_checkpoint
from anogen.cli import main as cli_main
from anogen.data import io as image_io
from anogen.data.io import InputError, read_image
from anogen.data.transforms import Preprocess
from anogen.detector import TrainingDiverged

TINY = dict(image_size=16, channels=1, width=8, max_width=16, latent_dim=8, hidden=16, n_dis=1, batch_size=8,
            verbose=False)


def _det(name: str, **kw) -> anogen.Detector:
    fields = anogen.create(name).field_names()
    return anogen.create(name, **{k: v for k, v in {**TINY, **kw}.items() if k in fields})


@pytest.fixture(scope="module")
def data(digits):
    images, labels = digits
    train = images[labels == 0][:32]
    test_idx = np.r_[np.flatnonzero(labels == 0)[40:60], np.flatnonzero(labels == 3)[:20]]
    return train, images[test_idx], (labels[test_idx] != 0).astype(int)


class _Stop(Exception):
    """Stands for a crash / kill in the middle of training."""


def _interrupt_at(det: anogen.Detector, epoch: int) -> anogen.Detector:
    """Make ``det.fit`` stop (raise) when it starts 0-based ``epoch``."""
    start_epoch = det.start_epoch

    def stopping(e: int) -> None:
        if e == epoch:
            raise _Stop(f"killed at epoch {e + 1}")
        start_epoch(e)

    det.start_epoch = stopping  # type: ignore[method-assign]
    return det


# ---------------------------------------------------------------------------------------------------- resume
RESUME_CASES = {
    # ALGAN: latents z_d / z_g kept across epochs (n_z = 2) and the fake buffer (train_state), augmentation RNG
    "algan": dict(epochs=5, n_z=2, augment=("hflip",)),
    "ae": dict(epochs=5),
    "ganomaly": dict(epochs=5),  # BatchNorm in G, E and D; D re-initialised when it wins
}


@pytest.mark.parametrize("name", sorted(RESUME_CASES))
def test_resume_is_bit_identical(name, data, tmp_path):
    """Killed after epoch 3 of 5 (checkpoint every 2 epochs -> the one after epoch 2), resumed: same model."""
    train, test, y = data
    fit_kw = dict(val_x=test, val_y=1 - y)  # inverted labels: the best state is an early one, kept in the checkpoint
    kw = dict(RESUME_CASES[name], val_every=1)
    ckpt = tmp_path / "run.ckpt"
    ref = _det(name, **kw).fit(train, **fit_kw)
    with pytest.raises(_Stop):
        _interrupt_at(_det(name, **kw), 3).fit(train, checkpoint=ckpt, checkpoint_every=2, **fit_kw)
    meta, _ = read_checkpoint(ckpt)
    assert meta["epoch"] == 2 and len(meta["history"]) == 2
    assert os.listdir(tmp_path) == ["run.ckpt"]  # atomic write: no temporary file left behind
    res = _det(name, **kw).fit(train, checkpoint=ckpt, checkpoint_every=2, resume=True, **fit_kw)
    assert res.history_ == ref.history_ and res.best_epoch_ == ref.best_epoch_
    np.testing.assert_array_equal(res.decision_scores_, ref.decision_scores_)
    np.testing.assert_array_equal(res.decision_function(test), ref.decision_function(test))
    assert res.threshold_ == ref.threshold_
    for k, v in ref.nets_.state_dict().items():
        assert torch.equal(v, res.nets_.state_dict()[k]), k


ITERATIVE = [n for n in anogen.available() if anogen.create(n).iterative]


@pytest.mark.parametrize("name", ITERATIVE)
def test_every_iterative_detector_resumes(name, data, tmp_path):
    """Every method, killed in epoch 2 of 4 and resumed from the checkpoint after epoch 1, gives the same scores.

    n_dis = 2 with 3 steps per epoch puts f-AnoGAN's critic-step counter out of phase at the checkpoint."""
    train, test, _ = data
    train = train[:24]
    if name == "algan_feature":  # feature vectors (no pretrained backbone in tests)
        train, test = (a.reshape(len(a), -1).astype(np.float32) / 255 for a in (train, test))
    kw = dict(epochs=4, n_dis=2, search_steps=2, encoder_epochs=2)
    ref = _det(name, **kw).fit(train)
    ckpt = tmp_path / "c.ckpt"
    with pytest.raises(_Stop):
        _interrupt_at(_det(name, **kw), 1).fit(train, checkpoint=ckpt)
    res = _det(name, **kw).fit(train, checkpoint=ckpt, resume=True)
    np.testing.assert_array_equal(res.decision_function(test), ref.decision_function(test))


def test_algan_needs_its_train_state(data, tmp_path, monkeypatch):
    """Without train_state (latents not saved) ALGAN cannot continue in an epoch that does not redraw them."""
    from anogen.detectors.algan import ALGAN

    train = data[0]
    kw = dict(epochs=4, n_z=2)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(_Stop):
        _interrupt_at(_det("algan", **kw), 2).fit(train, checkpoint=ckpt)  # epoch 3: 3 % n_z != 0, no redraw
    monkeypatch.setattr(ALGAN, "load_train_state", lambda self, state: None)
    with pytest.raises(AttributeError):
        _det("algan", **kw).fit(train, checkpoint=ckpt, resume=True)


def test_checkpoint_contents(data, tmp_path):
    ckpt = tmp_path / "c.ckpt"
    det = _det("algan", epochs=2).fit(data[0], checkpoint=ckpt)
    meta, tensors = read_checkpoint(ckpt)
    assert meta["epoch"] == 2 and meta["detector"] == "algan" and meta["config"]["epochs"] == 2
    assert sorted(meta["optimizers"]) == ["opt_d_", "opt_g_"]
    assert {"rng.loop", "rng.torch", "rng.numpy", "train.z_d", "train.z_g", "train.buffer_x"} <= set(tensors)
    assert any(k.startswith("optim.opt_d_.") and k.endswith(".exp_avg") for k in tensors)
    assert all(f"nets.{k}" in tensors for k in det.nets_.state_dict())
    with pytest.raises(ValueError, match="training checkpoint"):
        anogen.load(ckpt)  # a checkpoint is not a model


def test_resume_refuses_other_runs(data, tmp_path):
    train, test, _ = data
    ckpt = tmp_path / "c.ckpt"
    _det("ae", epochs=2).fit(train, checkpoint=ckpt)
    with pytest.raises(ValueError, match="configuration differs: lr="):
        _det("ae", epochs=2, lr=0.5).fit(train, checkpoint=ckpt, resume=True)
    with pytest.raises(ValueError, match="data differ"):
        _det("ae", epochs=2).fit(train[:-1], checkpoint=ckpt, resume=True)
    with pytest.raises(ValueError, match="written by 'ae', not 'vae'"):
        _det("vae", epochs=2).fit(train, checkpoint=ckpt, resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        _det("ae", epochs=2).fit(train, checkpoint=tmp_path / "none.ckpt", resume=True)
    with pytest.raises(ValueError, match="needs checkpoint=PATH"):
        _det("ae").fit(train, resume=True)
    with pytest.raises(ValueError, match="checkpoint_every"):
        _det("ae").fit(train, checkpoint=ckpt, checkpoint_every=-1)
    with pytest.raises(ValueError, match="closed form"):
        anogen.create("gmm").fit(train.reshape(len(train), -1).astype(np.float32), checkpoint=ckpt)
    model = _det("ae", epochs=1).fit(train).save(tmp_path / "m.anogen")
    with pytest.raises(ValueError, match="is a model file"):
        _det("ae", epochs=1).fit(train, checkpoint=model, resume=True)
    # verbose and device may differ
    _det("ae", epochs=2, verbose=True).fit(train, checkpoint=ckpt, resume=True)


def test_resume_from_a_finished_run(data, tmp_path):
    train, test, _ = data
    ckpt = tmp_path / "c.ckpt"
    a = _det("ae", epochs=2).fit(train, checkpoint=ckpt)
    b = _det("ae", epochs=2).fit(train, checkpoint=ckpt, resume=True)  # nothing left to train: same model
    np.testing.assert_array_equal(a.decision_function(test), b.decision_function(test))


def test_cli_checkpoint_and_resume(data, tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i, a in enumerate(data[0][:16]):
        Image.fromarray(a).save(imgs / f"{i:02d}.png")
    out = tmp_path / "run"
    args = ["train", "ae", "--data", f"folder:{imgs}", "--out", str(out), "--image-size", "16", "--width", "8",
            "--max-width", "16", "--latent-dim", "8", "--batch-size", "8", "--no-verbose"]
    assert cli_main(args + ["--epochs", "2", "--checkpoint-every", "1"]) == 0
    first = anogen.load(out / "model.anogen")
    assert read_checkpoint(out / "checkpoint.anogen-ckpt")[0]["epoch"] == 2
    assert cli_main(args + ["--epochs", "2", "--resume"]) == 0  # from the finished run's checkpoint: same model
    np.testing.assert_array_equal(anogen.load(out / "model.anogen").decision_function(data[1]),
                                  first.decision_function(data[1]))


# ---------------------------------------------------------------------------------------------------- divergence
def test_divergence_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch):
    from anogen.detectors.ae import AE

    train, test, _ = data
    ckpt = tmp_path / "c.ckpt"
    good_step = AE.train_step

    def exploding(self, x):
        out = good_step(self, x)
        return {**out, "rec": float("nan")} if self.epoch_ == 2 else out

    monkeypatch.setattr(AE, "train_step", exploding)
    with pytest.raises(TrainingDiverged, match=r"loss rec = nan at epoch 3, step 1 \(training step 9\).*last good "
                                               r"checkpoint \(after epoch 2\) is kept at"):
        _det("ae", epochs=4, selection="last").fit(train, checkpoint=ckpt)  # 32 images / batch 8 = 4 steps / epoch
    assert os.listdir(tmp_path) == ["c.ckpt"]
    meta, tensors = read_checkpoint(ckpt)  # intact and loadable
    assert meta["epoch"] == 2 and all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())
    monkeypatch.setattr(AE, "train_step", good_step)
    resumed = _det("ae", epochs=4, selection="last").fit(train, checkpoint=ckpt, resume=True)  # after the fix
    np.testing.assert_array_equal(resumed.decision_function(test), _det("ae", epochs=4, selection="last").fit(train)
                                  .decision_function(test))


def test_divergence_without_checkpoint_names_the_step(data, monkeypatch):
    from anogen.detectors.ae import AE

    monkeypatch.setattr(AE, "train_step", lambda self, x: {"rec": float("inf")})
    with pytest.raises(TrainingDiverged, match=r"loss rec = inf at epoch 1, step 1 .*no model was written"):
        _det("ae", epochs=2).fit(data[0])


# ---------------------------------------------------------------------------------------------------- image files
def _png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims ``width`` x ``height`` pixels (CRC fixed): a decompression bomb's header."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    d = bytearray(buf.getvalue())
    d[16:24] = struct.pack(">II", width, height)  # IHDR data starts at byte 16
    d[29:33] = struct.pack(">I", zlib.crc32(bytes(d[12:29])))
    return bytes(d)


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"cannot read image file .*empty\.png: it is empty \(0 bytes\)"):
        read_image(tmp_path / "empty.png")


def test_corrupt_file(tmp_path):
    p = tmp_path / "noise.png"
    p.write_bytes(np.random.default_rng(1).bytes(300))
    with pytest.raises(InputError, match=r"noise\.png: not an image in a format anogen reads"):
        read_image(p)
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(1).bytes(300))  # PNG signature, garbage after it
    with pytest.raises(InputError, match=r"noise\.png"):
        read_image(p)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "TIFF", "WEBP"])
def test_truncated_file(fmt, rgb, tmp_path):
    p = tmp_path / f"cut.{fmt.lower()}"
    Image.fromarray(rgb).resize((64, 64)).save(p, fmt)
    p.write_bytes(p.read_bytes()[: p.stat().st_size * 2 // 3])
    with pytest.raises(InputError, match=rf"cut\.{fmt.lower()}"):
        read_image(p)


def test_16_bit_png_is_scaled_to_unit(tmp_path):
    a = np.random.default_rng(2).integers(0, 65536, (8, 8)).astype(np.uint16)
    a[0, 0], a[0, 1] = 0, 65535
    Image.fromarray(a).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    got = read_image(tmp_path / "g16.png")
    assert got.dtype == np.uint16 and np.array_equal(got, a)  # all 16 bits kept
    x = Preprocess(image_size=8, channels=1, resize="none", normalize="unit")([tmp_path / "g16.png"])
    np.testing.assert_array_equal(x[0, 0].numpy(), a.astype(np.float32) / 65535.0)
    assert x.min() == 0.0 and x.max() == 1.0


def test_palette_png_becomes_rgb(rgb, tmp_path):
    im = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    im.save(tmp_path / "p.png")
    got = read_image(tmp_path / "p.png")
    assert got.shape == (12, 10, 3) and np.array_equal(got, np.asarray(im.convert("RGB")))
    im.save(tmp_path / "pt.png", transparency=0)  # palette with a transparent entry -> RGBA, alpha then dropped
    assert read_image(tmp_path / "pt.png").shape == (12, 10, 4)
    assert Preprocess(image_size=12, channels=3)([tmp_path / "pt.png"]).shape == (1, 3, 12, 12)


def test_cmyk_jpeg_becomes_rgb(rgb, tmp_path):
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    got = read_image(tmp_path / "c.jpg")
    assert got.dtype == np.uint8 and got.shape == (12, 10, 3)
    assert np.abs(got.astype(int) - rgb).mean() < 20  # JPEG-lossy, but the colours survive the round trip
    assert Preprocess(image_size=16, channels=3)([tmp_path / "c.jpg"]).shape == (1, 3, 16, 16)


def test_alpha_follows_channel_mode(rgb, tmp_path):
    Image.fromarray(rgb).convert("LA").save(tmp_path / "la.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    assert read_image(tmp_path / "la.png").shape == (12, 10, 2)
    assert Preprocess(image_size=12, channels=1)([tmp_path / "la.png"]).shape == (1, 1, 12, 12)  # alpha dropped
    with pytest.raises(InputError, match="channel_mode='strict'"):
        Preprocess(image_size=12, channels=1, channel_mode="strict")([tmp_path / "la.png"])
    with pytest.raises(InputError, match="channel_mode='strict'"):
        Preprocess(image_size=12, channels=3, channel_mode="strict")([tmp_path / "rgba.png"])


def test_huge_image_is_refused_from_its_header(tmp_path, monkeypatch):
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_claiming(9000, 9000))  # 81 Mpx: over MAX_IMAGE_PIXELS, under Pillow's own limits
    with pytest.raises(InputError, match=r"bomb\.png: it is too large \(9000x9000 = 81,000,000 pixels.*decompression"):
        read_image(p)
    p.write_bytes(_png_claiming(30000, 30000))  # 900 Mpx: Pillow's DecompressionBombError, reported the same way
    with pytest.raises(InputError, match=r"bomb\.png: it is too large \(900,000,000 pixels"):
        read_image(p)
    Image.new("L", (20, 30)).save(tmp_path / "small.png")
    monkeypatch.setattr(image_io, "MAX_IMAGE_PIXELS", 500)  # the documented limit is a module constant
    with pytest.raises(InputError, match="20x30 = 600 pixels"):
        read_image(tmp_path / "small.png")


def test_other_formats_and_value_ranges(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.gif")
    with pytest.raises(InputError, match="not an image in a format anogen reads"):
        read_image(tmp_path / "a.gif")  # GIF is not among IMAGE_FORMATS
    Image.fromarray(np.full((4, 4), 0.25, np.float32)).save(tmp_path / "f.tif")
    assert read_image(tmp_path / "f.tif").dtype == np.float32
    Image.fromarray(np.full((4, 4), 3.0, np.float32)).save(tmp_path / "f3.tif")
    with pytest.raises(InputError, match=r"f3\.tif: its float pixels hold values in \[3, 3\]"):
        read_image(tmp_path / "f3.tif")
    Image.fromarray(np.full((4, 4), 70000, np.int32)).save(tmp_path / "i.tif")
    with pytest.raises(InputError, match=r"i\.tif: its 32-bit integer pixels hold values in \[70000, 70000\]"):
        read_image(tmp_path / "i.tif")
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.png")


def test_pil_images_get_the_file_conversions(rgb):
    im = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    x = Preprocess(image_size=12, channels=3, resize="bilinear", normalize="unit")([im])
    ref = Preprocess(image_size=12, channels=3, resize="bilinear", normalize="unit")([np.asarray(im.convert("RGB"))])
    assert torch.equal(x, ref)  # palette colours, not palette indices


def test_bad_file_in_scoring_and_cli(data, tmp_path, capsys):
    model = _det("ae", epochs=1).fit(data[0])
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(InputError, match=r"bad\.png"):
        model.decision_function([tmp_path / "bad.png"])
    path = model.save(tmp_path / "m.anogen")
    assert cli_main(["score", str(path), str(tmp_path / "bad.png")]) == 2
    err = capsys.readouterr().err
    assert "bad.png" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------------- model files
@pytest.fixture(scope="module")
def model_file(data, tmp_path_factory) -> Path:
    return _det("ae", epochs=1).fit(data[0]).save(tmp_path_factory.mktemp("model") / "m.anogen")


def _rewrite(src: Path, dst: Path, edit_meta=None, edit_tensors=None) -> Path:
    """Copy a model file, editing its metadata JSON and / or tensors (a tampered file)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), framework="pt") as f:
        meta = json.loads(f.metadata()[MODEL_KEY])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if edit_meta:
        edit_meta(meta)
    if edit_tensors:
        edit_tensors(tensors)
    save_file(tensors, str(dst), metadata={MODEL_KEY: json.dumps(meta)})
    return dst


class _Payload:
    """Unpickling this creates a marker file: proof that a loader executed code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_model_round_trip_still_works(model_file, data):
    det = anogen.load(model_file)
    np.testing.assert_array_equal(det.decision_function(data[1]), anogen.load(model_file).decision_function(data[1]))


def test_random_file_is_refused(tmp_path):
    p = tmp_path / "random.anogen"
    p.write_bytes(np.random.default_rng(3).bytes(4096))
    with pytest.raises(ValueError, match="not an anogen model file"):
        anogen.load(p)
    (tmp_path / "empty.anogen").write_bytes(b"")
    with pytest.raises(ValueError, match="not an anogen model file"):
        anogen.load(tmp_path / "empty.anogen")


def test_pickle_renamed_anogen_is_never_unpickled(tmp_path):
    marker = tmp_path / "executed"
    for i, blob in enumerate([pickle.dumps(_Payload(marker)), _torch_save_bytes(_Payload(marker))]):
        p = tmp_path / f"evil{i}.anogen"
        p.write_bytes(blob)
        with pytest.raises(ValueError, match="not an anogen model file"):
            anogen.load(p)
    assert not marker.exists()


def _torch_save_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save({"x": obj}, buf)  # torch's zip + pickle format
    return buf.getvalue()


def test_foreign_safetensors_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3)}, str(tmp_path / "other.anogen"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="without anogen metadata"):
        anogen.load(tmp_path / "other.anogen")


def test_truncated_model_is_refused(model_file, tmp_path):
    blob = model_file.read_bytes()
    for cut in (7, 100, len(blob) // 2, len(blob) - 1):
        p = tmp_path / f"cut{cut}.anogen"
        p.write_bytes(blob[:cut])
        with pytest.raises(ValueError, match="not an anogen model file"):
            anogen.load(p)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(detector="rocket"), "names detector 'rocket', which this anogen does not have"),
    (lambda m: m.update(detector=["ae"]), "names detector"),
    (lambda m: m.update(input_shape=[1, 32, 32]), r"input shape \(1, 32, 32\) contradicts"),
    (lambda m: m.update(input_shape=[-1, 16]), "input shape .* not a list of positive integers"),
    (lambda m: m.update(input_shape="16"), "input shape"),
    (lambda m: m.update(input_kind="audio"), "input kind 'audio'"),
    (lambda m: m["config"].update(width=16), "size mismatch"),
    (lambda m: m["config"].update(rocket=1), r"fields \['rocket'\] that ae does not have"),
    (lambda m: m["config"].update(image_size="big"), "damaged or edited"),
    (lambda m: m["config"].update(arch="nonsense"), "damaged or edited"),
    (lambda m: m.update(config=[1, 2]), "no configuration object"),
    (lambda m: m.update(threshold="high"), "threshold 'high' is not a number"),
    (lambda m: m.update(format=99), "model format 99"),
])
def test_edited_metadata_is_refused(model_file, tmp_path, edit, message):
    p = _rewrite(model_file, tmp_path / "edited.anogen", edit_meta=edit)
    with pytest.raises(ValueError, match=message):
        anogen.load(p)


def test_edited_tensors_are_refused(model_file, tmp_path):
    def drop_one(t):
        del t[next(k for k in t if k.startswith("nets."))]

    def reshape_one(t):
        k = next(k for k in t if k.startswith("nets.") and t[k].ndim == 4)
        t[k] = torch.zeros(*t[k].shape[:-1], t[k].shape[-1] + 1)

    cases = [(drop_one, "weights do not match .* missing"), (lambda t: t.pop("decision_scores_"), "decision_scores_"),
             (lambda t: t.update({"nets.extra_layer": torch.zeros(2)}), "unexpected"),
             (lambda t: t.update({"evil": torch.zeros(2)}), r"unexpected tensors \['evil'\]"),
             (reshape_one, "size mismatch")]
    for i, (edit, message) in enumerate(cases):
        p = _rewrite(model_file, tmp_path / f"t{i}.anogen", edit_tensors=edit)
        with pytest.raises(ValueError, match=message):
            anogen.load(p)


def test_broken_metadata_json_is_refused(model_file, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(model_file), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for i, raw in enumerate(['{"format": 1, ', "[1, 2, 3]"]):
        save_file(tensors, str(tmp_path / f"j{i}.anogen"), metadata={MODEL_KEY: raw})
        with pytest.raises(ValueError, match="anogen metadata is"):
            anogen.load(tmp_path / f"j{i}.anogen")
    save_file(tensors, str(tmp_path / "ck.anogen"), metadata={CHECKPOINT_KEY: "{}"})
    with pytest.raises(ValueError, match="is a training checkpoint"):
        anogen.load(tmp_path / "ck.anogen")
