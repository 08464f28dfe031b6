"""One process of a data-parallel ``probe run`` (started by torchrun in the tests and by the
speed-up measurement): python probe_worker.py OUT_DIR MODEL_DIR AUDIO_DIR [SHARD]."""

from __future__ import annotations

import sys


def probe_config(model_dir: str, audio_dir: str, *, lengths=(5, 10), blocks=(2,)):
    from musicjudge.probe.config import ProbeConfig

    return ProbeConfig.from_dict({
        "models": [f"tiny={model_dir}"],
        "datasets": [{"name": "clips", "path": audio_dir}],
        "crop_duration_s": None,
        "min_recovery_s": 0.5,
        "noise": {"onsets_s": [1.0], "lengths_frames": list(lengths), "colours": ["white", "pink"]},
        "shuffle": {"onset_s": 1.0, "blocks_frames": list(blocks)},
        "save_curves": "mean",
        "batch_size": 4,
        "device": "cpu",
    })


def main(out_dir: str, model_dir: str, audio_dir: str, shard: str | None = None) -> None:
    import torch

    from musicjudge.distributed import current_process, shutdown
    from musicjudge.probe.parallel import run_probe_parallel

    import time

    torch.set_num_threads(1)
    proc = current_process(shard, cpu=True)
    cpu0 = time.process_time()
    _, merged = run_probe_parallel(probe_config(model_dir, audio_dir), out_dir, shard=shard, progress=False)
    cpu_s = time.process_time() - cpu0
    print(f"rank={proc.rank} world={proc.world_size} launcher={proc.launcher} consolidated={merged} cpu_s={cpu_s:.2f}",
          flush=True)
    shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
