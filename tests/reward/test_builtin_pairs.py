"""Built-in preference pairs rendered from real corpus scores (a 4-piece corpus manifest)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from musicjudge.errors import ConfigError
from musicjudge.reward.builtin_pairs import build_builtin_pairs, describe, flip_mode, shuffled_bars, transpose
from musicjudge.reward.data import INSTRUCTION_KINDS, read_pairs

CORPUS = Path(__file__).parent / "fixtures" / "corpus_mini.jsonl"


def test_build_pairs_schema_balance_and_cache(mini_pairs):
    out, manifest = mini_pairs["out"], mini_pairs["manifest"]
    pairs = read_pairs(manifest, require_label=True)
    assert len(pairs) == 12
    assert Counter(p.instruction.kind for p in pairs) == {k: 3 for k in INSTRUCTION_KINDS}
    for p in pairs:
        assert Path(p.audio_a).exists() and Path(p.audio_b).exists()
        dim = p.metadata["dimension"]
        assert set(p.preference) == {dim} and p.preference[dim] in ("A", "B")
        better = p.audio_a if p.preference[dim] == "A" else p.audio_b
        worse = p.audio_b if better == p.audio_a else p.audio_a
        if p.metadata["converse"]:  # the text describes the altered clip
            assert dim == "alignment" and "/variant/" in better and "audio/clean/" in worse and "ref" not in p.instruction.kind
        else:
            assert "audio/clean/" in better and "/variant/" in worse
        if "lyrics" in p.instruction.kind:
            assert p.metadata["collection"] == "bach-chorales"  # only the chorales carry lyrics
        if "ref" in p.instruction.kind:
            assert Path(p.instruction.ref_audio).exists() and p.instruction.ref_audio not in (p.audio_a, p.audio_b)
    assert {p.metadata["dimension"] for p in pairs} == {"musicality", "alignment"}
    assert any(p.metadata["converse"] for p in pairs)
    assert Counter(p.preference[p.metadata["dimension"]] for p in pairs)["A"] not in (0, 12)  # order is random
    # cached: the same call returns the manifest without rendering; other settings are refused
    mtime = manifest.stat().st_mtime_ns
    assert build_builtin_pairs(out, "train", 12, seed=1, clip_s=8.0, sample_rate=16000, corpus_manifest=CORPUS, progress=False) == manifest
    assert manifest.stat().st_mtime_ns == mtime
    with pytest.raises(ConfigError, match="another --out"):
        build_builtin_pairs(out, "train", 13, seed=1, clip_s=8.0, sample_rate=16000, corpus_manifest=CORPUS, progress=False)


def test_midi_edits_change_what_they_claim():
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    # C major scale, quarter notes at 120 bpm (0.5 s), two 4/4 bars
    for i, pitch in enumerate([60, 62, 64, 65, 67, 69, 71, 72]):
        inst.notes.append(pretty_midi.Note(80, pitch, i * 0.5, i * 0.5 + 0.5))
    pm.instruments.append(inst)
    minor = flip_mode(pm, "C", "major")
    assert [n.pitch for n in minor.instruments[0].notes] == [60, 62, 63, 65, 67, 68, 70, 72]
    assert flip_mode(pm, None, "major") is None
    assert [n.pitch for n in transpose(pm, 3).instruments[0].notes][:2] == [63, 65]
    shuffled = shuffled_bars(pm, np.random.default_rng(0), bar_s=2.0, clip_s=4.0)
    starts = sorted((n.start, n.pitch) for n in shuffled.instruments[0].notes)
    assert [p for _, p in starts] == [67, 69, 71, 72, 60, 62, 64, 65]  # the two bars swapped
    text = describe({"collection": "bach-chorales", "tempo_bpm": 70, "key": "G", "mode": "major", "instrument": "organ", "composer": "J. S. Bach"}, 0)
    assert text == "A slow chorale in G major for organ, in the style of J. S. Bach."


def test_alignment_text_always_tells_the_two_clips_apart():
    from musicjudge.reward.builtin_pairs import _TEMPLATES, _telling_template

    slow = {"tempo_bpm": 70, "instrument": "organ", "collection": "bach-chorales", "composer": "J. S. Bach", "key": "D", "mode": "minor"}
    word_templates = [t for t in range(len(_TEMPLATES)) if "{bpm}" not in _TEMPLATES[t]]
    assert word_templates  # "slow" at 70 BPM and at 42 BPM read the same in these
    for t in word_templates:
        assert describe(slow, t) == describe({**slow, "tempo_bpm": 42.0}, t)
        chosen = _telling_template(slow, {"tempo_bpm": 42.0}, t)
        assert chosen is not None and describe(slow, chosen) != describe({**slow, "tempo_bpm": 42.0}, chosen)
    # a drawn template that already tells them apart is kept
    assert _telling_template(slow, {"tempo_bpm": 112.0}, word_templates[0]) == word_templates[0]
    # a variant with no known attribute (key change of a piece of unknown key) cannot be described
    assert _telling_template({**slow, "key": None}, {}, 0) is None

