"""Every loader on its fixture: the CMI-RewardBench unified layout (four sources), schema
manifests, YAML benchmarks; missing clips are recorded, not fatal."""

import json

import pytest

from musicjudge.bench.data import load_task_data
from musicjudge.bench.tasks import Task, load_benchmark, select_tasks
from musicjudge.errors import ConfigError, ManifestError

from .conftest import write_tone


def _task(bench, name):
    return next(t for t in bench.tasks if t.name == name)


def test_unified_jsonl_gives_one_task_per_source_and_dimension(cmi_root):
    bench = load_benchmark(str(cmi_root / "unified.jsonl"))
    names = {t.name: t.metric for t in bench.tasks}
    assert names == {
        "cmi-arena-annotation/musicality": "accuracy", "cmi-arena-annotation/alignment": "accuracy",
        "MusicEval/musicality": "correlation", "PAM/musicality": "correlation", "PAM/alignment": "correlation",
        "Music Arena/musicality": "accuracy",
    }


def test_cmi_pref_loader_kinds_confidence_and_missing_clip(cmi_root):
    bench = load_benchmark(str(cmi_root / "unified.jsonl"))
    data = load_task_data(_task(bench, "cmi-arena-annotation/musicality"))
    assert data.kind == "pairs" and len(data.items) == 7
    assert data.missing == [{"task": "cmi-arena-annotation/musicality", "id": data.missing[0]["id"],
                             "path": str((cmi_root / "audio" / "pref7b.wav").resolve()), "reason": "audio file not found"}]
    kinds = sorted({p.instruction.kind for p in data.items})
    assert kinds == ["text", "text+lyrics", "text+lyrics+ref", "text+ref"]
    first = data.items[0]
    assert first.preference["musicality"] == "A" and first.confidence["musicality"] == 2
    align = load_task_data(_task(bench, "cmi-arena-annotation/alignment"))
    assert sum(p.preference["alignment"] == "tie" for p in align.items) == 1  # "both" -> tie


def test_musiceval_pam_and_arena_loaders(cmi_root):
    bench = load_benchmark(str(cmi_root / "unified.jsonl"))
    me = load_task_data(_task(bench, "MusicEval/musicality"))
    assert me.kind == "rated" and [c.scores["musicality"] for c in me.items] == pytest.approx([1.0, 1.7, 2.4, 3.1, 3.8, 4.5])
    assert me.items[0].metadata["system"] == "sys0"
    pam = load_task_data(_task(bench, "PAM/alignment"))
    assert [c.scores["alignment"] for c in pam.items] == [5, 4, 3, 2, 1]
    arena = load_task_data(_task(bench, "Music Arena/musicality"))
    assert [p.preference["musicality"] for p in arena.items] == ["A", "B", "A", "B", "tie"]
    assert arena.items[0].metadata["model_a"] == "gen-x"


