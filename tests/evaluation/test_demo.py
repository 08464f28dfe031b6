"""`musicjudge eval --demo --quick`: the built-in demo evaluates offline and shows the known outcome."""

from __future__ import annotations

import pandas as pd

from musicjudge.evaluation.demo import DEMO_SETTINGS, QUICK_SETTINGS, build_demo_data, run_eval_demo
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
    # the full demo's data in the same folder, then --quick again: the folders hold both sets of
    # clips, the manifests the evaluation reads list only the current demo's
    build_demo_data(tmp_path / "demo-data", quick=False, progress=False, log=lambda _: None)
    data = build_demo_data(tmp_path / "demo-data", quick=True, progress=False, log=lambda _: None)
    assert len(list((tmp_path / "demo-data" / "rendered").glob("*.flac"))) == DEMO_SETTINGS["n_prompts"]
    assert len(read_jsonl(data["rendered"])) == len(read_jsonl(data["prompts"])) == QUICK_SETTINGS["n_prompts"]
