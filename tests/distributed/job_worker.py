"""A small but real sharded job (perturb clips, score them with a fixed-seed conv net) that the
tests run in-process and as manual shards; ``python job_worker.py OUT_DIR [SHARD]`` runs it
as one process of a launched job."""

from __future__ import annotations

import sys
import zlib

import numpy as np

from musicjudge.distributed import current_process, run_sharded, shutdown
from musicjudge.errors import AudioError
from musicjudge.perturb import NoiseSpec, ShuffleSpec

SR = 16000
KEYS = [f"clip-{i:02d}" for i in range(10)]
SPECS = [
    NoiseSpec(colour="pink", onset=25, length=L, unit="frames") for L in (5, 20)
] + [ShuffleSpec(kind="swap_adjacent", block=10, onset=25, unit="frames")]


def _model():
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv1d(1, 8, 320, stride=320), torch.nn.Tanh(), torch.nn.Conv1d(8, 1, 1))
    return net.eval()


def compute(key: str, net=None) -> list[dict]:
    import torch

    if key == "clip-07":  # a broken clip: batch jobs record it and finish the rest
        raise AudioError(f"{key}: audio is silent; remove it or check the export")
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    t = np.arange(2 * SR) / SR
    wave = (0.3 * np.sin(2 * np.pi * rng.uniform(200, 400) * t) * np.exp(-t)).astype(np.float32)
    net = net or _model()
    rows = []
    with torch.no_grad():
        base = net(torch.from_numpy(wave)[None, None]).squeeze().numpy()
        for spec in SPECS:
            out = spec.apply(wave, SR, seed=1, clip=key)
            feat = net(torch.from_numpy(out)[None, None]).squeeze().numpy()
            rows.append({"clip": key, "perturbation": spec.key, "D": float((feat - base).mean()),
                         "curve": (feat - base).round(6).tolist()})
    return rows


def main(out_dir: str, shard: str | None = None) -> None:
    import torch

    torch.set_num_threads(1)
    proc = current_process(shard, cpu=True)
    net = _model()
    _, merged = run_sharded(KEYS, lambda k: compute(k, net), out_dir, "results", proc=proc, progress=False)
    print(f"rank={proc.rank} world={proc.world_size} launcher={proc.launcher} merged={merged is not None}")
    shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
