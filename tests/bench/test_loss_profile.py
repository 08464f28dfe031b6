"""The label-free loss-profile baseline runs through the benchmark on a small MusicGen built
from a config (random weights: this checks the plumbing, not the baseline's quality)."""

import json

import numpy as np
import pandas as pd

from musicjudge.bench.runner import run_benchmark

from .conftest import write_tone


def test_loss_profile_baseline_scores_musicality_only(tmp_path):
    from musicjudge.lm.musicgen import build_tiny_musicgen

    lm_dir = tmp_path / "tiny-musicgen"
    build_tiny_musicgen(lm_dir)
    rows = []
    for i in range(4):
        write_tone(tmp_path / f"c{i}.wav", 0.2 + 0.1 * i, 200 + 50 * i, seconds=2.0, sr=32000)
        rows.append({"id": f"c{i}", "text": "a tone", "audio": f"c{i}.wav", "musicality": i, "alignment": 4 - i, "system": f"s{i}"})
    (tmp_path / "rated.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    run_benchmark(f"loss-profile:{lm_dir}", str(tmp_path / "rated.jsonl"), out, n_boot=20, progress=False,
                  model_args={"onsets_s": [0.8], "lengths_frames": [5]})
    doc = json.loads((out / "results.json").read_text())
    mus, ali = doc["results"]["rated/musicality"], doc["results"]["rated/alignment"]
    assert mus["n"] == 4 and mus["n_unscored"] == 0  # every clip got a finite profile score
    assert ali["n"] == 0 and ali["n_unscored"] == 4  # no alignment from a label-free LM score
    preds = pd.read_parquet(out / "predictions.parquet")
    assert np.isfinite(preds[preds.dimension == "musicality"]["score"]).all()
    assert doc["model"]["name"] == f"loss-profile:{lm_dir}"
