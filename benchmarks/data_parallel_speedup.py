"""Measure the wall-clock speed-up of a data-parallel probe run (not a test; run by hand):

    .venv/bin/python benchmarks/data_parallel_speedup.py [WORKDIR] [N_CLIPS] [REPEATS] [WITH_THREADS]

Builds a small random MusicGen (real architecture) and N synthetic clips, then times the same
probe job as 1 process x 1 thread and 2 gloo processes x 1 thread (torchrun), and with
WITH_THREADS=1 also 1 process x 2 threads; the layouts run interleaved REPEATS times. Checks
the results agree and prints a JSON summary (wall time incl. start-up, and the scoring span)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve()
SR = 32000


def make_inputs(root: Path, n_clips: int) -> tuple[str, str]:
    from musicjudge.audio import write_audio
    from musicjudge.lm.musicgen import build_tiny_musicgen

    model_dir, audio = root / "model", root / "clips"
    if not model_dir.exists():
        build_tiny_musicgen(model_dir, seed=0, hidden_size=256, num_layers=6, num_heads=8)
    rng = np.random.default_rng(0)
    t = np.arange(int(8.0 * SR)) / SR
    for i in range(n_clips):
        f0 = rng.uniform(150, 400)
        wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3)) * np.exp(-0.3 * t)
        write_audio(audio / f"clip{i:02d}.wav", (0.2 * wave).astype(np.float32), SR)
    return str(model_dir), str(audio)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(cmd: list[str], threads: int) -> tuple[float, list[float]]:
    """Wall seconds of the whole command and each process's CPU seconds inside the probe run."""
    import re

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(HERE.parents[1])}
    start = time.perf_counter()
    done = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    cpu = [float(x) for x in re.findall(r"cpu_s=([0-9.]+)", done.stdout)]
    return time.perf_counter() - start, cpu


def _scoring_span_s(run_dir: Path) -> float:
    """Seconds from the first process starting to score until the last one finishing (run.json
    history; excludes interpreter/torch start-up and model loading)."""
    import datetime as dt

    rows = [json.loads(line) for line in (run_dir / "runs.jsonl").read_text().splitlines()]
    start = min(dt.datetime.fromisoformat(r["started"]) for r in rows)
    end = max(dt.datetime.fromisoformat(r["finished"]) for r in rows)
    return (end - start).total_seconds()


def main(workdir: str = "/tmp/mj-speedup", n_clips: str = "16", repeats: str = "2", with_threads: str = "0") -> None:
    root = Path(workdir)
    model_dir, audio = make_inputs(root, int(n_clips))
    worker = str(HERE.parents[1] / "tests" / "distributed" / "probe_worker.py")
    runs = {
        "1proc_1thread": ([sys.executable, "-c", _single(1), worker], 1),
        "2proc_1thread": ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(_port()), worker], 1),
    }
    if with_threads == "1":
        runs["1proc_2threads"] = ([sys.executable, "-c", _single(2), worker], 2)
    times: dict[str, list[float]] = {name: [] for name in runs}
    spans: dict[str, list[float]] = {name: [] for name in runs}
    cpus: dict[str, list[list[float]]] = {name: [] for name in runs}
    load = [os.getloadavg()[0]]
    for _ in range(int(repeats)):  # interleaved, so load changes hit every layout alike
        for name, (cmd, threads) in runs.items():
            out = root / f"run-{name}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            wall, cpu = timed([*cmd, str(out), model_dir, audio], threads)
            times[name].append(round(wall, 2))
            cpus[name].append(cpu)
            spans[name].append(_scoring_span_s(out))
            load.append(os.getloadavg()[0])
    ref = pd.read_parquet(root / "run-1proc_1thread" / "results.parquet").sort_values(["clip_id", "perturbation"])
    max_diff = {}
    for name in runs:
        got = pd.read_parquet(root / f"run-{name}" / "results.parquet").sort_values(["clip_id", "perturbation"])
        assert list(got["perturbation"]) == list(ref["perturbation"]), name
        # thread count changes float summation order, so only 1-thread runs are bit-identical
        max_diff[name] = float(np.max(np.abs(got["D"].to_numpy() - ref["D"].to_numpy())))
    med = {name: float(np.median(v)) for name, v in times.items()}
    med_span = {name: float(np.median(v)) for name, v in spans.items()}
    summary = {
        "clips": int(n_clips), "perturbations_per_clip": int(len(ref) / int(n_clips)), "cpus": os.cpu_count(),
        "load_average_1min": [round(x, 1) for x in load],
        "wall_s": times, "scoring_span_s": spans, "probe_cpu_s_per_process": cpus,
        "max_abs_diff_D_vs_1proc_1thread": max_diff,
        # CPU seconds of the single process / of the busiest of the two: the speed-up the split
        # gives when each process has a core to itself (what contention hides in the wall time)
        "cpu_bound_speedup_2proc": round(float(np.median([sum(c) for c in cpus["1proc_1thread"]]))
                                         / float(np.median([max(c) for c in cpus["2proc_1thread"]])), 2),
        "speedup_wall_2proc_vs_1proc": round(med["1proc_1thread"] / med["2proc_1thread"], 2),
        "speedup_scoring_2proc_vs_1proc": round(med_span["1proc_1thread"] / max(med_span["2proc_1thread"], 1e-9), 2),
    }
    print(json.dumps(summary, indent=2))


def _single(threads: int) -> str:
    # probe_worker pins torch to 1 thread; the 2-thread baseline lifts that before running
    return ("import sys, torch, runpy; sys.argv = sys.argv[1:]; "
            f"torch.set_num_threads({threads}); torch.set_num_threads = lambda n: None; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")


if __name__ == "__main__":
    main(*sys.argv[1:])
