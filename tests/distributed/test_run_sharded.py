import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musicjudge.distributed import ProcessInfo, list_shards, merge_shards, run_sharded
from tests.distributed import job_worker as job

WORKER = Path(job.__file__)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The job run by one process: the result every other layout must reproduce."""
    out = tmp_path_factory.mktemp("single")
    writer, merged = run_sharded(job.KEYS, job.compute, out, "results", proc=ProcessInfo(), progress=False)
    assert merged is not None
    return out, merged


def read_rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_single_process_records_errors_and_merges(reference):
    out, merged = reference
    rows = read_rows(merged.jsonl)
    assert merged.n_rows == len(rows) == 9 * len(job.SPECS)
    assert merged.n_errors == 1 and merged.missing == []
    err = read_rows(merged.errors)
    assert err == [{"key": "clip-07", "error": "clip-07: audio is silent; remove it or check the export"}]
    assert [r["clip"] for r in rows[:: len(job.SPECS)]] == [k for k in job.KEYS if k != "clip-07"]
    table = pd.read_parquet(merged.parquet)
    assert len(table) == len(rows) and np.allclose(table["D"], [r["D"] for r in rows])
    before = merged.jsonl.read_bytes()
    again = merge_shards(out, "results", job.KEYS)  # idempotent
    assert again.jsonl.read_bytes() == before and again.n_rows == merged.n_rows


def test_resume_after_interruption_loses_nothing(tmp_path, reference):
    calls = []

    def flaky(key):
        if len(calls) == 4:
            raise KeyboardInterrupt
        calls.append(key)
        return job.compute(key)

    with pytest.raises(KeyboardInterrupt):
        run_sharded(job.KEYS, flaky, tmp_path, "results", proc=ProcessInfo(), progress=False)
    shard = list_shards(tmp_path, "results")[0]
    assert len(read_rows(shard)) == 4
    with open(shard, "a") as f:  # a crash in the middle of writing the next record
        f.write('{"key": "clip-04", "rows": [{"clip": "cl')
    resumed = []
    _, merged = run_sharded(job.KEYS, lambda k: resumed.append(k) or job.compute(k), tmp_path, "results",
                            proc=ProcessInfo(), progress=False)
    assert resumed == job.KEYS[4:]  # nothing computed twice, the torn record recomputed
    assert merged.jsonl.read_bytes() == reference[1].jsonl.read_bytes()


def test_manual_shards_then_resume_with_other_world_size(tmp_path, reference):
    _, first = run_sharded(job.KEYS, job.compute, tmp_path, "results", proc=ProcessInfo(1, 2, launcher="manual"),
                           progress=False)
    assert first is None  # shard 0 is not done yet: no merge
    calls = []
    _, merged = run_sharded(job.KEYS, lambda k: calls.append(k) or job.compute(k), tmp_path, "results",
                            proc=ProcessInfo(0, 2, launcher="manual"), progress=False)
    assert calls == job.KEYS[0::2]
    assert merged.jsonl.read_bytes() == reference[1].jsonl.read_bytes()
    # re-running with three processes finds everything done and reproduces the same merge
    for r in range(3):
        _, m = run_sharded(job.KEYS, pytest.fail, tmp_path, "results", proc=ProcessInfo(r, 3), progress=False)
    assert m.jsonl.read_bytes() == reference[1].jsonl.read_bytes()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one(tmp_path, reference):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parents[2])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(WORKER), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "rank=0 world=2 launcher=launched" in proc.stdout and "rank=1 world=2 launcher=launched" in proc.stdout
    assert len(list_shards(tmp_path, "results")) == 2
    got, want = read_rows(tmp_path / "results.jsonl"), read_rows(reference[1].jsonl)
    assert [(r["clip"], r["perturbation"]) for r in got] == [(r["clip"], r["perturbation"]) for r in want]
    np.testing.assert_allclose([r["D"] for r in got], [r["D"] for r in want], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose([r["curve"] for r in got], [r["curve"] for r in want], atol=1e-6)
