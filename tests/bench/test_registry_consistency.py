"""One spec, one model: the same reward-model spec gives identical scores through
``reward eval`` (score_pairs), ``bench run`` (predictions.parquet) and the Python API, and the
registry lists every name those commands accept."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from musicjudge.bench.runner import run_benchmark
from musicjudge.cli.main import app
from musicjudge.reward.base import ScoreItem
from musicjudge.reward.data import read_pairs
from musicjudge.reward.evaluate import resolve_model, score_pairs
from musicjudge.reward.registry import REWARD_MODELS, load_reward_model

from .conftest import write_tone


@pytest.fixture
def pairs_manifest(tmp_path):
    rows = []
    for i in range(4):
        a = write_tone(tmp_path / "clips" / f"a{i}.wav", 0.2 + 0.15 * i, 220 * (1 + i % 2), seconds=3.0)
        b = write_tone(tmp_path / "clips" / f"b{i}.wav", 0.7 - 0.1 * i, 330, seconds=3.0)
        rows.append({"id": f"p{i}", "text": ["a calm piano piece", "a fast violin tune"][i % 2],
                     "lyrics": "la la la" if i == 3 else None, "ref_audio": f"clips/a{(i + 1) % 4}.wav" if i >= 2 else None,
                     "audio_a": f"clips/{a.name}", "audio_b": f"clips/{b.name}",
                     "musicality": "A" if i % 2 else "B", "alignment": "B" if i % 2 else "A"})
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("spec", ["random:3", "builtin", "PLUGIN:RefInterfaceModel", "clap-cosine:PLUGIN:JointToneEncoder"])
def test_same_spec_same_scores_in_every_command(spec, pairs_manifest, plugin_module, tmp_path):
    spec = spec.replace("PLUGIN", plugin_module)
    pairs = read_pairs(pairs_manifest)
    # reward eval
    sa, sb, failures = score_pairs(resolve_model(spec), pairs)
    assert not failures
    # bench run on the same manifest
    run_benchmark(spec, str(pairs_manifest), tmp_path / "bench", n_boot=10, progress=False)
    preds = pd.read_parquet(tmp_path / "bench" / "predictions.parquet")
    # Python API
    model = load_reward_model(spec)
    api = model.score([ScoreItem(p.audio_a, p.instruction) for p in pairs])
    for k, dim in enumerate(("musicality", "alignment")):
        got = preds[preds["dimension"] == dim].set_index("id").loc[[p.id for p in pairs]]
        np.testing.assert_array_equal(got["score_a"].to_numpy(float), sa[:, k])
        np.testing.assert_array_equal(got["score_b"].to_numpy(float), sb[:, k])
        np.testing.assert_array_equal(np.asarray(api[dim], float), sa[:, k])
    assert np.isfinite(sa).all() and not np.array_equal(sa, sb)


def test_random_baseline_is_batch_independent(pairs_manifest):
    pairs = read_pairs(pairs_manifest)
    items = [ScoreItem(p.audio_a, p.instruction) for p in pairs]
    model = load_reward_model("random:3")
    whole = model.score(items)["musicality"]
    one_by_one = [model.score([it])["musicality"][0] for it in reversed(items)][::-1]
    np.testing.assert_array_equal(whole, one_by_one)
    assert not np.array_equal(whole, load_reward_model("random:4").score(items)["musicality"])


def test_old_cosine_name_is_the_text_ridge_baseline():
    hit = REWARD_MODELS.match("cosine:clap:/models/clap")
    assert hit is not None and hit[0].name == "cosine" and hit[1] == "clap:/models/clap"
    assert {"builtin", "random", "text-ridge", "clap-cosine", "cmi-rm", "loss-profile"} <= set(REWARD_MODELS.names())


def test_bench_list_and_reward_info_print_the_registry():
    runner = CliRunner()
    listed = runner.invoke(app, ["bench", "list"])
    assert listed.exit_code == 0, listed.output
    for usage in ("random[:SEED]", "text-ridge[:ENCODER]", "clap-cosine[:ENCODER]", "cmi-rm=FOLDER", "loss-profile[:LM]",
                  "simulated[:accuracy=A,bias=B,seed=S]", "reward:SPEC", "musicgen=HUB_ID_OR_FOLDER"):
        assert usage in listed.output
    info = runner.invoke(app, ["reward", "info", "--list"])
    assert info.exit_code == 0 and "cmi-rm=FOLDER" in info.output and "simulated" not in info.output


def test_unknown_spec_names_the_registered_ones():
    from musicjudge.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="text-ridge") as e:
        load_reward_model("no-such-model")
    assert "bench list" in str(e.value)
