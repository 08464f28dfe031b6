"""Statistics of a votes file: votes per annotator, inter-annotator agreement (pairwise
agreement, Cohen's kappa per annotator pair, Fleiss' kappa), position bias and tie share."""

from __future__ import annotations

import itertools
import math
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from musicjudge.errors import ManifestError

CATEGORIES = ("A", "B", "tie")
DIMENSIONS = ("musicality", "alignment")


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa from an [items, categories] matrix of rating counts. Items may have
    different numbers of raters (>= 2 each), as in the usual generalisation of Fleiss (1971)."""
    counts = np.asarray(counts, dtype=float)
    n_i = counts.sum(axis=1)
    if counts.ndim != 2 or len(counts) == 0 or np.any(n_i < 2):
        raise ValueError("fleiss_kappa needs at least one item and >= 2 ratings per item")
    p_i = ((counts ** 2).sum(axis=1) - n_i) / (n_i * (n_i - 1))
    p_bar = p_i.mean()
    p_j = counts.sum(axis=0) / n_i.sum()
    p_e = float((p_j ** 2).sum())
    if math.isclose(p_e, 1.0):
        return float("nan")  # every rating in one category: agreement beyond chance is undefined
    return float((p_bar - p_e) / (1 - p_e))


def cohen_kappa(labels_1: Sequence[str], labels_2: Sequence[str]) -> float:
    """Cohen's kappa over the categories A/B/tie (NaN when undefined: a single category)."""
    from sklearn.metrics import cohen_kappa_score

    if len(set(labels_1) | set(labels_2)) < 2:
        return float("nan")
    return float(cohen_kappa_score(list(labels_1), list(labels_2), labels=list(CATEGORIES)))


def _shown(vote: dict[str, Any], dim: str) -> str | None:
    """The vote on ``dim`` in displayed terms: ``first`` / ``second`` / ``tie`` (from the
    ``displayed`` record, else derived from ``displayed_order`` AB|BA); None if unknown."""
    label = vote.get(dim)
    shown = (vote.get("displayed") or {}).get(dim)
    if shown is None and label in CATEGORIES and vote.get("displayed_order") in ("AB", "BA"):
        shown = "tie" if label == "tie" else ("first" if (label == "A") == (vote["displayed_order"] == "AB") else "second")
    return shown


