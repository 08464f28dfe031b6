"""Inference-time scaling with a reward model: for each prompt with a pool of candidate clips,
draw N candidates, keep the top-k by the reward, and compare the kept clips' quality with
random selection (the mean quality of the N drawn) and with the oracle (the k best by quality).

Quality comes from labels in a rated manifest (human ratings, or the built-in candidates' known
degradation severity) or from a held-out judge model (``judge=``).

Candidates are a rated manifest in the reward schema; clips are grouped into prompts by the
``prompt_id`` column if present, otherwise by identical instruction (text, lyrics, ref_audio).

Outputs: ``topk.csv`` (per N, k: mean quality selected / random / oracle, gain over random with a
bootstrap 95% CI over prompts), ``topk_draws.parquet`` (every draw), ``topk.png``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from musicjudge.errors import ConfigError, ManifestError
from musicjudge.io import atomic_write_bytes, atomic_write_json, atomic_write_text, cache_dir, stable_hash
from musicjudge.report.figures import save_png

BUILTIN_CANDIDATES_CLIP_S = 10.0
# Known truth of the built-in candidates: quality = 1 - severity; severity s adds white noise over
# the whole clip at SNR = MAX_SNR_DB - s * (MAX_SNR_DB - MIN_SNR_DB) dB (s = 0 is the clean render).
MAX_SNR_DB = 30.0
MIN_SNR_DB = -5.0


@dataclass
class PromptPool:
    prompt_id: str
    items: list[Any]  # ScoreItem
    quality: np.ndarray


def _interleave_collections(rows: list[dict]) -> list[dict]:
    """Round-robin over the corpus collections (sorted ids within each), so a few prompts already
    span chorales, folk tunes, renaissance polyphony and classical pieces."""
    by: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        by.setdefault(str(r.get("collection")), []).append(r)
    out: list[dict] = []
    queues = [by[c] for c in sorted(by)]
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def build_builtin_candidates(out_dir: str | Path | None = None, *, n_prompts: int = 16, n_candidates: int = 8,
                             seed: int = 0, corpus_limit: int = 160, corpus: str | Path | None = None,
                             progress: bool = True) -> Path:
    """Candidate pools from held-out built-in pieces: per piece, the clean 10 s render plus
    ``n_candidates - 1`` noisier versions of it with evenly spread known severities. Returns a
    rated manifest (``musicality`` = 1 - severity, ``prompt_id`` = piece). Cached and resumable:
    finished clips are not rewritten. ``corpus``: an existing corpus manifest (else the cached
    build of the first ``corpus_limit`` pieces)."""
    import soundfile as sf

    from musicjudge.data.corpus import build_corpus, clip_rows, load_clip, read_corpus
    from musicjudge.perturb import NoiseSpec, apply_perturbation
    from musicjudge.reward.data import Instruction, RatedClip, write_rated

    if n_candidates < 2:
        raise ConfigError(f"n_candidates={n_candidates}: a prompt needs at least 2 candidates")
    corpus_manifest = Path(corpus) if corpus else build_corpus(limit=corpus_limit, progress=progress)
    rows = clip_rows(read_corpus(corpus_manifest, split="heldout"), BUILTIN_CANDIDATES_CLIP_S)
    rows = _interleave_collections(rows)[:n_prompts]
    key = stable_hash({"pieces": [r["id"] for r in rows], "c": n_candidates, "seed": seed, "snr": [MAX_SNR_DB, MIN_SNR_DB]})
    out = Path(out_dir) if out_dir is not None else cache_dir("bench", "topk_candidates", key)
    manifest = out / "candidates.jsonl"
    if manifest.exists():
        return manifest
    if not rows:
        raise ManifestError(f"{corpus_manifest}: no held-out piece of 10 s or more; rebuild with 'musicjudge data corpus'")
    (out / "audio").mkdir(parents=True, exist_ok=True)
    clips = []
    rng = np.random.default_rng(seed)
    for r in rows:
        wave = load_clip(r, BUILTIN_CANDIDATES_CLIP_S, sample_rate=r.get("sample_rate", 32000))
        sr = int(r.get("sample_rate", 32000))
        text = f"{r['instrument']} piece in {r['key']} {r['mode']} at {r['tempo_bpm']:g} bpm, in the style of {r['composer']}"
        ins = Instruction(text=text)
        severities = np.linspace(0.0, 1.0, n_candidates)
        order = rng.permutation(n_candidates)  # file order carries no information
        for j, pos in enumerate(order):
            s = float(severities[pos])
            path = out / "audio" / f"{r['id']}_c{j}.wav"
            if not path.exists():
                if s == 0.0:
                    y = wave
                else:
                    spec = NoiseSpec(colour="white", mode="add", onset=0.0, length=len(wave) / sr, unit="s",
                                     level_db=MAX_SNR_DB - s * (MAX_SNR_DB - MIN_SNR_DB), level_ref="snr_clip")
                    y = apply_perturbation(spec, wave, sr, seed=seed + j)
                peak = float(np.max(np.abs(y)))
                if peak > 0.99:
                    y = y * (0.99 / peak)
                tmp = path.with_suffix(".tmp.wav")
                sf.write(tmp, y.astype(np.float32), sr)
                tmp.replace(path)
            clips.append(RatedClip(id=f"{r['id']}_c{j}", instruction=ins, audio=str(path),
                                   scores={"musicality": round(1.0 - s, 6)}, system=f"severity{pos}",
                                   source="builtin-topk", metadata={"prompt_id": r["id"], "severity": s}))
    write_rated(manifest, clips)
    return manifest


def load_pools(manifest: str | Path, dimension: str) -> list[PromptPool]:
    """Group a rated manifest's clips into prompts (``prompt_id`` or identical instruction)."""
    from musicjudge.reward.base import ScoreItem
    from musicjudge.reward.data import read_rated

    clips = read_rated(manifest)
    groups: dict[str, list[Any]] = {}
    for c in clips:
        if dimension not in c.scores:
            continue
        ins = c.instruction
        pid = str(c.metadata.get("prompt_id") or json.dumps([ins.text, ins.lyrics, ins.ref_audio]))
        groups.setdefault(pid, []).append(c)
    pools = [PromptPool(pid, [ScoreItem(c.audio, c.instruction) for c in cs], np.array([c.scores[dimension] for c in cs], float))
             for pid, cs in groups.items() if len(cs) >= 2]
    if not pools:
        raise ManifestError(f"{manifest}: no prompt has 2 or more clips rated for {dimension}; add a prompt_id column grouping candidates")
    return pools


