"""The generic HTML report: every section kind, inlined PNGs, escaping, one-line errors."""

import base64
import re
from html import unescape

import numpy as np
import pandas as pd
import pytest

from musicjudge.errors import ConfigError
from musicjudge.report import HtmlReport, library_versions


def _png(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    FigureCanvasAgg(fig)
    fig.subplots().plot([0, 1], [1, 0])
    path = tmp_path / "line.png"
    fig.savefig(path)
    return path, fig


def test_report_holds_text_table_figure_config_versions(tmp_path):
    png, fig = _png(tmp_path)
    df = pd.DataFrame({"model": ["a<b>", "c"], "D": [0.123456, np.nan]})
    rep = HtmlReport("Run <1>", subtitle="sub")
    rep.add_text("Summary", "first paragraph\n\nsecond & last")
    rep.add_table("Table", df, caption="cap")
    rep.add_figure("Figure from file", png, "a caption")
    rep.add_figure("Figure object", fig)
    rep.add_config({"noise": {"lengths": [5, 10]}})
    rep.add_versions()
    out = rep.write(tmp_path / "r" / "report.html")
    html = out.read_text()
    assert "<title>Run &lt;1&gt;</title>" in html
    assert "a&lt;b&gt;" in html and "<td>0.1235</td>" in html  # escaped, formatted; NaN left empty
    assert "second &amp; last" in html
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 2
    assert base64.b64decode(images[0]) == png.read_bytes()
    assert '"lengths": [' in unescape(html) and "numpy" in html
    assert 'href="#figure-from-file"' in html and 'id="figure-object"' in html
    assert "http://" not in html and "https://" not in html  # nothing fetched from outside


def test_long_tables_are_cut_with_a_note(tmp_path):
    rep = HtmlReport("t").add_table("big", pd.DataFrame({"x": range(50)}), max_rows=10)
    html = rep.render()
    assert "showing the first 10 of 50 rows" in html
    assert html.count("<tr>") == 11


def test_duplicate_titles_get_unique_anchors():
    rep = HtmlReport("t").add_text("Same", "a").add_text("Same", "b")
    assert [s.anchor for s in rep.sections] == ["same", "same-2"]


def test_bad_inputs_raise_one_line_config_errors(tmp_path):
    rep = HtmlReport("t")
    with pytest.raises(ConfigError, match="figure file not found"):
        rep.add_figure("x", tmp_path / "missing.png")
    (tmp_path / "fake.png").write_bytes(b"GIF89a")
    with pytest.raises(ConfigError, match="not a PNG"):
        rep.add_figure("x", tmp_path / "fake.png")
    with pytest.raises(ConfigError, match="DataFrame"):
        rep.add_table("x", [1, 2])


def test_library_versions_reads_metadata_without_imports():
    v = library_versions(["numpy", "surely-not-installed-pkg"])
    assert v["numpy"] == np.__version__ and v["surely-not-installed-pkg"] == "absent" and v["python"]


def test_audio_players_embed_bytes_or_link(tmp_path):
    rep = HtmlReport("Audio")
    rep.add_audio("Examples", [
        {"label": "best <1>", "audio": b"ID3fake-mp3", "mime": "audio/mpeg", "details": "musicality 1.5"},
        {"label": "linked", "audio": "clips/x.wav"},
    ], caption="first 10 s")
    html = rep.render()
    srcs = re.findall(r'<audio controls preload="none" src="([^"]+)"', html)
    assert srcs[0] == "data:audio/mpeg;base64," + base64.b64encode(b"ID3fake-mp3").decode()
    assert srcs[1] == "clips/x.wav"
    assert "best &lt;1&gt;" in html and "musicality 1.5" in html and "first 10 s" in html
    with pytest.raises(ConfigError, match="needs audio bytes or a link"):
        rep.add_audio("Bad", [{"label": "x", "audio": None}])
