"""``musicjudge reward score`` with 1 process, as 2 manual ``--shard``s and with 2 gloo processes
(torchrun) gives the same table; an interrupted sharded run resumes without re-scoring anything."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from musicjudge.cli.main import app
from musicjudge.reward.parallel import run_reward_score_parallel, score_shard_dir
from musicjudge.errors import ConfigError
from tests.reward.synthetic import SR, tone_melody

runner = CliRunner()
TEXT = "a slow melody played on a soft sine wave"
FLOAT_COLS = ["musicality", "alignment", "seconds_used"]


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """Seven short clips (one unreadable) + lyrics, and the 1-process table every layout must match."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("reward-score")
    clips = root / "clips"
    clips.mkdir()
    for i, (tempo, timbre, noisy) in enumerate([("slow", "sine", False), ("fast", "sine", True), ("slow", "square", False),
                                                  ("fast", "square", False), ("slow", "sine", True), ("fast", "sine", False)]):
        sf.write(clips / f"clip{i}.wav", tone_melody(tempo, timbre, noisy, seed=i, seconds=1.5), SR)
    (clips / "broken.wav").write_bytes(b"not audio at all")  # a failed row, not a failed run
    lyrics = root / "lyrics.txt"
    lyrics.write_text("la la la\n")
    args = ["--audio", str(clips), "--text", TEXT, "--lyrics", str(lyrics), "--batch-size", "2"]
    single = root / "single.csv"
    result = runner.invoke(app, ["reward", "score", *args, "--out", str(single)])
    assert result.exit_code == 0, result.output
    assert "scored 6 clips, skipped 1" in result.output
    assert not score_shard_dir(single).exists()  # the 1-process path writes nothing else
    return {"root": root, "clips": clips, "lyrics": lyrics, "args": args, "single": single}


def _same_table(reference: Path, other: Path) -> None:
    """Same columns, rows and row order; scores equal to float32 precision (1e-5 absolute +
    1e-5 relative). Exact equality is not on offer: the head's float32 output moves by an ulp or
    two with the batch a clip shares (also between 1-process runs with different --batch-size),
    and a process with a fresh embedding cache recomputes the features with its own thread count
    (CI saw 1.4e-6 on a score of 0.30)."""
    x, y = pd.read_csv(reference), pd.read_csv(other)
    assert list(x.columns) == list(y.columns) and len(x) == len(y) == 7
    assert x["id"].tolist() == y["id"].tolist()  # same row order
    for col in x.columns:
        if col in FLOAT_COLS:
            np.testing.assert_allclose(x[col].to_numpy(float), y[col].to_numpy(float), rtol=1e-5, atol=1e-5,
                                       equal_nan=True, err_msg=col)
        else:
            assert x[col].astype(str).tolist() == y[col].astype(str).tolist(), col


def test_single_process_table(job):
    df = pd.read_csv(job["single"])
    assert df["id"].tolist() == ["broken.wav"] + [f"clip{i}.wav" for i in range(6)]
    assert df["status"].tolist() == ["failed"] + ["ok"] * 6
    assert set(df["instruction_kind"]) == {"text+lyrics"} and df["musicality"].iloc[1:].notna().all()


def test_manual_shards_match_one_process(job, tmp_path):
    out = tmp_path / "scores.csv"
    first = runner.invoke(app, ["reward", "score", *job["args"], "--out", str(out), "--shard", "1/2"])
    assert first.exit_code == 0, first.output
    assert "scored 3 of its 3 clips" in first.output and not out.exists()
    second = runner.invoke(app, ["reward", "score", *job["args"], "--out", str(out), "--shard", "0/2"])
    assert second.exit_code == 0, second.output
    assert "scored 6 clips, skipped 1" in second.output
    _same_table(job["single"], out)
    # the merge is idempotent: a finished shard re-scores nothing and rewrites the same bytes
    before = out.read_bytes()
    again = runner.invoke(app, ["reward", "score", *job["args"], "--out", str(out), "--shard", "1/2"])
    assert again.exit_code == 0 and out.read_bytes() == before


class CountingModel:
    """The builtin reward model, counting what it is asked to score (optionally 'crashing')."""

    def __init__(self, inner, crash_after: int | None = None):
        self.inner, self.crash_after, self.seen = inner, crash_after, []

    @property
    def encoder(self):
        return self.inner.encoder

    @property
    def failures(self):
        return self.inner.failures

    def score(self, items):
        if self.crash_after is not None and len(self.seen) >= self.crash_after:
            raise KeyboardInterrupt
        self.seen.extend(Path(it.audio).name for it in items)
        return self.inner.score(items)


def test_interrupted_shard_resumes_without_rescoring(job, tmp_path):
    from musicjudge.reward.registry import load_reward_model

    inner = load_reward_model("builtin")
    out = tmp_path / "scores.csv"
    kw = dict(text=TEXT, lyrics_file=job["lyrics"], batch_size=1, progress=False)
    crashing = CountingModel(inner, crash_after=2)
    with pytest.raises(KeyboardInterrupt):  # shard 0/2 (broken, clip1, clip3, clip5) dies after 2 clips
        run_reward_score_parallel(job["clips"], out, shard="0/2", model=crashing, **kw)
    assert crashing.seen == ["broken.wav", "clip1.wav"]
    resumed = CountingModel(inner)
    summary, merged = run_reward_score_parallel(job["clips"], out, shard="0/2", model=resumed, **kw)
    assert resumed.seen == ["clip3.wav", "clip5.wav"] and not merged
    assert summary == {"keys": 4, "skipped_done": 2, "scored_now": 2}
    # resuming with a different number of processes finds shard 0's clips done
    rest = CountingModel(inner)
    for shard in ("0/3", "1/3", "2/3"):
        summary, merged = run_reward_score_parallel(job["clips"], out, shard=shard, model=rest, **kw)
    assert sorted(rest.seen) == ["clip0.wav", "clip2.wav", "clip4.wav"] and merged
    _same_table(job["single"], out)
    # a finished job re-scores nothing and merges the same bytes
    before = out.read_bytes()
    summary, merged = run_reward_score_parallel(job["clips"], out, shard="1/2", model=CountingModel(inner, crash_after=0), **kw)
    assert merged and summary["scored_now"] == 0 and out.read_bytes() == before
    with pytest.raises(ConfigError, match="different reward score job"):  # stale scores are never reused
        run_reward_score_parallel(job["clips"], out, shard="1/2", model=inner, **{**kw, "text": "a fast melody"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one(job, tmp_path):
    out = tmp_path / "scores.csv"
    repo = Path(__file__).parents[2]
    # a fresh embedding cache: the two processes compute every feature themselves
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo / "src"), "MUSICJUDGE_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "musicjudge", "reward", "score", *job["args"], "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("scored 6 clips, skipped 1") == 1, proc.stdout
    assert "process 1/2 (launched, cpu)" in proc.stdout or "process 2/2 (launched, cpu)" in proc.stdout, proc.stdout
    assert sorted(p.name for p in score_shard_dir(out).glob("score.rank*-of-2.jsonl")) == \
        ["score.rank0-of-2.jsonl", "score.rank1-of-2.jsonl"]
    _same_table(job["single"], out)
