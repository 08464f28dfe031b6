"""`musicjudge eval --demo --quick`: the built-in demo evaluates offline and shows the known outcome."""

from __future__ import annotations

import pandas as pd

from musicjudge.evaluation.demo import QUICK_SETTINGS, run_eval_demo
from musicjudge.io import read_jsonl


def test_eval_demo_quick(tmp_path):
    result = run_eval_demo(tmp_path, quick=True, n_boot=100, progress=False, log=lambda _: None)
    prompts = read_jsonl(tmp_path / "demo-data" / "prompts.jsonl")
    assert len(prompts) == QUICK_SETTINGS["n_prompts"] and all(p["text"] for p in prompts)
    assert len(list((tmp_path / "demo-data" / "reference").glob("*.flac"))) == QUICK_SETTINGS["n_reference"]
    clips = pd.read_parquet(tmp_path / "clips.parquet")
    assert len(clips) == 2 * len(prompts) and (clips["status"] == "ok").all()
    # the degraded system answers the same prompts with noisy, coarsely quantised audio: it must lose
    wr = pd.read_csv(tmp_path / "winrates.csv")
    musicality = wr[(wr.metric == "musicality") & (wr.system_a == "rendered")].iloc[0]
    assert musicality["n"] == len(prompts) and musicality["win_rate"] == 1.0
    assert result.report is not None and "<audio" in result.report.read_text()
    assert read_jsonl(tmp_path / "errors.jsonl") == []
