"""musicjudge eval end to end on two small systems + a reference folder (built-in LM and reward
model), with a clip that fails to load and a prompt without a clip; resume; the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy.stats import binomtest, spearmanr

from musicjudge.errors import ConfigError
from musicjudge.evaluation import ProfileSettings, evaluate
from musicjudge.evaluation.stats import frechet_distance
from musicjudge.io import read_jsonl

SR = 32000
PROFILE = ProfileSettings(onsets_s=(2.0,), lengths_frames=(5, 10))


def _melody(path, base_hz, *, noise=0.0, seconds=5.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    steps = rng.integers(0, 7, size=int(seconds * 4) + 1)
    freq = base_hz * 2 ** (np.array([0, 2, 4, 5, 7, 9, 11])[steps[(t * 4).astype(int)]] / 12)
    wave = 0.3 * np.sin(2 * np.pi * np.cumsum(freq) / SR) * (0.5 + 0.5 * np.abs(np.sin(np.pi * 4 * t)))
    wave = wave + noise * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), SR)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    for i in range(3):
        _melody(root / "a" / f"p{i}.wav", 220 + 30 * i, seed=i)
        _melody(root / "b_audio" / f"p{i}.wav", 220 + 30 * i, noise=0.15, seed=i)
        _melody(root / "ref" / f"r{i}.wav", 230 + 25 * i, seed=10 + i)
    (root / "b_audio" / "broken.wav").write_bytes(b"RIFF not really audio")
    # system b is a manifest whose ids differ from the prompt ids: clips match by file stem
    rows = [{"id": f"b-{i}", "path": f"b_audio/p{i}.wav"} for i in range(3)] + [{"id": "b-bad", "path": "b_audio/broken.wav"}]
    (root / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts = [{"id": f"p{i}", "text": "a calm melody for organ"} for i in range(3)] + [{"id": "p3", "text": "a march"}]
    (root / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    logs: list[str] = []
    out = root / "out"
    result = evaluate({"a": root / "a", "b": root / "b.jsonl"}, out, prompts=root / "prompts.jsonl",
                      reference=root / "ref", profile=PROFILE, n_boot=200, progress=False, log=logs.append)
    return root, out, result, logs


def test_writes_tables_figures_and_report(run):
    root, out, result, logs = run
    for name in ("clips.parquet", "systems.csv", "winrates.csv", "distances.csv", "validity.csv", "results.json",
                 "errors.jsonl", "report.html", "figures/metrics.png", "figures/winrates.png", "figures/validity.png"):
        assert (out / name).is_file(), name
    assert (out / "figures" / "metrics.png").read_bytes().startswith(b"\x89PNG")
    clips = pd.read_parquet(out / "clips.parquet")
    assert len(clips) == 7 and list(clips["system"]).count("b") == 4
    good = clips[clips["status"] == "ok"]
    assert len(good) == 6
    assert good[["musicality", "alignment", "profile_score", "orig_loss", "profile_adjusted"]].notna().all().all()
    assert set(good.loc[good.system == "b", "prompt_id"]) == {"p0", "p1", "p2"}  # matched by file stem
    html = (out / "report.html").read_text()
    assert html.count("<audio") >= 4 and "data:audio/" in html and "data:image/png;base64," in html
    for section in ("Win-rate matrix", "Distributions", "Distance to the reference", "Validity of the profile score",
                    "Best and worst clips: a", "Problems"):
        assert section in html
    assert any("FD and MMD rest on 3 system clips and 3 reference clips" in line for line in logs)
    row = pd.read_csv(out / "systems.csv").query("system == 'a' and metric == 'musicality'").iloc[0]
    assert f"{row['mean']:.3g} [{row['ci_low']:.3g}, {row['ci_high']:.3g}] (n=3)" in html  # paper-style cell


def test_bad_clip_and_prompt_without_clip_are_recorded(run):
    root, out, result, _ = run
    errors = read_jsonl(out / "errors.jsonl")
    bad = [e for e in errors if e["id"] == "b-bad"]
    assert len(bad) == 1 and bad[0]["system"] == "b" and bad[0]["path"].endswith("broken.wav") and bad[0]["reason"]
    missing = sorted((e["system"], e["id"]) for e in errors if e["reason"].startswith("no clip"))
    assert missing == [("a", "p3"), ("b", "p3")]
    clips = pd.read_parquet(out / "clips.parquet")
    row = clips[clips.id == "b-bad"].iloc[0]
    assert row["status"] == "failed" and np.isnan(row["musicality"])
    assert result.results["counts"]["missing_prompts"] == 2 and result.results["counts"]["failed"] == 1


def test_tables_match_the_clip_rows(run):
    root, out, result, _ = run
    clips = pd.read_parquet(out / "clips.parquet")
    systems = pd.read_csv(out / "systems.csv")
    for (system, metric), grp in systems.groupby(["system", "metric"]):
        values = clips.loc[clips.system == system, metric].dropna()
        assert grp["mean"].iloc[0] == pytest.approx(values.mean()) and grp["n"].iloc[0] == len(values)
    winrates = pd.read_csv(out / "winrates.csv")
    wide = clips.dropna(subset=["prompt_id"]).pivot(index="prompt_id", columns="system", values="musicality").dropna()
    wins, losses = int((wide["a"] > wide["b"]).sum()), int((wide["a"] < wide["b"]).sum())
    ab = winrates[(winrates.metric == "musicality") & (winrates.system_a == "a")].iloc[0]
    assert (ab["n"], ab["wins"], ab["losses"]) == (3, wins, losses)
    assert ab["sign_test_p"] == pytest.approx(binomtest(wins, wins + losses).pvalue)
    ba = winrates[(winrates.metric == "musicality") & (winrates.system_a == "b")].iloc[0]
    assert ab["win_rate"] + ba["win_rate"] == pytest.approx(1.0)
    validity = pd.read_csv(out / "validity.csv").set_index("system")
    sub = clips[clips.system == "a"]
    assert validity.loc["a", "spearman_r"] == pytest.approx(spearmanr(sub.profile_score, sub.orig_loss).statistic)
    assert clips["profile_adjusted"].mean() == pytest.approx(0.0, abs=1e-9)  # OLS residuals over all clips


def test_distances_use_the_stored_embeddings(run):
    root, out, result, _ = run
    distances = pd.read_csv(out / "distances.csv").set_index("system")
    assert (distances["n_system"] == 3).all() and (distances["n_reference"] == 3).all()
    rows = read_jsonl(out / "clips.jsonl")
    emb_a = np.array([r["embedding"] for r in rows if r["system"] == "a"])
    emb_b = np.array([r["embedding"] for r in rows if r["system"] == "b" and r["embedding"] is not None])
    # FD between the two systems' embeddings is finite and the noisy system is farther from the clean reference
    assert np.isfinite(frechet_distance(emb_a, emb_b))
    assert distances.loc["b", "mmd2"] > distances.loc["a", "mmd2"]
    assert distances.loc["b", "frechet_distance"] > distances.loc["a", "frechet_distance"]
    assert "indicative only" in distances["caveat"].iloc[0]


def test_rerun_resumes_and_other_settings_are_refused(run):
    root, out, result, _ = run
    lines = (out / "clips.jsonl").read_text().count("\n")
    logs: list[str] = []
    again = evaluate({"a": root / "a", "b": root / "b.jsonl"}, out, prompts=root / "prompts.jsonl",
                     reference=root / "ref", profile=PROFILE, n_boot=200, progress=False, log=logs.append)
    assert "7 clip(s), 0 to score (7 cached" in logs[0]
    assert (out / "clips.jsonl").read_text().count("\n") == lines
    assert again.results["systems"] == result.results["systems"]
    with pytest.raises(ConfigError, match="other settings"):
        evaluate({"a": root / "a"}, out, profile=ProfileSettings(onsets_s=(1.0,)), progress=False, log=logs.append)


def test_cli_errors_and_a_reward_only_run(run, tmp_path, capsys):
    from musicjudge.cli.main import main

    root = run[0]
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2 and "no systems" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "a=" + str(root / "nowhere"), "--out", str(tmp_path / "x")])
    assert "nowhere: no such folder or manifest" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "--demo", "a=" + str(root / "a"), "--out", str(tmp_path / "x")])
    assert "--demo builds its own systems" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "a=" + str(root / "a"), "--lm", "none", "--reward", "none", "--out", str(tmp_path / "x")])
    assert "nothing to score" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["eval", f"a={root / 'a'}", f"b={root / 'b.jsonl'}", "--lm", "none", "--limit", "2", "--n-boot", "50",
              "--out", str(tmp_path / "cli"), "--examples", "1"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip().endswith("report.html")
    clips = pd.read_parquet(tmp_path / "cli" / "clips.parquet")
    assert len(clips) == 4 and clips["profile_score"].isna().all() and clips["musicality"].notna().all()
    assert clips["alignment"].isna().all()  # no prompts and no manifest text: nothing to align to
    # without --prompts clips pair up by id: a's are p0, p1, b's manifest ids b-0, b-1, so no pairs
    assert set(pd.read_csv(tmp_path / "cli" / "winrates.csv")["n"]) == {0}


class _FragileReward:
    """A plugin reward model that crashes on any batch containing a clip named 'p1'."""

    name = "fragile"

    def score(self, items):
        if any(it.audio.endswith("p1.wav") for it in items):
            raise RuntimeError("backend crashed")
        return {"musicality": np.array([float(len(it.audio)) for it in items]),
                "alignment": np.zeros(len(items))}


class _EmbeddingReward(_FragileReward):
    """A plugin with its own audio embedding: 2-d, the clip's RMS and peak."""

    def embed_audio(self, paths):
        waves = [sf.read(p)[0] for p in paths]
        return np.array([[np.sqrt(np.mean(w ** 2)), np.abs(w).max()] for w in waves])

    # p1 fails in score(), so it is left out of the distances although it has an embedding


