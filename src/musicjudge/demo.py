"""``musicjudge demo``: the whole noise-injection / shuffle study in the built-in world, offline.

corpus (music21 -> audio) -> TrainingSet / Generated / OOD -> probe with the built-in LM ->
HTML report. Every stage is cached or resumable, so a second run only re-reads results.
Settings come from a YAML file (``configs/demo.yaml`` / ``configs/demo_quick.yaml`` hold the
built-in defaults) with sections ``corpus``, ``datasets`` and ``probe`` (a ProbeConfig mapping
without ``datasets``)."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Callable

from musicjudge.errors import ConfigError

FULL: dict[str, Any] = {
    "corpus": {"limit": 120, "max_duration_s": 30.0, "seed": 0},
    "datasets": {"n_train": 12, "n_ood": 12, "generated_per_k": 2, "topks": [10, 50, 100, 150, 200, 250, 500],
                 "clip_s": 15.0, "seed": 0},
    "probe": {
        "name": "demo", "models": ["builtin"], "crop_duration_s": 15.0, "seeds": [0],
        "noise": {"colours": ["white"], "onsets_s": [5.0], "lengths_frames": [5, 10, 50, 100, 150, 200],
                  "levels_db": [-20.0]},
        "shuffle": {"kinds": ["swap_adjacent"], "onset_s": 5.0, "blocks_frames": [1, 2, 5, 10, 35, 50, 70, 100, 150, 200]},
    },
}

QUICK: dict[str, Any] = {
    "corpus": {"limit": 8, "max_duration_s": 30.0, "seed": 0},
    "datasets": {"n_train": 2, "n_ood": 2, "generated_per_k": 1, "topks": [10, 500], "clip_s": 6.0, "seed": 0},
    "probe": {
        "name": "demo-quick", "models": ["builtin"], "crop_duration_s": 6.0, "seeds": [0],
        "noise": {"colours": ["white"], "onsets_s": [2.0], "lengths_frames": [5, 50], "levels_db": [-20.0]},
        "shuffle": {"kinds": ["swap_adjacent"], "onset_s": 2.0, "blocks_frames": [1, 10]},
    },
}


def demo_settings(quick: bool = False, config_path: str | Path | None = None) -> dict[str, Any]:
    """Built-in settings, overlaid by a YAML file (unknown sections raise ConfigError)."""
    settings = copy.deepcopy(QUICK if quick else FULL)
    if config_path is None:
        return settings
    from musicjudge.probe.config import read_yaml_file

    path = Path(config_path)
    data = read_yaml_file(path, not_found="demo config not found; see configs/demo.yaml for the format")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with sections {', '.join(sorted(settings))}; "
                          "see configs/demo.yaml")
    unknown = sorted(set(data) - set(settings))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(map(str, unknown))}; allowed: "
                          f"{', '.join(sorted(settings))} (see configs/demo.yaml)")
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: section {section!r} must be a mapping")
        if section == "probe":
            settings[section] = _overlay(settings[section], values)
            continue
        unknown = sorted(set(values) - set(settings[section]))
        if unknown:
            raise ConfigError(f"{path}: {section}: unknown key(s) {', '.join(map(str, unknown))}; allowed: "
                              f"{', '.join(sorted(settings[section]))}")
        for key, value in values.items():
            default = settings[section][key]
            if (section, key, value) == ("corpus", "limit", None):  # null: the whole corpus
                continue
            if isinstance(default, (int, float)) and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"{path}: {section}.{key}={value!r}: expected a number like {default!r}")
        settings[section].update(values)
    from musicjudge.probe.config import ProbeConfig

    ProbeConfig.from_dict(settings["probe"], source=f"{path}: probe")  # fail now, not after corpus + data sets
    return settings


def _overlay(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied; nested mappings (noise, shuffle, analysis) key by key."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _overlay(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def run_demo(out_dir: str | Path, *, quick: bool = False, config_path: str | Path | None = None,
             threads: int | None = 1, progress: bool = True, log: Callable[[str], None] = print) -> Path:
    """Run the demo into ``out_dir`` and return the report path (``out_dir/report.html``).

    ``threads``: torch CPU threads (default 1: the built-in LM's matrices are small, and on a busy
    machine extra threads mostly wait on each other); None keeps torch's default."""
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads={threads}: must be >= 1")
        import torch

        torch.set_num_threads(threads)
    from musicjudge.data.corpus import build_corpus
    from musicjudge.data.datasets import build_datasets
    from musicjudge.lm.builtin import load_builtin_lm
    from musicjudge.probe.config import ProbeConfig
    from musicjudge.probe.report import write_report
    from musicjudge.probe.runner import run_probe

    s = demo_settings(quick, config_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    c = s["corpus"]
    manifest = build_corpus(limit=c["limit"], max_duration_s=c["max_duration_s"], seed=c["seed"], progress=progress)
    timings["corpus_s"] = time.perf_counter() - t0
    log(f"[1/4] corpus: {manifest} ({timings['corpus_s']:.0f} s)")

    t0 = time.perf_counter()
    lm = load_builtin_lm()
    d = s["datasets"]
    sets = build_datasets(manifest, out / "datasets", n_train=d["n_train"], n_ood=d["n_ood"],
                          generated_per_k=d["generated_per_k"], topks=d["topks"], clip_s=d["clip_s"], seed=d["seed"],
                          lm=lm, progress=progress)
    timings["datasets_s"] = time.perf_counter() - t0
    log(f"[2/4] data sets in {out / 'datasets'} ({timings['datasets_s']:.0f} s)")

    t0 = time.perf_counter()
    probe = dict(s["probe"])
    probe["datasets"] = [{"name": name, "path": str(path)} for name, path in sets.items()]
    config = ProbeConfig.from_dict(probe, source="demo settings")
    run_dir = out / "run"
    run_probe(config, run_dir, lms={"builtin": lm}, progress=progress)
    timings["probe_s"] = time.perf_counter() - t0
    log(f"[3/4] probe run: {run_dir} ({timings['probe_s']:.0f} s)")

    t0 = time.perf_counter()
    report = write_report(run_dir, out / "report.html")
    timings["report_s"] = time.perf_counter() - t0
    log(f"[4/4] report ({timings['report_s']:.0f} s)")
    from musicjudge.io import atomic_write_json

    atomic_write_json(out / "demo_timings.json", {k: round(v, 1) for k, v in timings.items()})
    return report
