"""The annotation server over real HTTP: votes in the reward schema, path traversal, body
limits, the study token, concurrent annotators, resume, and the stats."""

import json
import threading

import httpx
import pytest

from musicjudge.annotate.app import create_app
from musicjudge.annotate.stats import fleiss_kappa, read_votes, vote_stats
from musicjudge.annotate.study import Study
from musicjudge.reward.data import read_pairs

from .conftest import serve


def _vote_body(annotator, pair_id, mus="first", ali="second", **extra):
    return {"annotator": annotator, "pair_id": pair_id, "musicality": mus, "alignment": ali,
            "confidence_musicality": 4, "confidence_alignment": 2, "played": {"first": True, "second": True}, **extra}


def test_vote_roundtrip_mapping_and_resume(study_manifest, tmp_path):
    votes = tmp_path / "out" / "votes.jsonl"
    study = Study(study_manifest, votes, seed=3)
    assert set(study.pairs) == {"pair0", "pair1", "pair2", "pair3"} and "escape" in study.excluded
    with serve(create_app(study)) as url, httpx.Client(base_url=url) as c:
        assert c.get("/").status_code == 200 and "Which clip is better" in c.get("/").text
        assert c.get("/api/study").json() == {"title": "pairs", "total": 4, "token_required": False}
        seen_orders = set()
        for _ in range(4):
            nxt = c.get("/api/next", params={"annotator": "ann"}).json()
            assert c.get("/api/next", params={"annotator": "ann"}).json()["pair_id"] == nxt["pair_id"]  # stable until voted
            first_side = nxt["audio"]["first"].rsplit("/", 1)[1]
            seen_orders.add(first_side)
            r = c.post("/api/vote", json=_vote_body("ann", nxt["pair_id"], reason="clip 1 is cleaner"))
            assert r.status_code == 200, r.text
            row = json.loads(votes.read_text().splitlines()[-1])
            # displayed "first" is the manifest side that was served first
            assert row["displayed_order"] == ("AB" if first_side == "a" else "BA")
            assert row["musicality"] == first_side.upper()
            assert row["alignment"] == ("B" if first_side == "a" else "A")
            assert row["displayed"] == {"musicality": "first", "alignment": "second"}
            assert row["confidence_musicality"] == 4 and row["annotator"] == "ann" and row["reason"] == "clip 1 is cleaner"
        assert seen_orders == {"a", "b"}  # the order really is randomised (seed 3)
        assert c.get("/api/next", params={"annotator": "ann"}).json()["done"] is True
        assert c.post("/api/vote", json=_vote_body("ann", "pair1")).status_code == 409  # once per annotator
        assert c.post("/api/vote", json=_vote_body("bob", "pair1")).status_code == 409  # never assigned
        # audio: the listed clip, byte for byte
        nxt = c.get("/api/next", params={"annotator": "bob"}).json()
        assert nxt["pair_id"] == "pair0" and nxt["audio"]["ref"] == "/api/audio/pair0/ref"
        assert nxt["instruction"]["lyrics"] == "la la la\nsing along"
        clip = c.get("/api/audio/pair0/a")
        assert clip.status_code == 200 and clip.headers["content-type"] == "audio/wav"
        assert clip.content == (study_manifest.parent / "audio" / "0_a.wav").read_bytes()
    # the votes file is a pairs manifest of the reward schema (paths relative to it)
    pairs = read_pairs(votes)
    assert len(pairs) == 4 and all(p.annotator == "ann" and p.source == "annotate" for p in pairs)
    assert all(p.audio_a.endswith(".wav") and (study_manifest.parent / "audio").samefile(p.audio_a.rsplit("/", 1)[0]) for p in pairs)
    # resume: a new server on the same votes file knows what was done
    again = Study(study_manifest, votes)
    assert again.progress("ann") == {"done": 4, "total": 4}
    assert again.next_assignment("ann") is None
    assert again.next_assignment("bob") is not None


def test_path_traversal_and_unlisted_audio_refused(study_manifest, tmp_path):
    study = Study(study_manifest, tmp_path / "votes.jsonl")
    with serve(create_app(study)) as url, httpx.Client(base_url=url) as c:
        for path in [
            "/api/audio/escape/a",  # listed, but outside the audio root: left out of the study
            "/api/audio/pair0/..%2F..%2Fsecret.txt",
            "/api/audio/..%2F..%2Fsecret.txt/a",
            "/api/audio/%2e%2e/%2e%2e",
            "/api/audio/pair0/c",
            "/static/..%2F..%2F..%2Fsecret.txt",
            "/static/%2e%2e/study.py",
        ]:
            r = c.get(path)
            assert r.status_code == 404, (path, r.status_code)
            assert b"top secret" not in r.content and b"RIFF" not in r.content
        # a symlink inside the audio root that points outside it is refused too
        link = study_manifest.parent / "audio" / "link.wav"
        link.symlink_to(tmp_path / "outside.wav")
        linked = tmp_path / "study" / "linked.jsonl"
        linked.write_text(json.dumps({"id": "l", "text": "t", "audio_a": "audio/link.wav", "audio_b": "audio/0_b.wav"}) + "\n"
                          + json.dumps({"id": "ok", "text": "t", "audio_a": "audio/0_a.wav", "audio_b": "audio/0_b.wav"}) + "\n")
        assert set(Study(linked, tmp_path / "v2.jsonl").pairs) == {"ok"}
        # a raw, unnormalised request line
        raw = httpx.Request("GET", url + "/api/audio/pair0/a")
        raw.url = httpx.URL(url + "/api/audio/../../secret.txt")
        assert c.send(raw).status_code == 404


