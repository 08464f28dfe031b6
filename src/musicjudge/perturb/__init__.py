"""musicjudge.perturb: deterministic, serialisable audio perturbations (coloured noise,
silence, frame-aligned segment shuffles) and the probe grid builder."""

from musicjudge.perturb.files import perturb_file
from musicjudge.perturb.grid import (
    PAPER_LEVEL_DBFS,
    PAPER_NOISE_LENGTHS_FRAMES,
    PAPER_ONSET_S,
    PAPER_SHUFFLE_BLOCKS_FRAMES,
    build_grid,
    grid_keys,
)
from musicjudge.perturb.noise import NOISE_COLOURS, coloured_noise
from musicjudge.perturb.specs import (
    LEVEL_REFS,
    NOISE_MODES,
    SHUFFLE_KINDS,
    NoiseSpec,
    Perturbation,
    ShuffleSpec,
    affected_span,
    apply_perturbation,
    perturbation_from_dict,
)

__all__ = [
    "LEVEL_REFS",
    "NOISE_COLOURS",
    "NOISE_MODES",
    "PAPER_LEVEL_DBFS",
    "PAPER_NOISE_LENGTHS_FRAMES",
    "PAPER_ONSET_S",
    "PAPER_SHUFFLE_BLOCKS_FRAMES",
    "SHUFFLE_KINDS",
    "NoiseSpec",
    "Perturbation",
    "ShuffleSpec",
    "affected_span",
    "apply_perturbation",
    "build_grid",
    "coloured_noise",
    "grid_keys",
    "perturb_file",
    "perturbation_from_dict",
]
