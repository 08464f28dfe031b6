"""Top-k selection by a reward vs random selection, on candidate pools with known quality."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from musicjudge.bench.topk import load_pools, run_topk, selection_draws, summarise_draws

from .conftest import write_tone


@pytest.fixture
def candidates(tmp_path):
    """5 prompts x 6 candidates; the rated quality grows with the clip's loudness."""
    rows = []
    for p in range(5):
        for c in range(6):
            amp = 0.05 + 0.15 * ((c * 5 + p) % 6)
            write_tone(tmp_path / "cand" / f"p{p}c{c}.wav", amp, 200 + 30 * p)
            rows.append({"id": f"p{p}c{c}", "text": f"prompt {p}", "audio": f"cand/p{p}c{c}.wav",
                         "musicality": round(amp * 10, 3), "system": f"gen{c}", "prompt_id": f"p{p}"})
    path = tmp_path / "candidates.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_pools_group_by_prompt_id(candidates):
    pools = load_pools(candidates, "musicality")
    assert len(pools) == 5 and all(len(p.items) == 6 for p in pools)


def test_perfect_reward_reaches_the_oracle_and_beats_random(candidates, plugin_module, tmp_path):
    out = tmp_path / "topk"
    csv = run_topk(f"{plugin_module}:RmsReward", str(candidates), out, ns=[1, 2, 4, 6], ks=[1, 2], draws=20, n_boot=100, progress=False)
    s = pd.read_csv(csv)
    assert (s["selected"] - s["oracle"]).abs().max() < 1e-9  # ranking by loudness == ranking by quality
    big = s[(s.N == 6) & (s.k == 1)].iloc[0]
    assert big.gain > 0.5 and big.gain_ci_low > 0 and big.share_of_oracle_gain == pytest.approx(1.0)
    assert s[(s.N == 1)]["gain"].abs().max() < 1e-12  # nothing to choose from
    # more candidates -> better top-1
    top1 = s[s.k == 1].sort_values("N")["selected"].to_numpy()
    assert all(a <= b + 1e-9 for a, b in zip(top1, top1[1:]))
    assert (out / "topk.png").stat().st_size > 5000
    meta = json.loads((out / "topk.json").read_text())
    assert meta["quality"] == "labels" and meta["n_prompts"] == 5


def test_anti_reward_is_worse_than_random_and_judge_replaces_labels(candidates, plugin_module, tmp_path):
    pools = load_pools(candidates, "musicality")
    import numpy as np

    anti = [-p.quality for p in pools]
    s = summarise_draws(selection_draws(pools, anti, [6], [1], draws=3), n_boot=50)
    assert s.iloc[0].gain < 0 and s.iloc[0].selected == pytest.approx(0.5)  # always the quietest (amp 0.05 -> 0.5)
    out = tmp_path / "judged"
    run_topk("random:0", str(candidates), out, ns=[6], ks=[1], judge=f"{plugin_module}:RmsReward", draws=5, n_boot=50, progress=False)
    meta = json.loads((out / "topk.json").read_text())
    assert meta["quality"].startswith("judge RmsReward")
    oracle = meta["summary"][0]["oracle"]
    assert oracle == pytest.approx(np.mean([0.8 * np.sqrt(0.5)] * 5), rel=1e-3)  # judge = RMS of amp-0.8 sine


def test_cli_topk(candidates, plugin_module, tmp_path):
    from musicjudge.cli.main import app

    r = CliRunner().invoke(app, ["bench", "topk", "-m", f"{plugin_module}:RmsReward", "-c", str(candidates), "-o",
                                 str(tmp_path / "cli"), "--n", "2,6", "--k", "1", "--draws", "5"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "cli" / "topk.csv").exists()
    r = CliRunner().invoke(app, ["bench", "topk", "-m", "random", "-c", str(candidates), "-o", str(tmp_path / "x"), "--n", "two"])
    assert r.exit_code != 0
