"""Statistics against values computed by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from musicjudge.probe import stats as S


def table():
    # two models; D = -0.001 * L plus a per-clip offset, so the D-L correlation is strongly negative
    rows = []
    for model, slope in (("m1", -0.001), ("m2", -0.002)):
        for clip, off in (("c1", 0.01), ("c2", -0.02), ("c3", 0.03)):
            for L in (5, 50, 200):
                rows.append(dict(model=model, dataset="ood", clip_id=clip, kind="noise", colour="white",
                                 length_frames=L, D=slope * L + off))
    return pd.DataFrame(rows)


def test_d_by_length_mean_std_and_ci():
    out = S.d_by_length(table())
    row = out[(out.model == "m1") & (out.length_frames == 200)].iloc[0]
    vals = np.array([-0.2 + 0.01, -0.2 - 0.02, -0.2 + 0.03])
    assert row["n"] == 3
    assert row["mean"] == pytest.approx(vals.mean())
    assert row["std"] == pytest.approx(vals.std(ddof=1))
    assert row["sem"] == pytest.approx(vals.std(ddof=1) / math.sqrt(3))
    assert vals.min() <= row["ci_low"] <= row["mean"] <= row["ci_high"] <= vals.max()


def test_bootstrap_ci_edge_cases_and_width():
    assert all(math.isnan(v) for v in S.bootstrap_ci([1.0]))
    assert S.bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    rng = np.random.default_rng(1)
    small = S.bootstrap_ci(rng.normal(0, 1, 20), seed=0)
    large = S.bootstrap_ci(rng.normal(0, 1, 2000), seed=0)
    assert (large[1] - large[0]) < (small[1] - small[0]) / 4  # width shrinks ~ 1/sqrt(n)
    assert large[0] < 0 < large[1] + 0.1


def test_correlations_match_hand_computation():
    df = table()
    out = S.d_length_correlations(df)
    pooled = out[out.scope == "pooled"].iloc[0]
    x, y = df.length_frames.to_numpy(float), df.D.to_numpy()
    r = ((x - x.mean()) * (y - y.mean())).sum() / math.sqrt(((x - x.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum())
    assert pooled["n"] == 18
    assert pooled["pearson_r"] == pytest.approx(r)
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    rho = np.corrcoef(rx, ry)[0, 1]
    assert pooled["spearman_r"] == pytest.approx(rho)
    assert 0 <= pooled["pearson_p"] < 0.01
    per_model = out[out.scope == "model"].set_index("model")
    assert set(per_model.index) == {"m1", "m2"} and (per_model["pearson_r"] < -0.9).all()


def test_amnesia_rate_counts_drops_with_wilson_ci():
    df = table()
    out = S.amnesia_rate(df, by_length=True)
    row = out[(out.model == "m1") & (out.length_frames == 5)].iloc[0]
    # D at L=5 for m1: -0.005 + {0.01, -0.02, 0.03} -> one negative value
    assert (row["n"], row["n_drop"]) == (3, 1)
    assert row["rate"] == pytest.approx(1 / 3)
    z, n, p = 1.959963984540054, 3, 1 / 3
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert row["ci_low"] == pytest.approx(centre - half, rel=1e-6)
    assert row["ci_high"] == pytest.approx(centre + half, rel=1e-6)
    pooled = S.amnesia_rate(df, by_length=False).set_index("model")
    assert pooled.loc["m2", "n_drop"] == 7  # all L=50/200 rows plus one at L=5


def test_region_summary_pools_long_injections():
    rows = [dict(model="m", dataset="d", kind="noise", length_frames=L, peak_mean=p, assim_mean=a, recovery_mean=r,
                 smooth_peak_mean=p, smooth_assim_mean=a)
            for L, p, a, r in ((10, 9.0, 9.0, 9.0), (50, 1.0, -1.0, 0.0), (100, 3.0, -3.0, 0.2))]
    out = S.region_summary(pd.DataFrame(rows), min_length=50).set_index("region")
    assert list(out.index) == ["peak", "assimilation", "recovery"]
    assert out.loc["peak", "mean"] == pytest.approx(2.0)
    assert out.loc["assimilation", "mean"] == pytest.approx(-2.0)
    assert out.loc["recovery", "n"] == 2


def test_d_by_metadata_reads_the_json_column():
    df = table()
    df["metadata"] = df["clip_id"].map({"c1": '{"top_k": 10}', "c2": '{"top_k": 500}', "c3": None})
    out = S.d_by_metadata(df, "top_k")
    assert set(out["top_k"]) == {10, 500} and (out["n"] == 1).all()
    row = out[(out.model == "m1") & (out.top_k == 500) & (out.length_frames == 200)].iloc[0]
    assert row["mean"] == pytest.approx(-0.2 - 0.02)
    assert S.d_by_metadata(df.drop(columns="metadata"), "top_k").empty
