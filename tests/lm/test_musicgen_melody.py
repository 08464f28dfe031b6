"""Proofs that musicjudge scores MusicGen-Melody the way it generates: the condition is a prefix
(projected chroma, then projected text states) that the decoder reads before the BOS frame, the
codes follow in the delay pattern, and only the code positions are scored. On a tiny random
MusicgenMelodyForConditionalGeneration saved to a folder and loaded like a user's checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import LogitsProcessorList

from musicjudge.errors import ConfigError
from musicjudge.lm.base import Condition, make_condition
from musicjudge.lm.scoring import codebook_delays, delayed_input_ids

from .conftest import inject_noise, make_wave
from .test_scoring import ForceCodes

SR = 32000
TEXT = "calm piano piece with strings"


@pytest.fixture(scope="module")
def melody_dir(tmp_path_factory):
    from musicjudge.lm.musicgen_melody import build_tiny_musicgen_melody

    out = tmp_path_factory.mktemp("tiny_musicgen_melody")
    build_tiny_musicgen_melody(out, seed=0)  # chroma_length 12, front-end n_fft 4096 / hop 1024
    return out


@pytest.fixture(scope="module")
def melody_lm(melody_dir):
    from musicjudge.lm import load_music_lm

    return load_music_lm(str(melody_dir), device="cpu")


def reference(path, seconds: float, pitches=(330.0, 262.0, 392.0)) -> str:
    """A reference melody file: equal parts of each pitch."""
    part = int(seconds * SR / len(pitches))
    t = np.arange(part) / SR
    wave = np.concatenate([0.3 * np.sin(2 * np.pi * f * t) for f in pitches]).astype(np.float32)
    sf.write(path, wave, SR)
    return str(path)


@pytest.fixture(scope="module")
def long_ref(tmp_path_factory):  # 32 chroma frames > chroma_length 12: cut to 12
    return reference(tmp_path_factory.mktemp("ref") / "long.wav", 1.0)


@pytest.fixture(scope="module")
def short_ref(tmp_path_factory):  # 7 chroma frames < 12: tiled to 12
    return reference(tmp_path_factory.mktemp("ref") / "short.wav", 0.2, pitches=(440.0, 294.0))


def generate_inputs(lm, text, melody):
    """``generate`` inputs of a condition: the tokenised text, or one masked token for no text
    (``generate`` makes an absent description one all-zero state); chroma as input_features."""
    if text:
        enc = lm.tokenizer([text], return_tensors="pt")
        inputs = dict(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    else:
        inputs = dict(input_ids=torch.zeros(1, 1, dtype=torch.long), attention_mask=torch.zeros(1, 1, dtype=torch.long))
    if melody:
        inputs["input_features"] = lm.melody_chroma(melody)
    return inputs


def incremental_nll(lm, codes, text, melody) -> torch.Tensor:
    """NLL of every code from MusicGen-Melody's own step-by-step ``generate`` (its prefix, KV
    cache, delay pattern and BOS; guidance off), teacher-forced through ForceCodes."""
    delays = codebook_delays(lm.decoder)
    num_frames = codes.shape[1]
    steps = num_frames + max(delays)
    out = lm.model.generate(
        **generate_inputs(lm, text, melody), max_length=steps + 1, do_sample=False, guidance_scale=1.0,
        logits_processor=LogitsProcessorList([ForceCodes(codes, delays)]), output_logits=True,
        return_dict_in_generate=True,
    )
    assert len(out.logits) == steps
    nll = torch.full(codes.shape, float("nan"))
    for step, logits in enumerate(out.logits, start=1):
        logp = torch.log_softmax(logits.float(), dim=-1)
        for k, delay in enumerate(delays):
            t = step - 1 - delay
            if 0 <= t < num_frames:
                nll[k, t] = -logp[k, codes[k, t]]
    return nll


def test_loader_gives_the_melody_adapter_with_the_checkpoints_front_end(melody_lm):
    from musicjudge.lm.musicgen_melody import MusicGenMelodyLM

    assert isinstance(melody_lm, MusicGenMelodyLM)
    assert (melody_lm.chroma_config.n_fft, melody_lm.chroma_config.hop_length) == (4096, 1024)
    assert melody_lm.num_codebooks == 4 and melody_lm.frame_rate == 50


@pytest.mark.parametrize("text, melody", [(None, None), (TEXT, None), (None, "long"), (TEXT, "long"), (TEXT, "short")],
                         ids=["null", "text", "melody", "text+melody", "text+short-melody"])
def test_teacher_forced_equals_incremental_generation(melody_lm, long_ref, short_ref, text, melody):
    melody = {"long": long_ref, "short": short_ref}.get(melody)
    codes = melody_lm.encode(make_wave(0.6))  # 30 frames
    teacher = melody_lm.token_nll(codes, condition=make_condition(text, melody))
    reference_nll = incremental_nll(melody_lm, codes, text, melody)
    assert not torch.isnan(reference_nll).any()
    assert teacher.mask.all()
    assert (teacher.nll - reference_nll).abs().max().item() <= 1e-4


def test_stereo_melody_equals_incremental_generation(tmp_path, long_ref):
    """musicgen-stereo-melody: 8 interleaved codebooks (pairs share a delay) after the prefix."""
    from musicjudge.lm import load_music_lm
    from musicjudge.lm.musicgen_melody import build_tiny_musicgen_melody

    build_tiny_musicgen_melody(tmp_path, seed=1, audio_channels=2)
    lm = load_music_lm(str(tmp_path), device="cpu")
    assert codebook_delays(lm.decoder) == [0, 0, 1, 1, 2, 2, 3, 3]
    codes = lm.encode(make_wave(0.5, seed=9))  # mono input -> both channels
    assert codes.shape == (8, 25)
    teacher = lm.token_nll(codes, condition=Condition(TEXT, long_ref))
    assert (teacher.nll - incremental_nll(lm, codes, TEXT, long_ref)).abs().max().item() <= 1e-4


def test_each_part_of_the_condition_changes_the_scores(melody_lm, long_ref, short_ref):
    codes = melody_lm.encode(make_wave(0.6))
    scores = {name: melody_lm.token_nll(codes, condition=c).nll for name, c in {
        "null": None, "text": TEXT, "melody": Condition(melody=long_ref), "both": Condition(TEXT, long_ref),
        "other melody": Condition(melody=short_ref), "other text": "dark ambient synth"}.items()}
    names = list(scores)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert (scores[a] - scores[b]).abs().max().item() > 1e-3, (a, b)


def test_equals_models_own_forward_on_the_code_positions(melody_lm, short_ref):
    """One full forward of MusicgenMelodyForConditionalGeneration (it builds, tiles and prepends
    the prefix itself) returns logits for prefix + code positions; ours are its last P ones."""
    model = melody_lm.model
    codes = melody_lm.encode(make_wave(0.5, seed=2))
    num_frames = codes.shape[1]
    decoder_inputs = delayed_input_ids(melody_lm.decoder, codes[None], bos_token_id=melody_lm.bos_token_id)[0][:, :-1]
    positions = decoder_inputs.shape[1]
    enc = melody_lm.tokenizer([TEXT], return_tensors="pt")
    for melody in (None, short_ref):
        features = None if melody is None else melody_lm.melody_chroma(melody)
        with torch.inference_mode():
            logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], input_features=features,
                           decoder_input_ids=decoder_inputs).logits  # [K, prefix + P, V]
        prefix = model.config.chroma_length + enc["input_ids"].shape[1]
        assert logits.shape[1] == prefix + positions
        logp = torch.log_softmax(logits[:, -positions:].float(), -1)
        theirs = torch.stack([-logp[k, k : k + num_frames].gather(-1, codes[k][:, None])[:, 0] for k in range(4)])
        ours = melody_lm.token_nll(codes, condition=make_condition(TEXT, melody)).nll
        assert (ours - theirs).abs().max().item() <= 1e-5


def test_probe_engine_with_melody_equals_full_passes(melody_lm, long_ref):
    """Prefix sharing across perturbations starts from the condition's cached prefix too."""
    wave = make_wave(1.0, seed=3)
    perturbed = [inject_noise(wave, 0.4, 0.1), inject_noise(wave, 0.6, 0.2, seed=2), wave.copy()]
    condition = Condition(TEXT, long_ref)
    stats: dict = {}
    orig, pert = melody_lm.score_perturbations(wave, perturbed, condition=condition, stats=stats)
    assert stats["positions_computed"] < stats["positions_naive"]
    for w, got in zip([wave, *perturbed], [orig, *pert]):
        full = melody_lm.token_nll(melody_lm.encode(w), condition=condition)
        assert (got.nll - full.nll).abs().max().item() <= 1e-4


