"""Corpus rendering: real music21 scores -> non-silent 32 kHz audio with the recorded metadata."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from musicjudge.data import corpus as corpus_mod
from musicjudge.data.corpus import build_corpus, read_corpus
from musicjudge.data.render import SAMPLE_RATE, render_midi, render_score, score_to_midi
from musicjudge.errors import AudioError, ConfigError, ManifestError

# Same limit as the quick demo, so the demo test reuses this session's corpus.
QUICK_LIMIT = 8


@pytest.fixture(scope="module")
def quick_corpus(tmp_path_factory):
    import os

    os.environ.setdefault("MUSICJUDGE_CACHE", str(tmp_path_factory.getbasetemp() / "mj-cache"))
    return build_corpus(limit=QUICK_LIMIT, progress=False)


def test_corpus_rows_audio_and_metadata(quick_corpus):
    rows = read_corpus(quick_corpus)
    assert len(rows) == QUICK_LIMIT
    # round-robin order covers every collection within the first pieces
    assert {r["collection"] for r in rows} == {"bach-chorales", "palestrina", "monteverdi", "trecento", "folk", "classical"}
    for r in rows:
        wave, sr = sf.read(r["path"], dtype="float32")
        assert sr == SAMPLE_RATE and wave.ndim == 1
        assert abs(len(wave) / sr - r["duration_s"]) < 1e-3
        assert 4.0 <= r["duration_s"] <= 30.0
        rms = float(np.sqrt(np.mean(wave**2)))
        assert rms > 0.01, f"{r['id']} is (nearly) silent"
        assert 0.5 < float(np.abs(wave).max()) <= 0.9
        assert r["split"] in ("train", "heldout")
        assert r["mode"] in ("major", "minor") and r["key"]
        assert r["programs"] and all(0 <= p < 128 for p in r["programs"])
        assert 30 <= r["tempo_bpm"] <= 300 and r["composer"] and r["title"]
    chorale = next(r for r in rows if r["collection"] == "bach-chorales")
    assert chorale["composer"] == "J. S. Bach" and chorale["title"].startswith("BWV")
    assert chorale["lyrics"] and len(chorale["lyrics"].split()) > 5  # chorales carry German lyrics
    piano = [r for r in rows if r["collection"] == "classical"]
    assert piano and all(r["split"] == "heldout" and r["programs"] == [0] for r in piano)
    assert all(0 not in r["programs"] for r in rows if r["split"] == "train")  # piano is reserved for OOD


def test_build_is_resumable_and_limit_is_a_fixed_view(quick_corpus):
    before = read_corpus(quick_corpus)
    again = build_corpus(limit=QUICK_LIMIT, progress=False)  # nothing to render: same rows
    assert [r["id"] for r in read_corpus(again)] == [r["id"] for r in before]
    assert [r["render_s"] for r in read_corpus(again)] == [r["render_s"] for r in before]
    small = read_corpus(build_corpus(limit=3, progress=False))
    assert [r["id"] for r in small] == [r["id"] for r in before[:3]]


def test_bad_piece_is_recorded_and_skipped(tmp_path, monkeypatch):
    good = corpus_mod.COLLECTIONS[0]
    bad = corpus_mod.Collection("broken", "nobody", ("organ",), 90.0, False, lambda: ["no/such/piece.mxl"])
    ok = corpus_mod.Collection(good.name, good.composer, good.ensembles, good.default_tempo_bpm, False,
                               lambda: ["bach/bwv66.6"])
    monkeypatch.setattr(corpus_mod, "COLLECTIONS", (bad, ok))
    manifest = build_corpus(tmp_path / "c", progress=False)
    rows = read_corpus(manifest)
    assert [r["id"] for r in rows] == ["bach-chorales--bach_bwv66.6"]
    fails = (tmp_path / "c" / "failures.jsonl").read_text()
    assert "broken--no_such_piece" in fails


def test_render_score_tempo_and_programs():
    from music21 import corpus

    score = corpus.parse("bach/bwv66.6")
    normal = render_score(score, 19, tempo_bpm=90)
    fast = render_score(score, [40, 41, 42, 43], tempo_scale=2.0, tempo_bpm=90)
    tail = 0.5 * SAMPLE_RATE
    assert abs((len(fast) - tail) / (len(normal) - tail) - 0.5) < 0.02  # twice as fast = half as long
    assert not np.allclose(normal[: len(fast)], fast)


def test_midi_level_degradations_change_audio():
    """Other packages degrade a piece at the MIDI level (wrong notes, jitter) and re-render it."""
    from music21 import corpus

    pm = score_to_midi(corpus.parse("bach/bwv66.6"), [19], 90.0, max_duration_s=6.0)
    clean = render_midi(pm)
    rng = np.random.default_rng(0)
    for inst in pm.instruments:
        for note in inst.notes:
            note.pitch += int(rng.choice([-1, 0, 1]))
            shift = float(rng.normal(0, 0.03))
            note.start, note.end = max(0.0, note.start + shift), note.end + shift
    degraded = render_midi(pm)
    assert abs(len(degraded) - len(clean)) < 0.2 * SAMPLE_RATE
    n = min(len(clean), len(degraded))
    assert np.corrcoef(clean[:n], degraded[:n])[0, 1] < 0.9


def test_user_errors_are_one_line():
    import pretty_midi

    with pytest.raises(AudioError, match="no notes"):
        render_midi(pretty_midi.PrettyMIDI())
    with pytest.raises(ConfigError):
        build_corpus(limit=0, progress=False)
    with pytest.raises(ManifestError):
        read_corpus("/no/such/manifest.jsonl")
