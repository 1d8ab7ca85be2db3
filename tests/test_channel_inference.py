"""channels inferred from the training data, CLI parameter errors before training, data-spec hint, help lines."""

from __future__ import annotations

import re

import numpy as np
import pytest

import anogen
from anogen.cli import build_parser, doc_summary, main


def _gray(n=12, size=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size), dtype=np.uint8)


def test_gray_stays_gray_and_color_stays_color(tmp_path):
    gray = anogen.create("gmm", image_size=8, pca_components=0, n_components=1, verbose=False).fit(_gray())
    assert gray.channels == 0 and gray.channels_ == 1 and gray.input_shape_ == (1, 8, 8)
    rgb = np.stack([_gray(seed=1)] * 3, -1)
    color = anogen.create("gmm", image_size=8, pca_components=0, n_components=1, verbose=False).fit(rgb)
    assert color.channels_ == 3
    rgba = np.concatenate([rgb, np.full(rgb.shape[:-1] + (1,), 255, np.uint8)], -1)
    assert anogen.create("gmm", image_size=8, pca_components=0, n_components=1,
                         verbose=False).fit(rgba).channels_ == 3  # alpha is no colour channel
    # scoring maps other inputs to the inferred count; the saved model keeps it
    np.testing.assert_allclose(gray.decision_function(np.stack([_gray()] * 3, -1)), gray.decision_function(_gray()),
                               rtol=1e-5)
    loaded = anogen.load(gray.save(tmp_path / "g.anogen"))
    assert loaded.channels_ == 1
    np.testing.assert_array_equal(loaded.decision_function(_gray(seed=3)), gray.decision_function(_gray(seed=3)))


def test_explicit_channels_win():
    det = anogen.create("gmm", image_size=8, channels=3, pca_components=0, n_components=1, verbose=False)
    assert det.fit(_gray()).channels_ == 3


@pytest.mark.parametrize("flag,value,field", [("--epochs", "0", "epochs"), ("--epochs", "-3", "epochs"),
                                              ("--contamination", "2", "contamination"),
                                              ("--batch-size", "0", "batch_size")])
def test_cli_refuses_bad_parameters_before_training(tmp_path, capsys, flag, value, field):
    rc = main(["train", "ae", "--data", "digits:normal=0", "--out", str(tmp_path / "o"), flag, value])
    err = capsys.readouterr().err
    assert rc != 0 and f"{field}=" in err and "outside its domain" in err, err
    assert not (tmp_path / "o").exists()  # nothing trained, nothing written


def test_bare_path_gets_a_one_line_hint(tmp_path, capsys):
    rc = main(["train", "gmm", "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and f"did you mean folder:{tmp_path} or mvtec:{tmp_path}?" in err
    assert len(err.splitlines()) == 1


def test_help_lines_end_with_their_sentence():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    train = sub.choices["train"]
    help_text = " ".join(train.format_help().split())
    for name in anogen.available():
        summary = doc_summary(anogen._registry.get(name))
        assert summary and re.search(r"[.)]$", summary), (name, summary)
        assert summary in help_text, name


def test_train_summary_states_the_channels(tmp_path, capsys):
    rc = main(["train", "gmm", "--data", "digits:normal=0", "--out", str(tmp_path / "o"), "--image-size", "8",
               "--pca-components", "4", "--n-components", "1"])
    out = capsys.readouterr().out
    assert rc == 0 and "channels: 1 (inferred from the training data" in out, out
