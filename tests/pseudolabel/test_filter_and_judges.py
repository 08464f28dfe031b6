"""What the consistency filter buys (simulated judge of known accuracy/bias), strict verdict
parsing, the heuristic and reward-model judges, pairing, and the CLI's one-line errors."""

import random

import numpy as np
import pytest
from typer.testing import CliRunner

from musicjudge.cli.main import app as cli_app
from musicjudge.pseudolabel.judges import MalformedAnswer, HeuristicJudge, RewardModelJudge, SimulatedJudge, parse_verdict
from musicjudge.pseudolabel.label import label_pairs
from musicjudge.pseudolabel.pairing import make_pairs
from musicjudge.reward.data import Instruction, PreferencePair, RatedClip, read_pairs

from .conftest import write_study


def _gold_pairs(n, seed=0):
    rng = random.Random(seed)
    return [PreferencePair(id=f"q{i}", instruction=Instruction(text="calm piano"), audio_a=f"/nonexistent/a{i}.wav",
                           audio_b=f"/nonexistent/b{i}.wav",
                           preference={"musicality": rng.choice("AB"), "alignment": rng.choice("AB")}) for i in range(n)]


@pytest.mark.parametrize("accuracy,bias", [(0.75, 0.3), (0.8, 0.0)])
def test_filter_improves_accuracy_of_simulated_judge(tmp_path, accuracy, bias):
    pairs = _gold_pairs(3000)
    result = label_pairs(pairs, SimulatedJudge(accuracy=accuracy, position_bias=bias, seed=1), tmp_path, progress=False)
    p, b = accuracy, bias
    expect_kept = (1 - b) ** 2 * (p ** 2 + (1 - p) ** 2) + b * (1 - b)  # per dimension
    expect_single = b / 2 + (1 - b) * p
    expect_filtered = ((1 - b) ** 2 * p ** 2 + b * (1 - b) * p) / expect_kept
    for dim in ("musicality", "alignment"):
        d = result.summary["dimensions"][dim]
        assert d["consistent_share"] == pytest.approx(expect_kept, abs=0.035)
        assert d["accuracy"]["single_order_accuracy"] == pytest.approx(expect_single, abs=0.035)
        assert d["accuracy"]["kept_accuracy"] == pytest.approx(expect_filtered, abs=0.035)
        assert d["accuracy"]["kept_accuracy"] > d["accuracy"]["single_order_accuracy"] + 0.08
        assert d["position_bias_rate"] == pytest.approx(bias, abs=0.035)
        assert d["first_position_share"] == pytest.approx(0.5 + bias / 2, abs=0.035)
    # kept labels really are the judge's agreed answers, checked against the truth independently
    truth = {p.id: p.preference for p in pairs}
    correct = sum(k.preference.get("musicality") == truth[k.id]["musicality"] for k in result.kept if "musicality" in k.preference)
    assert correct / result.summary["dimensions"]["musicality"]["kept"] == pytest.approx(result.summary["dimensions"]["musicality"]["accuracy"]["kept_accuracy"], abs=1e-4)


def test_require_all_and_drop_ties(tmp_path):
    pairs = _gold_pairs(400)
    loose = label_pairs(pairs, SimulatedJudge(accuracy=0.7, position_bias=0.2), tmp_path / "a", progress=False)
    strict = label_pairs(pairs, SimulatedJudge(accuracy=0.7, position_bias=0.2), tmp_path / "b", require_all=True, progress=False)
    assert all(set(p.preference) == {"musicality", "alignment"} for p in strict.kept)
    assert 0 < len(strict.kept) < len(loose.kept)
    tied = [PreferencePair(id=f"t{i}", instruction=Instruction(text="x"), audio_a="/a.wav", audio_b="/b.wav",
                           preference={"musicality": "tie", "alignment": "tie"}) for i in range(50)]
    keep = label_pairs(tied, SimulatedJudge(accuracy=1.0, position_bias=0.0), tmp_path / "c", progress=False)
    drop = label_pairs(tied, SimulatedJudge(accuracy=1.0, position_bias=0.0), tmp_path / "d", keep_ties=False, progress=False)
    assert keep.summary["dimensions"]["musicality"]["tie_share_kept"] == 1.0 and len(keep.kept) == 50
    assert drop.kept == []
    from musicjudge.errors import ConfigError

    with pytest.raises(ConfigError, match="another --out"):  # never mix two judges in one run folder
        label_pairs(tied, SimulatedJudge(accuracy=0.5, position_bias=0.0), tmp_path / "c", progress=False)


