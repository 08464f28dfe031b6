"""End to end in a real headless browser (Debian's chromium driven by Playwright): log in,
play both clips, vote, resume after a reload, finish; then a short study's statistics."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from musicjudge.annotate.app import create_app
from musicjudge.annotate.study import Study
from musicjudge.cli.main import app as cli_app

from .conftest import serve

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


def _vote_in_page(page, mus, ali, conf_m, conf_a, reason=None):
    page.click("#play-first")
    page.wait_for_selector("#play-first.played", timeout=15000)
    page.click("#play-second")
    page.wait_for_selector("#play-second.played", timeout=15000)
    page.wait_for_selector("#submit:not([disabled])", timeout=15000)
    page.check(f"input[name=musicality][value={mus}]")
    page.check(f"input[name=confidence_musicality][value='{conf_m}']")
    page.check(f"input[name=alignment][value={ali}]")
    page.check(f"input[name=confidence_alignment][value='{conf_a}']")
    if reason:
        page.fill("#reason", reason)


def test_browser_vote_resume_and_study_stats(study_manifest, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    votes = tmp_path / "votes.jsonl"
    study = Study(study_manifest, votes, seed=1)
    with serve(create_app(study, token="tok-42", title="demo study")) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            console_errors = []
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.goto(url + "/")
            page.wait_for_selector("#token-row:not([hidden])")
            page.fill("#annotator", "alice")
            page.fill("#token", "wrong")
            page.click("#start")
            expect(page.locator("#login-error")).to_contain_text("token")
            page.fill("#token", "tok-42")
            console_errors.clear()  # the 401 of the wrong token above is expected
            page.click("#start")
            page.wait_for_selector("#task:not([hidden])")
            assert page.inner_text("#progress") == "0 / 4 judged"
            first_text = page.inner_text("#ins-text")
            assert page.is_visible("#ref-row") and "la la la" in page.inner_text("#ins-lyrics")
            assert page.is_disabled("#submit")  # not before both clips were played
            _vote_in_page(page, "first", "tie", 5, 3, reason="clip 1 sounds cleaner")
            # the clips really played in the browser
            assert page.evaluate("document.querySelector('#audio-first').played.length") > 0
            page.screenshot(path=str(ARTIFACTS / "annotate.png"), full_page=True)
            page.click("#submit")
            expect(page.locator("#progress")).to_have_text("1 / 4 judged")
            row = json.loads(votes.read_text().splitlines()[0])
            assert row["pair_id"] == "pair0" and row["annotator"] == "alice" and row["source"] == "annotate"
            assert row["displayed"] == {"musicality": "first", "alignment": "tie"}
            assert row["musicality"] == ("A" if row["displayed_order"] == "AB" else "B") and row["alignment"] == "tie"
            assert row["confidence_musicality"] == 5 and row["confidence_alignment"] == 3
            assert row["reason"] == "clip 1 sounds cleaner" and row["played"]["first"] and row["played"]["second"]
            assert row["text"] == first_text and row["audio_a"].endswith("0_a.wav")

            # resume: a fresh page (same name) continues after the voted pair
            page.reload()
            page.fill("#annotator", "alice")
            page.fill("#token", "tok-42")
            page.click("#start")
            page.wait_for_selector("#task:not([hidden])")
            assert page.inner_text("#progress") == "1 / 4 judged"
            assert page.inner_text("#ins-text") != first_text
            for i, choice in enumerate(("second", "first", "second")):
                shown = page.get_attribute("#task", "data-pair-id")
                _vote_in_page(page, choice, choice, 4, 4)
                page.click("#submit")
                if i < 2:  # wait until the next pair is on screen
                    expect(page.locator("#task")).not_to_have_attribute("data-pair-id", shown)
            page.wait_for_selector("#done:not([hidden])")
            assert page.inner_text("#progress") == "4 / 4 judged"
            assert not console_errors, console_errors
        finally:
            browser.close()
        # two more annotators through the same API the page uses
        import httpx

        plan = {"bob": {"pair0": "A", "pair1": "B", "pair2": "A", "pair3": "B"},
                "carol": {"pair0": "A", "pair1": "B", "pair2": "B", "pair3": "tie"}}
        for name, wanted in plan.items():
            with httpx.Client(base_url=url, headers={"X-Study-Token": "tok-42"}) as c:
                while not (nxt := c.get("/api/next", params={"annotator": name}).json())["done"]:
                    label = wanted[nxt["pair_id"]]
                    first = nxt["audio"]["first"].endswith("/a")
                    shown = "tie" if label == "tie" else ("first" if (label == "A") == first else "second")
                    r = c.post("/api/vote", json={"annotator": name, "pair_id": nxt["pair_id"], "musicality": shown,
                                                  "alignment": shown, "confidence_musicality": 3, "confidence_alignment": 3})
                    assert r.status_code == 200, r.text
    result = CliRunner().invoke(cli_app, ["annotate", "stats", str(votes), "--json", str(tmp_path / "stats.json"),
                                          "--csv", str(tmp_path / "annotators.csv")])
    assert result.exit_code == 0, result.output
    (ARTIFACTS / "annotate-stats.txt").write_text(result.output)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["votes"] == 12 and stats["votes_per_annotator"] == {"alice": 4, "bob": 4, "carol": 4}
    mus = stats["dimensions"]["musicality"]
    assert mus["pairs_with_2plus_votes"] == 4 and mus["annotator_comparisons"] == 12
    assert set(mus["cohen_kappa"]) == {"alice | bob", "alice | carol", "bob | carol"}
    assert mus["cohen_kappa"]["bob | carol"]["items"] == 4
    assert "Fleiss kappa" in result.output and "alice: 4" in result.output
    import pandas as pd

    table = pd.read_csv(tmp_path / "annotators.csv").set_index("annotator")
    assert table["votes"].to_dict() == {"alice": 4, "bob": 4, "carol": 4}
    assert table.loc["bob", "musicality_mean_confidence"] == 3.0 and table.loc["bob", "musicality_tie_share"] == 0.0
    assert table.loc["carol", "alignment_tie_share"] == 0.25
