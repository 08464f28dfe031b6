"""State of an annotation study: the pairs to judge, the audio the server may serve, and the
votes file (append-only JSONL, the only persistent state: restarting the server resumes).

A vote row is a pair row of the reward schema (so ``read_pairs(VOTES.jsonl)`` reads the votes
as preference pairs, one per vote) with the manifest's A/B terms, plus what the annotator saw:

    id, pair_id, text, lyrics, ref_audio, audio_a, audio_b, musicality, alignment,
    confidence_musicality, confidence_alignment, annotator, source ("annotate"), system_a,
    system_b, displayed_order ("AB" = the manifest's A was shown first), displayed
    ({dim: "first"|"second"|"tie"}), reason, played ({"first": bool, "second": bool}),
    elapsed_s, created (UTC ISO time), study (manifest file name)
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musicjudge.errors import ConfigError, ManifestError

if TYPE_CHECKING:
    from musicjudge.reward.data import PreferencePair

log = logging.getLogger(__name__)

SIDES = ("a", "b", "ref")
DISPLAYED = ("first", "second", "tie")


class VoteRejected(Exception):
    """A submission that cannot be recorded; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Assignment:
    pair_id: str
    order: str  # "AB" or "BA"
    issued: float


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except ValueError:
        return False


class Study:
    """Pairs + votes file. Thread-safe: FastAPI runs sync endpoints in a thread pool."""

    def __init__(self, pairs_manifest: str | os.PathLike, votes_path: str | os.PathLike, *,
                 audio_root: str | os.PathLike | None = None, seed: int | None = None) -> None:
        from musicjudge.io import read_jsonl
        from musicjudge.reward.data import read_pairs

        self.manifest = Path(pairs_manifest)
        self.votes_path = Path(votes_path)
        self.audio_root = Path(audio_root or self.manifest.resolve().parent).resolve()
        if not self.audio_root.is_dir():
            raise ConfigError(f"{self.audio_root}: audio root is not a folder; pass --audio-root DIR")
        self.pairs: dict[str, PreferencePair] = {}
        self.excluded: dict[str, str] = {}
        for pair in read_pairs(self.manifest):
            problem = self._check_pair(pair)
            if problem:
                self.excluded[pair.id] = problem
            else:
                self.pairs[pair.id] = pair
        for pair_id, problem in list(self.excluded.items())[:5]:
            log.warning("pair %s left out of the study: %s", pair_id, problem)
        if self.excluded:
            log.warning("%d of %d pairs left out (audio missing or outside %s)", len(self.excluded),
                        len(self.excluded) + len(self.pairs), self.audio_root)
        if not self.pairs:
            first = next(iter(self.excluded.items()), None)
            raise ManifestError(f"{self.manifest}: no usable pairs" + (f" ({first[0]}: {first[1]})" if first else "")
                                + "; audio must exist under the audio root (--audio-root)")
        self.order = list(self.pairs)
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._assignments: dict[tuple[str, str], Assignment] = {}
        self.voted: dict[str, set[str]] = {}
        self.vote_counts: dict[str, int] = {pid: 0 for pid in self.pairs}
        if self.votes_path.exists():
            for row in read_jsonl(self.votes_path):
                self._index_vote(str(row.get("annotator")), str(row.get("pair_id")))

    def _check_pair(self, pair: "PreferencePair") -> str | None:
        for side, value in (("audio_a", pair.audio_a), ("audio_b", pair.audio_b), ("ref_audio", pair.instruction.ref_audio)):
            if value is None:
                continue
            if "://" in value:
                return f"{side} is a URL ({value}); download the audio under the audio root"
            path = Path(value)
            if not _inside(path, self.audio_root):
                return f"{side} {value} is outside the audio root {self.audio_root}"
            if not path.is_file():
                return f"{side} {value} does not exist"
        return None

    def _index_vote(self, annotator: str, pair_id: str) -> None:
        self.voted.setdefault(annotator, set()).add(pair_id)
        if pair_id in self.vote_counts:
            self.vote_counts[pair_id] += 1

    # -- queries -------------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self.pairs)

    def progress(self, annotator: str) -> dict[str, int]:
        with self._lock:
            done = len(self.voted.get(annotator, set()) & self.pairs.keys())
        return {"done": done, "total": self.total}

    def audio_path(self, pair_id: str, side: str) -> Path | None:
        """The file for a pair's side, or None: only clips listed in the manifest are served."""
        pair = self.pairs.get(pair_id)
        if pair is None or side not in SIDES:
            return None
        value = {"a": pair.audio_a, "b": pair.audio_b, "ref": pair.instruction.ref_audio}[side]
        if value is None:
            return None
        path = Path(value).resolve()
        # Re-checked at request time: a symlink swapped in after start-up must not escape the root.
        return path if _inside(path, self.audio_root) and path.is_file() else None

    def next_assignment(self, annotator: str) -> Assignment | None:
        """The pair this annotator should judge next (the same one until they vote on it), in a
        random display order. Pairs with the fewest votes come first, so overlap between
        annotators (needed for agreement) builds up evenly."""
        with self._lock:
            seen = self.voted.get(annotator, set())
            for (who, pair_id), assignment in self._assignments.items():
                if who == annotator and pair_id not in seen:
                    return assignment
            todo = [pid for pid in self.order if pid not in seen]
            if not todo:
                return None
            fewest = min(self.vote_counts[pid] for pid in todo)
            pair_id = next(pid for pid in todo if self.vote_counts[pid] == fewest)
            assignment = Assignment(pair_id=pair_id, order=self._rng.choice(("AB", "BA")), issued=time.time())
            self._assignments[(annotator, pair_id)] = assignment
            return assignment

    # -- votes ---------------------------------------------------------------------------------

    def record_vote(self, annotator: str, pair_id: str, displayed: dict[str, str], confidence: dict[str, int],
                    reason: str | None = None, played: dict[str, bool] | None = None,
                    elapsed_s: float | None = None) -> dict[str, Any]:
        """Map the displayed choices back to the manifest's A/B, append the vote (fsync'd) and
        return the row. Raises VoteRejected for unknown pairs, repeats and stale pages."""
        from musicjudge.io import append_jsonl

        pair = self.pairs.get(pair_id)
        if pair is None:
            raise VoteRejected(404, f"unknown pair {pair_id!r}")
        flip = {"first": "A", "second": "B", "tie": "tie"}
        with self._lock:
            if pair_id in self.voted.get(annotator, set()):
                raise VoteRejected(409, f"{annotator} already voted on pair {pair_id}; each pair is judged once per annotator")
            assignment = self._assignments.get((annotator, pair_id))
            if assignment is None:
                raise VoteRejected(409, "this pair was not assigned to you (the server restarted?); reload the page")
            order = assignment.order
            preference = {}
            for dim, choice in displayed.items():
                label = flip[choice]
                preference[dim] = label if order == "AB" or label == "tie" else {"A": "B", "B": "A"}[label]
            row = self._vote_row(pair, annotator, order, preference, displayed, confidence, reason, played, elapsed_s)
            append_jsonl(self.votes_path, row)
            self._index_vote(annotator, pair_id)
            del self._assignments[(annotator, pair_id)]
        return row

    def _vote_row(self, pair: "PreferencePair", annotator: str, order: str, preference: dict[str, str],
                  displayed: dict[str, str], confidence: dict[str, int], reason: str | None,
                  played: dict[str, bool] | None, elapsed_s: float | None) -> dict[str, Any]:
        root = self.votes_path.resolve().parent

        def rel(value: str | None) -> str | None:
            # Paths relative to the votes file's folder: the votes file is itself a manifest.
            return None if value is None else os.path.relpath(value, root)

        row: dict[str, Any] = {
            "id": f"{pair.id}@{annotator}",
            "pair_id": pair.id,
            "text": pair.instruction.text,
            "lyrics": pair.instruction.lyrics,
            "ref_audio": rel(pair.instruction.ref_audio),
            "audio_a": rel(pair.audio_a),
            "audio_b": rel(pair.audio_b),
        }
        for dim in ("musicality", "alignment"):
            row[dim] = preference.get(dim)
        for dim in ("musicality", "alignment"):
            row[f"confidence_{dim}"] = confidence.get(dim)
        row.update(
            annotator=annotator, source="annotate", system_a=pair.system_a, system_b=pair.system_b,
            displayed_order=order, displayed=displayed, reason=reason or None, played=played or {},
            elapsed_s=None if elapsed_s is None else round(float(elapsed_s), 2),
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"), study=self.manifest.name,
        )
        return row