def test_yaml_benchmark_with_env_root_filters_and_quick_limit(cmi_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CMI_ROOT", str(cmi_root))
    cfg = tmp_path / "bench.yaml"
    cfg.write_text(
        "name: mini\n"
        "tasks:\n"
        "  - {name: pref/mus/lyrics, data: '${CMI_ROOT}/unified.jsonl', format: cmi-rewardbench, root: '${CMI_ROOT}',\n"
        "     source: cmi-arena-annotation, split: test, instruction_kind: text+lyrics, dimension: musicality, metric: accuracy}\n"
        "  - {name: mos, data: '${CMI_ROOT}/unified.jsonl', source: MusicEval, dimension: musicality, metric: correlation}\n"
    )
    bench = load_benchmark(str(cfg))
    assert bench.name == "mini" and [t.name for t in bench.tasks] == ["pref/mus/lyrics", "mos"]
    lyr = load_task_data(bench.tasks[0])
    assert len(lyr.items) == 2 and all(p.instruction.kind == "text+lyrics" for p in lyr.items)
    assert len(load_task_data(bench.tasks[1], limit=3).items) == 3
    assert [t.name for t in select_tasks(bench, ["mo*"]).tasks] == ["mos"]


def test_shipped_cmi_config_resolves(cmi_root, monkeypatch):
    from pathlib import Path

    cfg = Path(__file__).resolve().parents[2] / "configs" / "bench_cmi_rewardbench.yaml"
    monkeypatch.setenv("CMI_REWARDBENCH_ROOT", str(cmi_root))
    monkeypatch.setenv("CMI_REWARDBENCH_JSONL", str(cmi_root / "unified.jsonl"))
    bench = load_benchmark(str(cfg))
    counts = {t.name: len(load_task_data(t).items) for t in bench.tasks}
    assert counts["cmi-pref/musicality"] == 7 and counts["cmi-pref/alignment/text+ref"] == 2
    assert counts["musiceval/musicality"] == 6 and counts["music-arena/musicality"] == 5


def test_schema_manifests_pairs_and_rated(tmp_path):
    write_tone(tmp_path / "a.wav", 0.5)
    write_tone(tmp_path / "b.wav", 0.2)
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"id": "p1", "text": "x", "audio_a": "a.wav", "audio_b": "b.wav", "alignment": "A"}) + "\n")
    (tmp_path / "rated.csv").write_text("id,text,audio,musicality,system\nr1,x,a.wav,4.0,s\nr2,x,b.wav,2.0,s\n")
    pb = load_benchmark(str(tmp_path / "pairs.jsonl"))
    assert [t.name for t in pb.tasks] == ["pairs/alignment"]
    assert load_task_data(pb.tasks[0]).items[0].audio_a == str((tmp_path / "a.wav").resolve())
    rb = load_benchmark(str(tmp_path / "rated.csv"))
    assert [(t.name, t.metric) for t in rb.tasks] == [("rated/musicality", "correlation")]
    assert len(load_task_data(rb.tasks[0]).items) == 2


def test_bad_benchmarks_give_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_ROOT", raising=False)
    bad = tmp_path / "b.yaml"
    for text, pattern in [
        ("tasks: []\n", "non-empty 'tasks'"),
        ("tasks:\n  - {data: x.jsonl}\n", "lacks dimension"),
        ("tasks:\n  - {data: x.jsonl, dimension: vibes}\n", "dimension 'vibes'"),
        ("tasks:\n  - {data: '${NOPE_ROOT}/x.jsonl', dimension: musicality}\n", "environment variable"),
        ("tasks:\n  - {data: x.jsonl, dimension: musicality, colour: red}\n", "unknown key"),
        ("tasks: [\n", "invalid YAML"),
    ]:
        bad.write_text(text)
        with pytest.raises(ConfigError, match=pattern) as e:
            load_benchmark(str(bad))
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="unknown benchmark"):
        load_benchmark("no-such-bench")
    with pytest.raises(ManifestError, match="not found"):
        load_task_data(Task(name="t", data=str(tmp_path / "gone.jsonl"), dimension="musicality", metric="accuracy"))


def test_builtin_benchmark_has_four_kinds_by_two_dimensions():
    bench = load_benchmark("builtin")
    assert len(bench.tasks) == 8
    assert {(t.dimension, t.instruction_kind) for t in bench.tasks} == {
        (d, k) for d in ("musicality", "alignment") for k in ("text", "text+lyrics", "text+ref", "text+lyrics+ref")}
    assert "corpus_limit" in load_benchmark("builtin", quick=True).tasks[0].data


def test_example_config_parses():
    from pathlib import Path

    bench = load_benchmark(str(Path(__file__).resolve().parents[2] / "configs" / "bench_example.yaml"))
    assert [(t.instruction_kind, t.format) for t in bench.tasks] == [("text", "auto"), ("text+ref", "auto")]
    assert bench.tasks[0].data == "builtin:heldout?n=800&seed=0"
