"""bench run split over 2 shards scores each clip once and gives the same results as 1 process."""

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from musicjudge.bench.parallel import run_bench_parallel
from tests.distributed.bench_plugins import RmsReward

SR = 16000
MODEL = "tests.distributed.bench_plugins:RmsReward"


@pytest.fixture
def manifest(tmp_path):
    """CMI-RewardBench unified JSONL: 6 preference votes and 6 MOS-rated clips (louder = better)."""
    root = tmp_path / "bench"
    t = np.arange(SR // 2) / SR

    def tone(name, amp):
        path = root / "audio" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)
        return f"audio/{name}"

    rows = []
    for i in range(6):
        win = "a" if i % 2 == 0 else "b"
        a, b = (0.8, 0.1 + 0.05 * i) if win == "a" else (0.1 + 0.05 * i, 0.8)
        rows.append({"audio-path": tone(f"p{i}a.wav", a), "audio2": tone(f"p{i}b.wav", b), "prompt": f"piano {i}",
                     "source": "cmi-arena-annotation", "split": "test", "preference-musicality": win,
                     "preference-alignment": "b" if win == "a" else "a"})
    for i in range(6):
        rows.append({"audio-path": tone(f"m{i}.wav", 0.05 + 0.1 * i), "prompt": "pop", "source": "MusicEval",
                     "split": "test", "musicality": 1.0 + 0.5 * i, "system": f"s{i % 3}"})
    (root / "unified.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(root / "unified.jsonl")


def test_two_shards_match_one_process(manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICJUDGE_CACHE", str(tmp_path / "cache-single"))
    RmsReward.scored = []
    single, done = run_bench_parallel(MODEL, manifest, tmp_path / "single", n_boot=50, progress=False)
    assert done and len(RmsReward.scored) == 18  # 12 pair clips + 6 rated clips
    monkeypatch.setenv("MUSICJUDGE_CACHE", str(tmp_path / "cache-sharded"))
    RmsReward.scored = []
    path, done = run_bench_parallel(MODEL, manifest, tmp_path / "sharded", shard="1/2", n_boot=50, progress=False)
    assert (path, done) == (None, False) and len(RmsReward.scored) == 9
    first = set(RmsReward.scored)
    path, done = run_bench_parallel(MODEL, manifest, tmp_path / "sharded", shard="0/2", n_boot=50, progress=False)
    assert done and len(RmsReward.scored) == 18 and len(set(RmsReward.scored)) == 18  # each clip scored once
    assert first.isdisjoint(set(RmsReward.scored[9:]))
    want, got = json.loads(single.read_text()), json.loads(path.read_text())
    assert got["results"] == want["results"] and got["n_items_total"] == 18 and got["n_items_scored_now"] == 0
    pd.testing.assert_frame_equal(pd.read_parquet(single.parent / "predictions.parquet"),
                                  pd.read_parquet(path.parent / "predictions.parquet"))
    assert want["results"]["cmi-arena-annotation/musicality"]["accuracy"] == 1.0
