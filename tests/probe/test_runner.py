"""End to end on a tiny MusicGen built from a config: CLI run -> tidy files -> report; resume
after an interruption without recomputing finished clips; bad files recorded, not fatal."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from musicjudge.cli.main import app, main
from musicjudge.probe.config import ProbeConfig
from musicjudge.probe.runner import CLIP_COLUMNS, CURVE_COLUMNS, RESULT_COLUMNS, run_probe, shard_paths, work_keys

GRID = ["--onsets", "1.0", "--lengths", "5,10,50", "--blocks", "1,5", "--shuffle-onset", "1.0", "--crop-duration", "4"]


def cli(*args):
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, tiny_musicgen_dir, audio_dir):
    out = tmp_path_factory.mktemp("runs") / "run-a"
    result = cli("probe", "run", "--model", f"tiny={tiny_musicgen_dir}", "--audio", f"synth={audio_dir}", "--out", str(out), *GRID)
    return out, result


def test_cli_run_writes_documented_tidy_files(cli_run):
    out, result = cli_run
    assert result.exit_code == 0, result.output
    assert "3 clip(s) scored" in result.output and "1 skipped as bad" in result.output
    res = pd.read_parquet(out / "results.parquet")
    assert list(res.columns) == RESULT_COLUMNS
    assert len(res) == 3 * (3 + 2)  # clips x (noise lengths + shuffle blocks)
    assert set(res["kind"]) == {"noise", "shuffle"}
    np.testing.assert_allclose(res["D"], res["loss_pert"] - res["loss_orig"], atol=1e-12)
    noise = res[res["kind"] == "noise"]
    assert sorted(noise["length_frames"].unique()) == [5, 10, 50]
    assert (noise["onset_frame"] == 50).all() and noise["peak_start"].notna().all()
    assert (noise["peak_start"] <= noise["peak_end"]).all() and (noise["peak_end"] <= noise["assim_end"]).all()
    assert res.loc[res["kind"] == "shuffle", "peak_mean"].isna().all()
    assert res.groupby("clip_id")["loss_orig"].nunique().eq(1).all()  # the original is scored once per clip

    clips = pd.read_parquet(out / "clips.parquet")
    assert list(clips.columns) == CLIP_COLUMNS and len(clips) == 3
    assert (clips["n_frames"] == 200).all() and np.allclose(clips["duration_s"], 4.0)

    curves = pd.read_parquet(out / "curves.parquet")
    assert list(curves.columns) == CURVE_COLUMNS
    assert set(curves["codebook"]) == {-1, 0, 1, 2, 3}
    np.testing.assert_allclose(curves["d"], curves["loss_pert"] - curves["loss_orig"], atol=1e-5)
    # d_t is exactly 0 before the codes can change (prefix shared), and the stored regions match it
    row = noise[noise["length_frames"] == 50].iloc[0]
    one = curves[(curves.clip_id == row.clip_id) & (curves.perturbation == row.perturbation) & (curves.codebook == -1)]
    d = one.sort_values("frame")["d"].to_numpy()
    assert d.size == 200 and np.all(d[: int(row.peak_start)] == 0.0) and np.abs(d[50:110]).max() > 0
    per_cb = curves[(curves.clip_id == row.clip_id) & (curves.perturbation == row.perturbation) & (curves.codebook >= 0)]
    np.testing.assert_allclose(per_cb.groupby("frame")["loss_pert"].mean().to_numpy(),
                               one.sort_values("frame")["loss_pert"].to_numpy(), rtol=1e-5)

    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert len(errors) == 1 and errors[0]["path"].endswith("corrupt.wav") and "corrupt" in errors[0]["reason"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["noise"]["lengths_frames"] == [5, 10, 50] and cfg["models"][0].startswith("tiny=")


def test_report_names_every_figure(cli_run):
    out, result = cli_run
    html = (out / "report.html").read_text()
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert {"d_vs_length.png", "example_curves.png", "region_violins.png", "shuffle_boxes.png"} <= set(figures)
    for name in figures:
        assert f"({name})" in html
    assert html.count("data:image/png;base64,") == len(figures)
    assert "Context amnesia rate" in html and "corrupt.wav" in html and '"lengths_frames"' in html.replace("&#34;", '"')
    stats = pd.read_csv(out / "stats" / "d_by_length_noise.csv")
    assert set(stats["length_frames"]) == {5, 10, 50} and (stats["n"] == 3).all()


def test_rerun_after_interruption_scores_only_the_missing_clip(cli_run, tiny_musicgen_dir, audio_dir):
    out, _ = cli_run
    shards = sorted((out / "shards").glob("*/*.results.parquet"))
    assert len(shards) == 3
    victim = shards[0]  # as if the run had died before this clip's shard was written
    victim.unlink()
    victim.with_name(victim.name.replace(".results.", ".curves.")).unlink()
    kept = {p: p.stat().st_mtime_ns for p in shards[1:]}
    result = cli("probe", "run", "--model", f"tiny={tiny_musicgen_dir}", "--audio", f"synth={audio_dir}",
                 "--out", str(out), "--no-report", *GRID)
    assert result.exit_code == 0, result.output
    counts = json.loads((out / "run.json").read_text())["counts"]
    assert (counts["scored"], counts["skipped_done"], counts["skipped_errored"]) == (1, 2, 1)
    assert victim.exists() and all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert len(pd.read_parquet(out / "results.parquet")) == 15


def test_resume_refuses_a_different_grid(cli_run, tiny_musicgen_dir, audio_dir, capsys):
    out, _ = cli_run
    with pytest.raises(SystemExit) as exc:
        main(["probe", "run", "--model", f"tiny={tiny_musicgen_dir}", "--audio", str(audio_dir), "--out", str(out),
              *GRID[:-2], "--crop-duration", "3"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "different" in err and "\n" not in err


def test_missing_audio_flag_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["probe", "run", "--model", "builtin", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2 and "no data set given" in capsys.readouterr().err


class CountingLM:
    """Wraps a MusicLM; counts per-clip scoring calls and can simulate a crash (Ctrl-C)."""

    def __init__(self, lm, interrupt_at=None):
        self.lm, self.calls, self.interrupt_at = lm, 0, interrupt_at

    def __getattr__(self, name):
        return getattr(self.lm, name)

    def score_perturbations(self, *args, **kwargs):
        self.calls += 1
        if self.interrupt_at is not None and self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return self.lm.score_perturbations(*args, **kwargs)


def test_api_interrupt_then_resume_with_manifest(tmp_path, tiny_lm, audio_dir):
    manifest = tmp_path / "set.jsonl"
    rows = [{"id": f"c{i}", "path": str(audio_dir / f"clip{i}.wav"), "text": "calm piano", "metadata": {"top_k": 50 * i}}
            for i in range(3)]
    rows.append({"id": "gone", "path": "missing.wav"})
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = ProbeConfig(models=["tiny=unused-spec"], datasets=[f"m={manifest}"], crop_duration_s=4.0,
                      condition_from_manifest=True, save_curves="mean",
                      noise={"onsets_s": [1.0], "lengths_frames": [5, 10]}, shuffle={"enabled": False})
    keys = work_keys(cfg)
    assert [k.clip_id for k in keys] == ["c0", "c1", "c2", "gone"]
    out = tmp_path / "run"
    first = CountingLM(tiny_lm, interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        run_probe(cfg, out, lms={"tiny": first}, progress=False)
    assert shard_paths(out, keys[0])[0].exists() and not shard_paths(out, keys[1])[0].exists()
    second = CountingLM(tiny_lm)
    run_probe(cfg, out, lms={"tiny": second}, progress=False)
    assert second.calls == 2  # c1 and c2 only; c0 was kept, "gone" fails before scoring
    res = pd.read_parquet(out / "results.parquet")
    assert sorted(res["clip_id"].unique()) == ["c0", "c1", "c2"] and (res["condition"] == "calm piano").all()
    clips = pd.read_parquet(out / "clips.parquet").set_index("clip_id")
    assert json.loads(clips.loc["c2", "metadata"]) == {"top_k": 100}
    errors = pd.read_csv(out / "errors.csv")
    assert list(errors["clip_id"]) == ["gone"] and "missing.wav" in errors["reason"].iloc[0]
    curves = pd.read_parquet(out / "curves.parquet")
    assert set(curves["codebook"]) == {-1}


def test_profile_scores_api(tiny_lm, audio_dir):
    from musicjudge.probe.scoring import profile_scores

    paths = [audio_dir / "clip0.wav", audio_dir / "corrupt.wav", audio_dir / "clip1.wav"]
    df = profile_scores(tiny_lm, paths, onsets_s=(1.0, 2.0, 3.5), lengths_frames=(5, 10), progress=False)
    assert list(df["path"]) == [str(p) for p in paths]
    good = df[df["error"] == ""]
    assert len(good) == 2 and np.isfinite(good["profile_score"]).all() and (good["profile_score"] > 0).all()
    assert (good["n_short"] == 4).all()  # 4 s clips: onset 3.5 s does not fit, 2 onsets x 2 lengths do
    assert np.isnan(df.loc[1, "profile_score"]) and "corrupt.wav" in df.loc[1, "error"]


def test_compare_two_runs(cli_run, tmp_path):
    from musicjudge.probe.report import compare_runs

    out, _ = cli_run
    other = tmp_path / "run-b"
    os.symlink(out, other)  # same results under a second run name: labels must be kept apart
    html = compare_runs([out, other], tmp_path / "cmp").read_text()
    assert "run-a:tiny" in html and "run-b:tiny" in html
    table = pd.read_csv(tmp_path / "cmp" / "stats" / "d_by_length_noise.csv")
    assert set(table["model"]) == {"run-a:tiny", "run-b:tiny"}


class ProtocolOnlyLM:
    """A user MusicLM with just the protocol (no shared-prefix engine, no batch_size)."""

    def __init__(self, lm):
        self._lm = lm
        for name in ("name", "sample_rate", "frame_rate", "num_codebooks", "codebook_size", "lookahead_frames"):
            setattr(self, name, getattr(lm, name))

    def encode(self, wave):
        return self._lm.encode(wave)

    def encode_batch(self, waves):
        return self._lm.encode_batch(waves)

    def token_nll(self, codes, condition=None):
        return self._lm.token_nll(codes, condition)

    def token_nll_batch(self, codes, condition=None):
        return self._lm.token_nll_batch(codes, condition=condition)


def test_protocol_only_model_gives_the_engine_numbers(tmp_path, tiny_lm, audio_dir):
    from musicjudge.probe.runner import ClipScorer, noise_grid

    grid = noise_grid(colours=["white"], onsets_s=[1.0], lengths_frames=[5, 50], levels_db=[-20.0])
    engine = ClipScorer(tiny_lm, grid)
    plain = ClipScorer(ProtocolOnlyLM(tiny_lm), grid)
    wave = engine.load(str(audio_dir / "clip2.wav"))
    rows_e, curves_e = engine.score(wave, clip_id="x")
    rows_p, curves_p = plain.score(wave, clip_id="x")
    assert engine.engine_stats["positions_computed"] < engine.engine_stats["positions_naive"]
    assert plain.engine_stats == {}
    for a, b in zip(rows_e, rows_p):
        assert a["D"] == pytest.approx(b["D"], abs=1e-5)
        assert a["loss_orig"] == pytest.approx(b["loss_orig"], abs=1e-5)
        assert a["smooth_peak_height"] == pytest.approx(b["smooth_peak_height"], abs=1e-3)
    np.testing.assert_allclose(curves_e["d"], curves_p["d"], atol=1e-3)


def test_run_where_every_clip_is_bad_lists_them_without_a_traceback(tmp_path, tiny_musicgen_dir, cli_run):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    out = tmp_path / "run"
    result = cli("probe", "run", "--model", f"tiny={tiny_musicgen_dir}", "--audio", str(folder), "--out", str(out), *GRID)
    assert result.exit_code == 0, result.output
    assert "0 clip(s) scored" in result.output and "1 skipped as bad" in result.output
    assert len(pd.read_parquet(out / "results.parquet")) == 0
    errors = pd.read_csv(out / "errors.csv")
    assert len(errors) == 1 and errors["path"].iloc[0].endswith("corrupt.wav")
    from musicjudge.errors import ConfigError
    from musicjudge.probe.report import compare_runs

    with pytest.raises(ConfigError, match=r"run: the run has no results yet .*leave it out of the comparison"):
        compare_runs([cli_run[0], out], tmp_path / "cmp")  # not a silent one-model "comparison"


@pytest.mark.parametrize("device, match", [("tpu", "unknown device"), ("cuda:99", "GPU")])
def test_unusable_device_is_a_one_line_error(tmp_path, audio_dir, capsys, device, match):
    import torch

    if device.startswith("cuda") and torch.cuda.device_count() > 99:  # pragma: no cover
        pytest.skip("a machine with 100 GPUs")
    for args in (["probe", "run", "--audio", str(audio_dir), "--out", str(tmp_path / "x"), "--device", device],
                 ["probe", "profile", str(audio_dir), "--out", str(tmp_path / "p.csv"), "--device", device]):
        with pytest.raises(SystemExit) as exc:
            main(args)
        err = capsys.readouterr().err.strip()
        assert exc.value.code == 2 and err.startswith("error: --device ") and match in err and "\n" not in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "p.csv").exists()


def test_crop_too_short_for_the_grid_fails_once_up_front_and_the_fixed_rerun_may_reuse_the_folder(
        tmp_path, tiny_musicgen_dir, audio_dir, capsys):
    # behaviour change (issue 15): by default a 4-s crop with the 5-s onset adapts (onset moved);
    # under --strict, and below the minimum of any perturbation, it is one error up front
    out = tmp_path / "run"
    base = ["probe", "run", "--model", f"tiny={tiny_musicgen_dir}", "--audio", str(audio_dir), "--out", str(out),
            "--lengths", "5", "--no-shuffle", "--no-report"]
    with pytest.raises(SystemExit) as exc:  # default onset 5 s cannot fit in a 4-s crop: no clip could ever pass
        main([*base, "--crop-duration", "4", "--strict"])
    err = capsys.readouterr().err.strip().splitlines()[-1]  # (after the model's loading bar)
    assert exc.value.code == 2 and err.startswith("error: crop_duration_s=4: ") and "--strict" in err
    assert "--crop-duration" in err and "--onsets" in err
    with pytest.raises(SystemExit) as exc:  # 1.5 s holds no perturbation even with the onset moved
        main([*base, "--crop-duration", "1.5"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exc.value.code == 2 and err.startswith("error: crop_duration_s=1.5: ") and "2.10 s" in err
    assert "--min-baseline" in err and "--min-recovery" in err
    assert not (out / "errors.jsonl").exists()  # the clips were not blamed
    result = cli(*base, "--crop-duration", "4", "--strict", "--onsets", "1.0")  # nothing computed: reusable
    assert result.exit_code == 0, result.output
    assert "3 clip(s) scored" in result.output


def test_default_adapts_a_crop_shorter_than_the_grid(tmp_path, tiny_musicgen_dir, audio_dir):
    out = tmp_path / "run"
    result = cli("probe", "run", "--model", f"tiny={tiny_musicgen_dir}", "--audio", str(audio_dir), "--out", str(out),
                 "--lengths", "5", "--no-shuffle", "--no-report", "--crop-duration", "4")
    assert result.exit_code == 0, result.output
    assert "3 clip(s) scored" in result.output and "3 of the scored clip(s) ran an adapted grid" in result.output
    res = pd.read_parquet(out / "results.parquet")
    # 4 s - 1 s recovery - 0.1 s noise = 2.9 s, rounded down to the 1-s onset step
    assert (res["onset_s"] == 2.0).all() and (res["grid_onset_s"] == 5.0).all() and res["adapted"].all()


def test_limit_zero_is_an_error_not_every_clip(tmp_path, audio_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["probe", "run", "--audio", str(audio_dir), "--out", str(tmp_path / "x"), "--limit", "0"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and err.startswith("error: --limit 0: ") and "\n" not in err


@pytest.mark.parametrize("args, match", [
    (["--lengths", "0"], "lengths_frames"),
    (["--onsets", "-1"], "onsets_s"),
    (["--crop-duration", "-2"], "--crop-duration -2"),
    ([], "no audio files"),
])
def test_profile_settings_and_empty_folders_are_one_line_errors(tmp_path, audio_dir, capsys, args, match):
    folder = audio_dir
    if not args:
        folder = tmp_path / "empty"
        folder.mkdir()
    with pytest.raises(SystemExit) as exc:
        main(["probe", "profile", str(folder), "--out", str(tmp_path / "p.csv"), *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: ") and match in err and err.count("\n") == 1, err
    assert not (tmp_path / "p.csv").exists()


def test_a_setting_the_model_rejects_stops_the_run_instead_of_blaming_every_clip(tmp_path, audio_dir, capsys):
    out = tmp_path / "run"
    args = ["probe", "run", "--model", "builtin", "--audio", str(audio_dir), "--out", str(out), *GRID, "--no-report"]
    with pytest.raises(SystemExit) as exc:  # the built-in LM is unconditional
        main([*args, "--condition", "calm piano"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exc.value.code == 2 and err.startswith("error: builtin: this model is unconditional")
    assert not (out / "errors.jsonl").exists()
    result = cli(*args)  # without the condition the same folder runs
    assert result.exit_code == 0, result.output
    assert "3 clip(s) scored" in result.output
