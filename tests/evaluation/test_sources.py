"""Reading systems (folders / JSONL manifests) and prompts for musicjudge eval, and matching them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from musicjudge.errors import ConfigError, ManifestError
from musicjudge.evaluation.sources import Prompt, match_prompt, parse_system_args, read_clips, read_prompts


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_folder_ids_are_relative_paths(tmp_path):
    for rel in ("b.wav", "sub/a.flac"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / rel, np.zeros(800, np.float32), 8000)
    clips = read_clips(tmp_path)
    assert [c.id for c in clips] == ["b.wav", "sub/a.flac"]
    assert clips[1].path == str((tmp_path / "sub" / "a.flac").resolve())


def test_manifest_paths_ids_and_errors(tmp_path):
    (tmp_path / "m" / "audio").mkdir(parents=True)
    sf.write(tmp_path / "m" / "audio" / "x.wav", np.zeros(800, np.float32), 8000)
    m = _write_jsonl(tmp_path / "m" / "sys.jsonl", [
        {"path": "audio/x.wav", "text": "a waltz", "prompt_id": "p7", "lyrics": "la la"},
        {"id": "y1", "path": "audio/missing.wav", "ref_audio": "ref.wav"},  # missing: kept, fails when scored
    ])
    clips = read_clips(m)
    assert (clips[0].id, clips[0].path, clips[0].text, clips[0].prompt_id, clips[0].lyrics) == (
        "audio/x.wav", str((tmp_path / "m" / "audio" / "x.wav").resolve()), "a waltz", "p7", "la la")
    assert (clips[1].id, clips[1].ref_audio) == ("y1", str((tmp_path / "m" / "ref.wav").resolve()))
    # the same rows as CSV (the unified reader takes every manifest layout)
    (tmp_path / "m" / "sys.csv").write_text("path,text\naudio/x.wav,a waltz\n")
    assert read_clips(tmp_path / "m" / "sys.csv")[0].text == "a waltz"
    with pytest.raises(ManifestError, match=r"bad.jsonl:2: no audio"):
        read_clips(_write_jsonl(tmp_path / "m" / "bad.jsonl", [{"path": "audio/x.wav"}, {"id": "b"}]))
    with pytest.raises(ManifestError, match="duplicate id 'a'"):
        read_clips(_write_jsonl(tmp_path / "m" / "dup.jsonl", [{"id": "a", "path": "audio/x.wav"},
                                                               {"id": "a", "path": "audio/x.wav"}]))
    with pytest.raises(ConfigError, match="no such folder or manifest"):
        read_clips(tmp_path / "nowhere.jsonl")


def test_prompts_and_matching(tmp_path):
    p = _write_jsonl(tmp_path / "prompts.jsonl", [{"id": "p1", "text": "t1"}, {"file": "gen/p2.wav", "lyrics": "la"},
                                                  {"id": "p7", "ref_audio": "r.wav"}])
    prompts = {x.id: x for x in read_prompts(p)}
    assert set(prompts) == {"p1", "p2", "p7"} and prompts["p7"].ref_audio == str((tmp_path / "r.wav").resolve())
    from musicjudge.evaluation.sources import Clip

    assert match_prompt(Clip("p1", "/x/other.wav"), prompts).id == "p1"  # by id
    assert match_prompt(Clip("b-2", "/x/p2.wav"), prompts).id == "p2"  # by file stem
    assert match_prompt(Clip("sub/p1", "/x/q.wav"), prompts).id == "p1"  # by the stem of the id
    assert match_prompt(Clip("p1", "/x/p1.wav", prompt_id="p7"), prompts).id == "p7"  # explicit prompt_id wins
    assert match_prompt(Clip("zzz", "/x/zzz.wav"), prompts) is None
    assert isinstance(prompts["p2"], Prompt) and prompts["p2"].lyrics == "la"
    with pytest.raises(ManifestError, match="duplicate prompt id 'p1'"):
        read_prompts(_write_jsonl(tmp_path / "d.jsonl", [{"id": "p1"}, {"id": "p1"}]))
    with pytest.raises(ManifestError, match="no 'id' field"):
        read_prompts(_write_jsonl(tmp_path / "n.jsonl", [{"text": "x"}]))


def test_parse_system_args():
    assert parse_system_args(["base=runs/a", "clips/new"]) == {"base": "runs/a", "new": "clips/new"}
    with pytest.raises(ConfigError, match="used twice"):
        parse_system_args(["a=x", "a=y"])
    with pytest.raises(ConfigError, match="reserved"):
        parse_system_args(["reference=x"])
    with pytest.raises(ConfigError, match="NAME=FOLDER_OR_MANIFEST"):
        parse_system_args(["=x"])
