"""Training on synthetic pairs with known truth: accuracy, resumability, stage 2, data-size sweep."""

from __future__ import annotations

import pandas as pd
import pytest

from musicjudge.errors import ConfigError
from musicjudge.reward.model import load_checkpoint
from musicjudge.reward.train import TrainConfig, accuracy_table, evaluate_arrays, predict_pairs, subsample_sweep, train_reward_model


def test_training_reaches_high_heldout_accuracy(trained, synthetic):
    _, head = load_checkpoint(trained["dir"])
    test = synthetic["arrays"]["test"]
    metrics = evaluate_arrays(head, test)
    # chance is 0.5; held-out melodies (other seeds) than training
    assert metrics["acc_musicality"] >= 0.9, metrics
    assert metrics["acc_alignment"] >= 0.7, metrics
    sa, sb = predict_pairs(head, test)
    table = accuracy_table(sa, sb, test.pairs)
    assert set(table["dimension"]) == {"musicality", "alignment"} and (table["instruction_kind"] == "all").sum() == 2
    out = trained["dir"]
    history = pd.read_csv(out / "metrics.csv")
    assert list(history.columns[:4]) == ["epoch", "train_loss", "val_acc_musicality", "val_acc_alignment"]
    # epoch 0 is the initialisation (evaluated, not trained)
    assert list(history["epoch"]) == list(range(trained["result"].history[-1]["epoch"] + 1))
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[1]
    assert (out / "learning_curve.png").stat().st_size > 1000 and (out / "train_summary.json").exists()


def test_interrupted_run_resumes_and_extends(synthetic, tmp_path):
    enc, arrays = synthetic["encoder"], synthetic["arrays"]
    small = arrays["train"].subset(list(range(0, len(arrays["train"]), 3)))
    config = TrainConfig(epochs=2, patience=50, batch_size=32, d_model=32, n_layers=1, seed=3)
    logs: list[str] = []
    first = train_reward_model(enc, small, arrays["val"], tmp_path, config, progress=False, log=logs.append)
    assert [r["epoch"] for r in first.history] == [0, 1, 2]
    config.epochs = 4
    second = train_reward_model(enc, small, arrays["val"], tmp_path, config, progress=False, log=logs.append)
    assert any("resuming from epoch 2" in line for line in logs)
    assert [r["epoch"] for r in second.history] == [0, 1, 2, 3, 4]
    assert second.history[1:3] == first.history[1:3]
    # an uninterrupted 4-epoch run gives the same trajectory (optimizer state and RNG were restored)
    fresh = train_reward_model(enc, small, arrays["val"], tmp_path / "fresh", config, progress=False, log=logs.append)
    assert [round(r["train_loss"], 5) for r in fresh.history[1:]] == [round(r["train_loss"], 5) for r in second.history[1:]]


def test_stage_two_init_and_checks(trained, synthetic, tmp_path):
    enc, arrays = synthetic["encoder"], synthetic["arrays"]
    config = TrainConfig(epochs=1, batch_size=32, label_smoothing=0.1)
    result = train_reward_model(enc, arrays["val"], arrays["test"], tmp_path, config, init=trained["dir"], progress=False, log=lambda *_: None)
    cfg, head = load_checkpoint(tmp_path)
    assert cfg["head"]["d_model"] == 64 and cfg["info"]["init"] == str(trained["dir"])  # architecture comes from --init
    # epoch 0 evaluates the --init checkpoint itself, so fine-tuning never ends worse on validation
    _, init_head = load_checkpoint(trained["dir"])
    assert [r["epoch"] for r in result.history] == [0, 1]
    assert result.history[0]["val_acc_mean"] == evaluate_arrays(init_head, arrays["test"])["acc_mean"]
    assert result.best_val["acc_mean"] == max(r["val_acc_mean"] for r in result.history)
    from musicjudge.reward.encoders import BuiltinEncoder

    with pytest.raises(ConfigError, match="features"):
        train_reward_model(BuiltinEncoder(features=("mel",)), arrays["val"].subset([0, 1]), arrays["test"], tmp_path / "x",
                           config, init=trained["dir"], progress=False, log=lambda *_: None)


def test_subsample_sweep_writes_table_and_plot(synthetic, tmp_path):
    enc, arrays = synthetic["encoder"], synthetic["arrays"]
    config = TrainConfig(epochs=2, batch_size=32, d_model=32, n_layers=1)
    df = subsample_sweep(enc, arrays["train"], arrays["val"], arrays["test"], tmp_path, [1.0, 0.25], config, log=lambda *_: None)
    assert list(df["fraction"]) == [0.25, 1.0] and df["n_pairs"].iloc[0] < df["n_pairs"].iloc[1] == len(arrays["train"])
    assert {"test_acc_musicality", "test_acc_alignment"} <= set(df.columns)
    assert (tmp_path / "sweep.csv").exists() and (tmp_path / "sweep.png").stat().st_size > 1000
    with pytest.raises(ConfigError):
        subsample_sweep(enc, arrays["train"], arrays["val"], arrays["test"], tmp_path, [0.0], config)


def test_terms_alignment_head_trains_saves_and_reloads(synthetic, tmp_path):
    import numpy as np

    config = TrainConfig(epochs=2, patience=10, batch_size=32, d_model=32, n_layers=1, seed=0, alignment="terms")
    arrays = synthetic["arrays"]
    result = train_reward_model(synthetic["encoder"], arrays["train"], arrays["val"], tmp_path / "terms", config,
                                progress=False, log=lambda *_: None)
    # epoch 0 is the convex warm start: alignment is already far above chance before any step
    assert result.history[0]["val_acc_alignment"] >= 0.7, result.history[0]
    cfg, head = load_checkpoint(tmp_path / "terms")
    assert cfg["head"]["alignment"] == "terms" and head.cfg.alignment == "terms"
    assert np.isfinite(head.term_weights.detach().numpy()).all() and head.term_weights.abs().sum() > 0
    metrics = evaluate_arrays(head, arrays["test"])
    assert metrics["acc_alignment"] >= 0.7, metrics
    with pytest.raises(Exception, match="alignment"):
        from musicjudge.reward.model import HeadConfig

        HeadConfig.from_dict({"audio_dim": 4, "text_dim": 4, "alignment": "bogus"})
