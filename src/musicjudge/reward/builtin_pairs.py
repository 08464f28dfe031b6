"""Offline preference pairs with known truth, made from the built-in corpus.

Musicality pairs: a clean rendering of a piece vs. a degraded one (the instruction describes the
piece truthfully, so only musicality differs):
  ``wrong_notes`` (pitches moved off the key), ``timing_jitter`` (onsets shifted at random),
  ``shuffled_bars`` (bar order permuted), ``codec`` (band-limiting, coarse quantisation, frame
  drop-outs), ``noise`` (white noise at 3-12 dB SNR).
Alignment pairs: audio that matches the instruction vs. audio with one mismatched attribute:
  ``instrument`` (another ensemble), ``tempo`` (x0.6 / x1.6), ``key`` (transposed 3-6 semitones),
  ``mode`` (parallel major/minor), ``style`` (another collection's piece with this piece's
  instrument and tempo), ``reference`` (only with a reference clip: another piece than the
  reference's).
Instructions come in four kinds, balanced: text, text+lyrics (chorale lyrics), text+ref, and all
three. Half of the alignment pairs without a reference are "converse": the text describes the
altered clip (e.g. the other instrument), which is then the better one, so "the unaltered
rendering wins" is no shortcut. An alignment pair's text always tells its two clips apart: when
the drawn template would describe both the same (a "slow" piece slowed further is still "slow"),
the next template that does not is used (one stating the BPM), and a pair that no template can
tell apart (a key change of a piece whose key is unknown) is skipped and recorded in
``failures.jsonl``. The reference clip is the next excerpt of the same piece (or, for short pieces, another
piece of the same collection rendered the same way). Each pair is labelled only in the dimension
it tests; A/B order is random.

Splits follow the corpus (by piece): ``train`` or ``heldout``. The build is deterministic given
``(split, n, seed, clip_s)``, cached (the same call returns the existing manifest at once) and
resumable (rendered pairs are appended as they are made).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musicjudge.errors import ConfigError, ManifestError
from musicjudge.io import append_jsonl, atomic_write_json, cache_dir, read_jsonl, stable_hash
from musicjudge.reward.data import INSTRUCTION_KINDS, Instruction, PreferencePair, pair_from_row, pair_to_row, write_pairs

# 2: an alignment pair's text always tells its two clips apart (see _telling_template)
BUILTIN_PAIRS_VERSION = 2
MUSICALITY_TYPES = ("wrong_notes", "timing_jitter", "shuffled_bars", "codec", "noise")
ALIGNMENT_TYPES = ("instrument", "tempo", "key", "mode", "style", "reference")
SPLITS = {"train": "train", "heldout": "heldout", "test": "heldout"}

# Words used in instruction texts.
_COLLECTION_WORDS = {
    "bach-chorales": "chorale", "palestrina": "Renaissance motet", "monteverdi": "madrigal",
    "trecento": "medieval song", "folk": "folk fiddle tune", "classical": "classical piano piece",
}
_TEMPLATES = (
    "A {tempo_word} {work} in {key} {mode} for {instrument}, in the style of {composer}.",
    "{Instrument} playing a {work} by {composer}; {key} {mode}, around {bpm} BPM.",
    "Music for {instrument}: a {composer}-style {work}, {tempo_word} tempo, in {key} {mode}.",
    "{tempo_word_cap} {work} ({composer}) performed by {instrument} in {key} {mode}, about {bpm} beats per minute.",
)


def _tempo_word(bpm: float) -> str:
    return "slow" if bpm < 80 else ("moderate" if bpm < 115 else "fast")


def describe(row: dict[str, Any], template: int = 0) -> str:
    """Instruction text that truthfully describes a corpus row."""
    bpm = float(row.get("tempo_bpm") or 100)
    instrument = str(row.get("instrument") or "ensemble")
    values = {
        "tempo_word": _tempo_word(bpm), "tempo_word_cap": _tempo_word(bpm).capitalize(),
        "work": _COLLECTION_WORDS.get(str(row.get("collection")), "piece"),
        "key": row.get("key") or "an unstated key", "mode": row.get("mode") or "",
        "instrument": instrument, "Instrument": instrument[:1].upper() + instrument[1:],
        "composer": row.get("composer") or "an unknown composer", "bpm": int(round(bpm)),
    }
    return " ".join(_TEMPLATES[template % len(_TEMPLATES)].format(**values).split()).replace(" ,", ",").replace(" .", ".")


# ------------------------------------------------------------------------------------------
# MIDI / audio edits
# ------------------------------------------------------------------------------------------


def _telling_template(row: dict[str, Any], attrs: dict[str, Any], template: int) -> int | None:
    """The first template, from ``template`` on, whose text differs between the piece and its
    variant (``attrs`` = the variant's own attributes); None when every template says the same.
    Without this, e.g. a "slow" 70 BPM piece and its x0.6 variant (42 BPM, also "slow") get one
    text, and the pair has no right answer (in a converse pair the label would even flip)."""
    if not attrs:
        return None
    for k in range(len(_TEMPLATES)):
        t = (template + k) % len(_TEMPLATES)
        if describe(row, t) != describe({**row, **attrs}, t):
            return t
    return None


def midi_window(pm, start_s: float, end_s: float):
    """Notes of ``pm`` starting in [start_s, end_s), shifted to start at 0 and cut at the end."""
    out = copy.deepcopy(pm)
    length = end_s - start_s
    for inst in out.instruments:
        kept = []
        for note in inst.notes:
            if start_s <= note.start < end_s:
                note.start -= start_s
                note.end = min(note.end - start_s, length)
                kept.append(note)
        inst.notes = kept
        inst.control_changes, inst.pitch_bends = [], []
    return out


def _has_notes(pm) -> bool:
    return any(inst.notes for inst in pm.instruments)


def wrong_notes(pm, rng: np.random.Generator, severity: float):
    out = copy.deepcopy(pm)
    for inst in out.instruments:
        for note in inst.notes:
            if rng.random() < 0.15 + 0.25 * severity:
                note.pitch = int(np.clip(note.pitch + rng.choice([-2, -1, 1, 2, 6, -6]), 0, 127))
    return out


def timing_jitter(pm, rng: np.random.Generator, severity: float):
    out = copy.deepcopy(pm)
    sd = 0.04 + 0.08 * severity
    for inst in out.instruments:
        for note in inst.notes:
            dur = note.end - note.start
            note.start = max(0.0, note.start + float(rng.normal(0, sd)))
            note.end = note.start + dur
    return out


def shuffled_bars(pm, rng: np.random.Generator, bar_s: float, clip_s: float):
    """Permute bar-long segments of the clip (every segment moves when there are at least two)."""
    n_bars = max(2, int(clip_s // bar_s))
    perm = rng.permutation(n_bars)
    while n_bars > 1 and np.any(perm == np.arange(n_bars)):
        perm = rng.permutation(n_bars)
    out = copy.deepcopy(pm)
    for inst in out.instruments:
        for note in inst.notes:
            bar = min(int(note.start // bar_s), n_bars - 1)
            shift = (np.flatnonzero(perm == bar)[0] - bar) * bar_s
            note.start += shift
            note.end += shift
    return out


def change_tempo(pm, factor: float):
    """Play ``factor`` times faster (factor > 1) or slower."""
    out = copy.deepcopy(pm)
    for inst in out.instruments:
        for note in inst.notes:
            note.start /= factor
            note.end /= factor
    return out


def transpose(pm, semitones: int):
    out = copy.deepcopy(pm)
    for inst in out.instruments:
        if not inst.is_drum:
            for note in inst.notes:
                note.pitch = int(np.clip(note.pitch + semitones, 0, 127))
    return out


_PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def _tonic_pc(key: str | None) -> int | None:
    if not key:
        return None
    pc = _PITCH_CLASSES.get(key[0].upper())
    if pc is None:
        return None
    return (pc + key[1:].count("#") - key[1:].count("-") - key[1:].count("b")) % 12


def flip_mode(pm, key: str | None, mode: str | None):
    """Parallel major <-> minor: move the 3rd, 6th and 7th degrees by a semitone."""
    tonic = _tonic_pc(key)
    if tonic is None or mode not in ("major", "minor"):
        return None
    degrees, step = ({4, 9, 11}, -1) if mode == "major" else ({3, 8, 10}, +1)
    out = copy.deepcopy(pm)
    for inst in out.instruments:
        for note in inst.notes:
            if (note.pitch - tonic) % 12 in degrees:
                note.pitch = int(np.clip(note.pitch + step, 0, 127))
    return out


def set_programs(pm, programs: list[int]):
    out = copy.deepcopy(pm)
    for i, inst in enumerate(out.instruments):
        inst.program = int(programs[i % len(programs)])
    return out


def codec_artifacts(wave: np.ndarray, sr: int, rng: np.random.Generator, severity: float) -> np.ndarray:
    """Band-limit (resample through 4-8 kHz), 5-7 bit mu-law quantisation and 20 ms drop-outs."""
    import soxr

    low_sr = int(8000 - 4000 * severity)
    x = soxr.resample(soxr.resample(wave, sr, low_sr), low_sr, sr)[: len(wave)]
    x = np.pad(x, (0, len(wave) - len(x)))
    bits = int(round(7 - 2 * severity))
    mu = 2 ** bits - 1
    peak = np.abs(x).max() + 1e-9
    y = np.sign(x / peak) * np.log1p(mu * np.abs(x / peak)) / np.log1p(mu)
    y = np.round(y * mu / 2) / (mu / 2)
    x = np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu * peak
    frame = int(0.02 * sr)
    for start in range(0, len(x) - frame, frame):
        if rng.random() < 0.02 + 0.06 * severity:
            x[start:start + frame] = 0.0
    return x.astype(np.float32)


def add_noise(wave: np.ndarray, rng: np.random.Generator, severity: float) -> np.ndarray:
    snr_db = 12.0 - 9.0 * severity
    power = float(np.mean(wave.astype(np.float64) ** 2)) + 1e-12
    noise = rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), len(wave))
    out = wave + noise
    peak = np.abs(out).max()
    return (out / peak * 0.89 if peak > 0.89 else out).astype(np.float32)


# ------------------------------------------------------------------------------------------
# Planning and building
# ------------------------------------------------------------------------------------------


@dataclass
class PairPlan:
    index: int
    piece: str
    dimension: str  # which dimension the pair tests
    kind: str  # instruction kind
    pair_type: str
    other_piece: str | None
    severity: float
    template: int
    flip: bool  # True: the better clip is B
    converse: bool = False  # alignment only: the instruction describes the variant, which is then the better clip


def _plan(rows: list[dict], n: int, seed: int, converse: bool = True) -> list[PairPlan]:
    rng = np.random.default_rng(seed)
    with_lyrics = [r for r in rows if r.get("lyrics")]
    kinds = [k for k in INSTRUCTION_KINDS if "lyrics" not in k or with_lyrics]
    by_collection: dict[str, list[dict]] = {}
    for r in rows:
        by_collection.setdefault(r.get("collection") or "?", []).append(r)
    plans = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        pool = with_lyrics if "lyrics" in kind else rows
        row = pool[int(rng.integers(len(pool)))]
        dimension = "musicality" if (i // len(kinds)) % 2 == 0 else "alignment"
        if dimension == "musicality":
            pair_type = MUSICALITY_TYPES[int(rng.integers(len(MUSICALITY_TYPES)))]
        else:
            options = [t for t in ALIGNMENT_TYPES if t != "reference" or "ref" in kind]
            if not row.get("mode") or _tonic_pc(row.get("key")) is None:
                options = [t for t in options if t != "mode"]
            if len(by_collection) < 2:
                options = [t for t in options if t != "style"]
            pair_type = options[int(rng.integers(len(options)))]
        other = None
        if pair_type in ("style", "reference"):
            others = [r for r in rows if r.get("collection") != row.get("collection")] or [r for r in rows if r["id"] != row["id"]]
            other = others[int(rng.integers(len(others)))]["id"] if others else None
        plan = PairPlan(i, row["id"], dimension, kind, pair_type, other, float(rng.uniform(0.5, 1.0)),
                        int(rng.integers(len(_TEMPLATES))), bool(rng.integers(2)))
        # Half of the text-only-condition alignment pairs are "converse": the text describes the
        # altered clip. Without them "the unaltered rendering wins" would be a shortcut that never
        # reads the instruction. (Own generator: the other draws stay as in version 1.)
        if converse and dimension == "alignment" and "ref" not in kind and pair_type != "reference":
            plan.converse = bool(np.random.default_rng([seed, 7, i]).integers(2))
        plans.append(plan)
    return plans


class _Renderer:
    """Renders excerpts of corpus pieces with caching of parsed scores and clean renders."""

    def __init__(self, rows: dict[str, dict], out_dir: Path, clip_s: float, sample_rate: int) -> None:
        self.rows = rows
        self.out_dir = out_dir
        self.clip_s = clip_s
        self.sr = sample_rate
        self._midi: dict[tuple[str, str], Any] = {}
        self._bar: dict[str, float] = {}

    def midi(self, piece: str, ensemble: str | None = None, tempo_factor: float = 1.0):
        """PrettyMIDI of the first 2*clip_s seconds of ``piece`` (its own or another ensemble)."""
        from musicjudge.data.corpus import ENSEMBLES, parse_score
        from musicjudge.data.render import score_to_midi

        row = self.rows[piece]
        key = (piece, ensemble or row["instrument"])
        if key not in self._midi:
            score = parse_score(row["source"])
            programs = ENSEMBLES.get(key[1]) or row.get("programs") or [0]
            self._midi[key] = score_to_midi(score, programs, float(row["tempo_bpm"]), max_duration_s=2 * self.clip_s + 1)
            try:
                ts = score.recurse().getElementsByClass("TimeSignature").first()
                bar_ql = float(ts.barDuration.quarterLength) if ts is not None else 4.0
            except Exception:  # noqa: BLE001 - odd scores: fall back to 4/4
                bar_ql = 4.0
            self._bar[piece] = bar_ql * 60.0 / float(row["tempo_bpm"])
        pm = self._midi[key]
        return change_tempo(pm, tempo_factor) if tempo_factor != 1.0 else pm

    def bar_seconds(self, piece: str) -> float:
        self.midi(piece)
        return self._bar[piece]

    def render(self, pm, start_s: float = 0.0) -> np.ndarray:
        from musicjudge.data.render import render_midi

        window = midi_window(pm, start_s, start_s + self.clip_s)
        if not _has_notes(window):
            raise ValueError("no notes in the excerpt")
        wave = render_midi(window, self.sr)[: int(self.clip_s * self.sr)]
        return wave.astype(np.float32)

    def write(self, rel: str, wave: np.ndarray) -> str:
        import soundfile as sf

        path = self.out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            tmp = path.with_name(f".{path.name}.tmp.flac")
            sf.write(tmp, wave, self.sr, subtype="PCM_16")
            tmp.replace(path)
        return str(path)

    def clean(self, piece: str) -> str:
        rel = f"audio/clean/{piece}.flac"
        if (self.out_dir / rel).exists():
            return str(self.out_dir / rel)
        return self.write(rel, self.render(self.midi(piece)))

    def reference(self, piece: str, rng_seed: int) -> str:
        """Next excerpt of the same piece, else a same-collection piece rendered the same way."""
        rel = f"audio/ref/{piece}.flac"
        if (self.out_dir / rel).exists():
            return str(self.out_dir / rel)
        row = self.rows[piece]
        if float(row.get("duration_s", 0)) >= 1.5 * self.clip_s:
            try:
                return self.write(rel, self.render(self.midi(piece), start_s=self.clip_s))
            except ValueError:
                pass
        same = sorted(r for r, v in self.rows.items() if v.get("collection") == row.get("collection") and r != piece)
        if not same:
            same = sorted(r for r in self.rows if r != piece)
        other = same[rng_seed % len(same)]
        factor = float(row["tempo_bpm"]) / float(self.rows[other]["tempo_bpm"])
        return self.write(rel, self.render(self.midi(other, row["instrument"], factor)))


_KEY_NAMES = ("C", "C#", "D", "E-", "E", "F", "F#", "G", "A-", "A", "B-", "B")


def _variant(renderer: _Renderer, plan: PairPlan, rng: np.random.Generator) -> tuple[str, str, dict[str, Any]]:
    """(path of the worse clip, system name, attributes the clip really has where they differ
    from the piece's). Rendering is skipped when the file exists (resumed or re-labelled builds);
    the random choices are drawn first, so they are the same either way."""
    from musicjudge.data.corpus import ENSEMBLES

    row = renderer.rows[plan.piece]
    t = plan.pair_type
    rel = f"audio/variant/{plan.index:06d}_{t}.flac"
    exists = (renderer.out_dir / rel).exists()
    pm = (lambda: renderer.midi(plan.piece))  # noqa: E731 - parsed only when rendering is needed
    attrs: dict[str, Any] = {}
    make = None
    if t == "wrong_notes":
        make = lambda: renderer.render(wrong_notes(pm(), rng, plan.severity))  # noqa: E731
    elif t == "timing_jitter":
        make = lambda: renderer.render(timing_jitter(pm(), rng, plan.severity))  # noqa: E731
    elif t == "shuffled_bars":
        make = lambda: renderer.render(shuffled_bars(pm(), rng, renderer.bar_seconds(plan.piece), renderer.clip_s))  # noqa: E731
    elif t == "codec":
        make = lambda: codec_artifacts(renderer.render(pm()), renderer.sr, rng, plan.severity)  # noqa: E731
    elif t == "noise":
        make = lambda: add_noise(renderer.render(pm()), rng, plan.severity)  # noqa: E731
    elif t == "instrument":
        choices = sorted(e for e, progs in ENSEMBLES.items() if e not in (row["instrument"], "piano")
                         and not set(progs) & set(ENSEMBLES.get(row["instrument"], [])))
        ensemble = choices[int(rng.integers(len(choices)))]
        attrs = {"instrument": ensemble}
        make = lambda: renderer.render(set_programs(pm(), ENSEMBLES[ensemble]))  # noqa: E731
    elif t == "tempo":
        factor = float(rng.choice([0.6, 1.6]))
        attrs = {"tempo_bpm": round(float(row["tempo_bpm"]) * factor, 1)}
        make = lambda: renderer.render(change_tempo(pm(), factor))  # noqa: E731
    elif t == "key":
        shift = int(rng.choice([-6, -5, -4, -3, 3, 4, 5, 6]))
        tonic = _tonic_pc(row.get("key"))
        attrs = {"key": _KEY_NAMES[(tonic + shift) % 12]} if tonic is not None else {}
        make = lambda: renderer.render(transpose(pm(), shift))  # noqa: E731
    elif t == "mode":
        if _tonic_pc(row.get("key")) is None or row.get("mode") not in ("major", "minor"):
            raise ValueError("key/mode unknown")
        attrs = {"mode": "minor" if row["mode"] == "major" else "major"}
        make = lambda: renderer.render(flip_mode(pm(), row.get("key"), row.get("mode")))  # noqa: E731
    elif t in ("style", "reference"):
        if plan.other_piece is None:
            raise ValueError("no other piece")
        other = renderer.rows[plan.other_piece]
        factor = float(row["tempo_bpm"]) / float(other["tempo_bpm"])
        if t == "style":
            attrs = {k: other.get(k) for k in ("collection", "composer", "key", "mode")}
        make = lambda: renderer.render(renderer.midi(plan.other_piece, row["instrument"] if t == "style" else None,  # noqa: E731
                                                     factor if t == "style" else 1.0))
    else:  # pragma: no cover - plans only use known types
        raise ValueError(f"unknown pair type {t}")
    path = str(renderer.out_dir / rel) if exists else renderer.write(rel, make())
    return path, t, attrs


def _corpus_rows(corpus_manifest: str | Path | None, split: str, corpus_limit: int | None, clip_s: float) -> list[dict]:
    from musicjudge.data.corpus import build_corpus, read_corpus

    manifest = Path(corpus_manifest) if corpus_manifest else build_corpus(limit=corpus_limit, progress=True)
    rows = read_corpus(manifest, split=SPLITS[split])
    # Pieces shorter than 60 % of a clip give mostly silence; keep the rest.
    rows = [r for r in rows if float(r["duration_s"]) >= 0.6 * clip_s and r.get("source") and r.get("tempo_bpm")]
    if len(rows) < 2:
        raise ManifestError(f"{manifest}: only {len(rows)} usable {split} pieces of >= {0.6 * clip_s:g} s; build a bigger corpus (musicjudge data corpus --limit N)")
    return sorted(rows, key=lambda r: r["id"])


def build_builtin_pairs(out_dir: str | Path | None = None, split: str = "train", n: int = 1000, seed: int = 0, *,
                        clip_s: float = 10.0, sample_rate: int = 32000, corpus_manifest: str | Path | None = None,
                        corpus_limit: int | None = None, converse: bool = True, progress: bool = True) -> Path:
    """Build (or reuse) ``n`` pairs of the built-in world for ``split`` ("train" | "heldout");
    returns the path of the pairs manifest (JSONL in the reward schema)."""
    if split not in SPLITS:
        raise ConfigError(f"split={split!r}: use 'train' or 'heldout'")
    if n <= 0:
        raise ConfigError(f"n={n}: must be a positive number of pairs")
    rows = _corpus_rows(corpus_manifest, split, corpus_limit, clip_s)
    config = {"version": BUILTIN_PAIRS_VERSION, "split": SPLITS[split], "n": n, "seed": seed, "clip_s": clip_s,
              "sample_rate": sample_rate, "pieces": stable_hash([r["id"] for r in rows]), "converse": converse}
    out = Path(out_dir) if out_dir is not None else cache_dir("reward_pairs", f"{SPLITS[split]}-{stable_hash(config)}")
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "pairs.jsonl"
    cfg_path = out / "build_config.json"
    if cfg_path.exists():
        import json

        old = json.loads(cfg_path.read_text())
        if old != config:
            raise ConfigError(f"{cfg_path}: folder holds pairs built with {old}; use another --out folder")
        if manifest.exists():
            return manifest
    else:
        atomic_write_json(cfg_path, config)
    partial = out / "pairs.partial.jsonl"
    failures = out / "failures.jsonl"
    done = {r["id"] for r in read_jsonl(partial)} if partial.exists() else set()
    failed = {r["id"] for r in read_jsonl(failures)} if failures.exists() else set()
    by_id = {r["id"]: r for r in rows}
    renderer = _Renderer(by_id, out, clip_s, sample_rate)
    plans = _plan(rows, n, seed, converse)
    todo = [p for p in plans if f"builtin-{SPLITS[split]}-{p.index:06d}" not in done | failed]
    iterator: Any = todo
    if progress and todo:
        from tqdm.auto import tqdm

        iterator = tqdm(todo, desc=f"builtin pairs ({split})", unit="pair")
    for plan in iterator:
        pair_id = f"builtin-{SPLITS[split]}-{plan.index:06d}"
        rng = np.random.default_rng([seed, plan.index])
        row = by_id[plan.piece]
        try:
            good = renderer.clean(plan.piece)
            altered, system, attrs = _variant(renderer, plan, rng)
            ref = renderer.reference(plan.piece, plan.index) if "ref" in plan.kind else None
        except Exception as e:  # noqa: BLE001 - one unrenderable piece must not stop the build
            append_jsonl(failures, {"id": pair_id, "piece": plan.piece, "type": plan.pair_type, "error": f"{type(e).__name__}: {e}"[:300]})
            continue
        template = plan.template
        if plan.dimension == "alignment" and plan.pair_type != "reference":  # a reference pair's evidence is the reference
            template = _telling_template(row, attrs, plan.template)
            if template is None:
                append_jsonl(failures, {"id": pair_id, "piece": plan.piece, "type": plan.pair_type,
                                        "error": f"no instruction text tells the clean and the {plan.pair_type} clip apart "
                                                 f"(piece attributes {({k: row.get(k) for k in attrs} or 'unknown')}); pair skipped"})
                continue
        converse_pair = plan.converse and bool(attrs)
        described = {**row, **attrs} if converse_pair else row
        instruction = Instruction(text=describe(described, template), lyrics=row.get("lyrics") if "lyrics" in plan.kind else None, ref_audio=ref)
        better, worse = (altered, good) if converse_pair else (good, altered)
        better_system, worse_system = (system, "clean") if converse_pair else ("clean", system)
        a, b = (worse, better) if plan.flip else (better, worse)
        pair = PreferencePair(
            id=pair_id, instruction=instruction, audio_a=a, audio_b=b,
            preference={plan.dimension: "B" if plan.flip else "A"}, annotator="builtin-truth", source="musicjudge-builtin",
            system_a=worse_system if plan.flip else better_system, system_b=better_system if plan.flip else worse_system,
            metadata={"piece": plan.piece, "pair_type": plan.pair_type, "dimension": plan.dimension, "severity": round(plan.severity, 3),
                      "collection": row.get("collection"), "other_piece": plan.other_piece, "split": SPLITS[split],
                      "converse": converse_pair},
        )
        append_jsonl(partial, pair_to_row(pair, out.resolve()))
    pairs = [pair_from_row(r, root=out.resolve(), where=f"{partial}: row {i}") for i, r in enumerate(read_jsonl(partial), 1)] if partial.exists() else []
    if not pairs:
        raise ManifestError(f"{out}: no pair could be rendered (see {failures}); check the corpus")
    pairs.sort(key=lambda p: p.id)
    write_pairs(manifest, pairs)
    return manifest
