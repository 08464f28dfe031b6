"""Figures and the report from a results table in the runner's schema (no model needed):
several models, noise colours and shuffles, so every figure of the protocol is drawn."""

import numpy as np
import pandas as pd

from musicjudge.probe.report import FIGURES, build_report
from musicjudge.probe.runner import RESULT_COLUMNS


def synthetic_results(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for model, slope in (("small", -0.002), ("large", -0.001)):
        for ds in ("ood", "train"):
            for c in range(4):
                base = 5.0 + rng.normal(0, 0.5)
                for colour in ("white", "pink"):
                    for L in (5, 10, 50, 200):
                        D = slope * L + rng.normal(0, 0.02)
                        rows.append(dict(model=model, dataset=ds, clip_id=f"c{c}", kind="noise", colour=colour, length_frames=L,
                                         loss_orig=base, loss_pert=base + D, D=D, orig_loss_std=0.8, seed=0, onset_frame=250,
                                         peak_mean=0.5, assim_mean=-1.0, recovery_mean=0.01, smooth_peak_mean=0.5,
                                         smooth_assim_mean=-1.0, smooth_peak_height=rng.uniform(0.5, 1.5), assim_depth=1.0,
                                         recovery_time=10.0, offset_spike=0.3, perturbation=f"noise_{colour}_{L}"))
                for b in (1, 10, 100):
                    D = 0.3 / b + rng.normal(0, 0.01)
                    rows.append(dict(model=model, dataset=ds, clip_id=f"c{c}", kind="shuffle", shuffle_kind="swap_adjacent",
                                     length_frames=b, loss_orig=base, loss_pert=base + D, D=D, orig_loss_std=0.8, seed=0,
                                     perturbation=f"shuffle_{b}"))
    df = pd.DataFrame(rows)
    return df.reindex(columns=RESULT_COLUMNS)


def test_every_protocol_figure_is_drawn_and_named(tmp_path):
    results = synthetic_results()
    clips = results.groupby(["model", "dataset", "clip_id"]).agg(loss_orig=("loss_orig", "first")).reset_index()
    html = build_report(results, clips, tmp_path / "report.html", title="synthetic").read_text()
    drawn = {p.name for p in (tmp_path / "figures").glob("*.png")}
    # no curves were given, so the example-curve figure is the only one left out
    assert drawn == set(FIGURES) - {"example_curves.png"}
    for name in drawn:
        assert f"({name})" in html
    corr = pd.read_csv(tmp_path / "stats" / "correlations_noise.csv").set_index(["scope", "model"])
    assert corr.loc[("pooled", "*"), "pearson_r"] < -0.8
    profiles = pd.read_csv(tmp_path / "stats" / "profile_scores.csv")
    assert len(profiles) == 4 and (profiles["n"] == 4).all()
