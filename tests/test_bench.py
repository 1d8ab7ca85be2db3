"""Benchmark records and reports: schema, resumability, failures recorded without stopping, tables from records."""

from __future__ import annotations

import json

import pytest

from anogen import bench, report
from anogen.bench import Suite, expand, read_records, run_suite
from anogen.cli import main

SUITE = Suite("t", ["algan"], ["digits:normal={normal}"], classes=[0, 1], seeds=[0],
              variants={"default": {}, "broken": {"sigma": -1.0}}, cpu={"channels": 1}, max_train=60,
              max_test=200)


def test_expand_grid_and_keys():
    runs = expand(SUITE, "cpu", extra={"epochs": 2})
    assert len(runs) == 4  # 1 detector x 2 classes x 1 seed x 2 variants
    assert len({r.key for r in runs}) == 4
    r = runs[0]
    assert r.overrides["image_size"] == 16 and r.overrides["channels"] == 1 and r.overrides["epochs"] == 2
    assert expand(SUITE, "paper")[0].overrides.get("image_size") is None  # paper: defaults, no CPU preset
    with pytest.raises(ValueError, match="no detector"):
        expand(SUITE, "cpu", detectors=["nope"])
    with pytest.raises(ValueError, match="scale"):
        expand(SUITE, "gpu")


def test_run_suite_records_resumes_and_survives_failures(tmp_path):
    out = tmp_path / "r.jsonl"
    runs = expand(SUITE, "cpu", extra={"epochs": 2})
    counts = run_suite(runs, out)
    assert counts == {"total": 4, "skipped": 0, "ok": 2, "failed": 2}
    recs = read_records(out)
    assert len(recs) == 4
    ok = [r for r in recs if r["status"] == "ok"]
    bad = [r for r in recs if r["status"] == "failed"]
    assert {r["variant"] for r in bad} == {"broken"} and "sigma" in bad[0]["error"]
    for r in ok:
        for key in ("run_id", "suite", "detector", "config", "data", "split", "seed", "metrics", "fit_seconds",
                    "git_commit", "versions", "machine", "device", "memory", "n_train", "test_scores"):
            assert key in r, key
        m = r["metrics"]
        for key in ("auroc", "aupr", "best_f1", "best_f1_precision", "best_f1_recall", "score_ms_per_image"):
            assert 0 <= m[key] and (key == "score_ms_per_image" or m[key] <= 1)
        assert r["n_train"] <= 60 and r["n_test"] <= 200 and len(r["test_scores"]) == r["n_test"]
        assert r["config"]["epochs"] == 2
    # a second run skips what is recorded as ok and retries the failures only
    again = run_suite(runs, out)
    assert again["skipped"] == 2 and again["failed"] == 2 and again["ok"] == 0
    # a torn last line (a killed run) is skipped when reading
    with open(out, "a") as f:
        f.write('{"run_id": "x", "sta')
    assert len(read_records(out)) == 6


def test_report_tables_and_page(tmp_path):
    out = tmp_path / "r.jsonl"
    run_suite(expand(SUITE, "cpu", extra={"epochs": 2}, variants=["default"]), out)
    recs = list(bench.iter_ok(read_records(out)))
    head, rows = report.suite_table(recs)
    assert head[:3] == ["detector", "normal 0", "normal 1"] and "mean" in head and len(rows) == 1
    aucs = {str(r["normal"]): r["metrics"]["auroc"] for r in recs}
    assert rows[0][1] == f"{aucs['0']:.3f}" and rows[0][2] == f"{aucs['1']:.3f}"
    page = report.build([out], tmp_path / "rep")
    text = page.read_text()
    assert "<table>" in text and "algan" in text and "fig/t-roc.png" in text
    assert (tmp_path / "rep" / "fig" / "t-roc.png").stat().st_size > 1000
    assert "| algan" in (tmp_path / "rep" / "results.md").read_text()


