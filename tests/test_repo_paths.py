"""No committed file names a folder of the machine it was made on (issue 16, item 13): records, reports, README and
docs write data specs relative to a data root (``mtd:DATA/mtd,...``) and peers' records keep no interpreter path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from anogen.bench import DATA, Run, relative_spec, resolve_spec

REPO = Path(__file__).resolve().parent.parent
MACHINE_FOLDERS = ("/" + "work/", "/" + "root/")  # split so that this file does not match itself


def _tracked() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / p for p in out.decode().split("\0") if p]


def test_no_machine_paths_in_tracked_text_files():
    hits = []
    for path in _tracked():
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary (figures)
        text = data.decode("utf-8", errors="replace")
        for folder in MACHINE_FOLDERS:
            if folder in text:
                line = next(i for i, ln in enumerate(text.splitlines(), 1) if folder in ln)
                hits.append(f"{path.relative_to(REPO)}:{line} ({folder})")
    assert not hits, "absolute machine paths in committed files: " + ", ".join(hits[:20])


def test_specs_are_recorded_relative_to_the_data_root(tmp_path):
    from anogen.bench import SUITES, expand

    root = str(tmp_path / "data")
    runs = expand(SUITES["mtd"], detectors=["ae"], data_root=root)
    assert runs and all(r.spec.startswith(f"mtd:{root}/mtd") for r in runs)  # loading uses the real folder
    assert {r.data for r in runs} == {f"mtd:{DATA}/mtd,splits={DATA}/mtd_splits.json"}
    same_elsewhere = expand(SUITES["mtd"], detectors=["ae"], data_root="/elsewhere")
    assert [r.key for r in runs] == [r.key for r in same_elsewhere]  # run ids do not depend on the machine
    assert resolve_spec(runs[0].data, root) == runs[0].spec
    assert relative_spec(runs[0].spec, root) == runs[0].data
    assert relative_spec("digits:normal=0", root) == "digits:normal=0"
    assert resolve_spec("coil:DATA/coil17,n_normal=10", "/d") == "coil:/d/coil17,n_normal=10"
    assert isinstance(runs[0], Run)
