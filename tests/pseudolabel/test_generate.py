"""Prompts -> candidates (a real MusicGen architecture, tiny and randomly initialised, sampled
through transformers' generate) -> pairs -> position-consistent pseudo-labels."""

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from musicjudge.cli.main import app as cli_app
from musicjudge.pseudolabel.generate import generate_candidates, read_prompts
from musicjudge.reward.data import read_pairs, read_rated


@pytest.fixture(scope="module")
def tiny_musicgen(tmp_path_factory):
    import torch

    from musicjudge.lm.musicgen import build_tiny_musicgen

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("tiny-musicgen")
    build_tiny_musicgen(path)
    return path


def test_prompts_to_pseudo_labels(tiny_musicgen, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a calm piano piece\n\nfast electronic beat with drums\n")
    gen = tmp_path / "gen"
    runner = CliRunner()
    args = ["pseudolabel", "generate", str(prompts), "--model", str(tiny_musicgen), "--n", "3", "--top-k", "5,50",
            "--duration", "0.4", "--out", str(gen)]
    r = runner.invoke(cli_app, args)
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (gen / "candidates.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == ["prompt0001-0", "prompt0001-1", "prompt0001-2", "prompt0002-0", "prompt0002-1", "prompt0002-2"]
    assert [row["top_k"] for row in rows] == [5, 50, 5] * 2
    assert rows[3]["text"] == "fast electronic beat with drums" and rows[0]["conditioned_on"] == ["text"]
    assert len({row["seed"] for row in rows}) == 6
    waves = {}
    for row in rows:
        wave, sr = sf.read(gen / row["audio"], dtype="float32")
        assert sr == 32000 and abs(len(wave) / sr - 0.4) < 0.05 and np.abs(wave).max() > 1e-4
        waves[row["id"]] = wave
    assert not np.allclose(waves["prompt0001-0"], waves["prompt0001-2"])  # different seeds, different clips
    # resume: drop the last row as if the run died before writing it; only that clip is redone, identically
    lines = (gen / "candidates.jsonl").read_text().splitlines(keepends=True)
    (gen / "candidates.jsonl").write_text("".join(lines[:-1]))
    r = runner.invoke(cli_app, args)
    assert r.exit_code == 0, r.output
    again = [json.loads(line) for line in (gen / "candidates.jsonl").read_text().splitlines()]
    assert again == rows
    np.testing.assert_allclose(sf.read(gen / rows[-1]["audio"], dtype="float32")[0], waves["prompt0002-2"], atol=1e-4)
    # candidates read as rated clips of the reward schema; pair and label them
    assert {c.system for c in read_rated(gen / "candidates.jsonl")} == {f"{tiny_musicgen}/top_k=5", f"{tiny_musicgen}/top_k=50"}
    r = runner.invoke(cli_app, ["pseudolabel", "pair", str(gen / "candidates.jsonl"), "--out", str(tmp_path / "pairs.jsonl")])
    assert r.exit_code == 0 and "6 pairs" in r.output
    pairs = read_pairs(tmp_path / "pairs.jsonl")
    assert all(p.metadata["prompt_id"] in ("prompt0001", "prompt0002") and not p.preference for p in pairs)
    r = runner.invoke(cli_app, ["pseudolabel", "label", str(tmp_path / "pairs.jsonl"), "--judge", "heuristic", "--out", str(tmp_path / "pl")])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "pl" / "summary.json").read_text())
    assert summary["pairs"] == 6 and summary["verdicts"]["ok"] == 12
    kept = read_pairs(tmp_path / "pl" / "pseudo_pairs.jsonl")
    assert len(kept) == summary["kept_pairs"] >= 1  # the heuristic judge has no position bias
    assert all(p.source == "pseudo:heuristic" and p.preference.get("musicality") in ("A", "B", "tie") for p in kept)


class FlakyToneGenerator:
    """Sine tones; fails for prompts that contain 'FAIL' (a bad prompt must not stop the run)."""

    name = "tones"
    conditioned_on = ("text",)

    def generate(self, instruction, *, seed, top_k, temperature, duration_s):
        from musicjudge.errors import ConfigError

        if "FAIL" in (instruction.text or ""):
            raise ConfigError("cannot render this prompt")
        t = np.arange(int(16000 * duration_s)) / 16000
        return 0.3 * np.sin(2 * np.pi * (200 + seed % 400) * t), 16000