def _clean(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else round(float(value), 4)


def vote_stats(votes: list[dict[str, Any]], *, min_common: int = 2) -> dict[str, Any]:
    """Agreement and bias statistics for vote rows (see :mod:`musicjudge.annotate.study`)."""
    from scipy.stats import binomtest

    per_annotator = Counter(str(v.get("annotator")) for v in votes)
    out: dict[str, Any] = {
        "votes": len(votes),
        "annotators": len(per_annotator),
        "pairs": len({v.get("pair_id") for v in votes}),
        "votes_per_annotator": dict(sorted(per_annotator.items())),
        "dimensions": {},
    }
    for dim in DIMENSIONS:
        by_pair: dict[str, dict[str, str]] = defaultdict(dict)
        first = second = ties = n = 0
        per_annotator_ties: Counter = Counter()
        for v in votes:
            label = v.get(dim)
            if label not in CATEGORIES:
                continue
            n += 1
            by_pair[str(v.get("pair_id"))][str(v.get("annotator"))] = label
            shown = _shown(v, dim)
            if shown == "tie":
                ties += 1
                per_annotator_ties[str(v.get("annotator"))] += 1
            elif shown == "first":
                first += 1
            elif shown == "second":
                second += 1
        if n == 0:
            continue
        # pairwise agreement: over every pair of annotators who judged the same pair
        agree = comparisons = 0
        for ratings in by_pair.values():
            for x, y in itertools.combinations(ratings.values(), 2):
                comparisons += 1
                agree += x == y
        # Cohen's kappa per annotator pair with enough items in common
        cohen: dict[str, Any] = {}
        names = sorted({a for ratings in by_pair.values() for a in ratings})
        for a1, a2 in itertools.combinations(names, 2):
            common = [pid for pid, r in by_pair.items() if a1 in r and a2 in r]
            if len(common) >= min_common:
                k = cohen_kappa([by_pair[p][a1] for p in common], [by_pair[p][a2] for p in common])
                cohen[f"{a1} | {a2}"] = {"items": len(common), "kappa": _clean(k)}
        kappas = [c["kappa"] for c in cohen.values() if c["kappa"] is not None]
        multi = [r for r in by_pair.values() if len(r) >= 2]
        fleiss = None
        if multi:
            counts = np.array([[sum(1 for lab in r.values() if lab == c) for c in CATEGORIES] for r in multi])
            fleiss = fleiss_kappa(counts)
        non_tie = first + second
        out["dimensions"][dim] = {
            "votes": n,
            "tie_share": _clean(ties / n),
            "tie_share_per_annotator": {a: _clean(per_annotator_ties[a] / c) for a, c in sorted(per_annotator.items()) if c},
            # Share of non-tie votes that chose the clip shown first (0.5 = no position bias).
            "first_position_share": _clean(first / non_tie) if non_tie else None,
            "position_bias_rate": _clean(abs(first - second) / non_tie) if non_tie else None,
            "position_bias_p_value": _clean(binomtest(first, non_tie, 0.5).pvalue) if non_tie else None,
            "pairs_with_2plus_votes": len(multi),
            "pairwise_agreement": _clean(agree / comparisons) if comparisons else None,
            "annotator_comparisons": comparisons,
            "fleiss_kappa": _clean(fleiss),
            "cohen_kappa_mean": _clean(float(np.mean(kappas))) if kappas else None,
            "cohen_kappa": cohen,
        }
    return out


def annotator_table(votes: list[dict[str, Any]]):
    """Tidy per-annotator table: votes, and per dimension tie share, first-position share
    (non-tie votes naming the clip shown first) and mean confidence."""
    import pandas as pd

    rows = []
    for name in sorted({str(v.get("annotator")) for v in votes}):
        mine = [v for v in votes if str(v.get("annotator")) == name]
        row: dict[str, Any] = {"annotator": name, "votes": len(mine)}
        for dim in DIMENSIONS:
            shown = [_shown(v, dim) for v in mine if v.get(dim) in CATEGORIES]
            non_tie = [x for x in shown if x in ("first", "second")]
            conf = [float(v[f"confidence_{dim}"]) for v in mine if isinstance(v.get(f"confidence_{dim}"), (int, float))]
            row[f"{dim}_tie_share"] = _clean(shown.count("tie") / len(shown)) if shown else None
            row[f"{dim}_first_position_share"] = _clean(non_tie.count("first") / len(non_tie)) if non_tie else None
            row[f"{dim}_mean_confidence"] = _clean(float(np.mean(conf))) if conf else None
        rows.append(row)
    return pd.DataFrame(rows)


def read_votes(path: str | os.PathLike) -> list[dict[str, Any]]:
    from musicjudge.io import read_jsonl

    path = Path(path)
    votes = read_jsonl(path)
    for i, v in enumerate(votes, 1):
        if not v.get("pair_id") or not v.get("annotator"):
            raise ManifestError(f"{path}:{i}: vote without pair_id or annotator; is this a votes file from 'musicjudge annotate serve'?")
    return votes


def format_stats(stats: dict[str, Any]) -> str:
    """Plain-text report (also what the CLI prints)."""
    lines = [f"{stats['votes']} votes by {stats['annotators']} annotators on {stats['pairs']} pairs"]
    for name, count in stats["votes_per_annotator"].items():
        lines.append(f"  {name}: {count}")
    for dim, d in stats["dimensions"].items():
        lines.append(f"{dim}:")
        lines.append(f"  tie share {d['tie_share']}, first-position share {d['first_position_share']} "
                     f"(bias rate {d['position_bias_rate']}, binomial p={d['position_bias_p_value']})")
        lines.append(f"  pairs with 2+ votes {d['pairs_with_2plus_votes']}, pairwise agreement {d['pairwise_agreement']} "
                     f"over {d['annotator_comparisons']} comparisons")
        lines.append(f"  Fleiss kappa {d['fleiss_kappa']}, mean Cohen kappa {d['cohen_kappa_mean']}")
        for names, c in d["cohen_kappa"].items():
            lines.append(f"    Cohen {names}: {c['kappa']} on {c['items']} items")
    return "\n".join(lines)