def selection_draws(pools: Sequence[PromptPool], rewards: Sequence[np.ndarray], ns: Sequence[int], ks: Sequence[int],
                    *, draws: int = 50, seed: int = 0):
    """Every (prompt, N, k, draw): quality of the reward's top-k, of random selection (expected
    value = mean of the N drawn) and of the oracle top-k. Reward ties are broken at random."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for pool, r in zip(pools, rewards):
        m = len(pool.quality)
        finite = np.isfinite(r)
        for n in ns:
            if n > m:
                continue
            for d in range(draws):
                idx = rng.choice(m, size=n, replace=False)  # random order -> stable sort breaks ties randomly
                idx = idx[finite[idx]] if not finite[idx].all() else idx
                if len(idx) == 0:
                    continue
                q = pool.quality[idx]
                by_reward = idx[np.argsort(-r[idx], kind="stable")]
                by_quality = np.sort(q)[::-1]
                for k in ks:
                    if k > len(idx):
                        continue
                    rows.append({"prompt": pool.prompt_id, "N": n, "k": k, "draw": d,
                                 "selected": float(pool.quality[by_reward[:k]].mean()),
                                 "random": float(q.mean()), "oracle": float(by_quality[:k].mean())})
    return pd.DataFrame(rows, columns=["prompt", "N", "k", "draw", "selected", "random", "oracle"])


def summarise_draws(df, *, n_boot: int = 1000, seed: int = 0):
    """Per (N, k): mean selected / random / oracle quality and the gain (selected - random) with a
    bootstrap 95% CI over prompts (draws are averaged within a prompt first)."""
    import pandas as pd

    from musicjudge.bench.metrics import bootstrap_ci

    per_prompt = df.groupby(["N", "k", "prompt"], as_index=False)[["selected", "random", "oracle"]].mean()
    rows = []
    for (n, k), g in per_prompt.groupby(["N", "k"]):
        gain = (g["selected"] - g["random"]).to_numpy()
        point, lo, hi = bootstrap_ci([gain], lambda x, axis=-1: np.mean(x, axis=axis), n_boot=n_boot, seed=seed, vectorized=True)
        headroom = (g["oracle"] - g["random"]).mean()
        rows.append({"N": int(n), "k": int(k), "n_prompts": len(g), "selected": g["selected"].mean(),
                     "random": g["random"].mean(), "oracle": g["oracle"].mean(), "gain": point,
                     "gain_ci_low": lo, "gain_ci_high": hi,
                     "share_of_oracle_gain": point / headroom if headroom > 0 else float("nan")})
    return pd.DataFrame(rows)


def plot_topk(summary, path: str | Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (k, g) in enumerate(summary.groupby("k")):
        g = g.sort_values("N")
        c = colours[i % len(colours)]
        ax.plot(g["N"], g["selected"], "o-", color=c, label=f"reward top-{k}")
        ax.plot(g["N"], g["oracle"], ":", color=c, alpha=0.7, label=f"oracle top-{k}")
    rnd = summary.groupby("N")["random"].mean()
    ax.plot(rnd.index, rnd.values, "s--", color="grey", label="random selection")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(summary["N"].unique()))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("N candidates drawn per prompt")
    ax.set_ylabel("mean quality of the selected clips")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_png(fig, path)


def run_topk(model: str, candidates: str, out_dir: str | Path, *, dimension: str = "musicality", ns: Sequence[int] = (1, 2, 4, 8),
             ks: Sequence[int] = (1, 2), judge: str | None = None, draws: int = 50, seed: int = 0, n_boot: int = 1000,
             batch_size: int = 16, quick: bool = False, model_args: dict[str, Any] | None = None, corpus: str | None = None,
             progress: bool = True) -> Path:
    """Score all candidates with ``model`` (and ``judge``), simulate selection, write the outputs;
    returns the path of topk.csv. Scores use the benchmark's score cache."""
    from musicjudge.bench.models import resolve_model
    from musicjudge.reward.base import item_key
    from musicjudge.bench.runner import ScoreCache, code_versions, score_items

    if dimension not in ("musicality", "alignment"):
        raise ConfigError(f"--dimension {dimension}: use musicality or alignment")
    if candidates == "builtin":
        manifest = build_builtin_candidates(n_prompts=6 if quick else 16, n_candidates=8, seed=seed, corpus=corpus,
                                            progress=progress)
    else:
        manifest = Path(candidates)
    pools = load_pools(manifest, dimension)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    all_items = [it for p in pools for it in p.items]

    def scores_of(spec: str) -> tuple[list[np.ndarray], Any]:
        bm = resolve_model(spec, model_args if spec == model else None)
        cache = ScoreCache(bm.fingerprint)
        _, failures = score_items(bm, all_items, cache, batch_size=batch_size, progress=progress)
        return [np.array([cache.get(item_key(it), dimension) for it in p.items]) for p in pools], (bm, failures)

    rewards, (bm, failures) = scores_of(model)
    if not any(np.isfinite(r).any() for r in rewards):
        raise ConfigError(f"--model {model}: gives no {dimension} score for any candidate; pick a model that scores {dimension}")
    quality_source = "labels"
    if judge:
        judged, (jm, jfail) = scores_of(judge)
        failures += jfail
        pools = [PromptPool(p.prompt_id, p.items, q) for p, q in zip(pools, judged)]
        quality_source = f"judge {jm.name}"
    draws_df = selection_draws(pools, rewards, ns, ks, draws=10 if quick else draws, seed=seed)
    if draws_df.empty:
        raise ConfigError(f"{manifest}: no prompt has N={max(ns)} or fewer candidates to draw; lower --n")
    summary = summarise_draws(draws_df, n_boot=200 if quick else n_boot, seed=seed)
    import io

    buf = io.BytesIO()
    draws_df.to_parquet(buf, index=False)
    atomic_write_bytes(out / "topk_draws.parquet", buf.getvalue())
    atomic_write_text(out / "topk.csv", summary.to_csv(index=False))
    plot_topk(summary, out / "topk.png", f"top-k by {bm.name} ({dimension}); quality: {quality_source}")
    atomic_write_json(out / "topk.json", {
        "model": {"spec": model, "name": bm.name, "fingerprint": bm.fingerprint}, "judge": judge,
        "candidates": str(manifest), "dimension": dimension, "quality": quality_source, "N": list(ns), "k": list(ks),
        "draws": 10 if quick else draws, "seed": seed, "n_prompts": len(pools), "failures": failures,
        "versions": code_versions(), "summary": summary.to_dict(orient="records"),
    })
    return out / "topk.csv"