def test_bad_prompts_are_recorded_and_skipped(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "ok1", "text": "tone"}\n{"id": "bad", "text": "FAIL here"}\n{"id": "ok2", "text": "tone 2"}\n')
    manifest = generate_candidates(read_prompts(prompts), FlakyToneGenerator(), tmp_path / "gen", n=2, duration_s=0.2, progress=False)
    assert [c.id for c in read_rated(manifest)] == ["ok1-0", "ok1-1", "ok2-0", "ok2-1"]
    failures = [json.loads(line) for line in (tmp_path / "gen" / "failures.jsonl").read_text().splitlines()]
    assert failures == [{"prompt_id": "bad", "candidate": 0, "error": "cannot render this prompt"}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "../x", "text": "t"}\n')
    from musicjudge.errors import ManifestError

    with pytest.raises(ManifestError, match="names a folder"):
        read_prompts(bad)


def test_builtin_lm_generate_cli(tmp_path):
    """'pseudolabel generate --model builtin' with the shipped LM: top-k sweep, unconditional
    (recorded as such), clips at the LM's rate and length."""
    import torch

    torch.set_num_threads(1)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("calm piano in C major\n")
    r = CliRunner().invoke(cli_app, ["pseudolabel", "generate", str(prompts), "--model", "builtin", "--n", "4", "--top-k", "5,250",
                                     "--duration", "0.3", "--griffin-lim-iters", "4", "--out", str(tmp_path / "gen")])
    assert r.exit_code == 0, r.output
    clips = read_rated(tmp_path / "gen" / "candidates.jsonl")
    assert [c.metadata["top_k"] for c in clips] == [5, 250, 5, 250]
    assert {c.system for c in clips} == {"builtin/top_k=5", "builtin/top_k=250"}
    assert all(c.metadata["conditioned_on"] == [] for c in clips)
    for c in clips:
        wave, rate = sf.read(c.audio, dtype="float32")
        assert rate == c.metadata["sample_rate"] and abs(len(wave) / rate - 0.3) < 0.05 and np.abs(wave).max() > 1e-3


def test_prompts_file_that_is_not_text_is_a_manifest_error(tmp_path):
    from musicjudge.errors import ManifestError

    p = tmp_path / "prompts.txt"
    p.write_bytes(b"RIFF\xd0\xff\x00\x00WAVEfmt ")
    with pytest.raises(ManifestError, match=r"prompts\.txt: not a UTF-8 text file"):
        read_prompts(p)


def test_generation_settings_are_checked_before_the_model_loads(tmp_path, capsys):
    from musicjudge.cli.main import main

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("calm piano\n")
    for flags, match in ((["--temperature", "0"], "--temperature 0"), (["--n", "1"], "--n 1"),
                         (["--duration", "0"], "--duration 0")):
        with pytest.raises(SystemExit) as exc:
            main(["pseudolabel", "generate", str(prompts), "--model", "builtin", "--out", str(tmp_path / "gen"), *flags])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.startswith(f"error: {match}") and err.count("\n") == 1, err
        assert not (tmp_path / "gen").exists()  # nothing loaded (no 'note:' line), nothing written


class RecoveringToneGenerator(FlakyToneGenerator):
    """Fails every prompt on its first run (e.g. a GPU hiccup), then works."""

    fail = True

    def generate(self, instruction, **kw):
        from musicjudge.errors import ConfigError

        if RecoveringToneGenerator.fail:
            raise ConfigError("out of memory")
        return super().generate(instruction, **kw)


def test_failures_fixed_by_a_rerun_are_no_longer_reported(tmp_path):
    from musicjudge.pseudolabel.generate import unresolved_failures

    items = read_prompts(_write(tmp_path / "p.txt", "one\ntwo\n"))
    with pytest.raises(Exception, match="no candidate could be generated"):
        generate_candidates(items, RecoveringToneGenerator(), tmp_path / "gen", n=2, duration_s=0.2, progress=False)
    assert [f["prompt_id"] for f in unresolved_failures(tmp_path / "gen")] == ["prompt0001", "prompt0002"]
    RecoveringToneGenerator.fail = False
    generate_candidates(items, RecoveringToneGenerator(), tmp_path / "gen", n=2, duration_s=0.2, progress=False)
    assert unresolved_failures(tmp_path / "gen") == []  # failures.jsonl keeps the history, but all are resolved
    assert (tmp_path / "gen" / "failures.jsonl").exists()


def _write(path, text):
    path.write_text(text)
    return path
