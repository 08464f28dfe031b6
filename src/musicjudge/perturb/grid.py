"""Grid of perturbations for a probe sweep (defaults follow the noise-injection paper)."""

from __future__ import annotations

from typing import Iterable, Sequence

from musicjudge.audio.frames import DEFAULT_FRAME_RATE
from musicjudge.errors import ConfigError
from musicjudge.perturb.specs import NoiseSpec, Perturbation, ShuffleSpec

PAPER_NOISE_LENGTHS_FRAMES = (5, 10, 50, 100, 150, 200)
PAPER_SHUFFLE_BLOCKS_FRAMES = (1, 2, 5, 10, 35, 50, 70, 100, 150, 200)
PAPER_ONSET_S = 5.0
PAPER_LEVEL_DBFS = -20.0


def build_grid(
    colours: Iterable[str] = ("white",),
    levels: Iterable[float] = (PAPER_LEVEL_DBFS,),
    onsets: Iterable[float] | None = None,
    lengths: Iterable[float] = PAPER_NOISE_LENGTHS_FRAMES,
    modes: Iterable[str] = ("replace",),
    shuffle_kinds: Iterable[str] = ("swap_adjacent",),
    shuffle_blocks: Iterable[int] = PAPER_SHUFFLE_BLOCKS_FRAMES,
    unit: str = "frames",
    frame_rate: float = DEFAULT_FRAME_RATE,
    *,
    level_ref: str = "dbfs",
    shuffle_range_end: float | None = None,
    shuffle_pairs: int | None = 1,
) -> list[Perturbation]:
    """Every combination of noise colour x level x onset x length x mode, then every shuffle
    kind x block x onset, deduplicated by ``key`` in a stable order.

    ``onsets``/``lengths``/``shuffle_range_end`` are in ``unit``; ``shuffle_blocks`` are always
    frames. ``onsets=None`` means the paper's 5.0 s (250 frames at 50 fps). Silence ignores
    colours and levels. Pass ``shuffle_kinds=()`` for noise only or ``modes=()`` for shuffles only."""
    if unit not in ("s", "frames"):
        raise ConfigError(f"unit={unit!r}: expected 's' or 'frames'")
    if onsets is None:
        onsets = (PAPER_ONSET_S if unit == "s" else round(PAPER_ONSET_S * frame_rate),)
    colours, levels, onsets, lengths = list(colours), list(levels), list(onsets), list(lengths)
    modes, shuffle_kinds, shuffle_blocks = list(modes), list(shuffle_kinds), list(shuffle_blocks)
    for name, values, needed in (
        ("onsets", onsets, True),
        ("colours", colours, any(m != "silence" for m in modes)),
        ("levels", levels, any(m != "silence" for m in modes)),
        ("lengths", lengths, bool(modes)),
        ("shuffle_blocks", shuffle_blocks, bool(shuffle_kinds)),
    ):
        if needed and not values:
            raise ConfigError(f"{name} is empty; give at least one value")
    specs: dict[str, Perturbation] = {}

    def add(spec: Perturbation) -> None:
        specs.setdefault(spec.key, spec)

    for mode in modes:
        for onset in onsets:
            for length in lengths:
                if mode == "silence":
                    add(NoiseSpec(mode=mode, onset=onset, length=length, unit=unit, frame_rate=frame_rate))
                    continue
                for colour in colours:
                    for level in levels:
                        add(
                            NoiseSpec(
                                colour=colour, mode=mode, onset=onset, length=length, unit=unit,
                                level_db=level, level_ref=level_ref, frame_rate=frame_rate,
                            )
                        )
    for kind in shuffle_kinds:
        for onset in onsets:
            for block in shuffle_blocks:
                add(
                    ShuffleSpec(
                        kind=kind, block=block, onset=onset, unit=unit, frame_rate=frame_rate,
                        range_end=None if kind == "swap_adjacent" else shuffle_range_end,
                        pairs=shuffle_pairs,
                    )
                )
    return list(specs.values())


def grid_keys(specs: Sequence[Perturbation]) -> list[str]:
    return [s.key for s in specs]
