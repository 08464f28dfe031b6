"""The protocol's figures for any probe run (PNG, matplotlib Agg; no pyplot global state).

Each ``plot_*`` function takes tidy tables and an output path and returns the path it wrote,
or None when the run has no data for that figure (e.g. no shuffles, a single noise colour)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from musicjudge.report.figures import save_png

DPI = 110


def _figure(nrows: int = 1, ncols: int = 1, width: float = 5.0, height: float = 3.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig, path: Path) -> Path:
    return save_png(fig, path, dpi=DPI)


def _colours(labels: Sequence[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {lab: cmap(i % 10) for i, lab in enumerate(labels)}


def _series(df: pd.DataFrame, base: str = "model") -> pd.Series:
    """Series label per row: ``base`` (the model), plus the actual onset when the table holds
    several (a clip too short for the configured onset ran earlier: never drawn as one line)."""
    labels = df[base].astype(str)
    if "onset_s" in df.columns and df["onset_s"].nunique(dropna=True) > 1:
        labels = labels + df["onset_s"].map(lambda o: f" @ {o:g} s" if pd.notna(o) else "")
    return labels


def plot_d_vs_length(d_len: pd.DataFrame, path: Path, *, colour: str | None = None, title: str = "D vs noise length") -> Path | None:
    """D (mean +- 95% CI) against L, one panel per data set, one line per model (and per actual
    onset when there are several) (``d_by_length`` output for noise; ``colour`` picks one noise
    colour, default the first)."""
    if d_len.empty:
        return None
    if "colour" in d_len.columns:
        colour = colour or sorted(d_len["colour"].unique())[0]
        d_len = d_len[d_len["colour"] == colour]
    d_len = d_len.assign(_series=_series(d_len))
    datasets = sorted(d_len["dataset"].unique())
    models = sorted(d_len["_series"].unique())
    cmap = _colours(models)
    fig, axes = _figure(1, len(datasets))
    for ax, ds in zip(axes[0], datasets):
        for m in models:
            g = d_len[(d_len["dataset"] == ds) & (d_len["_series"] == m)].sort_values("length_frames")
            if g.empty:
                continue
            err = np.vstack([g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]])
            err = np.nan_to_num(np.clip(err, 0, None))
            ax.errorbar(g["length_frames"], g["mean"], yerr=err, marker="o", capsize=3, label=m, color=cmap[m])
        ax.axhline(0.0, color="grey", lw=0.8, ls="--")
        ax.set_title(f"{ds}")
        ax.set_xlabel("noise length L (frames)")
        ax.set_ylabel("D (nats/token)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{title} ({colour} noise)" if colour else title)
    return _save(fig, path)


def plot_example_curves(examples: pd.DataFrame, results: pd.DataFrame, path: Path, *, rule: str = "paper",
                        smooth_window: int = 9) -> Path | None:
    """d_t curves of a few injections with Peak / Assimilation / Recovery shaded.

    ``examples``: long-format curve rows (codebook == -1, i.e. mean over codebooks) of the
    chosen (model, dataset, clip_id, perturbation) keys; ``results``: their result rows (for
    the region boundaries)."""
    from musicjudge.probe.profile import moving_average

    if examples.empty:
        return None
    keys = ["model", "dataset", "clip_id", "perturbation", "seed"]
    groups = list(examples.groupby(keys, sort=False))
    n = len(groups)
    ncols = min(2, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = _figure(nrows, ncols, width=6.0, height=2.8)
    prefix = "" if rule == "paper" else "smooth_"
    for ax, (key, g) in zip(axes.flat, groups):
        res = results.set_index(keys).loc[key]
        if isinstance(res, pd.DataFrame):
            res = res.iloc[0]
        g = g.sort_values("frame")
        ax.plot(g["frame"], g["d"], lw=0.7, color="black", label="d_t")
        ax.plot(g["frame"], moving_average(g["d"].to_numpy(), smooth_window), lw=1.0, color="tab:purple", alpha=0.7,
                label=f"moving avg ({smooth_window})")
        ps, pe, ae, n_frames = int(res["peak_start"]), int(res[prefix + "peak_end"]), int(res["assim_end"]), int(g["frame"].max()) + 1
        ax.axvspan(ps, pe, color="tab:red", alpha=0.18, label="Peak")
        ax.axvspan(pe, ae, color="tab:blue", alpha=0.15, label="Assimilation")
        ax.axvspan(ae, n_frames, color="tab:green", alpha=0.10, label="Recovery")
        ax.axhline(0.0, color="grey", lw=0.6, ls="--")
        ax.set_title(f"{key[0]} / {key[1]} / {key[2]}\nL={int(res['length_frames'])} frames, D={res['D']:+.3f}", fontsize=8)
        ax.set_xlabel("frame")
        ax.set_ylabel("d_t (nats)")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"Example loss-difference curves ({rule} rule regions)")
    return _save(fig, path)


def plot_region_violins(results: pd.DataFrame, path: Path, *, min_length: int = 50, rule: str = "paper") -> Path | None:
    """Distribution of mean d_t per region (injections with L >= ``min_length``), one violin per
    model x data set within each region panel."""
    prefix = "" if rule == "paper" else "smooth_"
    sub = results[(results["kind"] == "noise") & (results["length_frames"] >= min_length)]
    if sub.empty:
        return None
    regions = [("Peak", prefix + "peak_mean"), ("Assimilation", prefix + "assim_mean"), ("Recovery", "recovery_mean")]
    sub = sub.assign(_series=_series(sub))
    groups = sorted(sub.groupby(["_series", "dataset"]).groups.keys())
    fig, axes = _figure(1, 3, width=max(3.5, 1.1 * len(groups) + 1.5))
    for ax, (name, col) in zip(axes[0], regions):
        data, labels = [], []
        for m, ds in groups:
            v = sub[(sub["_series"] == m) & (sub["dataset"] == ds)][col].to_numpy(float)
            v = v[np.isfinite(v)]
            if v.size:
                data.append(v)
                labels.append(f"{m}\n{ds}")
        if not data:
            ax.set_visible(False)
            continue
        pos = np.arange(1, len(data) + 1)
        if all(v.size > 1 for v in data):
            ax.violinplot(data, positions=pos, showmeans=True, showextrema=True)
        ax.boxplot(data, positions=pos, widths=0.15, showfliers=False)
        ax.set_xticks(pos, labels, fontsize=7, rotation=30)
        ax.axhline(0.0, color="grey", lw=0.6, ls="--")
        ax.set_title(name)
        ax.set_ylabel("mean d_t (nats)")
    fig.suptitle(f"Mean d_t per region, L >= {min_length} frames ({rule} rule)")
    return _save(fig, path)


def plot_shuffle_boxes(results: pd.DataFrame, path: Path) -> Path | None:
    """D per shuffle block size, one box per block size and model (all data sets pooled)."""
    sub = results[results["kind"] == "shuffle"]
    if sub.empty:
        return None
    sub = sub.assign(_series=_series(sub))
    models = sorted(sub["_series"].unique())
    blocks = sorted(sub["length_frames"].unique())
    cmap = _colours(models)
    fig, axes = _figure(1, 1, width=max(6.0, 0.6 * len(blocks) * len(models) + 2))
    ax = axes[0][0]
    width = 0.8 / len(models)
    for i, m in enumerate(models):
        data = [sub[(sub["_series"] == m) & (sub["length_frames"] == b)]["D"].dropna().to_numpy() for b in blocks]
        pos = np.arange(len(blocks)) + (i - (len(models) - 1) / 2) * width
        keep = [j for j, v in enumerate(data) if v.size]
        bp = ax.boxplot([data[j] for j in keep], positions=pos[keep], widths=width * 0.9, patch_artist=True, showfliers=False)
        for patch in bp["boxes"]:
            patch.set_facecolor(cmap[m])
            patch.set_alpha(0.5)
        ax.plot([], [], color=cmap[m], lw=6, alpha=0.5, label=m)
    ax.set_xticks(np.arange(len(blocks)), [str(int(b)) for b in blocks])
    ax.axhline(0.0, color="grey", lw=0.6, ls="--")
    ax.set_xlabel("shuffle block size (frames)")
    ax.set_ylabel("D (nats/token)")
    ax.legend(fontsize=8)
    ax.set_title("Shuffle perturbations: D by block size")
    return _save(fig, path)


def plot_colour_comparison(d_len: pd.DataFrame, path: Path) -> Path | None:
    """D vs L per noise colour (pooled over data sets via the per-group means), one panel per
    model; None with a single colour."""
    if d_len.empty or "colour" not in d_len.columns or d_len["colour"].nunique() < 2:
        return None
    d_len = d_len.assign(_series=_series(d_len))
    models = sorted(d_len["_series"].unique())
    colours = sorted(d_len["colour"].unique())
    palette = {"white": "0.4", "pink": "tab:pink", "brown": "tab:brown", "blue": "tab:blue"}
    fig, axes = _figure(1, len(models))
    for ax, m in zip(axes[0], models):
        for c in colours:
            g = d_len[(d_len["_series"] == m) & (d_len["colour"] == c)]
            if g.empty:
                continue
            # weight each data set's mean by its n for a pooled mean per length
            agg = g.groupby("length_frames").apply(lambda x: np.average(x["mean"], weights=x["n"]) if x["n"].sum() else np.nan,
                                                   include_groups=False)
            ax.plot(agg.index, agg.to_numpy(), marker="o", label=c, color=palette.get(c))
        ax.axhline(0.0, color="grey", lw=0.6, ls="--")
        ax.set_title(m)
        ax.set_xlabel("noise length L (frames)")
        ax.set_ylabel("D (nats/token)")
        ax.legend(fontsize=8)
    fig.suptitle("Noise colour comparison")
    return _save(fig, path)


def plot_profile_scores(clips: pd.DataFrame, path: Path) -> Path | None:
    """Per-clip profile scores, one box per model x data set."""
    sub = clips[np.isfinite(clips["profile_score"])] if not clips.empty else clips
    if sub.empty:
        return None
    groups = sorted(sub.groupby(["model", "dataset"]).groups.keys())
    data = [sub[(sub["model"] == m) & (sub["dataset"] == ds)]["profile_score"].to_numpy() for m, ds in groups]
    fig, axes = _figure(1, 1, width=max(5.0, 1.2 * len(groups) + 1.5))
    ax = axes[0][0]
    pos = np.arange(1, len(data) + 1)
    ax.boxplot(data, positions=pos, showfliers=True)
    for p, v in zip(pos, data):
        ax.scatter(np.full(v.size, p) + np.random.default_rng(0).uniform(-0.08, 0.08, v.size), v, s=8, alpha=0.6)
    ax.set_xticks(pos, [f"{m}\n{ds}" for m, ds in groups], fontsize=7, rotation=30)
    ax.set_ylabel("profile score (peak height / loss std)")
    ax.set_title("Per-clip profile scores (short injections)")
    return _save(fig, path)


def plot_original_loss(clips: pd.DataFrame, path: Path) -> Path | None:
    """Mean loss of the original clips per model x data set (box + points)."""
    if clips.empty:
        return None
    groups = sorted(clips.groupby(["model", "dataset"]).groups.keys())
    data = [clips[(clips["model"] == m) & (clips["dataset"] == ds)]["loss_orig"].to_numpy() for m, ds in groups]
    fig, axes = _figure(1, 1, width=max(5.0, 1.2 * len(groups) + 1.5))
    ax = axes[0][0]
    pos = np.arange(1, len(data) + 1)
    ax.boxplot(data, positions=pos)
    ax.set_xticks(pos, [f"{m}\n{ds}" for m, ds in groups], fontsize=7, rotation=30)
    ax.set_ylabel("mean loss of original (nats/token)")
    ax.set_title("Original clips: mean token loss")
    return _save(fig, path)
