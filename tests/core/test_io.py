import json
import os
import stat

import pytest

from musicjudge.errors import ManifestError
from musicjudge.io import append_jsonl, atomic_write_json, read_jsonl, stable_hash


def test_atomic_write_has_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        p = tmp_path / "r.json"
        atomic_write_json(p, {"a": 1})
    finally:
        os.umask(old)
    assert json.loads(p.read_text()) == {"a": 1}
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    assert not [x for x in os.listdir(tmp_path) if x.endswith(".tmp")]


def test_jsonl_append_and_torn_last_line(tmp_path):
    p = tmp_path / "log.jsonl"
    append_jsonl(p, [{"k": 1}, {"k": 2}])
    with open(p, "a") as f:
        f.write('{"k": 3')  # interrupted write
    assert [r["k"] for r in read_jsonl(p)] == [1, 2]


def test_jsonl_malformed_middle_line_names_file_and_line(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(ManifestError, match=r"m\.jsonl:2"):
        read_jsonl(p)


def test_stable_hash_ignores_key_order():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_strict_mode_rejects_torn_last_line(tmp_path):
    p = tmp_path / "manifest.jsonl"
    p.write_text('{"path": "a.wav"}\n{"path": "b.wav"')
    with pytest.raises(ManifestError, match=r"manifest\.jsonl:2"):
        read_jsonl(p, strict=True)


def test_non_utf8_file_is_a_manifest_error(tmp_path):
    p = tmp_path / "latin1.jsonl"
    p.write_bytes('{"text": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(ManifestError, match="not UTF-8"):
        read_jsonl(p)
