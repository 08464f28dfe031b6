import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musicjudge.distributed import ProcessInfo, list_shards, merge_shards, run_sharded
from tests.distributed import job_worker as job



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
