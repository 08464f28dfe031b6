"""The Python API: docs/api.md's snippets run as they are (in a folder with the files they name,
on the built-in music LM and reward model, offline) and give what the library's own functions
give; ``import musicjudge`` stays light; the pieces the snippets do not show."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import musicjudge
from musicjudge import api

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "api.md"
SR = 32000


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def tone(path: Path, freq: float, seconds: float = 6.0, amp: float = 0.3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = amp * np.sin(2 * np.pi * freq * t * (1 + 0.05 * t)) + 0.02 * rng.standard_normal(t.size)
    sf.write(path, wave.astype(np.float32), SR)
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The files docs/api.md names: clips/, pairs.jsonl, base/, new/, prompts.jsonl."""
    root = tmp_path_factory.mktemp("api")
    for i, freq in enumerate((220.0, 330.0)):
        tone(root / "clips" / f"c{i}.wav", freq, seed=i)
    rows = []
    for i in range(4):  # the preferred clip is louder
        tone(root / "pairs" / f"a{i}.wav", 220 + 30 * i, seconds=3.0, amp=0.5, seed=i)
        tone(root / "pairs" / f"b{i}.wav", 330, seconds=3.0, amp=0.1, seed=10 + i)
        rows.append({"id": f"p{i}", "text": "a calm piano piece", "audio_a": f"pairs/a{i}.wav",
                     "audio_b": f"pairs/b{i}.wav", "musicality": "A", "alignment": "B" if i % 2 else "A"})
    (root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for system, shift in (("base", 0), ("new", 50)):
        for i in range(2):
            tone(root / system / f"p{i}.wav", 200 + 100 * i + shift, seed=20 + i)
    (root / "prompts.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "text": "a calm piano piece"}) + "\n"
                                                for i in range(2)))
    return root


@pytest.fixture(scope="module")
def doc_namespace(workdir):
    """Run every snippet of docs/api.md in order, in one namespace, from ``workdir``."""
    old = os.getcwd()
    os.chdir(workdir)
    namespace: dict = {}
    try:
        for i, code in enumerate(snippets()):
            exec(compile(code, f"docs/api.md snippet {i + 1}", "exec"), namespace)
    finally:
        os.chdir(old)
    return namespace


def test_snippets_are_short():
    blocks = snippets()
    assert len(blocks) == 7
    assert blocks[0].strip() == "import musicjudge as mj"
    for code in blocks:
        assert len(code.strip().splitlines()) <= 5, code


def test_score_files_snippet(doc_namespace, workdir):
    from musicjudge.lm.files import score_file

    lm, scores = doc_namespace["lm"], doc_namespace["scores"]
    assert list(scores["id"]) == ["c0.wav", "c1.wav"] and (scores["status"] == "ok").all()
    assert (scores["frames"] == 300).all()  # 6 s at 50 frames/s
    direct = score_file(lm, workdir / "clips" / "c1.wav")
    assert scores["mean_nll"].iloc[1] == pytest.approx(direct.mean(), rel=1e-6)


def test_profile_scores_snippet(doc_namespace, workdir):
    from musicjudge.probe.scoring import profile_scores

    profiles = doc_namespace["profiles"]
    assert list(profiles["id"]) == ["c0.wav", "c1.wav"] and (profiles["error"] == "").all()
    direct = profile_scores(doc_namespace["lm"], [str(workdir / "clips" / "c0.wav")], progress=False)
    assert profiles["profile_score"].iloc[0] == pytest.approx(direct["profile_score"].iloc[0], rel=1e-6)


def test_probe_snippet(doc_namespace):
    probe = doc_namespace["probe"]
    results, clips = probe["results"], probe["clips"]
    assert len(clips) == 2 and len(results) == 4  # 2 clips x noise lengths 5, 50
    assert sorted(results["length_frames"].unique()) == [5, 50]
    assert np.isfinite(results["peak_height"].astype(float)).all()


def test_reward_snippet(doc_namespace, workdir):
    from musicjudge.reward.base import ScoreItem
    from musicjudge.reward.data import Instruction

    rm, rewards = doc_namespace["rm"], doc_namespace["rewards"]
    assert isinstance(rm, api.RewardScorer) and rm.name == "builtin"
    assert list(rewards.columns) == api.REWARD_COLUMNS
    assert rewards["text"].iloc[0] == "a calm piano piece" and pd.isna(rewards["text"].iloc[1])
    raw = rm.reward_model.score([ScoreItem(str(workdir / "clips/c0.wav"), Instruction("a calm piano piece")),
                                 ScoreItem(str(workdir / "clips/c1.wav"))])
    np.testing.assert_allclose(rewards["musicality"].to_numpy(float), raw["musicality"], rtol=1e-6)
    np.testing.assert_allclose(rewards["alignment"].to_numpy(float), raw["alignment"], rtol=1e-6)


