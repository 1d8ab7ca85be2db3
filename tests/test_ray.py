"""``anogen bench --ray``: a suite's grid as Ray tasks on a local instance gives the records of a local run (same
schema), resumable, with failures recorded. The Ray test is skipped when ray (the ``distributed`` extra) is missing."""

from __future__ import annotations

import sys

import pytest

from anogen import bench
from anogen.bench import Suite, expand, read_records, run_suite
from anogen.cli import main

SUITE = Suite("ray-t", ["algan"], ["digits:normal={normal}"], classes=[0, 1], seeds=[0],
              variants={"default": {}, "broken": {"sigma": -1.0}}, cpu={"channels": 1}, max_train=60, max_test=200)


def _runs() -> list[bench.Run]:
    ok = expand(SUITE, "cpu", variants=["default"], extra={"epochs": 2})  # 2 tiny runs (digits 0 and 1 normal)
    bad = expand(SUITE, "cpu", variants=["broken"], classes=[0], extra={"epochs": 2})  # fails in __post_init__
    return ok + bad


def test_ray_suite_records_match_local(tmp_path):
    pytest.importorskip("ray")
    runs = _runs()
    out = tmp_path / "ray.jsonl"
    counts = bench.run_suite_ray(runs, out, "local", init_kwargs={"num_cpus": 2})
    assert counts == {"total": 3, "skipped": 0, "ok": 2, "failed": 1}
    recs = {r["run_id"]: r for r in read_records(out)}
    assert set(recs) == {r.key for r in runs}
    local_out = tmp_path / "local.jsonl"
    run_suite([runs[0], runs[2]], local_out)  # one ok and one failed run, in this process
    local = {r["run_id"]: r for r in read_records(local_out)}
    for key, lrec in local.items():
        rrec = recs[key]
        assert set(rrec) == set(lrec), set(rrec) ^ set(lrec)  # the same schema, field for field
        assert rrec["status"] == lrec["status"]
        if lrec["status"] == "ok":
            assert rrec["config"] == lrec["config"] and rrec["n_test"] == lrec["n_test"]
            assert rrec["metrics"]["auroc"] == pytest.approx(lrec["metrics"]["auroc"], abs=1e-6)
        else:
            assert "sigma" in rrec["error"] and rrec["traceback"]
    # resumable: what is recorded is skipped (here failures too, so that Ray is not started again)
    again = bench.run_suite_ray(runs, out, "local", rerun_failed=False)
    assert again == {"total": 3, "skipped": 3, "ok": 0, "failed": 0}


def test_bench_ray_cli_errors(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "r.jsonl")
    assert main(["bench", "speed", "--out", out, "--ray", "local"]) == 2
    assert "without --ray" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    assert main(["bench", "digits", "--out", out, "--ray", "local", "--detectors", "gmm", "--classes", "0",
                 "--allow-dirty"]) == 2
    assert "pip install 'anogen[distributed]'" in capsys.readouterr().err