def test_body_and_field_limits(study_manifest, tmp_path):
    study = Study(study_manifest, tmp_path / "votes.jsonl")
    with serve(create_app(study)) as url, httpx.Client(base_url=url) as c:
        pair_id = c.get("/api/next", params={"annotator": "ann"}).json()["pair_id"]
        big = _vote_body("ann", pair_id, reason="x" * 20000)
        assert c.post("/api/vote", json=big).status_code == 413
        chunks = (part for part in [json.dumps(big).encode()[:10000], json.dumps(big).encode()[10000:]])
        assert c.post("/api/vote", content=chunks, headers={"content-type": "application/json"}).status_code == 413
        assert c.post("/api/vote", json=_vote_body("ann", pair_id, reason="x" * 1001)).status_code == 422
        assert c.post("/api/vote", json=_vote_body("a" * 65, pair_id)).status_code == 422
        assert c.post("/api/vote", json=_vote_body("<script>", pair_id)).status_code == 422
        assert c.post("/api/vote", json=_vote_body("ann", pair_id, mus="left")).status_code == 422
        assert c.post("/api/vote", json=_vote_body("ann", pair_id, confidence_musicality=9)).status_code == 422
        assert c.post("/api/vote", json=_vote_body("ann", pair_id, extra_field=1)).status_code == 422
        assert c.get("/api/next", params={"annotator": "../../x"}).status_code == 422
        assert not (tmp_path / "votes.jsonl").exists()  # nothing recorded from refused requests
        assert c.post("/api/vote", json=_vote_body("ann", pair_id)).status_code == 200


def test_token_required(study_manifest, tmp_path):
    study = Study(study_manifest, tmp_path / "votes.jsonl")
    with serve(create_app(study, token="s3cret-study")) as url:
        with httpx.Client(base_url=url) as c:
            assert c.get("/api/study").json()["token_required"] is True
            assert c.get("/api/next", params={"annotator": "ann"}).status_code == 401
            assert c.get("/api/audio/pair0/a").status_code == 401
            assert c.post("/api/vote", json=_vote_body("ann", "pair0")).status_code == 401
            assert c.get("/api/next", params={"annotator": "ann"}, headers={"X-Study-Token": "wrong"}).status_code == 401
            assert c.post("/api/login", json={"annotator": "ann", "token": "wrong"}).status_code == 401
            assert c.post("/api/login", json={"annotator": "ann"}).status_code == 401
            assert c.get("/api/next", params={"annotator": "ann"}, headers={"X-Study-Token": "s3cret-study"}).status_code == 200
            assert c.post("/api/login", json={"annotator": "ann", "token": "s3cret-study"}).status_code == 200
            assert c.get("/api/audio/pair0/a").status_code == 200  # the login cookie opens audio


