"""Reward data schema: manifests, validation, published layouts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from musicjudge.errors import ConfigError, ManifestError
from musicjudge.reward.data import (
    Instruction,
    PreferencePair,
    RatedClip,
    read_cmi_pref,
    read_cmi_rewardbench_jsonl,
    read_pairs,
    read_rated,
    write_pairs,
    write_rated,
)

FIXTURES = Path(__file__).parent / "fixtures"


def _pair_row(**over):
    row = {"id": "p1", "text": "a slow waltz", "lyrics": None, "ref_audio": "refs/r.wav", "audio_a": "a.wav",
           "audio_b": "sub/b.wav", "musicality": "A", "alignment": "tie", "confidence_musicality": 4,
           "confidence_alignment": None, "annotator": "ann1", "source": "test", "system_a": "s1", "system_b": "s2"}
    row.update(over)
    return row


def _write_jsonl(path: Path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_instruction_kinds():
    assert Instruction("t").kind == "text"
    assert Instruction("t", "l").kind == "text+lyrics"
    assert Instruction("t", None, "r.wav").kind == "text+ref"
    assert Instruction("t", "l", "r.wav").kind == "text+lyrics+ref"
    assert Instruction().kind == "none"
    assert Instruction(None, "l").kind == "lyrics"


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_pairs_roundtrip_and_relative_paths(tmp_path, suffix):
    manifest_dir = tmp_path / "data"
    manifest_dir.mkdir()
    src = _write_jsonl(manifest_dir / "pairs.jsonl", [_pair_row(), _pair_row(id="p2", musicality="b", alignment=None, extra_col=7)])
    pairs = read_pairs(src)
    assert pairs[0].audio_a == str(manifest_dir / "a.wav")
    assert pairs[0].audio_b == str(manifest_dir / "sub" / "b.wav")
    assert pairs[0].instruction.ref_audio == str(manifest_dir / "refs" / "r.wav")
    assert pairs[0].preference == {"musicality": "A", "alignment": "tie"}
    assert pairs[0].confidence == {"musicality": 4.0}
    assert pairs[1].preference == {"musicality": "B"} and pairs[1].metadata == {"extra_col": 7}
    out = write_pairs(manifest_dir / f"copy{suffix}", pairs)
    if suffix == ".csv":  # written paths are relative to the manifest so the folder can move
        assert "sub/b.wav" in out.read_text() and str(manifest_dir) not in out.read_text()
    back = read_pairs(out)
    assert [(p.id, p.audio_b, p.preference, p.confidence, p.instruction) for p in back] == \
           [(p.id, p.audio_b, p.preference, p.confidence, p.instruction) for p in pairs]
    assert back[1].metadata["extra_col"] == 7


def test_rated_roundtrip(tmp_path):
    clips = [RatedClip(id="c1", instruction=Instruction("x"), audio=str(tmp_path / "c1.wav"), scores={"musicality": 3.5}, system="s")]
    back = read_rated(write_rated(tmp_path / "rated.csv", clips))
    assert back[0].audio == str(tmp_path / "c1.wav") and back[0].scores == {"musicality": 3.5} and back[0].system == "s"


@pytest.mark.parametrize(
    "override, fragment",
    [
        ({"musicality": "C"}, "column 'musicality' has 'C'"),
        ({"audio_b": None}, "column 'audio_b' is missing"),
        ({"id": ""}, "column 'id' is missing"),
        ({"confidence_alignment": "high"}, "not a number"),
        ({"confidence_musicality": "inf"}, "finite"),
        ({"confidence_musicality": -1}, ">= 0"),
    ],
)
def test_malformed_pair_rows_name_file_and_row(tmp_path, override, fragment):
    path = _write_jsonl(tmp_path / "bad.jsonl", [_pair_row(id="ok"), _pair_row(**override)])
    with pytest.raises(ManifestError) as err:
        read_pairs(path)
    message = str(err.value)
    assert fragment in message and f"{path}: row 2" in message and "\n" not in message


def test_duplicate_ids_unlabelled_and_bad_files(tmp_path):
    with pytest.raises(ManifestError, match="repeats row 1"):
        read_pairs(_write_jsonl(tmp_path / "dup.jsonl", [_pair_row(), _pair_row()]))
    unlabelled = _write_jsonl(tmp_path / "u.jsonl", [_pair_row(musicality=None, alignment=None)])
    assert read_pairs(unlabelled)[0].preference == {}
    with pytest.raises(ManifestError, match="no preference"):
        read_pairs(unlabelled, require_label=True)
    with pytest.raises(ManifestError, match="unknown manifest type"):
        read_pairs(tmp_path / "pairs.txt")
    with pytest.raises(ManifestError, match="file not found"):
        read_pairs(tmp_path / "missing.csv")
    pd.DataFrame([{"id": "r1", "audio": "x.wav", "musicality": "good"}]).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(ManifestError, match=r"r\.csv: row 1: column 'musicality'"):
        read_rated(tmp_path / "r.csv")


def test_swapped_pair_flips_preferences():
    pair = PreferencePair("x", Instruction("t"), "a.wav", "b.wav", {"musicality": "A", "alignment": "tie"})
    s = pair.swapped()
    assert (s.audio_a, s.audio_b, s.preference) == ("b.wav", "a.wav", {"musicality": "B", "alignment": "tie"})


def test_cmi_pref_layout_fixture_loads():
    path = FIXTURES / "cmi_pref" / "cmi_pref.jsonl"
    pairs = read_cmi_pref(path)
    assert len(pairs) == 4  # one pair per vote; the two votes on vote1 are not merged
    assert pairs[0].audio_a == str(path.parent / "audio" / "vote1_a.mp3")
    assert pairs[0].preference == {"musicality": "A", "alignment": "B"}
    assert pairs[0].confidence == {"musicality": 4.0, "alignment": 2.0}
    assert pairs[0].metadata["model_a"] == "sysX"
    test = read_cmi_pref(path, split="test")
    assert [p.instruction.kind for p in test] == ["text+lyrics+ref", "text+ref"]
    assert test[0].instruction.ref_audio == str(path.parent / "refs" / "ref2.wav")
    assert test[1].preference["musicality"] == "tie" and test[1].metadata["raw_preference_musicality"] == "both"
    other_root = read_cmi_pref(path, split="test", root="/data/cmi")
    assert other_root[0].audio_b == "/data/cmi/audio/vote2_b.mp3"


def test_cmi_pref_hub_path_needs_datasets():
    try:
        import datasets  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pip install datasets"):
            read_cmi_pref("some-org/CMI-Pref", use_datasets=True)
    else:  # with datasets installed and no hub access, a clear ManifestError
        with pytest.raises(ManifestError):
            read_cmi_pref(str(FIXTURES / "does-not-exist"), use_datasets=True)


def test_rewardbench_unified_jsonl_mixed_sources(tmp_path):
    rows = read_cmi_rewardbench_jsonl(FIXTURES / "rewardbench_unified.jsonl", root=tmp_path)
    assert len(rows.pairs) == 3 and len(rows.rated) == 3
    cmi, arena_b, arena_neither = rows.pairs
    assert cmi.preference == {"musicality": "A", "alignment": "B"} and cmi.audio_a == str(tmp_path / "cmi" / "a1.wav")
    assert arena_b.preference == {"musicality": "B"} and arena_b.metadata["month"] == "2025-09"
    assert arena_neither.preference == {"musicality": "tie"} and arena_neither.metadata["raw_preference"] == "neither"
    by_source = {c.source: c for c in rows.rated}
    assert by_source["PAM"].scores == {"musicality": 4.1, "alignment": 3.2}
    assert by_source["MusicEval"].scores == {"musicality": 3.6} and by_source["MusicEval"].metadata["system"] == "S07"
    assert by_source["SongEval"].instruction.kind == "lyrics"
    only_pam = read_cmi_rewardbench_jsonl(FIXTURES / "rewardbench_unified.jsonl", root=tmp_path, source="PAM")
    assert len(only_pam.rated) == 1 and not only_pam.pairs


def test_unified_bad_preference_names_row(tmp_path):
    path = _write_jsonl(tmp_path / "u.jsonl", [{"audio-path": "a.wav", "audio2": "b.wav", "preference-musicality": "maybe"}])
    with pytest.raises(ManifestError, match=r"u\.jsonl: row 1: column 'preference-musicality'"):
        read_cmi_rewardbench_jsonl(path)
