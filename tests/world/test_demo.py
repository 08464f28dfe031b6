"""`musicjudge demo --quick` end to end: corpus -> three data sets -> probe -> HTML report."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd

from musicjudge.io import read_jsonl


def test_demo_quick_end_to_end(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "musicjudge", "demo", "--quick", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=400)
    assert r.returncode == 0, r.stderr[-2000:]
    report = out / "report.html"
    assert report.is_file() and f"report: {report.resolve()}" in r.stdout
    html = report.read_text()
    assert "<html" in html.lower() and len(html) > 5000
    for name in ("TrainingSet", "Generated", "OOD"):
        rows = read_jsonl(out / "datasets" / name / "manifest.jsonl")
        assert rows and all(os.path.exists(row["path"]) and row["text"] for row in rows)
        assert name in html
    gen = read_jsonl(out / "datasets" / "Generated" / "manifest.jsonl")
    assert sorted(row["metadata"]["top_k"] for row in gen) == [10, 500]
    timings = json.loads((out / "demo_timings.json").read_text())
    assert set(timings) == {"corpus_s", "datasets_s", "probe_s", "report_s"}
    _check_demo_results(out, html)
    # a second run only re-reads: nothing is scored again and the tables are unchanged
    before = pd.read_parquet(out / "run" / "results.parquet")
    r = subprocess.run([sys.executable, "-m", "musicjudge", "demo", "--quick", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=400)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((out / "run" / "run.json").read_text())["counts"]["scored"] == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out / "run" / "results.parquet"), before)


def _check_demo_results(out, html):
    """The results hold what the protocol says and the report's tables are computed from them."""
    results = pd.read_parquet(out / "run" / "results.parquet")
    clips = {name: len(read_jsonl(out / "datasets" / name / "manifest.jsonl")) for name in ("TrainingSet", "Generated", "OOD")}
    # every clip ran every perturbation of the quick grid (noise L in {5, 50}, shuffle blocks {1, 10})
    assert results.groupby("dataset")["clip_id"].nunique().to_dict() == clips
    assert len(results) == 4 * sum(clips.values())
    assert np.isfinite(results[["loss_orig", "loss_pert", "D"]].to_numpy()).all()
    noise = results[results["kind"] == "noise"]
    assert sorted(noise["length_frames"].unique()) == [5, 50]
    # the model was trained on the TrainingSet pieces: they are its least surprising clips
    loss = results.groupby("dataset")["loss_orig"].mean()
    assert loss["TrainingSet"] < loss["Generated"] and loss["TrainingSet"] < loss["OOD"]
    # the loss-profile shape at L = 50 frames: a Peak above the baseline, an Assimilation dip
    # below it, and a longer injection lowers the sequence loss more (context amnesia)
    long = noise[noise["length_frames"] == 50]
    assert long["peak_mean"].mean() > 0 > long["assim_mean"].mean()
    assert long["D"].mean() < noise[noise["length_frames"] == 5]["D"].mean()
    # the report's D-by-length table is the mean of the rows above
    table = pd.read_csv(out / "stats" / "d_by_length_noise.csv")
    expected = noise.groupby(["dataset", "length_frames"])["D"].mean()
    got = table.set_index(["dataset", "length_frames"])["mean"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)
    assert html.count("data:image/png;base64,") >= 3  # figures are embedded: the report is self-contained


def test_demo_rejects_bad_config(tmp_path):
    bad = tmp_path / "demo.yaml"
    bad.write_text("nonsense: {a: 1}\n")
    r = subprocess.run([sys.executable, "-m", "musicjudge", "demo", "--quick", "--out", str(tmp_path / "d"),
                        "--config", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1


def test_shipped_demo_configs_equal_the_defaults():
    from pathlib import Path

    from musicjudge.demo import FULL, QUICK, demo_settings

    root = Path(__file__).resolve().parents[2] / "configs"
    assert demo_settings(False, root / "demo.yaml") == FULL
    assert demo_settings(True, root / "demo_quick.yaml") == QUICK
