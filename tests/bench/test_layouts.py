"""bench run on the data layouts users have: the CMI-Pref dataset-card layout, the unified file
(test split only), the same rows as Parquet and as a Hugging Face save_to_disk folder (identical
metrics), an all-missing run, breakdowns under both tie conventions, error rows."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from musicjudge.bench.runner import run_benchmark
from musicjudge.bench.tasks import load_benchmark
from musicjudge.errors import ManifestError

from .conftest import write_tone


def _results(out):
    return json.loads((out / "results.json").read_text())["results"]


def _card_layout(tmp_path):
    """data/cmi-pref/cmi_test.jsonl next to gen-audio/ and ref-audio/, paths relative to data/."""
    data = tmp_path / "data"
    card = data / "cmi-pref"
    write_tone(card / "ref-audio" / "r.wav", 0.3, 330)
    rows = []
    for i in range(6):
        winner = "a" if i % 2 == 0 else "b"
        a, b = (0.8, 0.2) if winner == "a" else (0.2, 0.8)
        write_tone(card / "gen-audio" / f"{i}a.wav", a)
        write_tone(card / "gen-audio" / f"{i}b.wav", b)
        rows.append({"audio-path": f"cmi-pref/gen-audio/{i}a.wav", "audio2": f"cmi-pref/gen-audio/{i}b.wav",
                     "ref-audio-path": "cmi-pref/ref-audio/r.wav" if i % 3 == 0 else "", "prompt": f"song {i}",
                     "lyrics": "la" if i % 2 else "", "source": "cmi-arena-annotation", "split": "test",
                     "preference-musicality": winner, "preference-alignment": winner,
                     "confidence_preference-musicality": 2 + i % 3, "confidence_preference-alignment": 3})
    path = card / "cmi_test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def test_cmi_pref_card_layout_runs_directly(tmp_path, plugin_module):
    path, _ = _card_layout(tmp_path)
    out = tmp_path / "run"
    run_benchmark(f"{plugin_module}:RmsReward", str(path), out, n_boot=20, progress=False)
    res = _results(out)
    for dim in ("musicality", "alignment"):
        assert res[f"cmi-arena-annotation/{dim}"]["n"] == 6
        assert res[f"cmi-arena-annotation/{dim}"]["n_missing"] == 0
        assert res[f"cmi-arena-annotation/{dim}"]["accuracy"] == 1.0


def test_every_item_missing_exits_nonzero_with_where_it_looked(tmp_path):
    path, rows = _card_layout(tmp_path)
    moved = tmp_path / "elsewhere" / "cmi_test.jsonl"
    moved.parent.mkdir()
    moved.write_text(path.read_text())  # the clips stay behind: nothing resolves from here
    env = {**os.environ, "MUSICJUDGE_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-m", "musicjudge", "bench", "run", "-m", "random", "-b", str(moved),
                        "-o", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "all 12 items is missing" in lines[0] and str(moved.parent) in lines[0] and "--root" in lines[0]
    # --root names the folder the paths start from: the same file then runs
    out = tmp_path / "rooted"
    run_benchmark("random:1", str(moved), out, root=str(tmp_path / "data"), n_boot=10, progress=False)
    assert _results(out)["cmi-arena-annotation/musicality"]["n"] == 6


def _unified_with_train(cmi_root):
    rows = [json.loads(l) for l in (cmi_root / "unified.jsonl").read_text().splitlines()]
    train = []
    for i in range(3):  # train votes that a direct run must not count (the loud clip is B, truth says A)
        write_tone(cmi_root / "audio" / f"tr{i}a.wav", 0.1)
        write_tone(cmi_root / "audio" / f"tr{i}b.wav", 0.9)
        train.append({"audio-path": f"audio/tr{i}a.wav", "audio2": f"audio/tr{i}b.wav", "prompt": "x",
                      "source": "cmi-arena-annotation", "split": "train",
                      "preference-musicality": "a", "preference-alignment": "a"})
    return rows + train


def test_unified_direct_run_keeps_test_split_unless_told(cmi_root, plugin_module, tmp_path):
    rows = _unified_with_train(cmi_root)
    path = cmi_root / "all_test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert {t.split for t in load_benchmark(str(path)).tasks} == {"test"}
    out = tmp_path / "test-only"
    run_benchmark(f"{plugin_module}:RmsReward", str(path), out, n_boot=10, progress=False)
    res = _results(out)["cmi-arena-annotation/musicality"]
    assert res["n"] == 7 and res["accuracy"] == 1.0  # the 3 train votes are not counted
    out = tmp_path / "all"
    run_benchmark(f"{plugin_module}:RmsReward", str(path), out, split="all", n_boot=10, progress=False)
    res = _results(out)["cmi-arena-annotation/musicality"]
    assert res["n"] == 10 and res["accuracy"] == pytest.approx(7 / 10)


def test_shipped_yaml_filters_the_split_in_every_task(monkeypatch, tmp_path):
    monkeypatch.setenv("CMI_REWARDBENCH_ROOT", str(tmp_path))
    monkeypatch.setenv("CMI_REWARDBENCH_JSONL", str(tmp_path / "all_test.jsonl"))
    here = os.path.dirname(__file__)
    bench = load_benchmark(os.path.join(here, "..", "..", "configs", "bench_cmi_rewardbench.yaml"))
    assert bench.tasks and all(t.split == "test" for t in bench.tasks)


def test_jsonl_parquet_and_hf_dataset_give_identical_metrics(cmi_root, plugin_module, tmp_path):
    import datasets

    rows = _unified_with_train(cmi_root)
    jsonl = cmi_root / "all_test.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    columns = sorted({k for r in rows for k in r})
    frame = pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)
    frame.to_parquet(cmi_root / "all_test.parquet", index=False)
    datasets.Dataset.from_pandas(frame, preserve_index=False).save_to_disk(str(cmi_root / "all_test_hf"))
    results = {}
    for name in ("all_test.jsonl", "all_test.parquet", "all_test_hf"):
        out = tmp_path / name
        run_benchmark(f"{plugin_module}:RmsReward", str(cmi_root / name), out, n_boot=50, progress=False)
        results[name] = _results(out)
        breakdowns = pd.read_csv(out / "breakdowns.csv")
        results[name]["breakdowns"] = sorted(map(json.dumps, breakdowns.to_dict(orient="records")))
    assert results["all_test.jsonl"]["cmi-arena-annotation/musicality"]["n"] == 7  # test split, one clip missing
    assert results["all_test.parquet"] == results["all_test.jsonl"]
    assert results["all_test_hf"] == results["all_test.jsonl"]


def _tie_fixture(tmp_path):
    """8 pairs; pairs 0-3 have equal clips (a predicted tie under any model), truths A, B, A, tie;
    pairs 4-7 are decided correctly (louder = truth). Kinds alternate text / text+lyrics."""
    root = tmp_path / "ties"
    rows = []
    truths = ["A", "B", "A", "tie", "A", "B", "A", "B"]
    for i, truth in enumerate(truths):
        if i < 4:
            a = b = 0.5
        else:
            a, b = (0.8, 0.2) if truth == "A" else (0.2, 0.8)
        write_tone(root / f"{i}a.wav", a)
        write_tone(root / f"{i}b.wav", b)
        rows.append({"id": f"p{i}", "audio_a": f"{i}a.wav", "audio_b": f"{i}b.wav", "text": "song",
                     "lyrics": "la" if i % 2 else None, "musicality": truth, "confidence_musicality": 4 if i < 4 else 2})
    path = root / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, truths


def test_breakdowns_match_hand_computation_under_both_tie_conventions(tmp_path, plugin_module):
    path, truths = _tie_fixture(tmp_path)
    out = tmp_path / "run"
    run_benchmark(f"{plugin_module}:RmsReward", str(path), out, n_boot=20, progress=False)

    def credit(i, policy):
        if truths[i] == "tie":
            return 0.5  # a true tie counts half under both
        if i < 4:  # predicted tie
            return 0.5 if policy == "half" else float(truths[i] == "B")
        return 1.0

    br = pd.read_csv(out / "breakdowns.csv")
    groups = {("instruction_kind", "text"): [0, 2, 4, 6], ("instruction_kind", "text+lyrics"): [1, 3, 5, 7],
              ("vocal", "instrumental"): [0, 2, 4, 6], ("vocal", "vocal"): [1, 3, 5, 7],
              ("confidence", ">3"): [0, 1, 2, 3], ("confidence", "<3"): [4, 5, 6, 7], ("audio_length", "<=10s"): list(range(8))}
    for (breakdown, group), idx in groups.items():
        for policy, metric in (("half", "accuracy"), ("as_b", "accuracy_ties_as_b")):
            row = br[(br.breakdown == breakdown) & (br.group == group) & (br.metric == metric)]
            assert len(row) == 1, (breakdown, group, metric)
            expected = sum(credit(i, policy) for i in idx) / len(idx)
            assert row.iloc[0]["value"] == pytest.approx(expected), (breakdown, group, metric)
            assert row.iloc[0]["n"] == len(idx)
    # the two conventions differ here (ties on A-truth pairs), so the test can tell them apart
    text_half = br[(br.breakdown == "instruction_kind") & (br.group == "text") & (br.metric == "accuracy")].value.item()
    text_b = br[(br.breakdown == "instruction_kind") & (br.group == "text") & (br.metric == "accuracy_ties_as_b")].value.item()
    assert text_half != text_b


def test_unscorable_clip_error_row_names_task_id_and_path(cmi_root, plugin_module, tmp_path):
    (cmi_root / "audio" / "pref2a.wav").write_bytes(b"not audio")
    out = tmp_path / "bad"
    run_benchmark(f"{plugin_module}:RmsReward", str(cmi_root / "unified.jsonl"), out,
                  tasks=["cmi-arena-annotation/*"], batch_size=4, n_boot=10, progress=False)
    errors = [json.loads(l) for l in (out / "errors.jsonl").read_text().splitlines()]
    assert all(e["task"] and e["id"] and e["path"] and e["reason"] for e in errors)
    bad = [e for e in errors if e["path"].endswith("pref2a.wav")]
    assert {e["task"] for e in bad} == {"cmi-arena-annotation/musicality", "cmi-arena-annotation/alignment"}
    assert {e["id"] for e in bad} == {"unified-000003"}


def test_broken_manifest_line_is_an_error_naming_file_and_line(tmp_path, plugin_module):
    path, _ = _tie_fixture(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines) + "\n" + lines[0][:25] + "\n")  # a truncated last line
    with pytest.raises(ManifestError, match=rf"{path}:9: invalid JSON"):
        run_benchmark(f"{plugin_module}:RmsReward", str(path), tmp_path / "x", progress=False)
    lines.insert(2, "{not json")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=rf"{path}:3: invalid JSON"):
        run_benchmark(f"{plugin_module}:RmsReward", str(path), tmp_path / "x", progress=False)


def test_bench_cli_root_and_split_flags(tmp_path):
    from typer.testing import CliRunner

    from musicjudge.cli.main import app

    path, _ = _card_layout(tmp_path)
    moved = tmp_path / "lists" / "cmi_test.jsonl"
    moved.parent.mkdir()
    moved.write_text(path.read_text())
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["bench", "run", "-m", "random:3", "-b", str(moved), "--root", str(tmp_path / "data"),
                                 "--split", "test", "-o", str(out), "--n-boot", "10"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    res = _results(out)["cmi-arena-annotation/musicality"]
    assert res["n"] == 6 and res["n_missing"] == 0
    r = CliRunner().invoke(app, ["bench", "run", "-m", "random", "-b", "builtin", "--split", "test", "-o", str(tmp_path / "x")])
    assert r.exit_code != 0 and "apply to a data file" in str(r.exception)


def test_ids_keep_the_row_position_whatever_the_filters(cmi_root, plugin_module, tmp_path):
    rows = _unified_with_train(cmi_root)
    rows = rows[-3:] + rows[:-3]  # the train votes first: filtering them out must not renumber the rest
    path = cmi_root / "all_test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    run_benchmark(f"{plugin_module}:RmsReward", str(path), out, n_boot=10, progress=False)
    preds = pd.read_parquet(out / "predictions.parquet")
    for _, p in preds.iterrows():
        row = rows[int(p["id"].rsplit("-", 1)[1]) - 1]
        assert row["split"] == "test" and (p["task"].split("/")[0] == row["source"])
