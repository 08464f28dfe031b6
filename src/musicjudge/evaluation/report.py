"""Tables, figures and the HTML report of ``musicjudge eval`` (from the per-clip rows)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from musicjudge.evaluation.stats import (
    distance_caveat,
    frechet_distance,
    loss_adjusted,
    mean_with_ci,
    mmd2_unbiased,
    mmd_permutation_p,
    validity_table,
    win_rate_table,
)
from musicjudge.evaluation.types import METRICS, WIN_METRICS, EvalResult

PREVIEW_SECONDS = 10.0  # audio players embed the first seconds of a clip
PREVIEW_RATE = 22050
LABELS = {
    "musicality": "reward musicality", "alignment": "reward alignment", "profile_score": "profile score",
    "profile_adjusted": "profile score, loss-adjusted", "orig_loss": "original loss (nats/token)",
}


def clips_frame(rows: list[dict[str, Any]]) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-clip table (no embeddings) with the loss-adjusted profile score added."""
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "embedding"} for r in rows])
    for col in METRICS:
        if col not in frame.columns:
            frame[col] = np.nan
    for col in ("musicality", "alignment", "profile_score", "orig_loss", "orig_loss_std", "duration_s"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    adjusted, intercept, slope = loss_adjusted(frame["profile_score"].to_numpy(), frame["orig_loss"].to_numpy())
    frame["profile_adjusted"] = adjusted
    return frame, {"intercept": intercept, "slope": slope}


def system_table(clips: pd.DataFrame, metrics, *, n_boot: int, seed: int) -> pd.DataFrame:
    rows = []
    for name, grp in clips.groupby("system", sort=False):
        for metric in metrics:
            rows.append({"system": name, "metric": metric, **mean_with_ci(grp[metric], n_boot=n_boot, seed=seed),
                         "n_clips": len(grp), "n_failed": int((grp["status"] == "failed").sum())})
    return pd.DataFrame(rows, columns=["system", "metric", "n", "mean", "std", "ci_low", "ci_high", "n_clips", "n_failed"])


def distance_table(rows: list[dict[str, Any]], systems: list[str], reference_emb: np.ndarray, *,
                   seed: int) -> pd.DataFrame:
    columns = ["system", "n_system", "n_reference", "dim", "frechet_distance", "mmd2", "mmd_p"]
    out = []
    if reference_emb.size == 0:
        return pd.DataFrame(out, columns=columns)
    for name in systems:
        # clips that failed are left out even when they have an embedding, as from every other table
        emb = [r["embedding"] for r in rows
               if r["system"] == name and r.get("embedding") is not None and r.get("status") != "failed"]
        x = np.asarray(emb, dtype=np.float64).reshape(len(emb), -1) if emb else np.zeros((0, reference_emb.shape[1]))
        ok = len(x) >= 2 and x.shape[1] == reference_emb.shape[1]
        out.append({"system": name, "n_system": len(x), "n_reference": len(reference_emb), "dim": reference_emb.shape[1],
                    "frechet_distance": frechet_distance(x, reference_emb) if ok else float("nan"),
                    "mmd2": mmd2_unbiased(x, reference_emb) if ok else float("nan"),
                    "mmd_p": mmd_permutation_p(x, reference_emb, seed=seed) if ok else float("nan")})
    return pd.DataFrame(out, columns=columns)


# ------------------------------------------------------------------------------------------
# Figures
# ------------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def metric_figure(clips: pd.DataFrame, metrics: list[str], systems: list[str]):
    """Violin (distribution) + box (median, quartiles) per metric, one panel each."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) + 0.8, 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        data = [clips.loc[clips["system"] == s, metric].dropna().to_numpy() for s in systems]
        pos = [i for i, d in enumerate(data) if d.size]
        if len(pos):
            shown = [data[i] for i in pos]
            if any(d.size > 1 for d in shown):
                ax.violinplot([d if d.size > 1 else np.repeat(d, 2) for d in shown], positions=pos, showextrema=False)
            ax.boxplot(shown, positions=pos, widths=0.25, showfliers=True)
        ax.set_xticks(range(len(systems)), systems, rotation=30, ha="right")
        ax.set_xlim(-0.6, len(systems) - 0.4)
        ax.set_title(LABELS.get(metric, metric), fontsize=9)
    fig.tight_layout()
    return fig


def winrate_figure(winrates: pd.DataFrame, metrics: list[str], systems: list[str]):
    """Win-rate matrix per metric: row system's win rate against the column system."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics) + 0.8, 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        mat = np.full((len(systems), len(systems)), np.nan)
        sub = winrates[winrates["metric"] == metric]
        for r in sub.itertuples():
            mat[systems.index(r.system_a), systems.index(r.system_b)] = r.win_rate
        im = ax.imshow(mat, vmin=0, vmax=1, cmap="RdBu")
        for i in range(len(systems)):
            for j in range(len(systems)):
                if np.isfinite(mat[i, j]):
                    ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(systems)), systems, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(systems)), systems, fontsize=8)
        ax.set_title(LABELS.get(metric, metric), fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="win rate (row vs column)")
    return fig