def test_bench_snippet(doc_namespace):
    bench = doc_namespace["bench"]
    table = bench["table"]
    headline = table[table["metric"] == "accuracy"].set_index("dimension")
    assert set(headline.index) == {"musicality", "alignment"} and (headline["n"] == 4).all()
    assert bench["model"]["name"] == "builtin" and len(bench["predictions"]) == 8
    assert headline.loc["musicality", "value"] == bench["results"]["pairs/musicality"]["accuracy"]


def test_eval_snippet(doc_namespace):
    result = doc_namespace["result"]
    systems = result.table("systems")
    assert set(systems["system"]) == {"base", "new"}
    assert {"musicality", "profile_score", "orig_loss"} <= set(systems["metric"])
    assert result.report is not None and result.report.exists()
    assert result.results["counts"]["clips_with_prompt"] == {"base": 2, "new": 2}


def test_probe_package_exposes_run():
    import musicjudge.probe

    assert musicjudge.probe.run is api.probe_run


def test_bench_package_exposes_run():
    import musicjudge.bench

    assert musicjudge.bench.run is api.bench_run


def test_import_is_light():
    code = "import sys, musicjudge; print(sorted(m for m in ('torch', 'pandas', 'numpy', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    times = subprocess.run([sys.executable, "-X", "importtime", "-c", "import musicjudge"],
                           capture_output=True, text=True, check=True).stderr
    cumulative_us = int(next(line for line in times.splitlines() if line.rstrip().endswith("| musicjudge")).split("|")[1])
    assert cumulative_us < 300_000, f"import musicjudge took {cumulative_us / 1e6:.3f} s cumulative"


def test_package_face():
    assert musicjudge.load_reward_model is api.load_reward_model
    assert musicjudge.eval is api.run_eval
    assert "eval" not in musicjudge.__all__  # a star import must not shadow the builtin
    assert {"load_music_lm", "score_files", "profile_scores", "probe", "bench"} <= set(dir(musicjudge))
    with pytest.raises(AttributeError):
        musicjudge.no_such_thing  # noqa: B018


def test_score_files_records_bad_files_writes_curves_and_resumes(doc_namespace, workdir, tmp_path):
    from musicjudge.errors import AudioError

    lm = doc_namespace["lm"]
    good = str(workdir / "clips" / "c0.wav")
    table = musicjudge.score_files(lm, [good, str(tmp_path / "missing.wav")], out=tmp_path / "curves")
    assert list(table["status"]) == ["ok", "failed"] and "missing.wav" in table["error"].iloc[1]
    curve = pd.read_csv(tmp_path / "curves" / "c0.nll.csv")
    assert table["curve"].iloc[0] == str(tmp_path / "curves" / "c0.nll.csv") and len(curve) == 300
    again = musicjudge.score_files(lm, [good], out=tmp_path / "curves", skip_existing=True)
    assert again["status"].iloc[0] == "kept"
    assert again["mean_nll"].iloc[0] == pytest.approx(table["mean_nll"].iloc[0], abs=1e-6)
    with pytest.raises(AudioError):
        musicjudge.score_files(lm, [str(tmp_path / "missing.wav")], raise_errors=True)
    one = musicjudge.score_files(lm, good)  # one file
    assert list(one["id"]) == [good]


def test_reward_scorer_goes_where_reward_models_go(doc_namespace, workdir, tmp_path):
    from musicjudge.bench.runner import run_benchmark

    rm = musicjudge.load_reward_model("random:3")
    folder = rm.score(workdir / "clips")  # a folder: ids are relative paths
    assert list(folder["id"]) == ["c0.wav", "c1.wav"] and np.isfinite(folder["musicality"]).all()
    results = json.loads(run_benchmark(rm, str(workdir / "pairs.jsonl"), tmp_path / "b", n_boot=10,
                                       progress=False).read_text())
    assert results["model"]["spec"] == "random:3"
    direct = musicjudge.bench.run("random:3", str(workdir / "pairs.jsonl"), n_boot=10)
    assert results["results"] == direct["results"]
    with pytest.raises(musicjudge.MusicjudgeError, match="unknown key"):
        rm.score([{"audio": "x.wav", "caption": "typo"}])