def test_chunked_and_batched_scoring_equal_one_pass(melody_lm, short_ref):
    condition = Condition(melody=short_ref)
    codes = [melody_lm.encode(make_wave(s, seed=i)) for i, s in enumerate([0.3, 0.7, 0.5])]
    singles = [melody_lm.token_nll(c, condition=condition) for c in codes]
    for single, batched in zip(singles, melody_lm.token_nll_batch(codes, condition=condition)):
        assert batched.nll.shape == single.nll.shape and batched.mask.all()
        assert (batched.nll - single.nll).abs().max().item() <= 1e-5
    old = melody_lm.chunk_size
    try:
        melody_lm.chunk_size = 7
        chunked = melody_lm.token_nll(codes[1], condition=condition)
    finally:
        melody_lm.chunk_size = old
    assert (chunked.nll - singles[1].nll).abs().max().item() <= 1e-5


def test_bad_melody_settings_are_one_line_errors(melody_lm, tiny_lm, long_ref, tmp_path):
    codes = melody_lm.encode(make_wave(0.3))
    with pytest.raises(ConfigError, match="missing.wav: file not found"):
        melody_lm.token_nll(codes, condition=Condition(melody=str(tmp_path / "missing.wav")))
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, dtype=np.float32), SR)
    with pytest.raises(ConfigError, match="silent.wav.*--melody"):
        melody_lm.token_nll(codes, condition=Condition(melody=str(silent)))
    # plain MusicGen has no melody input: refused, never silently ignored
    with pytest.raises(ConfigError, match="no melody conditioning"):
        tiny_lm.token_nll(tiny_lm.encode(make_wave(0.3)), condition=Condition(TEXT, long_ref))


