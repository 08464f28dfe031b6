"""The label-free loss-profile baseline runs through the benchmark on a small MusicGen built
from a config (random weights: this checks the plumbing, not the baseline's quality)."""

import json

import numpy as np
import pandas as pd
import pytest

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
    doc = json.loads((out / "results.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in results.json"))
    mus, ali = doc["results"]["rated/musicality"], doc["results"]["rated/alignment"]
    assert mus["n"] == 4 and mus["n_unscored"] == 0  # every clip got a finite profile score
    assert ali["n"] == 0 and ali["n_unscored"] == 4 and ali["spearman"] is None  # no alignment from a label-free LM score
    preds = pd.read_parquet(out / "predictions.parquet")
    assert np.isfinite(preds[preds.dimension == "musicality"]["score"]).all()
    assert doc["model"]["name"] == f"loss-profile:{lm_dir}"


def test_zero_shot_clap_cosine_from_a_local_folder(cmi_root, tmp_path):
    """clap-cosine:PATH loads a transformers ClapModel folder (tiny, random weights) and scores
    both dimensions, including the reference-audio branch of alignment."""
    from musicjudge.reward.encoders import build_tiny_clap

    folder = build_tiny_clap(tmp_path / "clap-tiny")
    out = tmp_path / "clap-run"
    run_benchmark(f"clap-cosine:{folder}", str(cmi_root / "unified.jsonl"), out, tasks=["cmi-arena-annotation/*"],
                  n_boot=20, progress=False)
    doc = json.loads((out / "results.json").read_text())
    assert doc["model"]["name"] == "clap-cosine:clap-tiny"
    for dim in ("musicality", "alignment"):
        assert doc["results"][f"cmi-arena-annotation/{dim}"]["n"] == 7
    preds = pd.read_parquet(out / "predictions.parquet")
    assert np.isfinite(preds[["score_a", "score_b"]].to_numpy()).all()
    assert (preds["score_a"] != preds["score_b"]).all()  # different clips, different cosines
