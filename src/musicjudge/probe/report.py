"""``probe report`` / ``probe compare``: statistics tables (CSV), the protocol's figures (PNG)
and one self-contained HTML report per run, or one comparing several runs side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from musicjudge.errors import ConfigError
from musicjudge.probe import figures as F
from musicjudge.probe import stats as S
from musicjudge.probe.config import Analysis
from musicjudge.probe.profile import ProfileScoreSpec, clip_profiles, profile_summary
from musicjudge.probe.rundir import load_results
from musicjudge.report import HtmlReport, library_versions

# figure file name -> (title, caption); the report names every figure it embeds
FIGURES = {
    "d_vs_length.png": ("D vs noise length", "Mean D = mean loss(perturbed) - mean loss(original) per noise length, "
                        "error bars: bootstrap 95% CI over clips; one panel per data set, one line per model (and per onset "
                        "actually run, when clips ran at several)."),
    "example_curves.png": ("Example curves", "Per-frame loss difference d_t of single injections with the Peak (red), "
                           "Assimilation (blue) and Recovery (green) regions of the paper's rule."),
    "region_violins.png": ("Regions", "Mean d_t per region for injections of L >= 50 frames (the protocol's region table)."),
    "shuffle_boxes.png": ("Shuffles", "D of block-swap shuffles by block size."),
    "colour_comparison.png": ("Noise colours", "D vs L for each noise colour."),
    "profile_scores.png": ("Profile scores", "Per-clip profile score: Peak height of short injections divided by the "
                           "clip's own loss variability (see docs/probe.md)."),
    "original_loss.png": ("Original loss", "Mean token loss of the unperturbed clips."),
}


def _common_onset(noise: pd.DataFrame):
    """The onset frame most rows ran at (the earliest of ties): the configured one, not that of
    short clips whose onset moved."""
    counts = noise["onset_frame"].value_counts()
    return counts[counts == counts.max()].index.min() if len(counts) else np.nan


def _pick_examples(results: pd.DataFrame, max_models: int = 3) -> pd.DataFrame:
    """Result rows to draw as example curves: per model (up to ``max_models``), a typical clip
    of its first data set (the one with the median D at the longest noise length), its longest
    and a middle noise length (first colour, the most common onset, first seed)."""
    noise = results[results["kind"] == "noise"]
    picks = []
    for model in sorted(noise["model"].unique())[:max_models]:
        sub = noise[noise["model"] == model]
        first = sub.sort_values(["dataset", "clip_id"]).iloc[0]
        sub = sub[(sub["dataset"] == first["dataset"]) & (sub["colour"] == first["colour"])
                  & (sub["onset_frame"] == _common_onset(sub)) & (sub["seed"] == sub["seed"].min())]
        longest = sub[sub["length_frames"] == sub["length_frames"].max()].sort_values(["D", "clip_id"])
        typical = longest.iloc[(len(longest) - 1) // 2]["clip_id"]
        sub = sub[sub["clip_id"] == typical]
        lengths = sorted(sub["length_frames"].unique())
        chosen = {lengths[-1], lengths[len(lengths) // 2]} if lengths else set()
        picks.append(sub[sub["length_frames"].isin(chosen)].drop_duplicates(["length_frames"]))
    return pd.concat(picks, ignore_index=True) if picks else noise.head(0)


def _example_curves(run_dirs: Sequence[tuple[Path, dict[str, str]]], picks: pd.DataFrame) -> pd.DataFrame:
    """Mean-over-codebook curve rows of the picked keys, read with Parquet filters."""
    import pyarrow.parquet as pq

    parts = []
    for run_dir, label_map in run_dirs:
        path = run_dir / "curves.parquet"
        if not path.exists() or picks.empty:
            continue
        inverse = {v: k for k, v in label_map.items()}
        wanted = picks[picks["model"].isin(inverse)]
        if wanted.empty:
            continue
        table = pq.read_table(path, filters=[("codebook", "==", -1),
                                             ("perturbation", "in", sorted(wanted["perturbation"].unique())),
                                             ("clip_id", "in", sorted(wanted["clip_id"].unique()))])
        df = table.to_pandas()
        df["model"] = df["model"].map(label_map).fillna(df["model"])
        keys = ["model", "dataset", "clip_id", "perturbation", "seed"]
        parts.append(df.merge(wanted[keys], on=keys, how="inner"))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _summary_text(results: pd.DataFrame, clips: pd.DataFrame, errors: pd.DataFrame | None, corr: pd.DataFrame,
                  amnesia: pd.DataFrame) -> list[str]:
    models = sorted(results["model"].unique())
    datasets = sorted(results["dataset"].unique())
    n_err = 0 if errors is None else int(errors["perturbation"].isna().sum()) if "perturbation" in errors else len(errors)
    lines = [
        f"{len(models)} model(s): {', '.join(models)}; {len(datasets)} data set(s): {', '.join(datasets)}; "
        f"{len(clips)} clip-model pairs scored, {len(results)} perturbation results; {n_err} clip(s) skipped (see Errors).",
    ]
    onsets = sorted(results.loc[results["kind"] == "noise", "onset_s"].dropna().unique()) if "onset_s" in results else []
    if "adapted" in clips.columns and clips["adapted"].fillna(False).any():
        n_adapted = int(clips["adapted"].fillna(False).sum())
        lines.append(f"{n_adapted} of {len(clips)} clip-model pairs were too short for the configured grid and ran an "
                     "adapted plan (onset moved earlier, lengths that do not fit dropped; see Perturbation plans). "
                     "Every table and figure groups by the onset actually run (onset_s), so perturbations at different "
                     "onsets are never pooled.")
    elif len(onsets) > 1:
        lines.append(f"Noise ran at {len(onsets)} onsets ({', '.join(f'{o:g} s' for o in onsets)}); every table and "
                     "figure groups by the onset actually run (onset_s).")
    pooled = corr[corr["scope"] == "pooled"]
    pooled = pooled[np.isfinite(pooled["pearson_r"].to_numpy(float))]
    for _, r in pooled.sort_values("n", ascending=False).head(3).iterrows():
        at = f" at onset {r['onset_s']:g} s" if "onset_s" in r and pd.notna(r["onset_s"]) else ""
        lines.append(f"Pooled correlation of D with noise length L{at}: Pearson r = {r['pearson_r']:.3f} "
                     f"(p = {r['pearson_p']:.2g}), Spearman rho = {r['spearman_r']:.3f} (p = {r['spearman_p']:.2g}), "
                     f"n = {int(r['n'])}. The protocol reports r < -0.85 for MusicGen: longer noise, lower loss.")
    if len(amnesia):
        rate = amnesia["n_drop"].sum() / max(amnesia["n"].sum(), 1)
        lines.append(f"Context amnesia rate (share of noise injections whose mean loss drops below the original): "
                     f"{rate:.1%} over all lengths.")
    lines.append("D = mean loss(perturbed) - mean loss(original), in nats per token; d_t is the same difference per "
                 "frame (mean over codebooks). Peak / Assimilation / Recovery follow the protocol's rule; columns with "
                 "prefix smooth_ use the smoothed, more robust rule (docs/probe.md).")
    return lines


def build_report(results: pd.DataFrame, clips: pd.DataFrame, out_html: Path, *, title: str,
                 config: dict | None = None, errors: pd.DataFrame | None = None,
                 run_dirs: Sequence[tuple[Path, dict[str, str]]] = (), analysis: Analysis | None = None,
                 seed: int = 0) -> Path:
    """Tables (``stats/*.csv``), figures (``figures/*.png``) and the HTML report, all next to
    ``out_html``."""
    out_html = Path(out_html)
    base = out_html.parent
    fig_dir, stats_dir = base / "figures", base / "stats"
    fig_dir.mkdir(parents=True, exist_ok=True)
    stats_dir.mkdir(parents=True, exist_ok=True)
    analysis = analysis or Analysis()
    spec = ProfileScoreSpec(short_max_frames=analysis.short_max_frames, long_min_frames=analysis.long_min_frames)

    tables = {
        "d_by_length_noise": S.d_by_length(results, kind="noise", seed=seed),
        "d_by_length_shuffle": S.d_by_length(results, kind="shuffle", seed=seed),
        "correlations_noise": S.d_length_correlations(results, kind="noise"),
        "correlations_shuffle": S.d_length_correlations(results, kind="shuffle"),
        "amnesia_rate": S.amnesia_rate(results, kind="noise"),
        "regions_paper": S.region_summary(results, min_length=analysis.long_min_frames, seed=seed, rule="paper"),
        "regions_smooth": S.region_summary(results, min_length=analysis.long_min_frames, seed=seed, rule="smooth"),
        "original_loss": S.original_loss_summary(clips, seed=seed),
        "plans": S.plan_summary(clips),
    }
    by_topk = S.d_by_metadata(results, "top_k", seed=seed)
    if len(by_topk):
        tables["d_by_top_k"] = by_topk
    profiles = clip_profiles(results, spec)
    tables["profile_scores_clips"] = profiles
    tables["profile_scores"] = profile_summary(profiles, seed=seed) if len(profiles) else profiles
    for name, df in tables.items():
        df.to_csv(stats_dir / f"{name}.csv", index=False)

    made: dict[str, Path | None] = {
        "d_vs_length.png": F.plot_d_vs_length(tables["d_by_length_noise"], fig_dir / "d_vs_length.png"),
        "example_curves.png": None,
        "region_violins.png": F.plot_region_violins(results, fig_dir / "region_violins.png", min_length=analysis.long_min_frames),
        "shuffle_boxes.png": F.plot_shuffle_boxes(results, fig_dir / "shuffle_boxes.png"),
        "colour_comparison.png": F.plot_colour_comparison(tables["d_by_length_noise"], fig_dir / "colour_comparison.png"),
        "profile_scores.png": F.plot_profile_scores(profiles, fig_dir / "profile_scores.png"),
        "original_loss.png": F.plot_original_loss(clips, fig_dir / "original_loss.png"),
    }
    picks = _pick_examples(results)
    curves = _example_curves(run_dirs, picks)
    if not curves.empty:
        made["example_curves.png"] = F.plot_example_curves(curves, results, fig_dir / "example_curves.png",
                                                           smooth_window=analysis.smooth_window)
    for name, path in made.items():  # a stale figure from an earlier report must not linger
        if path is None and (fig_dir / name).exists():
            (fig_dir / name).unlink()

    rep = HtmlReport(title, subtitle="musicjudge loss-profile probe")
    rep.add_text("Summary", _summary_text(results, clips, errors, tables["correlations_noise"], tables["amnesia_rate"]))
    for name, path in made.items():
        if path is not None:
            fig_title, caption = FIGURES[name]
            rep.add_figure(fig_title, path, caption)
    if len(tables["plans"]):
        rep.add_table("Perturbation plans", tables["plans"],
                      "What the clips actually ran (docs/probe.md, 'Clips of any length'): per plan, the clips and their "
                      "scored length; adapted = onset moved earlier or lengths dropped (never stretched) because the "
                      "clip is shorter than the configured grid needs; --strict runs the configured grid only.")
    rep.add_table("Original loss table", tables["original_loss"], "Mean token loss (nats) of the original clips; CI: bootstrap 95%.")
    rep.add_table("D by noise length", tables["d_by_length_noise"],
                  "Per model, data set, actual onset (onset_s), colour and L (frames).")
    rep.add_table("Correlation of D with L (noise)", tables["correlations_noise"],
                  "scipy.stats pearsonr / spearmanr over (clip, injection) rows, at each actual onset.")
    if len(tables["d_by_length_shuffle"]):
        rep.add_table("D by shuffle block size", tables["d_by_length_shuffle"])
        rep.add_table("Correlation of D with block size (shuffle)", tables["correlations_shuffle"])
    if "d_by_top_k" in tables:
        rep.add_table("D by sampling top-k", tables["d_by_top_k"],
                      "Clips whose manifest records the top-k they were sampled with (the Generated set).")
    rep.add_table("Context amnesia rate", tables["amnesia_rate"], "Share of injections with D < 0; Wilson 95% CI.")
    rep.add_table("Mean d_t per region (paper rule)", tables["regions_paper"],
                  f"Noise lengths >= {analysis.long_min_frames} frames, per actual onset.")
    rep.add_table("Mean d_t per region (smoothed rule)", tables["regions_smooth"])
    if len(tables["profile_scores"]):
        rep.add_table("Profile score per model and data set", tables["profile_scores"])
        rep.add_table("Profile score per clip", profiles)
    if errors is not None and len(errors):
        rep.add_table("Errors", errors[[c for c in ("model", "dataset", "path", "perturbation", "reason") if c in errors]],
                      "Skipped clips (perturbation empty; a clip too short for any perturbation names the minimum "
                      "and the flag that changes it) and perturbations that could not be applied.")
    rep.add_text("Files", [f"Tables as CSV in {stats_dir.name}/, figures as PNG in {fig_dir.name}/.",
                           "Tidy results: results.parquet (one row per clip x perturbation x seed), clips.parquet, "
                           "curves.parquet (per frame and codebook); columns documented in docs/probe.md."])
    if config is not None:
        rep.add_config(config)
    rep.add_versions(library_versions())
    return rep.write(out_html)


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``RUN_DIR/report.html`` (plus ``figures/`` and ``stats/``) for a probe run."""
    run_dir = Path(run_dir)
    data = load_results(run_dir)
    if data["results"].empty:
        raise ConfigError(f"{run_dir}: the run has no results yet (all clips failed or it never ran); see errors.jsonl")
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    config.pop("scoring_fingerprint", None)
    analysis = Analysis(**config.get("analysis", {}))
    labels = {m: m for m in data["results"]["model"].unique()}
    return build_report(data["results"], data["clips"], Path(out) if out else run_dir / "report.html",
                        title=f"Probe report: {config.get('name', run_dir.name)}", config=config,
                        errors=data.get("errors"), run_dirs=[(run_dir, labels)], analysis=analysis)


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path) -> Path:
    """One report with the models of several runs side by side (``OUT_DIR/compare.html``).
    A model label that occurs in more than one run is prefixed with its run's folder name."""
    runs = [Path(r) for r in run_dirs]
    if len(runs) < 2:
        raise ConfigError("compare needs at least two run directories")
    loaded = [(r, load_results(r)) for r in runs]
    for r, data in loaded:
        if data["results"].empty:
            raise ConfigError(f"{r}: the run has no results yet (all clips failed or it never ran; see errors.jsonl); "
                              "leave it out of the comparison")
    seen: dict[str, int] = {}
    for _, data in loaded:
        for m in data["results"]["model"].unique():
            seen[m] = seen.get(m, 0) + 1
    results, clips, errors, mapping, configs = [], [], [], [], {}
    names = [r.name for r in runs]
    for i, (r, data) in enumerate(loaded):
        run_name = r.name if names.count(r.name) == 1 else f"{i + 1}.{r.name}"
        label_map = {m: (f"{run_name}:{m}" if seen[m] > 1 else m) for m in data["results"]["model"].unique()}
        mapping.append((r, label_map))
        for name, bucket in (("results", results), ("clips", clips), ("errors", errors)):
            if name in data:
                df = data[name].copy()
                df["model"] = df["model"].map(label_map).fillna(df["model"])
                df.insert(0, "run", run_name)
                bucket.append(df)
        cfg = json.loads((r / "config.json").read_text(encoding="utf-8"))
        cfg.pop("scoring_fingerprint", None)
        configs[str(r)] = cfg
    out_dir = Path(out_dir)
    return build_report(pd.concat(results, ignore_index=True), pd.concat(clips, ignore_index=True),
                        out_dir / "compare.html", title="Probe comparison: " + " vs ".join(r.name for r in runs),
                        config=configs, errors=pd.concat(errors, ignore_index=True) if errors else None,
                        run_dirs=mapping)
