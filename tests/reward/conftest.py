"""Shared, session-scoped synthetic data for the reward tests (embedding once keeps them fast)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def reward_cache(tmp_path_factory):
    # Same folder the root conftest points MUSICJUDGE_CACHE at, set here too because session
    # fixtures run before the per-test monkeypatch.
    path = tmp_path_factory.getbasetemp() / "mj-cache"
    mp = pytest.MonkeyPatch()
    if "MUSICJUDGE_CACHE" not in os.environ:
        mp.setenv("MUSICJUDGE_CACHE", str(path))
    yield Path(os.environ["MUSICJUDGE_CACHE"])
    mp.undo()


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory, reward_cache):
    """Train/validation/test synthetic pairs (disjoint melody seeds) embedded with the builtin encoder."""
    import torch

    from musicjudge.reward.encoders import BuiltinEncoder
    from musicjudge.reward.train import embed_pairs
    from synthetic import make_synthetic_pairs

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("synthetic-clips")
    train = make_synthetic_pairs(folder, range(0, 12))
    val = make_synthetic_pairs(folder, range(100, 103))
    test = make_synthetic_pairs(folder, range(200, 204))
    encoder = BuiltinEncoder()
    arrays = {name: embed_pairs(encoder, pairs, progress=False) for name, pairs in (("train", train), ("val", val), ("test", test))}
    return {"encoder": encoder, "pairs": {"train": train, "val": val, "test": test}, "arrays": arrays, "folder": folder}


@pytest.fixture(scope="session")
def trained(synthetic, tmp_path_factory):
    """A small head trained on the synthetic pairs (checkpoint folder + result)."""
    from musicjudge.reward.train import TrainConfig, train_reward_model

    out = tmp_path_factory.mktemp("trained")
    config = TrainConfig(epochs=10, patience=10, batch_size=32, lr=3e-3, d_model=64, n_layers=1, drop_text=0.0, seed=0)
    result = train_reward_model(synthetic["encoder"], synthetic["arrays"]["train"], synthetic["arrays"]["val"], out, config,
                                progress=False, log=lambda *_: None)
    return {"dir": out, "result": result, "config": config}


@pytest.fixture(scope="session")
def mini_pairs(tmp_path_factory, reward_cache):
    """12 built-in pairs rendered from the 4-piece corpus fixture (8 s clips at 16 kHz)."""
    from musicjudge.reward.builtin_pairs import build_builtin_pairs

    out = tmp_path_factory.mktemp("builtin-pairs")
    corpus = Path(__file__).parent / "fixtures" / "corpus_mini.jsonl"
    manifest = build_builtin_pairs(out, "train", 12, seed=1, clip_s=8.0, sample_rate=16000, corpus_manifest=corpus, progress=False)
    return {"manifest": manifest, "out": out, "corpus": corpus}
