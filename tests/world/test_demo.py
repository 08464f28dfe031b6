"""`musicjudge demo --quick` end to end: corpus -> three data sets -> probe -> HTML report."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
    results = out / "run" / "results.parquet"
    assert results.is_file()


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
