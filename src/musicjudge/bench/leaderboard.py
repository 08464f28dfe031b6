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
            ci = [math.nan if c is None else c for c in (res.get(f"{metric}_ci") or [None, None])]
            rows.append({"model": model, "benchmark": doc["benchmark"]["name"], "task": task,
                         "dimension": res["dimension"], "metric": metric,
                         "value": math.nan if res.get(metric) is None else res[metric],
                         "ci_low": ci[0], "ci_high": ci[1], "n": res.get("n"), "run": str(r)})
    df = pd.DataFrame(rows)
    if df.empty:
        raise ConfigError("no results in the given runs; run 'musicjudge bench run' first")
    return df


def _breakdowns(runs: Sequence[str | Path]):
    """Every run's breakdown rows (not 'all'), as 'value [lo, hi]' cells: task/breakdown/group x model."""
    import pandas as pd

    frames = []
    for r in runs:
        p = Path(r)
        f = (p if p.is_dir() else p.parent) / "breakdowns.csv"
        if f.exists():
            b = pd.read_csv(f)
            b = b[b["breakdown"] != "all"]
            if len(b):
                b["model"] = load_run(r)["model"]["name"]
                frames.append(b)
    if not frames:
        return None
    b = pd.concat(frames, ignore_index=True)
    b["cell"] = [_cell(v, lo, hi) + f" n={n}" for v, lo, hi, n in zip(b["value"], b["ci_low"], b["ci_high"], b["n"])]
    wide = b.pivot_table(index=["task", "breakdown", "group"], columns="model", values="cell", aggfunc="first")
    return wide.fillna("n/a").reset_index()


def _cell(value, lo, hi) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{value:.3f}"
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def wide_table(df):
    """Tasks (rows) x models (columns, best mean first), cells 'value [lo, hi]', plus a last row
    with each model's plain mean over tasks."""
    df = df.copy()
    df["cell"] = [_cell(v, lo, hi) for v, lo, hi in zip(df["value"], df["ci_low"], df["ci_high"])]
    mean = df.groupby("model")["value"].mean().sort_values(ascending=False)
    tasks = list(dict.fromkeys(df["task"]))
    wide = df.pivot_table(index="task", columns="model", values="cell", aggfunc="first").reindex(index=tasks, columns=mean.index)
    wide = wide.fillna("n/a")
    metrics = dict(zip(df["task"], df["metric"]))
    wide.insert(0, "metric", [metrics[t] for t in tasks])
    wide.loc["mean over tasks"] = ["", *[f"{m:.3f}" if math.isfinite(m) else "n/a" for m in mean]]
    wide.columns.name = None
    return wide.reset_index().rename(columns={"index": "task"})


def to_markdown(wide) -> str:
    cols = list(wide.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in wide.iterrows():
        lines.append("| " + " | ".join(str(row[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def plot_leaderboard(df, path: str | Path) -> Path:
    """Grouped bars: headline metric per task (x) and model (colour) with 95% CI error bars;
    the dashed line marks chance for pairwise accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from musicjudge.report import save_png

    tasks = list(dict.fromkeys(df["task"]))
    models = list(df.groupby("model")["value"].mean().sort_values(ascending=False).index)
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(tasks) + 2), 4.2))
    x = np.arange(len(tasks))
    for i, m in enumerate(models):
        sub = df[df["model"] == m].set_index("task").reindex(tasks)
        val = sub["value"].astype(float).to_numpy()
        lo = np.clip(val - sub["ci_low"].astype(float).to_numpy(), 0, None)
        hi = np.clip(sub["ci_high"].astype(float).to_numpy() - val, 0, None)
        ax.bar(x + (i - (len(models) - 1) / 2) * width, np.nan_to_num(val), width, label=m,
               yerr=np.nan_to_num(np.vstack([lo, hi])), capsize=2)
    if (df["metric"] == "accuracy").any():
        ax.axhline(0.5, ls="--", color="grey", lw=1)
    ax.set_xticks(x)
    ax.set_xticklabels(tasks, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("accuracy / Spearman (95% CI)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_png(fig, path)


def write_leaderboard(runs: Sequence[str | Path], out_dir: str | Path) -> dict[str, Path]:
    """Write leaderboard.md, leaderboard.html and leaderboard.csv into ``out_dir``."""
    from musicjudge.report import HtmlReport

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = leaderboard_frame(runs)
    wide = wide_table(df)
    md = ("# musicjudge reward benchmark leaderboard\n\n"
          "Cells: headline metric with its bootstrap 95% CI. Pairwise tasks: accuracy (ground-truth "
          "ties and predicted ties count 0.5); rated tasks: clip-level Spearman. The last row is each "
          "model's plain mean over the tasks it was run on.\n\n" + to_markdown(wide))
    paths = {"md": out / "leaderboard.md", "html": out / "leaderboard.html", "csv": out / "leaderboard.csv",
             "png": out / "leaderboard.png"}
    atomic_write_text(paths["md"], md)
    atomic_write_text(paths["csv"], df.to_csv(index=False))
    rep = HtmlReport("musicjudge reward benchmark leaderboard", f"{df['model'].nunique()} models, {df['task'].nunique()} tasks")
    rep.add_text("How to read", "Each cell is the task's headline metric with its bootstrap 95% confidence interval. "
                 "Pairwise tasks report accuracy (ground-truth ties and predicted ties count 0.5); rated tasks "
                 "report clip-level Spearman correlation. Models (columns) are ordered by their mean over tasks (last row).")
    rep.add_table("Leaderboard", wide, max_rows=1000)
    plot_leaderboard(df, paths["png"])
    rep.add_figure("Headline metric per task", paths["png"], caption="Bars: headline metric; whiskers: bootstrap 95% CI; dashed: chance accuracy.")
    breakdowns = _breakdowns(runs)
    if breakdowns is not None and len(breakdowns):
        rep.add_table("Breakdowns (instruction type, system, audio length, annotator confidence)", breakdowns, max_rows=2000)
    rep.add_table("All numbers (tidy)", df.drop(columns=["run"]), max_rows=5000)
    rep.add_config({"runs": [str(r) for r in runs]}, title="Runs")
    rep.add_versions()
    rep.write(paths["html"])
    return paths