@pytest.mark.parametrize("answer,expected", [
    ('{"musicality": "A", "alignment": "tie"}', {"musicality": "A", "alignment": "tie"}),
    ('```json\n{"musicality": "b", "alignment": "A", "confidence": 3}\n```', {"musicality": "B", "alignment": "A"}),
])
def test_parse_verdict_accepts_strict_json(answer, expected):
    labels, confidence, _ = parse_verdict(answer, ("musicality", "alignment"))
    assert labels == expected
    assert confidence == ({"musicality": 3.0, "alignment": 3.0} if "confidence" in answer else {})


@pytest.mark.parametrize("answer", [
    "A is better", '{"musicality": "A"}', '{"musicality": "first", "alignment": "A"}', '["A", "B"]',
    'Sure! {"musicality": "A", "alignment": "B"}', '{"musicality": 1, "alignment": "B"}',
])
def test_parse_verdict_refuses_to_guess(answer):
    with pytest.raises(MalformedAnswer):
        parse_verdict(answer, ("musicality", "alignment"))


def test_heuristic_judge_on_real_audio(tmp_path):
    pairs = read_pairs(write_study(tmp_path, ["honest"] * 6))
    judge = HeuristicJudge()
    result = label_pairs(pairs, judge, tmp_path / "out", progress=False)
    assert len(result.kept) == 6
    for pair in result.kept:  # clean tone beats noise; no key/ref in the text -> alignment tie
        gold = next(p for p in pairs if p.id == pair.id).preference
        assert pair.preference == {"musicality": gold["musicality"], "alignment": "tie"}
    broken = PreferencePair(id="x", instruction=Instruction(text="t"), audio_a=str(tmp_path / "missing.wav"), audio_b=pairs[0].audio_a)
    v = judge.judge(broken, "AB")
    assert v.status == "error" and "missing.wav" in v.error


class LoudnessReward:
    """A tiny real reward model: musicality = minus the clip's noise (residual after the main
    sinusoid), alignment = constant (no preference)."""

    def score(self, items):
        import soundfile as sf

        mus = []
        for item in items:
            wave, sr = sf.read(item.audio, dtype="float32")
            spec = np.abs(np.fft.rfft(wave))
            mus.append(float(spec.max() / spec.sum()))
        return {"musicality": np.array(mus), "alignment": np.zeros(len(items))}


def test_reward_model_judge(tmp_path):
    pairs = read_pairs(write_study(tmp_path, ["honest"] * 5))
    model = LoudnessReward()
    result = label_pairs(pairs, RewardModelJudge(model, name="loud"), tmp_path / "out", progress=False)
    assert result.summary["dimensions"]["musicality"]["accuracy"]["kept_accuracy"] == 1.0
    assert result.summary["dimensions"]["musicality"]["position_bias_rate"] == 0.0
    assert all(p.preference["alignment"] == "tie" for p in result.kept)


def test_make_pairs_groups_by_prompt():
    clips = [RatedClip(id=f"c{p}{k}", instruction=Instruction(text=f"prompt {p}"), audio=f"/x/{p}{k}.wav", system=f"s{k % 2}",
                       metadata={"prompt_id": f"P{p}"}) for p in range(3) for k in range(4)]
    pairs = make_pairs(clips, seed=0)
    assert len(pairs) == 3 * 6
    assert all(p.instruction.text == f"prompt {p.metadata['prompt_id'][1]}" for p in pairs)
    assert {p.audio_a for p in pairs} & {p.audio_b for p in pairs}  # A/B sides are mixed
    assert len(make_pairs(clips, per_prompt=2)) == 6
    assert all(p.system_a != p.system_b for p in make_pairs(clips, cross_system_only=True))


def test_cli_label_and_errors(tmp_path, capsys):
    manifest = write_study(tmp_path, ["honest"] * 3)
    runner = CliRunner()
    r = runner.invoke(cli_app, ["pseudolabel", "label", str(manifest), "--out", str(tmp_path / "o"), "--judge", "simulated:accuracy=1,bias=0"])
    assert r.exit_code == 0 and "kept 3/3 pairs" in r.output
    assert (tmp_path / "o" / "summary.json").exists() and (tmp_path / "o" / "pseudo_pairs.jsonl").exists()
    from musicjudge.cli.main import main

    for args, needle in [
        (["--judge", "openai"], "--base-url"),
        (["--judge", "simulated:accuracy=x"], "key=number"),
        (["--judge", "nonsense"], "unknown"),
        (["--dimensions", "groove"], "choose from"),
        (["--judge", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--retries", "0"], "no verdict"),
    ]:
        with pytest.raises(SystemExit) as e:
            main(["pseudolabel", "label", str(manifest), "--out", str(tmp_path / "o2"), *args])
        assert e.value.code == 2
        assert needle in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "audio_a": "a.wav"}\n')
    with pytest.raises(SystemExit):
        main(["pseudolabel", "label", str(bad), "--out", str(tmp_path / "o3")])
