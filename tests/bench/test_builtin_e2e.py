"""The built-in offline benchmark end to end (quick size): the shipped built-in reward model and
two baselines (random, fitted cosine), then the leaderboard; the built-in model must beat random."""

import json

from musicjudge.bench.leaderboard import leaderboard_frame, write_leaderboard
from musicjudge.bench.runner import run_benchmark


def test_builtin_benchmark_builtin_model_beats_random(tmp_path):
    runs = []
    for spec, args in (("builtin", None), ("random", None), ("cosine", {"fit_n": 8, "corpus_limit": 30})):
        out = tmp_path / spec
        run_benchmark(spec, "builtin", out, quick=True, n_boot=100, progress=False, model_args=args)
        doc = json.loads((out / "results.json").read_text())
        assert len(doc["results"]) == 8 and doc["benchmark"]["name"] == "builtin-quick"
        assert all(r["n"] > 0 and r["n_missing"] == 0 for r in doc["results"].values())
        runs.append(out)
    paths = write_leaderboard(runs, tmp_path / "lb")
    df = leaderboard_frame(runs)
    mean = df.groupby("model")["value"].mean()
    assert mean["builtin"] > mean["random:0"] + 0.1, mean.to_dict()
    header = next(l for l in paths["md"].read_text().splitlines() if l.startswith("| task"))
    assert header.index("builtin") < header.index("random:0")  # sorted best first
