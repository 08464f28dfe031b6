"""Self-contained HTML reports: text sections, tables from DataFrames, PNG figures embedded as
base64, the run's config and the library versions, in one file that opens offline.

    from musicjudge.report import HtmlReport
    rep = HtmlReport("My run")
    rep.add_text("Summary", "Two models, three data sets.")
    rep.add_table("D by length", df)
    rep.add_figure("D vs L", "figures/d_vs_length.png")
    rep.add_config(config_dict)
    rep.write("report.html")
"""

from musicjudge.report.figures import save_png
from musicjudge.report.html import HtmlReport, library_versions

__all__ = ["HtmlReport", "library_versions", "save_png"]
