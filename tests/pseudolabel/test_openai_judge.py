"""The chat-completions judge against a real HTTP server on 127.0.0.1."""

import json
import logging
from pathlib import Path

import pytest

from musicjudge.pseudolabel.judges import JudgeError, OpenAIChatJudge
from musicjudge.pseudolabel.label import label_pairs
from musicjudge.reward.data import read_pairs

from .conftest import write_study
from .judge_server import make_app, serve

KEY = "sk-test-7f3a9c1e5b2d4e6f8a0b"


def _all_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file() and p.suffix != ".wav")


def test_consistency_filter_retries_and_key_hygiene(tmp_path, monkeypatch, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("MJ_TEST_JUDGE_KEY", KEY)
    markers = ["honest"] * 8 + ["biased"] * 4 + ["malformed", "slow", "flaky"]
    manifest = write_study(tmp_path / "study", markers)
    pairs = read_pairs(manifest)
    app = make_app(KEY)
    with serve(app) as url:
        judge = OpenAIChatJudge(f"{url}/v1", "test-judge", api_key_env="MJ_TEST_JUDGE_KEY", timeout_s=0.5,
                                max_retries=2, backoff_s=0.01, concurrency=4, cache_dir=tmp_path / "cache")
        result = label_pairs(pairs, judge, tmp_path / "out", progress=False)
    by_marker = {p.id: m for p, m in zip(pairs, markers)}
    kept = {p.id: p for p in result.kept}
    # Every honest (and eventually answered slow/flaky) pair is kept with the true label;
    # every position-biased pair is inconsistent and dropped; malformed answers are not guessed.
    assert set(kept) == {pid for pid, m in by_marker.items() if m in ("honest", "slow", "flaky")}
    gold = {p.id: p.preference for p in pairs}
    for pid, pair in kept.items():
        assert pair.preference == gold[pid]
        assert pair.source == "pseudo:openai:test-judge"
        assert pair.confidence == {"musicality": 4.0, "alignment": 4.0}
    s = result.summary
    assert s["malformed"] == 2 and s["errors"] == 0
    mus = s["dimensions"]["musicality"]
    assert mus["inconsistent"] == 4 and mus["both_first"] == 4
    assert mus["position_bias_rate"] == pytest.approx(4 / 14, abs=1e-3)
    assert mus["accuracy"]["kept_accuracy"] == 1.0 and mus["accuracy"]["single_order_accuracy"] < 1.0
    # retries: the slow request timed out once, the flaky one got two 503s, then both succeeded
    verdicts = [json.loads(line) for line in (tmp_path / "out" / "verdicts.jsonl").read_text().splitlines()]
    attempts = {(v["pair_id"], v["order"]): v["attempts"] for v in verdicts}
    for pid, m in by_marker.items():
        for order in ("AB", "BA"):
            assert attempts[(pid, order)] == {"slow": 2, "flaky": 3}.get(m, 1)
    malformed = [v for v in verdicts if v["status"] == "malformed"]
    assert len(malformed) == 2 and all("first clip" in v["raw"] and v["labels"] == {} for v in malformed)
    # the output manifest reads back in the reward schema
    assert {p.id for p in read_pairs(result.pairs_path)} == set(kept)
    # a second run is served from the cache: no new HTTP requests
    n_requests = app.state.requests
    with serve(app) as url:
        judge = OpenAIChatJudge(f"{url}/v1", "test-judge", api_key_env="MJ_TEST_JUDGE_KEY", timeout_s=0.5,
                                max_retries=2, backoff_s=0.01, cache_dir=tmp_path / "cache")
        again = label_pairs(pairs, judge, tmp_path / "out2", progress=False)
    assert app.state.requests == n_requests
    assert {p.id for p in again.kept} == set(kept)
    # the key was sent (the server refuses requests without it) but never written or logged
    out, err = capsys.readouterr()
    everything = _all_text(tmp_path) + caplog.text + out + err + repr(judge)
    assert KEY not in everything
    assert list((tmp_path / "cache").rglob("*.json"))


def test_retry_policy(tmp_path, monkeypatch):
    monkeypatch.setenv("MJ_TEST_JUDGE_KEY", KEY)
    manifest = write_study(tmp_path / "study", ["dead", "bad"])
    dead, bad = read_pairs(manifest)
    app = make_app(KEY)
    with serve(app) as url:
        judge = OpenAIChatJudge(f"{url}/v1", "m", api_key_env="MJ_TEST_JUDGE_KEY", max_retries=3, backoff_s=0.01,
                                cache_dir=tmp_path / "cache")
        v = judge.judge(dead, "AB")
        assert v.status == "error" and v.attempts == 4 and "HTTP 500" in v.error  # 5xx: retried
        assert app.state.markers["dead"] == 4
        v = judge.judge(bad, "AB")
        assert v.status == "error" and v.attempts == 1 and "HTTP 400" in v.error  # 4xx: not retried
        assert app.state.markers["bad"] == 1
        monkeypatch.setenv("MJ_WRONG_KEY", "sk-wrong")
        wrong = OpenAIChatJudge(f"{url}/v1", "m", api_key_env="MJ_WRONG_KEY", cache_dir=tmp_path / "cache")
        with pytest.raises(JudgeError, match="MJ_WRONG_KEY"):
            wrong.judge(dead, "BA")
    assert not list((tmp_path / "cache").rglob("*.json"))  # failures are never cached
    # connection refused (server gone): retried, then recorded as an error
    judge = OpenAIChatJudge(url + "/v1", "m", api_key_env="MJ_TEST_JUDGE_KEY", max_retries=1, backoff_s=0.01,
                            cache_dir=tmp_path / "cache")
    v = judge.judge(dead, "AB")
    assert v.status == "error" and v.attempts == 2 and "connection failed" in v.error
    # errors are retried on the next run: they do not count as done
    result = label_pairs([dead], judge, tmp_path / "out", progress=False)
    assert result.summary["errors"] == 2 and result.summary["kept_pairs"] == 0


@pytest.mark.parametrize("flags, match", [
    (["--limit", "0"], "--limit 0: "),
    (["--max-audio-s", "0"], "judge setting --max-audio-s 0.0: must be > 0 seconds"),
    (["--retries", "-1"], "judge setting --retries -1: must be >= 0"),
])
def test_label_cli_names_the_bad_flag(tmp_path, capsys, flags, match):
    from musicjudge.cli.main import main

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"id": "p", "text": "t", "audio_a": "a.wav", "audio_b": "b.wav"}\n')
    with pytest.raises(SystemExit) as exc:
        main(["pseudolabel", "label", str(pairs), "--out", str(tmp_path / "out"), "--judge", "openai",
              "--base-url", "http://127.0.0.1:9/v1", "--model", "m", *flags])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith(f"error: {match}") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
