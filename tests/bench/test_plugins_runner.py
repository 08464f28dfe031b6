"""Model plugins (module:Class, reference interface, entry points, baselines), the runner's
score cache / resume / bad-clip handling, the CLI and the leaderboard."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from musicjudge.bench.models import resolve_model
from musicjudge.reward.baselines import RandomReward
from musicjudge.bench.runner import run_benchmark
from musicjudge.errors import ConfigError, ModelLoadError
from musicjudge.reward.base import ScoreItem
from musicjudge.reward.data import Instruction


def _results(out):
    return json.loads((out / "results.json").read_text())


def test_module_class_plugin_runs_end_to_end_with_correct_pairing(cmi_root, plugin_module, tmp_path):
    out = tmp_path / "run"
    run_benchmark(f"{plugin_module}:RmsReward", str(cmi_root / "unified.jsonl"), out, n_boot=100, progress=False)
    res = _results(out)["results"]
    # Louder clip preferred everywhere: every decided pair right, the one truth tie counts 0.5.
    assert res["cmi-arena-annotation/musicality"]["accuracy"] == 1.0
    assert res["cmi-arena-annotation/musicality"]["n"] == 7 and res["cmi-arena-annotation/musicality"]["n_missing"] == 1
    assert res["cmi-arena-annotation/alignment"]["accuracy"] == pytest.approx(6.5 / 7)
    assert res["Music Arena/musicality"]["accuracy"] == pytest.approx(4.5 / 5)
    assert res["MusicEval/musicality"]["spearman"] == pytest.approx(1.0)
    assert res["MusicEval/musicality"]["system_spearman"] == pytest.approx(1.0)
    assert res["PAM/alignment"]["kendall"] == pytest.approx(-1.0)
    lo, hi = res["PAM/musicality"]["pearson_ci"]
    assert lo <= res["PAM/musicality"]["pearson"] <= hi
    br = pd.read_csv(out / "breakdowns.csv")
    br = br[br.metric != "accuracy_ties_as_b"]  # every accuracy group also comes under the tie-as-B convention
    kinds = br[(br.task == "cmi-arena-annotation/musicality") & (br.breakdown == "instruction_kind")]
    assert sorted(kinds.group) == ["text", "text+lyrics", "text+lyrics+ref", "text+ref"]
    conf = br[(br.task == "cmi-arena-annotation/musicality") & (br.breakdown == "confidence")]
    assert dict(zip(conf.group, conf.n)) == {"<3": 2, "=3": 2, ">3": 3}
    assert set(br[br.breakdown == "system"].group) >= {"gen-x", "gen-y"}
    assert set(br[br.breakdown == "audio_length"].group) == {"<=10s"}
    assert set(br[br.breakdown == "vocal"].group) == {"vocal", "instrumental"}
    months = br[(br.task == "Music Arena/musicality") & (br.breakdown == "month")]
    assert dict(zip(months.group, months.n)) == {"2025-01": 3, "2025-02": 2}
    errors = [json.loads(l) for l in (out / "errors.jsonl").read_text().splitlines()]
    assert {e["reason"] for e in errors} == {"audio file not found"}
    preds = pd.read_parquet(out / "predictions.parquet")
    assert len(preds) == 7 + 7 + 6 + 5 + 5 + 5
    doc = _results(out)
    assert doc["versions"]["musicjudge"] and "numpy" in doc["versions"]
    assert doc["benchmark"]["data"]["PAM/musicality"]["sha256"]


def test_reference_interface_class_is_wrapped_with_columns_in_order(cmi_root, plugin_module, tmp_path):
    m = resolve_model(f"{plugin_module}:RefInterfaceModel", {"checkpoint": "ckpt"})
    assert m.scorer.model.checkpoint == "ckpt"
    loud, quiet = str(cmi_root / "audio" / "pref0a.wav"), str(cmi_root / "audio" / "pref0b.wav")
    s = m.score([ScoreItem(loud, Instruction("x")), ScoreItem(quiet, Instruction("x"))])
    assert s["musicality"][0] > s["musicality"][1] and s["alignment"][0] < s["alignment"][1]
    out = tmp_path / "ref"
    run_benchmark(m, str(cmi_root / "unified.jsonl"), out, tasks=["cmi-arena-annotation/*"], n_boot=50, progress=False)
    res = _results(out)["results"]
    assert res["cmi-arena-annotation/musicality"]["accuracy"] == 1.0
    assert res["cmi-arena-annotation/alignment"]["accuracy"] == pytest.approx(0.5 / 7)


def test_entry_point_plugin(plugin_module, monkeypatch):
    from importlib.metadata import EntryPoint

    ep = EntryPoint(name="loudness", value=f"{plugin_module}:RmsReward", group="musicjudge.reward_models")
    monkeypatch.setattr("musicjudge.plugins.entry_point_names", lambda group: {"loudness": ep})
    m = resolve_model("loudness")
    assert type(m.scorer).__name__ == "RmsReward" and m.name == "loudness"


def test_random_baseline_is_seeded_and_order_independent(cmi_root):
    items = [ScoreItem(str(p), Instruction("t")) for p in sorted((cmi_root / "audio").glob("me*.wav"))]
    a = RandomReward(0).score(items)["musicality"]
    b = RandomReward(0).score(items[::-1])["musicality"][::-1]
    assert np.array_equal(a, b) and not np.array_equal(a, RandomReward(1).score(items)["musicality"])


def test_cosine_baseline_over_a_joint_encoder(cmi_root, plugin_module, tmp_path):
    out = tmp_path / "cos"
    run_benchmark(f"cosine:{plugin_module}:JointToneEncoder", str(cmi_root / "unified.jsonl"), out,
                  tasks=["MusicEval/*"], n_boot=50, progress=False)
    assert _results(out)["results"]["MusicEval/musicality"]["spearman"] == pytest.approx(1.0)


def test_bad_model_specs_give_one_line_errors(plugin_module):
    with pytest.raises(ConfigError, match="cannot import module"):
        resolve_model("no_such_module_xyz:Model")
    with pytest.raises(ConfigError, match="integer seed"):
        resolve_model("random:abc")
    with pytest.raises(ModelLoadError, match="cannot construct|neither score"):
        resolve_model(f"{plugin_module}:_rms")  # a function returning a float is not a model


def test_cache_makes_rerun_free_and_interrupted_run_resumes(cmi_root, plugin_module, tmp_path):
    import mj_bench_plugins as P

    bench = str(cmi_root / "unified.jsonl")
    spec = f"{plugin_module}:Interrupting"
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(spec, bench, tmp_path / "r1", batch_size=4, n_boot=20, progress=False)
    assert (P.Interrupting.batches, P.Interrupting.clips) == (1, 4)  # one batch finished, then Ctrl-C
    P.Interrupting.resume = True
    doc = json.loads(run_benchmark(spec, bench, tmp_path / "r1", batch_size=4, n_boot=20, progress=False).read_text())
    assert doc["n_items_scored_now"] == doc["n_items_total"] - 4 == P.Interrupting.clips - 4
    clips_before = P.Interrupting.clips
    doc2 = json.loads(run_benchmark(spec, bench, tmp_path / "r2", batch_size=4, n_boot=20, progress=False).read_text())
    assert doc2["n_items_scored_now"] == 0 and P.Interrupting.clips == clips_before
    assert doc2["results"] == doc["results"]


def test_unreadable_clip_is_recorded_not_fatal(cmi_root, plugin_module, tmp_path):
    (cmi_root / "audio" / "me2.wav").write_bytes(b"not a wav at all")
    out = tmp_path / "bad"
    run_benchmark(f"{plugin_module}:RmsReward", str(cmi_root / "unified.jsonl"), out, tasks=["MusicEval/*"],
                  batch_size=4, n_boot=20, progress=False)
    res = _results(out)["results"]["MusicEval/musicality"]
    assert res["n"] == 5 and res["n_unscored"] == 1 and res["spearman"] == pytest.approx(1.0)
    errors = [json.loads(l) for l in (out / "errors.jsonl").read_text().splitlines()]
    assert len(errors) == 1 and errors[0]["path"].endswith("me2.wav") and "\n" not in errors[0]["reason"]


def test_model_that_fails_everything_is_an_error(cmi_root, plugin_module, tmp_path):
    with pytest.raises(ModelLoadError, match="no clip could be scored"):
        run_benchmark(f"{plugin_module}:Broken", str(cmi_root / "unified.jsonl"), tmp_path / "x",
                      tasks=["MusicEval/*"], progress=False)
    with pytest.raises(ModelLoadError, match="cannot construct"):
        resolve_model(f"{plugin_module}:RefInterfaceModel", {"unknown_arg": 1})


def test_cli_run_and_leaderboard(cmi_root, plugin_module, tmp_path):
    from musicjudge.cli.main import app

    runner = CliRunner()
    bench = str(cmi_root / "unified.jsonl")
    for model, name in ((f"{plugin_module}:RmsReward", "rms"), ("random:0", "rnd")):
        r = runner.invoke(app, ["bench", "run", "-m", model, "-b", bench, "-o", str(tmp_path / name), "--quick", "--n-boot", "50"],
                          env={"COLUMNS": "200"})
        assert r.exit_code == 0, r.output
        assert "cmi-arena-annotation/musicality" in r.output
    r = runner.invoke(app, ["bench", "leaderboard", str(tmp_path / "rms"), str(tmp_path / "rnd"), "-o", str(tmp_path / "lb")])
    assert r.exit_code == 0, r.output
    md = (tmp_path / "lb" / "leaderboard.md").read_text()
    header = next(l for l in md.splitlines() if l.startswith("| task"))
    assert header.index("RmsReward") < header.index("random:0")  # best model first
    row = next(l for l in md.splitlines() if l.startswith("| MusicEval/musicality"))
    assert row.split(" | ")[2].startswith("1.000 [")  # RmsReward's Spearman with its CI
    html = (tmp_path / "lb" / "leaderboard.html").read_text()
    assert "RmsReward" in html and "MusicEval/musicality" in html and "data:image/png;base64" in html
    assert "instruction_kind" in html  # breakdowns side by side
    r = runner.invoke(app, ["bench", "run", "-m", "random", "-b", "nope.yaml", "-o", str(tmp_path / "x")])
    assert r.exit_code != 0


def test_metadata_breakdowns_from_yaml_options(cmi_root, plugin_module, tmp_path):
    cfg = tmp_path / "b.yaml"
    cfg.write_text(f"tasks:\n  - {{name: arena, data: '{cmi_root}/unified.jsonl', source: Music Arena, dimension: musicality,"
                   " metric: accuracy, options: {metadata_breakdowns: [model_a, raw_preference]}}\n")
    out = tmp_path / "run"
    run_benchmark(f"{plugin_module}:RmsReward", str(cfg), out, n_boot=20, progress=False)
    br = pd.read_csv(out / "breakdowns.csv")
    br = br[br.metric == "accuracy"]
    raw = br[br.breakdown == "raw_preference"].set_index("group")
    assert raw.loc["neither", "value"] == 0.5 and raw.loc["model_b", "value"] == 1.0 and raw.loc["a", "n"] == 1
    assert list(br[br.breakdown == "model_a"].group) == ["gen-x"]
    assert "meta_model_a" in pd.read_parquet(out / "predictions.parquet").columns
