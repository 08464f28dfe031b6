"""A labelling run killed mid-way (SIGKILL, plus a torn last line) resumes without losing or
duplicating verdicts, and ends with the same manifest as an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

from typer.testing import CliRunner

from musicjudge.cli.main import app as cli_app
from musicjudge.pseudolabel.judges import OpenAIChatJudge
from musicjudge.pseudolabel.label import label_pairs
from musicjudge.reward.data import read_pairs

from .conftest import write_study
from .judge_server import make_app, serve

KEY = "sk-resume-0a1b2c3d4e5f"


def test_kill_and_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("MJ_TEST_JUDGE_KEY", KEY)
    n = 16
    manifest = write_study(tmp_path / "study", ["honest"] * 12 + ["biased"] * 4)
    out = tmp_path / "out"
    verdicts = out / "verdicts.jsonl"
    app = make_app(KEY, delay_s=0.08)
    with serve(app) as url:
        args = ["pseudolabel", "label", str(manifest), "--out", str(out), "--judge", "openai", "--base-url", f"{url}/v1",
                "--model", "m", "--api-key-env", "MJ_TEST_JUDGE_KEY", "--concurrency", "2", "--cache", str(tmp_path / "cache1")]
        proc = subprocess.Popen([sys.executable, "-m", "musicjudge", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "MUSICJUDGE_DEBUG": "1"})
        deadline = time.time() + 60
        while time.time() < deadline and (not verdicts.exists() or len(verdicts.read_text().splitlines()) < 6):
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = verdicts.read_text().splitlines()
        assert 6 <= len(before) < 2 * n, "the run must be killed mid-way"
        with open(verdicts, "a") as f:  # a crash in the middle of a write
            f.write('{"pair_id": "p000", "order": "A')
        result = CliRunner().invoke(cli_app, args[:-2] + ["--cache", str(tmp_path / "cache2")])
        assert result.exit_code == 0, result.output
        # reference: one uninterrupted run
        judge = OpenAIChatJudge(f"{url}/v1", "m", api_key_env="MJ_TEST_JUDGE_KEY", cache_dir=tmp_path / "cache3")
        reference = label_pairs(read_pairs(manifest), judge, tmp_path / "ref", progress=False)
    rows = [json.loads(line) for line in verdicts.read_text().splitlines()]
    keys = [(r["pair_id"], r["order"]) for r in rows]
    assert len(keys) == len(set(keys)) == 2 * n  # nothing lost, nothing twice
    assert [json.loads(line) for line in before] == rows[: len(before)]  # earlier rows untouched
    resumed = {p.id: p.preference for p in read_pairs(out / "pseudo_pairs.jsonl")}
    assert resumed == {p.id: p.preference for p in reference.kept}
    assert len(resumed) == 12
    assert "kept 12/16 pairs" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdicts"]["ok"] == 2 * n
    assert KEY not in result.output + proc.stderr.read().decode() + verdicts.read_text()
