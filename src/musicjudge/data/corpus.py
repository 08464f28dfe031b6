"""The built-in corpus: real scores from music21's corpus rendered to 32 kHz mono audio.

Collections (all shipped with music21, so nothing is downloaded):

- ``bach-chorales``: the 371 Bach chorales (Riemenschneider numbering), with their German lyrics;
- ``palestrina``, ``monteverdi``, ``trecento``: Renaissance / medieval vocal polyphony;
- ``folk``: fiddle tunes from Ryan's Mammoth Collection (ABC);
- ``classical``: keyboard and chamber pieces by other composers, rendered on piano only and kept
  wholly in the held-out split, so they are out-of-distribution in style *and* timbre.

Each piece gets a deterministic GM instrumentation and tempo from ``(seed, id)``; the training
collections never use the piano, which is reserved for the out-of-distribution set.
Splits are by piece. The build appends to a JSONL manifest as it goes (an interrupted build
resumes where it stopped) and records pieces that fail to parse in ``failures.jsonl``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from musicjudge.data.render import GM_NAMES, SAMPLE_RATE, render_midi, render_score, score_tempo_bpm, score_to_midi
from musicjudge.errors import ConfigError, ManifestError
from musicjudge.io import append_jsonl, atomic_write_json, cache_dir, read_jsonl, stable_hash

__all__ = ["build_corpus", "render_score", "render_midi", "score_to_midi", "read_corpus", "CORPUS_VERSION",
           "ENSEMBLES", "corpus_dir"]

CORPUS_VERSION = 1

# name -> GM programs per voice (cycled over parts, top voice first).
ENSEMBLES: dict[str, list[int]] = {
    "organ": [19],
    "strings": [40, 40, 41, 42],
    "string ensemble": [48],
    "choir": [52],
    "winds": [73, 68, 71, 70],
    "brass": [56, 60, 57, 58],
    "recorders": [74],
    "harpsichord": [6],
    "violin": [40],
    "flute": [73],
    "accordion": [21],
    "guitar": [24],
    "whistle": [78],
    "piano": [0],
}


@dataclass(frozen=True)
class Collection:
    name: str
    composer: str | None  # None: read from the score metadata
    ensembles: tuple[str, ...]
    default_tempo_bpm: float
    heldout_only: bool
    list_paths: Callable[[], list[str]]


def _corpus_paths(prefix: str, limit: int) -> Callable[[], list[str]]:
    def inner() -> list[str]:
        from music21 import corpus

        root = "/corpus/"
        paths = sorted(str(p).split(root, 1)[1] for p in corpus.getPaths() if f"{root}{prefix}/" in str(p))
        return _scores_only(paths)[:limit]

    return inner


SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc", ".mid", ".midi")


def _scores_only(paths: list[str]) -> list[str]:
    """Keep notated scores (drop Roman-numeral analyses etc.) and one file per stem."""
    seen: set[str] = set()
    out = []
    for p in paths:
        stem = p.rsplit(".", 1)[0]
        if p.lower().endswith(SCORE_SUFFIXES) and stem not in seen:
            seen.add(stem)
            out.append(p)
    return out


def _chorale_paths() -> list[str]:
    from music21 import corpus

    return list(corpus.chorales.Iterator(returnType="filename"))


def _classical_paths() -> list[str]:
    from music21 import corpus

    wanted = {  # composer folder -> number of files (keeps the OOD set varied but small; skips the
        # whole-quartet files such as Beethoven op. 132/133 that take minutes to parse)
        "mozart": 6, "haydn": 4, "beethoven/opus18": 4, "schumann_robert": 5, "schumann_clara": 3,
        "chopin": 1, "joplin": 1, "schubert": 1, "handel": 1, "corelli": 1, "cpebach": 1, "beach": 1,
        "weber": 1, "verdi": 1, "liliuokalani": 1, "johnson_j_r": 1,
    }
    out: list[str] = []
    all_paths = _scores_only(sorted(str(p).split("/corpus/", 1)[1] for p in corpus.getPaths()))
    for folder, n in wanted.items():
        out += [p for p in all_paths if p.startswith(folder)][:n]
    return out


COLLECTIONS: tuple[Collection, ...] = (
    Collection("bach-chorales", "J. S. Bach", ("organ", "strings", "choir", "winds", "brass"), 80.0, False, _chorale_paths),
    Collection("palestrina", "G. P. da Palestrina", ("choir", "organ", "string ensemble", "recorders"), 110.0, False,
               _corpus_paths("palestrina", 60)),
    Collection("monteverdi", "C. Monteverdi", ("string ensemble", "choir", "harpsichord", "strings"), 100.0, False,
               _corpus_paths("monteverdi", 30)),
    Collection("trecento", None, ("recorders", "harpsichord", "string ensemble", "winds"), 100.0, False,
               _corpus_paths("trecento", 20)),
    Collection("folk", "traditional", ("violin", "flute", "accordion", "guitar", "whistle"), 110.0, False,
               _corpus_paths("ryansMammoth", 120)),
    Collection("classical", None, ("piano",), 100.0, True, _classical_paths),
)
# Relative tempo variation applied per piece (deterministic), so tempo is a usable attribute.
TEMPO_FACTORS = (0.8, 0.9, 1.0, 1.1, 1.25)


@dataclass(frozen=True)
class PieceRef:
    id: str
    collection: Collection
    source: str  # music21 corpus path


def _piece_id(collection: str, source: str) -> str:
    stem = source.rsplit(".", 1)[0] if source.lower().endswith(SCORE_SUFFIXES) else source
    return f"{collection}--{stem.replace('/', '_').replace(' ', '_')}"


def iter_pieces() -> Iterator[PieceRef]:
    """All pieces, interleaved round-robin across collections so a ``limit`` covers every style."""
    lists = [[PieceRef(_piece_id(c.name, p), c, p) for p in dict.fromkeys(c.list_paths())] for c in COLLECTIONS]
    for i in range(max(len(lst) for lst in lists)):
        for lst in lists:
            if i < len(lst):
                yield lst[i]


def _unit(seed: int, *parts: str) -> float:
    """Deterministic number in [0, 1) from a seed and strings (stable across processes)."""
    h = hashlib.sha256("\x1f".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def assign_split(piece: PieceRef, seed: int, heldout_fraction: float) -> str:
    if piece.collection.heldout_only:
        return "heldout"
    return "heldout" if _unit(seed, "split", piece.id) < heldout_fraction else "train"


def assign_rendering(piece: PieceRef, seed: int, score_bpm: float | None) -> tuple[str, list[int], float]:
    ens = piece.collection.ensembles
    name = ens[int(_unit(seed, "ensemble", piece.id) * len(ens))]
    factor = TEMPO_FACTORS[int(_unit(seed, "tempo", piece.id) * len(TEMPO_FACTORS))]
    base = score_bpm or piece.collection.default_tempo_bpm
    return name, list(ENSEMBLES[name]), round(base * factor, 1)


def corpus_dir(sample_rate: int = SAMPLE_RATE, max_duration_s: float = 30.0, seed: int = 0,
               heldout_fraction: float = 0.15) -> Path:
    """Cache folder of a corpus configuration (limit is not part of it: builds extend each other)."""
    key = stable_hash({"v": CORPUS_VERSION, "sr": sample_rate, "max": max_duration_s, "seed": seed,
                       "heldout": heldout_fraction})
    return cache_dir("corpus", f"v{CORPUS_VERSION}-{key}")


def _score_metadata(score, piece: PieceRef) -> dict:
    md = score.metadata
    title = (md.title if md is not None else None) or (md.movementName if md is not None else None)
    composer = piece.collection.composer or (md.composer if md is not None else None)
    if not composer:
        composer = piece.source.split("/", 1)[0]
    try:
        k = score.analyze("key")
        key_name, mode = k.tonic.name, k.mode
    except Exception:  # noqa: BLE001 - key analysis fails on odd scores; metadata stays usable
        key_name, mode = None, None
    stem = piece.source.rsplit("/", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if stem.lower().endswith(SCORE_SUFFIXES) else stem
    if not title or title.lower().endswith(SCORE_SUFFIXES):
        title = f"BWV {stem[3:]}" if stem.startswith("bwv") else stem
    return {"title": " ".join(str(title).split()), "composer": " ".join(str(composer).split()),
            "key": key_name, "mode": mode}


def _lyrics(score, span_ql: float) -> str | None:
    """First-verse lyrics of the top part within the rendered span, syllables joined into words."""
    parts = list(score.parts) if len(score.parts) else [score]
    words: list[str] = []
    for n in parts[0].stripTies().flatten().notes:
        if n.offset >= span_ql or not n.lyrics:
            continue
        lyr = n.lyrics[0]
        text = (lyr.text or "").replace("\u00ad", "").strip()
        if not text:
            continue
        if words and lyr.syllabic in ("middle", "end"):
            words[-1] += text
        else:
            words.append(text)
    return " ".join(words) or None


def parse_score(source: str):
    """The music21 score of a corpus ``source`` (a manifest row's ``source``; an opus gives its
    first score)."""
    from music21 import corpus, stream

    s = corpus.parse(source)
    if isinstance(s, stream.Opus):
        s = s.scores[0]
    return s


def read_corpus(manifest: str | Path, split: str | None = None) -> list[dict]:
    """Manifest rows (optionally one split); raises ManifestError when rows lack corpus fields."""
    rows = read_jsonl(manifest)
    need = {"id", "path", "split", "duration_s"}
    for i, r in enumerate(rows, 1):
        missing = need - r.keys()
        if missing:
            raise ManifestError(f"{manifest}:{i}: missing fields {sorted(missing)}; rebuild with 'musicjudge data corpus'")
    if split is not None:
        if split not in ("train", "heldout"):
            raise ConfigError(f"split={split!r}: use 'train' or 'heldout'")
        rows = [r for r in rows if r["split"] == split]
    return rows


def build_corpus(out_dir: str | Path | None = None, limit: int | None = None, *, sample_rate: int = SAMPLE_RATE,
                 max_duration_s: float = 30.0, min_duration_s: float = 4.0, seed: int = 0,
                 heldout_fraction: float = 0.15, progress: bool = True) -> Path:
    """Render the corpus (or its first ``limit`` pieces in round-robin order) and return the manifest path.

    Resumable and idempotent: pieces already in the manifest (or in ``failures.jsonl``) are skipped."""
    import soundfile as sf
    from tqdm import tqdm

    if limit is not None and limit <= 0:
        raise ConfigError(f"limit={limit}: must be a positive number of pieces")
    if max_duration_s < min_duration_s:
        raise ConfigError(f"max_duration_s={max_duration_s}: must be at least min_duration_s={min_duration_s}")
    out = Path(out_dir) if out_dir is not None else corpus_dir(sample_rate, max_duration_s, seed, heldout_fraction)
    out.mkdir(parents=True, exist_ok=True)
    (out / "audio").mkdir(exist_ok=True)
    manifest, failures = out / "manifest.jsonl", out / "failures.jsonl"
    config = {"version": CORPUS_VERSION, "sample_rate": sample_rate, "max_duration_s": max_duration_s,
              "min_duration_s": min_duration_s, "seed": seed, "heldout_fraction": heldout_fraction}
    cfg_path = out / "corpus_config.json"
    if cfg_path.exists():
        import json

        old = json.loads(cfg_path.read_text())
        if old != config:
            raise ConfigError(f"{cfg_path}: corpus was built with {old}, not {config}; use another --out folder")
    else:
        atomic_write_json(cfg_path, config)
    done = {r["id"] for r in read_jsonl(manifest)} if manifest.exists() else set()
    failed = {r["id"] for r in read_jsonl(failures)} if failures.exists() else set()
    pieces = list(iter_pieces())
    if limit is not None:
        pieces = pieces[:limit]
    todo = [p for p in pieces if p.id not in done and p.id not in failed]
    for piece in tqdm(todo, desc="corpus", unit="piece", disable=not progress or not todo):
        t0 = time.perf_counter()
        try:
            score = parse_score(piece.source)
            meta = _score_metadata(score, piece)
            ens_name, programs, bpm = assign_rendering(piece, seed, score_tempo_bpm(score))
            pm = score_to_midi(score, programs, bpm, max_duration_s=max_duration_s)
            wave = render_midi(pm, sample_rate)
            wave = wave[: int(max_duration_s * sample_rate)]
            duration = len(wave) / sample_rate
            if duration < min_duration_s:
                raise ValueError(f"only {duration:.1f} s long (< {min_duration_s} s)")
            span_ql = max_duration_s * bpm / 60.0
            lyrics = _lyrics(score, span_ql)
        except Exception as e:  # noqa: BLE001 - a bad piece is recorded and skipped, the build goes on
            append_jsonl(failures, {"id": piece.id, "source": piece.source, "error": f"{type(e).__name__}: {e}"[:300]})
            continue
        rel = Path("audio") / f"{piece.id}.flac"
        sf.write(out / rel, wave, sample_rate, subtype="PCM_16")
        used_programs = sorted({int(inst.program) for inst in pm.instruments})
        append_jsonl(manifest, {
            "id": piece.id, "path": str((out / rel).resolve()), "split": assign_split(piece, seed, heldout_fraction),
            "composer": meta["composer"], "title": meta["title"], "key": meta["key"], "mode": meta["mode"],
            "tempo_bpm": bpm, "programs": used_programs, "instrument": ens_name,
            "instrument_names": [GM_NAMES.get(p, f"program {p}") for p in used_programs],
            "duration_s": round(duration, 3), "lyrics": lyrics, "source": piece.source,
            "collection": piece.collection.name, "n_parts": len(pm.instruments), "sample_rate": sample_rate,
            "render_s": round(time.perf_counter() - t0, 3),
        })
    if not manifest.exists():
        raise ManifestError(f"{out}: no piece could be rendered (see {failures}); check the music21 installation")
    if limit is not None:
        # A limited corpus is a fixed view (the first `limit` pieces in piece order), so it stays the
        # same when a larger build later extends the shared manifest.
        wanted = {p.id: i for i, p in enumerate(pieces)}
        rows = sorted((r for r in read_jsonl(manifest) if r["id"] in wanted), key=lambda r: wanted[r["id"]])
        view = out / f"manifest.limit{limit}.jsonl"
        from musicjudge.io import atomic_write_text
        import json

        atomic_write_text(view, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        return view
    return manifest


def clip_rows(rows: list[dict], clip_s: float) -> list[dict]:
    """Rows long enough to give a clip of ``clip_s`` seconds."""
    return [r for r in rows if r["duration_s"] >= clip_s]


def load_clip(row: dict, clip_s: float | None = None, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """First ``clip_s`` seconds of a corpus row's audio (float32 mono)."""
    import soundfile as sf

    from musicjudge.errors import AudioError

    try:
        wave, sr = sf.read(row["path"], dtype="float32", always_2d=False)
    except Exception as e:  # noqa: BLE001
        raise AudioError(f"{row['path']}: unreadable ({e}); rebuild with 'musicjudge data corpus'") from None
    if sr != sample_rate:
        raise AudioError(f"{row['path']}: sample rate {sr} != {sample_rate}; rebuild the corpus at {sample_rate} Hz")
    if wave.ndim > 1:
        wave = wave.mean(axis=1)
    if clip_s is not None:
        wave = wave[: int(round(clip_s * sample_rate))]
    return np.ascontiguousarray(wave, dtype=np.float32)
