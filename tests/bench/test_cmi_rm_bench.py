"""``musicjudge bench run -m cmi-rm=FOLDER -b configs/bench_cmi_rewardbench.yaml`` on a tiny
dataset in the CMI-RewardBench layout (tests/bench/conftest.py) with the tiny random CMI-RM of
tests/reward/fixtures/cmi_rm."""

import importlib.util
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = REPO / "tests" / "reward" / "fixtures" / "cmi_rm" / "cmi_rm_sa"


@pytest.mark.skipif(importlib.util.find_spec("musicjudge.reward.muq") is None,
                    reason="musicjudge.reward.muq (the MuQ audio tower) is not importable")
def test_bench_run_with_cmi_rm_on_the_cmi_layout(cmi_root, tmp_path):
    from musicjudge.cli.main import app
    from musicjudge.reward.base import ScoreItem
    from musicjudge.reward.cmi_rm import CmiRewardModel
    from musicjudge.reward.data import Instruction

    out = tmp_path / "run"
    env = {"CMI_REWARDBENCH_ROOT": str(cmi_root), "CMI_REWARDBENCH_JSONL": str(cmi_root / "unified.jsonl"), "COLUMNS": "200"}
    r = CliRunner().invoke(app, ["bench", "run", "-m", f"cmi-rm={CHECKPOINT}", "-b", str(REPO / "configs" / "bench_cmi_rewardbench.yaml"),
                                 "-o", str(out), "--n-boot", "20", "--model-arg", "batch_size=1"], env=env)
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())["results"]
    assert res["cmi-pref/musicality"]["n"] == 7 and res["cmi-pref/musicality"]["n_missing"] == 1
    assert res["cmi-pref/alignment/text+lyrics+ref"]["n"] == 1
    assert 0.0 <= res["cmi-pref/alignment"]["accuracy"] <= 1.0
    assert math.isfinite(res["musiceval/musicality"]["spearman"]) and math.isfinite(res["pam/alignment"]["kendall"])
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert {e["reason"] for e in errors} == {"audio file not found"}
    preds = pd.read_parquet(out / "predictions.parquet")
    # The benchmark's scores are CMI-RM's own (batch_size=1: each clip scored alone, so its score
    # does not depend on the other clips of a group): the first CMI-Pref vote, both sides.
    first = preds[(preds.task == "cmi-pref/musicality")].iloc[0]
    rows = [json.loads(line) for line in (cmi_root / "unified.jsonl").read_text().splitlines()]
    row = rows[int(first["id"].rsplit("-", 1)[1]) - 1]  # ids number the JSONL lines from 1
    model = CmiRewardModel(CHECKPOINT, device="cpu", batch_size=1)
    ins = Instruction(text=row["prompt"], lyrics=row["lyrics"], ref_audio=None if not row["ref-audio-path"] else str(cmi_root / row["ref-audio-path"]))
    alone = model.score([ScoreItem(str(cmi_root / row["audio-path"]), ins), ScoreItem(str(cmi_root / row["audio2"]), ins)])
    assert first["score_a"] == pytest.approx(alone["musicality"][0], abs=1e-5)
    assert first["score_b"] == pytest.approx(alone["musicality"][1], abs=1e-5)
    aligned = preds[(preds.task == "cmi-pref/alignment") & (preds.id == first["id"])].iloc[0]
    assert aligned["score_a"] == pytest.approx(alone["alignment"][0], abs=1e-5)
