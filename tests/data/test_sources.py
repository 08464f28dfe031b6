"""musicjudge.data.sources: the one loader of user data layouts (folders, JSONL/CSV/Parquet,
Hugging Face save_to_disk and shard folders, Audio columns as bytes or arrays, --split, --root)."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicjudge.data.sources import list_audio_items, read_table, with_options
from musicjudge.errors import ConfigError, ManifestError
from musicjudge.probe.runner import list_clips

SR = 16000


def _tone(seconds=0.25, freq=220.0, amp=0.5):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _wav_bytes(wave):
    buf = io.BytesIO()
    sf.write(buf, wave, SR, format="WAV")
    return buf.getvalue()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICJUDGE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "sources" / "audio"


def _audio_dataset(n=3, splits=("train", "test")):
    import datasets

    def part(split):
        cells = [{"bytes": _wav_bytes(_tone(freq=200 + 50 * i + (7 if split == "test" else 0))), "path": f"{split}_{i}.wav"}
                 for i in range(n)]
        ds = datasets.Dataset.from_dict({"audio": cells, "caption": [f"{split} {i}" for i in range(n)],
                                         "genre": ["folk"] * n})
        return ds.cast_column("audio", datasets.Audio(decode=False))

    return datasets.DatasetDict({s: part(s) for s in splits})


def test_hf_save_to_disk_with_an_audio_column_is_materialised_once(tmp_path, cache):
    _audio_dataset().save_to_disk(str(tmp_path / "hf"))
    items = list_audio_items(tmp_path / "hf", split="test")
    assert [it.id for it in items] == ["test_0.wav", "test_1.wav", "test_2.wav"]  # the embedded names
    assert [it.text for it in items] == ["test 0", "test 1", "test 2"]
    assert json.loads(items[0].metadata) == {"genre": "folk"}
    for i, it in enumerate(items):
        assert Path(it.path).parent == cache and Path(it.path).suffix == ".wav"
        wave, sr = sf.read(it.path, dtype="float32")
        assert sr == SR and np.allclose(wave, _tone(freq=200 + 50 * i + 7), atol=1e-4)
    stamps = {it.path: Path(it.path).stat().st_mtime_ns for it in items}
    again = list_audio_items(with_options(str(tmp_path / "hf"), split="test"))  # the probe's PATH?split= form
    assert [it.path for it in again] == [it.path for it in items]
    assert {p: Path(p).stat().st_mtime_ns for p in stamps} == stamps  # content-addressed: nothing rewritten
    with pytest.raises(ConfigError, match="has splits train, test; pick one with --split"):
        list_audio_items(tmp_path / "hf")
    with pytest.raises(ConfigError, match="no split 'valid'"):
        list_audio_items(tmp_path / "hf", split="valid")
    assert len(list_audio_items(tmp_path / "hf", split="all")) == 6


def test_probe_list_clips_reads_a_dataset_through_the_same_loader(tmp_path, cache):
    _audio_dataset(splits=("train",)).save_to_disk(str(tmp_path / "hf1"))
    clips = list_clips(str(tmp_path / "hf1"), limit=2)  # one split: no --split needed
    assert [c[0] for c in clips] == ["train_0.wav", "train_1.wav"] and all(Path(c[1]).exists() for c in clips)


def test_hub_layout_folder_of_parquet_shards(tmp_path, cache):
    dd = _audio_dataset(n=2)
    (tmp_path / "hub" / "data").mkdir(parents=True)
    for split, ds in dd.items():
        ds.to_parquet(str(tmp_path / "hub" / "data" / f"{split}-00000-of-00001.parquet"))
    items = list_audio_items(tmp_path / "hub", split="train")
    assert [it.text for it in items] == ["train 0", "train 1"]
    wave, _ = sf.read(items[1].path, dtype="float32")
    assert np.allclose(wave, _tone(freq=250), atol=1e-4)


def test_decoded_arrays_become_float_wav_files(tmp_path, cache):
    import pandas as pd

    stereo = np.stack([_tone(freq=300), _tone(freq=600, amp=0.2)])  # (channels, samples), as decoders return it
    frame = pd.DataFrame({"id": ["mono"], "audio": [{"array": _tone(freq=440).tolist(), "sampling_rate": SR}]})
    frame.to_parquet(tmp_path / "arrays.parquet")
    (tmp_path / "arrays.jsonl").write_text(json.dumps({"id": "stereo", "audio": {"array": stereo.tolist(), "sampling_rate": 22050}}))
    items = {it.id: it for f in ("arrays.parquet", "arrays.jsonl") for it in list_audio_items(tmp_path / f)}
    wave, sr = sf.read(items["mono"].path, dtype="float32")
    assert sr == SR and np.allclose(wave, _tone(freq=440), atol=1e-6)
    wave, sr = sf.read(items["stereo"].path, dtype="float32")
    assert sr == 22050 and wave.shape == (stereo.shape[1], 2) and np.allclose(wave, stereo.T, atol=1e-6)


def test_manifest_paths_resolve_from_its_folder_its_parent_or_root(tmp_path):
    data = tmp_path / "data"
    (data / "set" / "clips").mkdir(parents=True)
    sf.write(data / "set" / "clips" / "a.wav", _tone(), SR)
    manifest = data / "set" / "m.jsonl"
    manifest.write_text(json.dumps({"path": "set/clips/a.wav"}) + "\n")  # relative to data/, the parent
    table = read_table(manifest)
    assert table.base == data.resolve() and table.resolve("set/clips/a.wav") == str((data / "set/clips/a.wav").resolve())
    moved = tmp_path / "m.jsonl"
    moved.write_text(manifest.read_text())
    with pytest.raises(ManifestError, match=rf"none of its 1 audio files exists .*looked under {tmp_path}, {tmp_path.parent}; pass --root"):
        list_audio_items(moved)
    assert Path(list_audio_items(moved, root=data)[0].path).exists()


def test_split_column_is_filtered_and_csv_is_read(tmp_path):
    sf.write(tmp_path / "a.wav", _tone(), SR)
    rows = "id,path,split\nx,a.wav,train\ny,a.wav,test\n"
    (tmp_path / "m.csv").write_text(rows)
    assert [it.id for it in list_audio_items(tmp_path / "m.csv", split="test")] == ["y"]
    assert [it.id for it in list_audio_items(tmp_path / "m.csv")] == ["x", "y"]
    assert len(read_table(tmp_path / "m.csv", default_split="test").rows) == 1
    with pytest.raises(ConfigError, match="no row has split 'dev'"):
        list_audio_items(tmp_path / "m.csv", split="dev")


def test_broken_lines_name_file_and_line(tmp_path):
    sf.write(tmp_path / "a.wav", _tone(), SR)
    good = json.dumps({"id": "x", "path": "a.wav"})
    m = tmp_path / "m.jsonl"
    m.write_text(good + "\n" + '{"id": "y", "pa')  # truncated last line: an error, never dropped
    with pytest.raises(ManifestError, match=rf"{m}:2: invalid JSON"):
        list_clips(str(m))
    from musicjudge.reward.data import read_rated

    r = tmp_path / "r.jsonl"
    r.write_text(json.dumps({"id": "x", "audio": "a.wav", "musicality": 3}) + "\n{\n")
    with pytest.raises(ManifestError, match=rf"{r}:2: invalid JSON"):
        read_rated(r)
    c = tmp_path / "m.csv"
    c.write_text('id,path\nx,a.wav\ny,"a.wav\n')  # an unterminated quote
    with pytest.raises(ManifestError, match=rf"{c}(:\d+)?: cannot read CSV"):
        list_audio_items(c)
    c.write_text("id,path\nx,a.wav\ny,a.wav,extra,cells\n")
    with pytest.raises(ManifestError, match=rf"{c}:3: cannot read CSV"):
        list_audio_items(c)


def test_probe_run_cli_carries_root_and_split_to_the_loader(tmp_path, cache, monkeypatch):
    """--root/--split of 'probe run' reach list_clips through the data set's path."""
    from typer.testing import CliRunner

    import musicjudge.probe.parallel as parallel
    from musicjudge.cli.main import app
    from musicjudge.probe.runner import work_keys

    data = tmp_path / "data"
    (data / "clips").mkdir(parents=True)
    sf.write(data / "clips" / "a.wav", _tone(), SR)
    sf.write(data / "clips" / "b.wav", _tone(freq=330), SR)
    elsewhere = tmp_path / "lists"
    elsewhere.mkdir()
    (elsewhere / "m.csv").write_text("id,path,split\nx,clips/a.wav,train\ny,clips/b.wav,test\n")
    seen = {}

    def fake_run(cfg, out, shard=None):
        seen["keys"] = work_keys(cfg)
        return out, False

    monkeypatch.setattr(parallel, "run_probe_parallel", fake_run)
    r = CliRunner().invoke(app, ["probe", "run", "-m", "builtin", "-a", f"mine={elsewhere / 'm.csv'}", "--root", str(data),
                                 "--split", "test", "-o", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    assert [(k.dataset, k.clip_id, k.path) for k in seen["keys"]] == [("mine", "y", str((data / "clips" / "b.wav").resolve()))]
    r = CliRunner().invoke(app, ["probe", "run", "-m", "builtin", "--root", str(data), "-o", str(tmp_path / "run2")])
    assert r.exit_code != 0 and "--root/--split apply to the --audio data sets" in str(r.exception)