def test_concurrent_annotators_all_recorded(study_manifest, tmp_path):
    votes = tmp_path / "votes.jsonl"
    study = Study(study_manifest, votes)
    errors = []

    def annotate(name):
        try:
            with httpx.Client(base_url=url) as c:
                while True:
                    nxt = c.get("/api/next", params={"annotator": name}).json()
                    if nxt["done"]:
                        return
                    r = c.post("/api/vote", json=_vote_body(name, nxt["pair_id"], mus="tie"))
                    if r.status_code != 200:
                        errors.append(r.text)
                        return
        except Exception as e:  # surfaced below
            errors.append(repr(e))

    with serve(create_app(study)) as url:
        threads = [threading.Thread(target=annotate, args=(f"ann{i}",)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert not errors
    rows = read_votes(votes)
    assert len(rows) == 6 * 4
    assert len({(r["annotator"], r["pair_id"]) for r in rows}) == 24
    stats = vote_stats(rows)
    assert stats["votes_per_annotator"] == {f"ann{i}": 4 for i in range(6)}
    assert stats["dimensions"]["musicality"]["tie_share"] == 1.0
    assert stats["dimensions"]["musicality"]["pairwise_agreement"] == 1.0


def test_fleiss_kappa_textbook_example():
    # Fleiss (1971) as worked on Wikipedia: 10 items, 14 raters, 5 categories -> kappa 0.210
    counts = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
              [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(counts) == pytest.approx(0.210, abs=5e-4)


def test_stats_agreement_and_bias():
    def v(ann, pair, label, order, mus_shown):
        return {"annotator": ann, "pair_id": pair, "musicality": label, "displayed_order": order,
                "displayed": {"musicality": mus_shown}}

    votes = [v("x", "p1", "A", "AB", "first"), v("y", "p1", "A", "BA", "second"), v("z", "p1", "B", "AB", "second"),
             v("x", "p2", "B", "BA", "first"), v("y", "p2", "B", "AB", "second"), v("z", "p2", "B", "BA", "first"),
             v("x", "p3", "tie", "AB", "tie"), v("y", "p3", "A", "BA", "second")]
    s = vote_stats(votes, min_common=2)["dimensions"]["musicality"]
    assert s["votes"] == 8 and s["tie_share"] == pytest.approx(1 / 8, abs=1e-4)
    assert s["pairwise_agreement"] == pytest.approx(4 / 7, abs=1e-4)  # p1: 1/3, p2: 3/3, p3: 0/1
    assert s["first_position_share"] == pytest.approx(3 / 7, abs=1e-4)
    assert s["cohen_kappa"]["x | y"]["items"] == 3
    assert -1 <= s["fleiss_kappa"] <= 1 and s["cohen_kappa_mean"] is not None


def test_cli_serve_and_errors(study_manifest, tmp_path):
    """'musicjudge annotate serve' really serves (subprocess, free port); mistakes are one-line errors."""
    import os
    import socket
    import subprocess
    import sys
    import time

    from musicjudge.cli.main import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    votes = tmp_path / "votes.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "musicjudge", "annotate", "serve", "--pairs", str(study_manifest), "--out",
                             str(votes), "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    try:
        deadline = time.time() + 30
        info = None
        while time.time() < deadline and info is None:
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/api/study", timeout=1).json()
            except httpx.TransportError:
                time.sleep(0.1)
        assert info == {"title": "pairs", "total": 4, "token_required": False}
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert "study: 4 pairs (1 left out" in out.decode()
    for args in (["serve", "--pairs", str(study_manifest), "--out", str(tmp_path / "votes.csv")],
                 ["serve", "--pairs", str(tmp_path / "missing.jsonl"), "--out", str(votes)],
                 ["stats", str(study_manifest)]):
        with pytest.raises(SystemExit) as e:
            main(["annotate", *args])
        assert e.value.code == 2


def test_cli_serve_port_mistakes_are_one_line_errors(study_manifest, tmp_path, capsys):
    import socket

    from musicjudge.cli.main import main

    votes = tmp_path / "votes.jsonl"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        for port, match in ((99999, "--port 99999: use a port in 1..65535"),
                            (taken, f"127.0.0.1:{taken}: cannot listen there (")):
            with pytest.raises(SystemExit) as e:
                main(["annotate", "serve", "--pairs", str(study_manifest), "--out", str(votes), "--port", str(port)])
            out, err = capsys.readouterr()
            assert e.value.code == 2 and err.startswith(f"error: {match}") and err.count("\n") == 1, err
            assert "--port" in err and "open http" not in out
    with pytest.raises(SystemExit) as e:
        main(["annotate", "serve", "--pairs", str(study_manifest), "--out", str(votes), "--host", "no-such-host.invalid"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: no-such-host.invalid:") and "--host" in err


def test_annotator_table_reads_votes_with_only_displayed_order_like_vote_stats():
    from musicjudge.annotate.stats import annotator_table

    base = {"text": "t", "audio_a": "a.wav", "audio_b": "b.wav"}
    votes = [{**base, "pair_id": "p1", "annotator": "ann1", "musicality": "A", "alignment": "tie", "displayed_order": "AB"},
             {**base, "pair_id": "p1", "annotator": "ann2", "musicality": "B", "alignment": "A", "displayed_order": "BA"}]
    table = annotator_table(votes).set_index("annotator")
    assert table.loc["ann1", "alignment_tie_share"] == 1.0 and table.loc["ann2", "alignment_tie_share"] == 0.0
    assert table.loc["ann1", "musicality_first_position_share"] == 1.0  # A shown first
    assert table.loc["ann2", "musicality_first_position_share"] == 1.0  # B shown first
    assert table.loc["ann2", "alignment_first_position_share"] == 0.0  # A shown second
    s = vote_stats(votes, min_common=1)
    assert s["dimensions"]["musicality"]["first_position_share"] == 1.0
    assert s["dimensions"]["alignment"]["tie_share_per_annotator"] == {"ann1": 1.0, "ann2": 0.0}
