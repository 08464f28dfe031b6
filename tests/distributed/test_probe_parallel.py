"""The same probe job with 1 process, with 2 gloo processes (torchrun) and as 2 manual shards
gives identical rows and numbers."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musicjudge.audio import write_audio
from musicjudge.probe.parallel import run_probe_parallel
from tests.distributed import probe_worker

SR = 32000
KEY_COLS = ["model", "dataset", "clip_id", "perturbation", "seed"]


@pytest.fixture(scope="module")
def probe_inputs(tmp_path_factory):
    import torch

    from musicjudge.lm.musicgen import build_tiny_musicgen

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("probe-inputs")
    model_dir = root / "tiny-musicgen"
    build_tiny_musicgen(model_dir, seed=0)
    audio = root / "clips"
    rng = np.random.default_rng(0)
    t = np.arange(int(2.5 * SR)) / SR
    for i in range(3):
        f0 = rng.uniform(150, 400)
        wave = sum(np.sin(2 * np.pi * f0 * k * t * (1 + 0.02 * np.sin(3 * t))) / k for k in (1, 2, 3))
        write_audio(audio / f"clip{i}.wav", (0.2 * wave * np.exp(-0.5 * t)).astype(np.float32), SR)
    write_audio(audio / "silent.wav", np.zeros(SR * 3, np.float32), SR)  # recorded as bad, not fatal
    return str(model_dir), str(audio)


@pytest.fixture(scope="module")
def single_run(probe_inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("probe-1proc")
    run_dir, merged = run_probe_parallel(probe_worker.probe_config(*probe_inputs), out, progress=False)
    assert merged
    return run_dir


def _same_tables(a: Path, b: Path) -> None:
    for name in ("results", "curves"):
        x = pd.read_parquet(a / f"{name}.parquet")
        y = pd.read_parquet(b / f"{name}.parquet")
        keys = KEY_COLS + (["codebook", "frame"] if name == "curves" else [])
        x, y = (t.sort_values(keys, kind="stable").reset_index(drop=True) for t in (x, y))
        assert len(x) == len(y) > 0 and list(x.columns) == list(y.columns)
        assert x[keys].astype(str).equals(y[keys].astype(str))
        for col in x.columns:
            if pd.api.types.is_float_dtype(x[col]):
                np.testing.assert_allclose(x[col].to_numpy(float), y[col].to_numpy(float), rtol=1e-5, atol=1e-5,
                                           equal_nan=True, err_msg=f"{name}.{col}")
            else:
                assert x[col].astype(str).equals(y[col].astype(str)), f"{name}.{col}"


def test_single_process_probe(single_run):
    res = pd.read_parquet(single_run / "results.parquet")
    assert sorted(res["clip_id"].unique()) == [f"clip{i}.wav" for i in range(3)]
    assert len(res) == 3 * 5  # 2 colours x 2 lengths + 1 shuffle per clip
    errors = pd.read_csv(single_run / "errors.csv")
    assert errors["clip_id"].tolist() == ["silent.wav"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one(probe_inputs, single_run, tmp_path):
    worker = Path(probe_worker.__file__)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(worker.parents[2])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(worker), str(tmp_path), *probe_inputs]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("world=2 launcher=launched") == 2
    assert proc.stdout.count("consolidated=True") >= 1
    _same_tables(single_run, tmp_path)
    counts = json.loads((tmp_path / "run.json").read_text())["counts"]
    assert counts == {"keys": 4, "skipped_done": 0, "skipped_errored": 0, "scored": 3, "errors": 1}


def test_manual_shards_match_one_and_resume(probe_inputs, single_run, tmp_path):
    cfg = probe_worker.probe_config(*probe_inputs)
    _, merged = run_probe_parallel(cfg, tmp_path, shard="1/2", progress=False)
    assert not merged and not (tmp_path / "results.parquet").exists()
    _, merged = run_probe_parallel(probe_worker.probe_config(*probe_inputs), tmp_path, shard="0/2", progress=False)
    assert merged
    _same_tables(single_run, tmp_path)
    # a second pass of shard 1 recomputes nothing and re-consolidates the same tables
    _, merged = run_probe_parallel(probe_worker.probe_config(*probe_inputs), tmp_path, shard="1/2", progress=False)
    assert merged
    marker = json.loads((tmp_path / "shards" / "probe.rank1-of-2.complete").read_text())
    assert marker["counts"] == {"keys": 2, "skipped_done": 1, "skipped_errored": 1, "scored": 0, "errors": 0}
    _same_tables(single_run, tmp_path)
