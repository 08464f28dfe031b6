"""A pseudo-labelled set trains a reward model (stage 1, label smoothing) through
'musicjudge reward train', and the trained model ranks held-out pairs."""

import json

import numpy as np
from typer.testing import CliRunner

from musicjudge.cli.main import app as cli_app
from musicjudge.pseudolabel.judges import SimulatedJudge
from musicjudge.pseudolabel.label import label_pairs
from musicjudge.reward.base import ScoreItem
from musicjudge.reward.registry import load_reward_model
from musicjudge.reward.data import read_pairs

from .conftest import write_study


def test_pseudo_labels_train_a_reward_model(tmp_path):
    train = read_pairs(write_study(tmp_path / "train", ["honest"] * 48, seed=0))
    test = read_pairs(write_study(tmp_path / "test", ["honest"] * 24, seed=1))
    result = label_pairs(train, SimulatedJudge(accuracy=0.8, position_bias=0.3, seed=0), tmp_path / "pl", progress=False)
    assert result.summary["dimensions"]["musicality"]["accuracy"]["kept_accuracy"] > 0.8
    r = CliRunner().invoke(cli_app, [
        "reward", "train", "--pairs", str(result.pairs_path), "--out", str(tmp_path / "rm"), "--label-smoothing", "0.1",
        "--epochs", "25", "--patience", "25", "--features", "mel,texture", "--d-model", "32", "--layers", "1",
        "--val-fraction", "0.2",
    ])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "rm" / "model.safetensors").exists()
    model = load_reward_model(tmp_path / "rm")
    items = [ScoreItem(audio=a, instruction=p.instruction) for p in test for a in (p.audio_a, p.audio_b)]
    scores = model.score(items)["musicality"].reshape(-1, 2)
    predicted = np.where(scores[:, 0] > scores[:, 1], "A", "B")
    truth = np.array([p.preference["musicality"] for p in test])
    accuracy = float((predicted == truth).mean())
    assert accuracy >= 0.75, accuracy  # clean vs noisy tones; chance is 0.5
    # the trained checkpoint is itself a judge ('reward:CHECKPOINT'), position-free by construction
    test_manifest = tmp_path / "test" / "pairs.jsonl"
    r = CliRunner().invoke(cli_app, ["pseudolabel", "label", str(test_manifest), "--judge", f"reward:{tmp_path / 'rm'}",
                                     "--out", str(tmp_path / "pl_rm")])
    assert r.exit_code == 0, r.output
    mus = json.loads((tmp_path / "pl_rm" / "summary.json").read_text())["dimensions"]["musicality"]
    assert mus["position_bias_rate"] == 0.0 and mus["consistent_share"] == 1.0
    assert abs(mus["accuracy"]["single_order_accuracy"] - accuracy) < 1e-4  # same scores, same verdicts (summary rounds to 4 places)