def test_cli_bench_dry_run_and_errors(tmp_path, capsys):
    assert main(["bench", "digits", "--out", str(tmp_path / "x.jsonl"), "--detectors", "algan", "--classes", "3",
                 "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "digits:normal=3" in lines[0]
    assert main(["bench", "nosuch", "--out", str(tmp_path / "x.jsonl")]) == 2
    assert main(["report", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "rep")]) == 2


def test_every_suite_expands():
    for name, suite in bench.SUITES.items():
        runs = expand(suite, "cpu")
        assert runs, name
        json.dumps([r.overrides for r in runs])  # records must be JSON


def test_bench_refuses_a_dirty_tree_and_the_report_marks_dirty_records(tmp_path, monkeypatch, capsys):
    out = tmp_path / "d.jsonl"
    args = ["bench", "digits", "--out", str(out), "--detectors", "gmm", "--classes", "0"]
    monkeypatch.setenv("ANOGEN_GIT_COMMIT", "0" * 40)
    monkeypatch.setenv("ANOGEN_GIT_DIRTY", "1")
    assert main(args) == 2 and not out.exists()
    assert "--allow-dirty" in capsys.readouterr().err
    assert main([*args, "--dry-run"]) == 0  # listing the runs is fine
    assert main([*args, "--allow-dirty"]) == 0
    (dirty,) = read_records(out)
    assert dirty["git_dirty"] is True
    monkeypatch.setenv("ANOGEN_GIT_DIRTY", "0")
    clean_out = tmp_path / "c.jsonl"
    assert main(["bench", "digits", "--out", str(clean_out), "--detectors", "gmm", "--classes", "1"]) == 0
    (clean,) = read_records(clean_out)
    assert clean["git_dirty"] is False
    head, rows = report.suite_table([dirty, clean])
    assert [r[0] for r in rows] == ["gmm" + report.DIRTY_MARK]  # one row: a dirty record in it marks it
    assert report.suite_table([clean])[1][0][0] == "gmm"
    report.build([out, clean_out], tmp_path / "rep")
    assert report.DIRTY_NOTE in (tmp_path / "rep" / "results.md").read_text()
    docs = report.method_results([clean])["gmm"]
    assert "†" not in docs and "†" in report.method_results([dirty])["gmm"]


def test_method_results_count_a_run_once_across_files(tmp_path):
    """A run recorded in two files (a showcase rerun) is one run in docs/methods tables: the later record wins."""
    rec = {"status": "ok", "suite": "digits", "detector": "gmm", "data": "digits:normal=0", "seed": 0,
           "variant": "default", "scale": "cpu", "normal": 0, "config": {}, "metrics": {"auroc": 0.5}}
    (tmp_path / "a.jsonl").write_text(json.dumps(rec) + "\n" + json.dumps({**rec, "seed": 1}) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({**rec, "metrics": {"auroc": 0.9}}) + "\n")
    recs = report.latest_records([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    assert sorted((r["seed"], r["metrics"]["auroc"]) for r in recs) == [(0, 0.9), (1, 0.5)]
    row = report.method_results(recs)["gmm"].splitlines()[2].split(" | ")
    assert row[2] == "0.700 ± 0.283" and row[4] == "2"  # two runs, not three


def test_report_says_how_often_each_detector_selects_its_epoch():
    ours = {"detector": "ae", "config": {"epochs": 15, "val_every": 8},
            "history": [{"epoch": e, **({"val_auroc": 0.5} if e in (8, 15) else {})} for e in range(1, 16)]}
    peer = {"detector": "anomalib_ganomaly", "peer": "anomalib",
            "config": {"epochs": 3, "selection": "best validation AUROC per epoch"},
            "history": [{"epoch": e, "val_auroc": 0.5} for e in (1, 2, 3)]}
    pyod = {"detector": "pyod_vae", "peer": "pyod", "config": {"selection": "none (fixed epochs)"}, "history": []}
    assert report.selection(ours) == "every 8 epochs and the last: 2 of 15 epochs checked"
    assert report.selection(peer) == "best validation AUROC per epoch: 3 of 3 epochs checked"
    assert report.selection(pyod) == "none (fixed epochs)"
    assert report.selection({"detector": "gmm", "config": {"val_every": 8}, "history": []}).startswith("none")
    note = report.selection_note([ours, peer, pyod])
    assert "ae: every 8" in note and "anomalib_ganomaly: best" in note and "pyod_vae: none" in note


def test_erase_suites_run_the_ae_with_and_without_lamp_and_a_gray_fill():
    for name in ("erase", "erase32"):
        runs = expand(bench.SUITES[name], "cpu", detectors=["ae"], seeds=[0])
        assert {r.variant: r.overrides["lamp"] for r in runs} == {"lamp": True, "plain": False}
        assert all("fill=0.5" in r.spec for r in runs)


def test_lamp_grid_sgd_cells_use_the_validated_sgd_setting():
    runs = expand(bench.SUITES["lamp"], "cpu")
    sgd = [r for r in runs if r.overrides["optimizer"] == "sgd"]
    assert len(sgd) == 6 and all(r.overrides["lr"] == 0.03 and r.overrides["momentum"] == 0.9 for r in sgd)
    assert all(r.overrides.get("momentum", 0.0) == 0.0 for r in runs if r.overrides["optimizer"] == "adam")


def test_paper_scale_settings_of_coil_and_the_erase_gmm():
    coil = expand(bench.SUITES["coil"], "paper", detectors=["algan"], seeds=[0])
    assert {r.overrides["image_size"] for r in coil} == {256}  # ALGAN IV-B5
    for name in ("erase", "erase32"):
        gmm = expand(bench.SUITES[name], "paper", detectors=["gmm"], seeds=[0])
        assert all(r.overrides["pca_components"] == 0 and r.overrides["n_components"] == 2 for r in gmm)  # V-C toy
        cpu = expand(bench.SUITES[name], "cpu", detectors=["gmm"], seeds=[0])
        assert all(r.overrides["pca_components"] > 0 for r in cpu)  # the paper toy settings are paper scale only
    if "iforest" in bench.SUITES["erase"].detectors:
        forest = expand(bench.SUITES["erase"], "paper", detectors=["iforest"], seeds=[0])
        assert all("n_components" not in r.overrides for r in forest)


def test_report_text_cells_and_paper_scale_records_get_their_own_table(tmp_path, monkeypatch):
    """Text cells are never parsed as numbers (a "data" column once crashed the page), and paper-scale (GPU) records
    get a table of their own, so one row never mixes a CPU preset with a paper-scale run."""
    assert report._num("0.912 ± 0.010") == 0.912 and report._num("**0.900**") == 0.9
    assert report._num("0.95 †") == 0.95 and report._num("mtd:DATA/mtd") is None and report._num("") is None
    page = report._html_table(["data", "detector", "AUROC"], [["mtd", "gmm", "0.400"], ["coil", "ae", "0.900"]])
    assert '<td class="best">0.900</td>' in page and '<td class="bad">0.400</td>' in page
    assert '<td class="best">mtd</td>' not in page
    monkeypatch.setenv("ANOGEN_GIT_COMMIT", "0" * 40)
    monkeypatch.setenv("ANOGEN_GIT_DIRTY", "0")
    out = tmp_path / "r.jsonl"
    assert main(["bench", "digits", "--out", str(out), "--detectors", "gmm", "--classes", "0"]) == 0
    (rec,) = read_records(out)
    gpu = tmp_path / "gpu.jsonl"
    gpu.write_text(json.dumps({**rec, "run_id": "paper-run", "scale": "paper",
                               "metrics": {**rec["metrics"], "auroc": 0.123}}) + "\n")
    report.build([out, gpu], tmp_path / "rep")
    md = (tmp_path / "rep" / "results.md").read_text()
    cpu_part, paper_part = md.split("## digits (paper scale)")
    assert "## digits" in cpu_part and "0.123" not in cpu_part and "0.123" in paper_part