def test_score_cli_with_melody(melody_dir, melody_lm, long_ref, tmp_path, capsys):
    """``musicjudge score CLIP -m MELODY_MODEL --melody REF [-c TEXT]`` = token_nll under that condition."""
    import pandas as pd

    from musicjudge.cli.main import main

    audio = tmp_path / "clip.wav"
    sf.write(audio, make_wave(0.8, seed=21), SR)
    codes = melody_lm.encode(make_wave(0.8, seed=21))
    for extra, condition in [(["--melody", long_ref], Condition(melody=long_ref)),
                             (["--reference-audio", long_ref, "-c", TEXT], Condition(TEXT, long_ref))]:
        out = tmp_path / "curve.csv"
        with pytest.raises(SystemExit) as exc:
            main(["score", str(audio), "--model", str(melody_dir), "--out", str(out), *extra])
        assert exc.value.code == 0
        expected = melody_lm.token_nll(codes, condition=condition)
        assert f"mean_nll={expected.mean():.4f}" in capsys.readouterr().out
        table = pd.read_csv(out)
        assert np.allclose(table["nll_mean"], expected.frame_curve().numpy(), atol=1e-5)
    with pytest.raises(SystemExit) as exc:  # one line on stderr, exit 2
        main(["score", str(audio), "--model", str(melody_dir), "--melody", str(tmp_path / "nowhere.wav")])
    assert exc.value.code == 2
    assert "--melody" in (err := capsys.readouterr().err) and "nowhere.wav: file not found" in err


def test_probe_run_with_melody(melody_dir, melody_lm, long_ref, tmp_path):
    """``probe run --melody REF``: every clip is scored under the reference's chroma; the
    results record the condition, and the reference is part of the resume fingerprint."""
    import json

    import pandas as pd
    from typer.testing import CliRunner

    from musicjudge.cli.main import app

    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(2):
        sf.write(clips / f"c{i}.wav", make_wave(2.0, seed=30 + i), SR)
    out = tmp_path / "run"
    args = ["probe", "run", "--model", f"mel={melody_dir}", "--audio", str(clips), "--out", str(out),
            "--onsets", "0.5", "--lengths", "5,10", "--no-shuffle", "--crop-duration", "2", "--no-report",
            "--melody", long_ref, "--condition", TEXT]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 clip(s) scored" in result.output
    res = pd.read_parquet(out / "results.parquet")
    assert set(res["condition"]) == {str(Condition(TEXT, long_ref))}
    for clip_id, loss in res.groupby("clip_id")["loss_orig"].first().items():
        from musicjudge.audio import load_audio

        wave = load_audio(clips / clip_id, sample_rate=SR, duration=2.0)
        expected = melody_lm.token_nll(melody_lm.encode(wave), condition=Condition(TEXT, long_ref)).mean()
        assert abs(loss - expected) <= 1e-4
    saved = json.loads((out / "config.json").read_text())
    assert saved["melody"] == long_ref and saved["scoring_fingerprint"]["melody"] == long_ref
    # the same folder under another reference is a different run: refused, not mixed
    other = CliRunner().invoke(app, [*args[:-4], "--melody", str(clips / "c0.wav"), "--condition", TEXT])
    assert other.exit_code != 0 and "different" in str(other.exception or other.output)
