"""Data sets of the built-in world: OOD re-rendering on piano, Generated resumes to identical clips."""

from __future__ import annotations

import json
import os

import numpy as np
import soundfile as sf

from musicjudge.data.corpus import build_corpus, read_corpus
from musicjudge.data.datasets import build_generated_set, build_ood_set, build_training_set
from musicjudge.io import file_sha256, read_jsonl


def _corpus(tmp_path_factory):
    os.environ.setdefault("MUSICJUDGE_CACHE", str(tmp_path_factory.getbasetemp() / "mj-cache"))
    return build_corpus(limit=8, progress=False)  # shared with tests/data/test_corpus.py (cached)


def test_training_and_ood_sets(tmp_path, tmp_path_factory):
    manifest = _corpus(tmp_path_factory)
    rows = read_corpus(manifest)
    train = read_jsonl(build_training_set(manifest, tmp_path / "train", n=3, clip_s=6.0, progress=False))
    assert len(train) == 3 and all(r["metadata"]["split"] == "train" for r in train)
    assert len({r["metadata"]["collection"] for r in train}) == 3  # spread over collections
    for r in train:
        wave, sr = sf.read(r["path"], dtype="float32")
        assert sr == 32000 and len(wave) == 6 * 32000 and r["text"]
    # a held-out chorale in organ/strings/... timbre is re-rendered on piano for OOD
    chorale = dict(next(r for r in rows if r["collection"] == "bach-chorales"), split="heldout")
    piano = next(r for r in rows if r["collection"] == "classical")
    fake = tmp_path / "corpus.jsonl"
    fake.write_text("".join(json.dumps(r) + "\n" for r in (chorale, piano)))
    ood = read_jsonl(build_ood_set(fake, tmp_path / "ood", n=2, clip_s=6.0, progress=False))
    by_id = {r["id"]: r for r in ood}
    assert set(by_id) == {chorale["id"], piano["id"]}
    assert by_id[piano["id"]]["metadata"]["rerendered"] is False
    re = by_id[chorale["id"]]
    assert re["metadata"]["rerendered"] is True and re["metadata"]["programs"] == [0]
    assert "piano" in re["text"]
    wave, _ = sf.read(re["path"], dtype="float32")
    original, _ = sf.read(chorale["path"], dtype="float32", frames=len(wave))
    assert np.sqrt(np.mean(wave**2)) > 0.01 and not np.allclose(wave, original[: len(wave)], atol=1e-2)


def test_generated_set_resumes_to_identical_clips(tmp_path):
    out = tmp_path / "gen"
    manifest = build_generated_set(out, per_k=1, topks=(10, 500), clip_s=1.0, griffin_lim_iters=4, progress=False)
    rows = read_jsonl(manifest)
    assert [r["metadata"]["top_k"] for r in rows] == [10, 500]
    assert rows[1]["metadata"]["effective_top_k"] == 256
    first = {r["id"]: file_sha256(r["path"]) for r in rows}
    # simulate an interrupted run: the second clip was never recorded
    manifest.write_text(json.dumps(rows[0]) + "\n")
    os.remove(rows[1]["path"])
    again = read_jsonl(build_generated_set(out, per_k=1, topks=(10, 500), clip_s=1.0, griffin_lim_iters=4, progress=False))
    assert {r["id"]: file_sha256(r["path"]) for r in again} == first


def test_sizes_and_clip_length_are_checked_before_anything_is_read(tmp_path):
    import pytest

    from musicjudge.data.datasets import build_datasets
    from musicjudge.errors import ConfigError

    for kwargs, match in (({"n_train": 0}, r"--n-train 0: "), ({"n_ood": -1}, r"--n-ood -1: "),
                          ({"generated_per_k": 0}, r"--per-k 0: "), ({"clip_s": 0}, r"--clip-seconds 0: ")):
        with pytest.raises(ConfigError, match=match):
            build_datasets(tmp_path / "no-corpus.jsonl", tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()
