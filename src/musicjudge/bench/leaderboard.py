"""Leaderboard across benchmark runs: one row per model, one column per task, each cell the
task's headline metric (pairwise accuracy with ties as half, or clip-level Spearman) with its
bootstrap 95% CI. Written as Markdown, a self-contained HTML page and a tidy CSV."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from musicjudge.errors import ConfigError, ManifestError
from musicjudge.io import atomic_write_text

HEADLINE = {"accuracy": "accuracy", "correlation": "spearman"}


def load_run(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    f = p / "results.json" if p.is_dir() else p
    if not f.exists():
        raise ConfigError(f"{p}: no results.json; pass run folders written by 'musicjudge bench run'")
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ManifestError(f"{f}: invalid JSON ({e.msg}); re-run the benchmark for this model") from None


def leaderboard_frame(runs: Sequence[str | Path]):
    """Tidy table: model, benchmark, task, dimension, metric, value, ci_low, ci_high, n."""
    import pandas as pd

    rows = []
    for r in runs:
        doc = load_run(r)
        model = doc["model"]["name"]
        for task, res in doc["results"].items():
            metric = HEADLINE[res["metric"]]
            ci = res.get(f"{metric}_ci") or [math.nan, math.nan]
            rows.append({"model": model, "benchmark": doc["benchmark"]["name"], "task": task,
                         "dimension": res["dimension"], "metric": metric, "value": res.get(metric),
                         "ci_low": ci[0], "ci_high": ci[1], "n": res.get("n"), "run": str(r)})
    df = pd.DataFrame(rows)
    if df.empty:
        raise ConfigError("no results in the given runs; run 'musicjudge bench run' first")
    return df


def _cell(value, lo, hi) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{value:.3f}"
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def wide_table(df):
    """Models x tasks, cells 'value [lo, hi]'; models ordered by their mean headline value."""
    df = df.copy()
    df["cell"] = [_cell(v, lo, hi) for v, lo, hi in zip(df["value"], df["ci_low"], df["ci_high"])]
    order = df.groupby("model")["value"].mean().sort_values(ascending=False).index
    tasks = list(dict.fromkeys(df["task"]))
    wide = df.pivot_table(index="model", columns="task", values="cell", aggfunc="first").reindex(index=order, columns=tasks)
    mean = df.groupby("model")["value"].mean().reindex(order)
    wide.insert(0, "mean", [f"{m:.3f}" if math.isfinite(m) else "n/a" for m in mean])
    return wide.fillna("n/a").reset_index()


def to_markdown(wide, metrics: dict[str, str]) -> str:
    cols = list(wide.columns)
    head = ["model", "mean"] + [f"{c} ({metrics.get(c, '')})" for c in cols[2:]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, row in wide.iterrows():
        lines.append("| " + " | ".join(str(row[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def write_leaderboard(runs: Sequence[str | Path], out_dir: str | Path) -> dict[str, Path]:
    """Write leaderboard.md, leaderboard.html and leaderboard.csv into ``out_dir``."""
    from musicjudge.report import HtmlReport

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = leaderboard_frame(runs)
    metrics = dict(zip(df["task"], df["metric"]))
    wide = wide_table(df)
    md = ("# musicjudge reward benchmark leaderboard\n\n"
          "Cells: headline metric with its bootstrap 95% CI. Pairwise tasks: accuracy (ground-truth "
          "ties and predicted ties count 0.5); rated tasks: clip-level Spearman. 'mean' is the plain "
          "mean over tasks.\n\n" + to_markdown(wide, metrics))
    paths = {"md": out / "leaderboard.md", "html": out / "leaderboard.html", "csv": out / "leaderboard.csv"}
    atomic_write_text(paths["md"], md)
    atomic_write_text(paths["csv"], df.to_csv(index=False))
    rep = HtmlReport("musicjudge reward benchmark leaderboard", f"{df['model'].nunique()} models, {df['task'].nunique()} tasks")
    rep.add_text("How to read", "Each cell is the task's headline metric with its bootstrap 95% confidence interval. "
                 "Pairwise tasks report accuracy (ground-truth ties and predicted ties count 0.5); rated tasks "
                 "report clip-level Spearman correlation. Models are ordered by their mean over tasks.")
    rep.add_table("Leaderboard", wide, max_rows=1000)
    rep.add_table("All numbers (tidy)", df.drop(columns=["run"]), max_rows=5000)
    rep.add_config({"runs": [str(r) for r in runs]}, title="Runs")
    rep.add_versions()
    rep.write(paths["html"])
    return paths
