"""Held-out accuracy of the built-in reward model against its baselines, with bootstrap CIs.

Models (all scored on the same held-out built-in pairs, from the 105 held-out corpus pieces):

- ``builtin``: the shipped reward model (or ``--model FOLDER``, any reward checkpoint / spec);
- ``text-ridge:builtin``: no trained head; ridge map text -> built-in audio features, cosine to
  the clip and to the reference (fitted in closed form on ``--train-pairs``);
- ``random:0``: hash-drawn scores (chance);
- ``clap-cosine``: zero-shot CLAP cosine, only when ``--clap FOLDER`` is given.

For every model, dimension (musicality, alignment) and subset (all pairs, instruction kind,
pair type, OOD piano vs in-distribution, converse or not) it prints the pairwise accuracy with a
95 % bootstrap CI over pairs (``scipy.stats.bootstrap``, percentile method, 10,000 resamples,
seed 0), then, for each baseline, whether the CIs of the "all" rows overlap with the first
model's, and a paired bootstrap CI of the accuracy difference (same resampled pairs for both).

Usage (from the repo root; features are cached under $MUSICJUDGE_CACHE)::

    python benchmarks/reward_alignment.py \
        --train-pairs runs/rw/pairs/train10k/pairs.jsonl --heldout runs/rw/pairs/heldout2000/pairs.jsonl \
        --out runs/rw/bench [--clap /models/clap-htsat-unfused] [--markdown]

Without ``--train-pairs`` / ``--heldout`` the default built-in pairs are built (or reused from
the cache): train split, 10,000 pairs, seed 2 (what the shipped model was trained on, so the
text-ridge baseline is fitted on the same data); held-out split, 2,000 pairs, seed 1.
Writes ``accuracy_ci.csv`` (one row per model x dimension x subset) and ``summary.json``
(the "all" rows and the overlap verdicts) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DIMENSIONS = ("musicality", "alignment")


def pair_credits(score_a: np.ndarray, score_b: np.ndarray, prefs: list[str | None]) -> np.ndarray:
    """Per-pair credit as in musicjudge's pairwise accuracy: 1 right, 0 wrong, 0.5 for a tie in the
    truth or in the prediction; NaN where the pair is unlabelled in this dimension or unscorable."""
    out = np.full(len(prefs), np.nan)
    for i, (a, b, p) in enumerate(zip(score_a, score_b, prefs)):
        if p is None or not (np.isfinite(a) and np.isfinite(b)):
            continue
        out[i] = 0.5 if (p == "tie" or a == b) else float((a > b) == (p == "A"))
    return out


def bootstrap_ci(values: np.ndarray, *, n_resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap CI of the mean (degenerate samples give a zero-width interval)."""
    from scipy.stats import bootstrap

    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2 or np.all(values == values[0]):
        v = float(values.mean()) if len(values) else float("nan")
        return v, v
    res = bootstrap((values,), np.mean, confidence_level=0.95, n_resamples=n_resamples, method="percentile",
                    random_state=np.random.default_rng(seed), vectorized=True)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_difference_ci(a: np.ndarray, b: np.ndarray, *, n_resamples: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of a - b over the same pairs and its 95 % paired bootstrap CI."""
    from scipy.stats import bootstrap

    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if np.all(diff == diff[0]):
        return float(diff.mean()), float(diff.mean()), float(diff.mean())
    res = bootstrap((diff,), np.mean, confidence_level=0.95, n_resamples=n_resamples, method="percentile",
                    random_state=np.random.default_rng(seed), vectorized=True)
    return float(diff.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high)


def subsets(pairs) -> list[tuple[str, np.ndarray]]:
    """(name, boolean mask) of the reported subsets."""
    meta = lambda key: np.array([str(p.metadata.get(key)) for p in pairs])  # noqa: E731
    kinds = np.array([p.instruction.kind for p in pairs])
    types, coll, conv = meta("pair_type"), meta("collection"), meta("converse")
    out = [("all", np.ones(len(pairs), bool))]
    out += [(f"kind={k}", kinds == k) for k in sorted(set(kinds))]
    out += [(f"type={t}", types == t) for t in sorted(set(types))]
    out += [("collection=classical (OOD piano)", coll == "classical"), ("collection=in-distribution", coll != "classical")]
    out += [("converse=yes", conv == "True"), ("converse=no", conv != "True")]
    return out


def score_model(model, pairs, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    from musicjudge.reward.evaluate import score_pairs

    sa, sb, failures = score_pairs(model, pairs, batch_size=batch_size)
    if failures:
        print(f"  {len(failures)} clips could not be scored (their pairs count as unscorable)", file=sys.stderr)
    return sa, sb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-pairs", type=Path, help="pairs the text-ridge baseline is fitted on (default: built-in train, 10000, seed 2)")
    parser.add_argument("--heldout", type=Path, help="held-out pairs (default: built-in held-out split, 2000 pairs, seed 1)")
    parser.add_argument("--model", default="builtin", help="the model under test (spec or checkpoint folder; default builtin)")
    parser.add_argument("--clap", help="a CLAP folder or hub id: also evaluate the zero-shot clap-cosine baseline")
    parser.add_argument("--ridge-features", help="also evaluate text-ridge over these built-in feature groups "
                        "(comma list, e.g. mel,chroma,key,rhythm,texture = the encoder before 'attributes')")
    parser.add_argument("--out", type=Path, help="folder for accuracy_ci.csv and summary.json")
    parser.add_argument("--n-resamples", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--markdown", action="store_true", help="also print the tables as Markdown (for the model card)")
    args = parser.parse_args(argv)

    import pandas as pd
    import torch

    torch.set_num_threads(max(1, args.threads))
    from musicjudge.reward.builtin_pairs import build_builtin_pairs
    from musicjudge.reward.data import read_pairs
    from musicjudge.reward.registry import resolve_reward_model

    train_path = args.train_pairs or build_builtin_pairs(split="train", n=10000, seed=2)
    heldout_path = args.heldout or build_builtin_pairs(split="heldout", n=2000, seed=1)
    pairs = read_pairs(heldout_path, require_label=True)
    print(f"held-out pairs: {heldout_path} ({len(pairs)} pairs); text-ridge fitted on {train_path}")

    specs = [(args.model, {}), ("text-ridge:builtin", {"fit_pairs": train_path}), ("random:0", {})]
    if args.clap:
        specs.append((f"clap-cosine:{args.clap}", {}))
    if args.ridge_features:
        specs.append(("ridge-features", {}))
    credits: dict[str, dict[str, np.ndarray]] = {}
    for spec, options in specs:
        t0 = time.time()
        if spec == "ridge-features":
            from musicjudge.reward.baselines import TextRidgeBaseline
            from musicjudge.reward.encoders import BuiltinEncoder

            name = f"text-ridge:builtin[{args.ridge_features}]"
            model = TextRidgeBaseline(BuiltinEncoder([f.strip() for f in args.ridge_features.split(",")]), name=name)
            model.fit(read_pairs(train_path, require_label=True))
        else:
            resolved = resolve_reward_model(spec, **options)
            name = "builtin" if spec == "builtin" else resolved.name
            model = resolved.model
        sa, sb = score_model(model, pairs)
        credits[name] = {dim: pair_credits(sa[:, k], sb[:, k], [p.preference.get(dim) for p in pairs])
                         for k, dim in enumerate(DIMENSIONS)}
        print(f"scored {name} in {time.time() - t0:.0f} s")
    names = list(credits)

    rows = []
    for dim in DIMENSIONS:
        for group, mask in subsets(pairs):
            for name in names:
                c = credits[name][dim][mask]
                c = c[np.isfinite(c)]
                if len(c) == 0:
                    continue
                lo, hi = bootstrap_ci(c, n_resamples=args.n_resamples)
                rows.append({"model": name, "dimension": dim, "group": group, "n": len(c), "accuracy": float(c.mean()),
                             "ci_low": lo, "ci_high": hi})
    table = pd.DataFrame(rows)
    wide = table.assign(cell=[f"{100 * a:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]" for a, lo, hi in
                              zip(table.accuracy, table.ci_low, table.ci_high)])
    wide = wide.pivot_table(index=["dimension", "group", "n"], columns="model", values="cell", aggfunc="first", sort=False)
    order = {key: i for i, key in enumerate(dict.fromkeys(zip(table.dimension, table.group, table.n)))}
    wide = wide[names].reset_index()
    wide = wide.iloc[np.argsort([order[(d, g, n)] for d, g, n in zip(wide.dimension, wide.group, wide.n)], kind="stable")]
    pd.set_option("display.width", 250)
    pd.set_option("display.max_rows", 200)
    pd.set_option("display.max_colwidth", 40)
    print("\naccuracy % [95 % bootstrap CI]")
    print(wide.to_string(index=False))
    if args.markdown:
        print("\n| dimension | subset | pairs | " + " | ".join(names) + " |")
        print("|---|---|---:|" + "---:|" * len(names))
        for _, r in wide.iterrows():
            print(f"| {r['dimension']} | {r['group']} | {r['n']} | " + " | ".join(str(r[n]) for n in names) + " |")

    first = names[0]
    verdicts = []
    print(f"\n{first} vs each baseline (all held-out pairs):")
    for dim in DIMENSIONS:
        ours = table[(table.model == first) & (table.dimension == dim) & (table.group == "all")].iloc[0]
        for name in names[1:]:
            other = table[(table.model == name) & (table.dimension == dim) & (table.group == "all")]
            if other.empty:
                continue
            other = other.iloc[0]
            overlap = not (ours.ci_low > other.ci_high or other.ci_low > ours.ci_high)
            a, b = credits[first][dim], credits[name][dim]
            ok = np.isfinite(a) & np.isfinite(b)
            d, dlo, dhi = paired_difference_ci(a[ok], b[ok], n_resamples=args.n_resamples)
            verdicts.append({"dimension": dim, "baseline": name, "model_acc": ours.accuracy, "model_ci": [ours.ci_low, ours.ci_high],
                             "baseline_acc": other.accuracy, "baseline_ci": [other.ci_low, other.ci_high],
                             "cis_overlap": bool(overlap), "beats_baseline": bool(ours.ci_low > other.ci_high),
                             "paired_diff": d, "paired_diff_ci": [dlo, dhi]})
            print(f"  {dim:10s} vs {name:22s}: {100 * ours.accuracy:.1f} [{100 * ours.ci_low:.1f}, {100 * ours.ci_high:.1f}] "
                  f"vs {100 * other.accuracy:.1f} [{100 * other.ci_low:.1f}, {100 * other.ci_high:.1f}]  "
                  f"CIs {'overlap' if overlap else 'do NOT overlap'}; paired difference {100 * d:+.1f} "
                  f"[{100 * dlo:+.1f}, {100 * dhi:+.1f}]")
    beats = all(v["beats_baseline"] for v in verdicts if v["dimension"] == "alignment")
    print(f"\nalignment of {first} above every baseline with non-overlapping CIs: {'YES' if beats else 'NO'}")
    if args.out is not None:
        from musicjudge.io import atomic_write_json, atomic_write_text

        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "accuracy_ci.csv", table.to_csv(index=False))
        atomic_write_json(args.out / "summary.json", {
            "heldout": str(heldout_path), "train_pairs": str(train_path), "n_pairs": len(pairs), "models": names,
            "bootstrap": {"method": "percentile", "n_resamples": args.n_resamples, "confidence": 0.95, "seed": 0},
            "comparisons": verdicts, "alignment_beats_every_baseline": beats})
        print(f"wrote {args.out / 'accuracy_ci.csv'} and {args.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
