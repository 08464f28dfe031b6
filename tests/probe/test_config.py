import json

import pytest

from musicjudge.errors import ConfigError
from musicjudge.probe.config import DatasetSpec, ProbeConfig, model_label


def test_paper_defaults_and_shipped_configs(tmp_path):
    cfg = ProbeConfig()
    assert cfg.noise.onsets_s == [5.0] and cfg.noise.lengths_frames == [5, 10, 50, 100, 150, 200]
    assert cfg.shuffle.blocks_frames == [1, 2, 5, 10, 35, 50, 70, 100, 150, 200]
    assert cfg.noise.modes == ["replace"] and cfg.noise.colours == ["white"]
    paper = ProbeConfig.from_yaml("configs/probe_paper.yaml")
    assert paper.noise.lengths_frames == cfg.noise.lengths_frames
    profile = ProbeConfig.from_yaml("configs/probe_profile.yaml")
    assert len(profile.noise.onsets_s) > 1 and not profile.shuffle.enabled


def test_yaml_round_trip_and_overrides(tmp_path):
    cfg = ProbeConfig(models=["small=facebook/musicgen-small"], datasets=["ood=/data/ood", {"name": "gen", "path": "g.jsonl"}])
    again = ProbeConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again.to_dict() == cfg.to_dict()
    over = cfg.override(**{"noise.lengths_frames": [5, 10], "seeds": [1, 2], "condition": None})
    assert over.noise.lengths_frames == [5, 10] and over.seeds == [1, 2] and over.models == cfg.models
    assert over.scoring_fingerprint() != cfg.scoring_fingerprint()


def test_dataset_and_model_labels():
    assert DatasetSpec.parse("ood=/x/y") == DatasetSpec("ood", "/x/y")
    assert DatasetSpec.parse("/x/gen.jsonl").name == "gen"
    assert model_label("facebook/musicgen-small") == ("musicgen-small", "facebook/musicgen-small")
    assert model_label("mypkg.models:MyLM") == ("MyLM", "mypkg.models:MyLM")
    assert model_label("big=builtin") == ("big", "builtin")


@pytest.mark.parametrize("data, match", [
    ({"noise": {"lengths_frames": [0]}}, "whole numbers"),
    ({"noise": {"colour": ["white"]}}, "unknown key"),
    ({"datasets": ["a=/x", "a=/y"]}, "unique"),
    ({"save_curves": "all"}, "save_curves"),
    ({"bogus": 1}, "unknown key"),
    ({"noise": {"enabled": False}, "shuffle": {"enabled": False}}, "both disabled"),
    ({"crop_start_s": -1}, r"crop_start_s=-1: must be >= 0"),
    ({"datasets": [{"name": "a", "path": "/x", "limit": 0}]}, r"limit=0: .*>= 1"),
    ({"datasets": [{"name": "a", "path": "/x", "limit": "some"}]}, r"limit='some': .*>= 1"),
])
def test_bad_configs_raise_config_error(data, match):
    with pytest.raises(ConfigError, match=match):
        ProbeConfig.from_dict(data)


def test_bad_yaml_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("noise: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        ProbeConfig.from_yaml(p)
    with pytest.raises(ConfigError, match="not found"):
        ProbeConfig.from_yaml(tmp_path / "missing.yaml")


def test_config_that_is_not_text_is_a_config_error(tmp_path):
    from musicjudge.demo import demo_settings

    p = tmp_path / "clip.yaml"  # e.g. an audio file passed where the YAML goes
    p.write_bytes(b"RIFF\xd0\xff\x00\x00WAVEfmt ")
    with pytest.raises(ConfigError, match=r"clip\.yaml: not a text \(UTF-8\) YAML file"):
        ProbeConfig.from_yaml(p)
    with pytest.raises(ConfigError, match=r"clip\.yaml: not a text \(UTF-8\) YAML file"):
        demo_settings(config_path=p)


def test_demo_config_names_the_unknown_section(tmp_path):
    from musicjudge.demo import demo_settings

    p = tmp_path / "demo.yaml"
    p.write_text("noise: {lengths_frames: [5]}\n")
    with pytest.raises(ConfigError, match="unknown section.*noise.*allowed: corpus, datasets, probe"):
        demo_settings(config_path=p)


@pytest.mark.parametrize("text, match", [
    ("corpus: {limit: abc}\n", r"corpus\.limit='abc': expected a number"),
    ("corpus: {limt: 5}\n", r"corpus: unknown key\(s\) limt; allowed: limit, max_duration_s, seed"),
    ("probe: {noise: {lengths_frames: [0]}}\n", r"lengths_frames=\[0\]: expected whole numbers"),
    ("probe: {noize: {}}\n", r"unknown key\(s\) noize"),
])
def test_demo_config_mistakes_fail_before_anything_runs(tmp_path, text, match):
    from musicjudge.demo import demo_settings

    p = tmp_path / "demo.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        demo_settings(quick=True, config_path=p)


def test_demo_config_overlays_nested_probe_settings(tmp_path):
    from musicjudge.demo import QUICK, demo_settings

    p = tmp_path / "demo.yaml"
    p.write_text("probe: {noise: {lengths_frames: [5]}}\n")
    noise = demo_settings(quick=True, config_path=p)["probe"]["noise"]
    assert noise == {**QUICK["probe"]["noise"], "lengths_frames": [5]}  # the quick onsets etc. are kept