def test_a_plugin_with_embed_audio_gets_distances(run, tmp_path):
    root = run[0]
    result = evaluate({"a": root / "a"}, tmp_path / "out", reference=root / "ref", lm="none",
                      reward=_EmbeddingReward(), n_boot=20, progress=False, log=lambda _: None)
    dist = result.results["distances"][0]
    emb_a = _EmbeddingReward().embed_audio(sorted(str(p) for p in (root / "a").glob("*.wav")))
    emb_r = _EmbeddingReward().embed_audio(sorted(str(p) for p in (root / "ref").glob("*.wav")))
    assert dist["dim"] == 2 and dist["frechet_distance"] == pytest.approx(frechet_distance(emb_a[[0, 2]], emb_r), rel=1e-4)


def test_a_reward_plugin_crash_is_isolated_to_its_clip(run, tmp_path):
    root = run[0]
    result = evaluate({"a": root / "a"}, tmp_path / "out", lm="none", reward=_FragileReward(), n_boot=20,
                      progress=False, log=lambda _: None)
    clips = pd.read_parquet(tmp_path / "out" / "clips.parquet").set_index("id")
    assert clips.loc["p1.wav", "status"] == "failed" and "RuntimeError: backend crashed" in clips.loc["p1.wav", "error"]
    assert clips.loc[["p0.wav", "p2.wav"], "musicality"].notna().all()
    assert result.results["distances"] == []  # no audio encoder: no distances, and no crash