def validity_figure(clips: pd.DataFrame, systems: list[str]):
    """Profile score against the original loss per clip, with the pooled least-squares line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for s in systems:
        sub = clips[clips["system"] == s]
        ax.scatter(sub["orig_loss"], sub["profile_score"], s=18, label=s, alpha=0.8)
    both = clips[["orig_loss", "profile_score"]].dropna()
    if len(both) >= 3 and np.ptp(both["orig_loss"]) > 0:
        slope, intercept = np.polyfit(both["orig_loss"], both["profile_score"], 1)
        xs = np.linspace(both["orig_loss"].min(), both["orig_loss"].max(), 10)
        ax.plot(xs, intercept + slope * xs, color="k", lw=1, label="pooled fit")
    ax.set_xlabel(LABELS["orig_loss"])
    ax.set_ylabel(LABELS["profile_score"])
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def audio_preview(path: str, seconds: float = PREVIEW_SECONDS) -> tuple[bytes, str] | None:
    """The first ``seconds`` of a clip as MP3 bytes (mono, 22.05 kHz; WAV if this libsndfile
    cannot write MP3), small enough to embed in the report; None if unreadable."""
    import soundfile as sf

    from musicjudge.audio import audio_info, load_audio
    from musicjudge.errors import MusicjudgeError

    try:
        duration = min(seconds, audio_info(path).duration)
        wave = load_audio(path, PREVIEW_RATE, duration=duration)
    except MusicjudgeError:
        return None
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    if peak > 1.0:
        wave = wave / peak
    buf = io.BytesIO()
    try:
        sf.write(buf, wave, PREVIEW_RATE, format="MP3", subtype="MPEG_LAYER_III")
        return buf.getvalue(), "audio/mpeg"
    except (sf.LibsndfileError, TypeError, ValueError, RuntimeError):
        buf = io.BytesIO()
        sf.write(buf, wave, PREVIEW_RATE, format="WAV", subtype="PCM_16")
        return buf.getvalue(), "audio/wav"


def _example_rows(clips: pd.DataFrame, system: str, metric: str, k: int) -> list[tuple[str, pd.Series]]:
    sub = clips[(clips["system"] == system) & clips[metric].notna()].sort_values(metric, ascending=False)
    if sub.empty or k == 0:
        return []
    best = [("best", r) for _, r in sub.head(k).iterrows()]
    worst = [("worst", r) for _, r in sub.tail(min(k, max(0, len(sub) - k))).iloc[::-1].iterrows()]
    return best + worst


# ------------------------------------------------------------------------------------------
# Everything
# ------------------------------------------------------------------------------------------
def write_outputs(out: Path, rows: list[dict[str, Any]], *, reference_emb: np.ndarray, n_reference: int,
                  reference_errors: list[dict], missing_prompts: list[dict], config: dict[str, Any], n_boot: int,
                  seed: int, examples: int, report: bool, prompts_given: bool, log: Callable[[str], None]):
    from musicjudge.io import atomic_write_json, atomic_write_text
    from musicjudge.report import HtmlReport, save_png

    out = Path(out)
    clips, fit = clips_frame(rows)
    systems = list(dict.fromkeys(clips["system"]))
    metrics = [m for m in METRICS if clips[m].notna().any()]
    win_metrics = [m for m in WIN_METRICS if m in metrics]
    files: dict[str, Path] = {}

    files["clips"] = out / "clips.parquet"
    clips.to_parquet(files["clips"], index=False)
    systab = system_table(clips, metrics, n_boot=n_boot, seed=seed)
    files["systems"] = out / "systems.csv"
    atomic_write_text(files["systems"], systab.to_csv(index=False))
    winrates = win_rate_table(clips, win_metrics, n_boot=n_boot, seed=seed)
    files["winrates"] = out / "winrates.csv"
    atomic_write_text(files["winrates"], winrates.to_csv(index=False))
    distances = distance_table(rows, systems, reference_emb, seed=seed)
    caveat = (distance_caveat(int(distances["n_system"].min()), len(reference_emb), int(reference_emb.shape[1]))
              if not distances.empty else "no reference set: no distances computed")
    distances["caveat"] = caveat if not distances.empty else []
    files["distances"] = out / "distances.csv"
    atomic_write_text(files["distances"], distances.to_csv(index=False))
    validity = validity_table(clips) if clips["profile_score"].notna().any() else validity_table(clips.iloc[0:0])
    files["validity"] = out / "validity.csv"
    atomic_write_text(files["validity"], validity.to_csv(index=False))

    errors = [{"system": r["system"], "id": r["id"], "path": r["path"], "reason": r["error"]}
              for r in rows if r.get("error")] + reference_errors + missing_prompts
    files["errors"] = out / "errors.jsonl"
    import json

    atomic_write_text(files["errors"], "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in errors))

    n_matched = {s: int(clips.loc[(clips["system"] == s), "prompt_id"].notna().sum()) for s in systems}
    results = {
        "format": config["format"], "config": config,
        "counts": {"systems": len(systems), "clips": len(clips), "ok": int((clips["status"] == "ok").sum()),
                   "partial": int((clips["status"] == "partial").sum()),
                   "failed": int((clips["status"] == "failed").sum()), "reference_clips": n_reference,
                   "reference_embedded": int(len(reference_emb)), "missing_prompts": len(missing_prompts),
                   "errors": len(errors), "clips_with_prompt": n_matched},
        "systems": _records(systab), "winrates": _records(winrates), "distances": _records(distances.drop(columns="caveat")),
        "validity": _records(validity), "loss_adjustment": fit, "distance_caveat": caveat,
    }

    figures_dir = out / "figures"
    figures_dir.mkdir(exist_ok=True)
    if metrics:
        files["fig_metrics"] = save_png(metric_figure(clips, metrics, systems), figures_dir / "metrics.png")
    if win_metrics and len(systems) > 1 and winrates["n"].gt(0).any():
        files["fig_winrates"] = save_png(winrate_figure(winrates, win_metrics, systems), figures_dir / "winrates.png")
    if clips["profile_score"].notna().any() and clips["orig_loss"].notna().any():
        files["fig_validity"] = save_png(validity_figure(clips, systems), figures_dir / "validity.png")

    files["results"] = out / "results.json"
    atomic_write_json(files["results"], results)

    report_path = None
    if report:
        rep = HtmlReport("musicjudge eval", f"{len(systems)} system(s): {', '.join(systems)}")
        c = results["counts"]
        rep.add_text("Summary", [
            f"{c['clips']} clips scored ({c['ok']} fully, {c['partial']} partly, {c['failed']} failed); "
            f"{c['missing_prompts']} prompt(s) without a clip; {c['errors']} problem(s) in errors.jsonl.",
            "Higher is better for musicality, alignment and the profile scores; the original loss is how "
            "familiar a clip is to the LM (lower = more familiar), not a quality score by itself.",
            f"Loss-adjusted profile score = profile score - ({fit['intercept']:.3g} {'-' if fit['slope'] < 0 else '+'} "
            f"{abs(fit['slope']):.3g} x original loss), one least-squares fit over all clips: what the LM's reaction "
            "to brief noise says beyond "
            "how familiar the clip is." if np.isfinite(fit["slope"]) else
            "Loss-adjusted profile score: not computed (needs >= 3 clips with a profile score and varying loss).",
            caveat,
        ])
        cells = systab.assign(cell=[_mean_cell(r) for r in systab.itertuples()])
        pivot = cells.pivot(index="system", columns="metric", values="cell").reindex(index=systems, columns=metrics)
        rep.add_table("Means per system", pivot.reset_index(),
                      caption="Mean [bootstrap 95% CI] over clips, n = clips with a value (systems.csv has the numbers).")
        rep.add_table("Means with 95% CIs", systab, caption="Percentile bootstrap CIs of the mean over clips.")
        if not winrates.empty:
            rep.add_table("Win rates (paired on prompts)", winrates,
                          caption="Win rate of system_a over system_b on the prompts both answered "
                                  "((wins + ties/2) / n), bootstrap 95% CI over prompts, two-sided sign test "
                                  "(ties dropped)." + ("" if prompts_given else " No --prompts: clips pair up by id."))
        if "fig_winrates" in files:
            rep.add_figure("Win-rate matrix", files["fig_winrates"])
        if "fig_metrics" in files:
            rep.add_figure("Distributions", files["fig_metrics"], caption="Violins (distribution) and boxes (median, quartiles) over clips.")
        if not distances.empty:
            rep.add_table("Distance to the reference", distances.drop(columns="caveat"),
                          caption="Fréchet distance and unbiased MMD^2 (KID's cubic kernel) on the reward model's "
                                  "standardised audio embeddings; mmd_p: permutation test. " + caveat)
        if not validity.empty and validity["n"].gt(0).any():
            rep.add_table("Validity of the profile score", validity,
                          caption="Correlation of the profile score with the original loss per system: a strong "
                                  "correlation means the score largely measures familiarity; compare systems on "
                                  "the loss-adjusted score too.")
        if "fig_validity" in files:
            rep.add_figure("Profile score vs original loss", files["fig_validity"])
        rank = "musicality" if "musicality" in metrics else ("profile_score" if "profile_score" in metrics else None)
        if rank is not None and examples > 0:
            for s in systems:
                players = []
                for tag, r in _example_rows(clips, s, rank, examples):
                    preview = audio_preview(r["path"])
                    details = ", ".join(f"{m} {r[m]:.3g}" for m in metrics if pd.notna(r[m]))
                    if preview is None:
                        continue
                    players.append({"label": f"{tag}: {r['id']}", "audio": preview[0], "mime": preview[1],
                                    "details": details})
                if players:
                    rep.add_audio(f"Best and worst clips: {s}", players,
                                  caption=f"Ranked by {LABELS[rank]}; the first {PREVIEW_SECONDS:g} s of each clip, "
                                          "embedded in this file.")
        if errors:
            rep.add_table("Problems", pd.DataFrame(errors), caption="Also in errors.jsonl.")
        rep.add_config(config)
        rep.add_versions()
        report_path = rep.write(out / "report.html")
        files["report"] = report_path
    return EvalResult(out, report_path, files, results)


def _mean_cell(row) -> str:
    if not np.isfinite(row.mean):
        return ""
    ci = f" [{row.ci_low:.3g}, {row.ci_high:.3g}]" if np.isfinite(row.ci_low) else ""
    return f"{row.mean:.3g}{ci} (n={row.n})"


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if isinstance(v, float) and not np.isfinite(v) else (v.item() if hasattr(v, "item") else v))
             for k, v in rec.items()} for rec in df.to_dict("records")]
