"""Render symbolic music to audio offline: music21 score -> pretty_midi -> tinysoundfont with the
General MIDI soundfont (TimGM6mb.sf2) bundled inside pretty_midi.

The MIDI level (:func:`score_to_midi`, :func:`render_midi`) is public so other packages can render
degraded versions of a piece: edit the ``pretty_midi.PrettyMIDI`` (wrong notes, timing jitter,
other programs or tempi) and render it with :func:`render_midi`.
"""

from __future__ import annotations

import functools
import os
from typing import Sequence

import numpy as np

from musicjudge.errors import AudioError, ConfigError

SAMPLE_RATE = 32000
# Release tail kept after the last note-off so decays are not cut.
TAIL_S = 0.5
# Synth gain: four simultaneous voices at full velocity stay below 0 dBFS before normalisation.
SYNTH_GAIN_DB = -8.0
# Peak level of rendered clips (about -1 dBFS): loud enough, never clipped.
TARGET_PEAK = 0.89

GM_NAMES = {
    0: "acoustic grand piano", 6: "harpsichord", 19: "church organ", 21: "accordion",
    24: "nylon guitar", 40: "violin", 41: "viola", 42: "cello", 43: "contrabass",
    48: "string ensemble", 52: "choir aahs", 56: "trumpet", 57: "trombone", 58: "tuba",
    60: "french horn", 68: "oboe", 70: "bassoon", 71: "clarinet", 73: "flute", 74: "recorder",
    78: "whistle",
}


def soundfont_path() -> str:
    """Path of the General MIDI soundfont shipped with pretty_midi."""
    import pretty_midi

    path = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
    if not os.path.exists(path):
        raise ConfigError(f"{path}: General MIDI soundfont missing; reinstall pretty_midi (pip install --force-reinstall pretty_midi)")
    return path


def score_to_midi(score, programs: Sequence[int] | int, tempo_bpm: float, *, max_duration_s: float | None = None):
    """Convert a music21 score to ``pretty_midi.PrettyMIDI`` at a constant tempo (quarter = tempo_bpm).

    ``programs`` gives one GM program per part (cycled if shorter; an int applies to all parts).
    Notes starting after ``max_duration_s`` are dropped and notes crossing it are cut.
    Ties are merged so tied notes sound once."""
    import pretty_midi

    if tempo_bpm <= 0:
        raise ConfigError(f"tempo_bpm={tempo_bpm}: must be positive")
    if isinstance(programs, int):
        programs = [programs]
    if not programs:
        raise ConfigError("programs: give at least one GM program (0-127)")
    sec_per_ql = 60.0 / float(tempo_bpm)
    pm = pretty_midi.PrettyMIDI(initial_tempo=float(tempo_bpm))
    parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    for i, part in enumerate(parts):
        program = int(programs[i % len(programs)])
        inst = pretty_midi.Instrument(program=program, name=str(getattr(part, "partName", None) or f"part{i}"))
        for el in part.stripTies().flatten().notes:
            start = float(el.offset) * sec_per_ql
            end = start + float(el.quarterLength) * sec_per_ql
            if el.quarterLength <= 0:  # grace notes
                continue
            if max_duration_s is not None:
                if start >= max_duration_s:
                    continue
                end = min(end, max_duration_s)
            velocity = int(getattr(el.volume, "velocity", None) or 80)
            pitches = el.pitches
            for p in pitches:
                midi = int(p.midi)
                if 0 <= midi <= 127:
                    inst.notes.append(pretty_midi.Note(velocity=velocity, pitch=midi, start=start, end=end))
        if inst.notes:
            pm.instruments.append(inst)
    return pm


@functools.lru_cache(maxsize=4)
def _synth(sr: int):
    import tinysoundfont

    synth = tinysoundfont.Synth(gain=SYNTH_GAIN_DB, samplerate=int(sr))
    sfid = synth.sfload(soundfont_path())
    return synth, sfid


def render_midi(pm, sr: int = SAMPLE_RATE, *, normalize: bool = True, tail_s: float = TAIL_S) -> np.ndarray:
    """Render a ``pretty_midi.PrettyMIDI`` to mono float32 audio at ``sr`` with tinysoundfont.

    Each instrument gets its own channel and GM program (drums on channel 9). The output lasts
    until the last note-off plus ``tail_s``. With ``normalize`` the peak is scaled to about -1 dBFS.
    Raises AudioError if nothing audible results."""
    synth, sfid = _synth(int(sr))
    synth.sounds_off()
    events: list[tuple[int, int, int, int, int]] = []  # (sample, order, chan, key, vel); offs first
    melodic = [inst for inst in pm.instruments if not inst.is_drum]
    if len(melodic) > 15:
        raise ConfigError(f"{len(melodic)} melodic instruments: at most 15 fit the MIDI channels; merge parts first")
    chan_iter = (c for c in range(16) if c != 9)
    for inst in pm.instruments:
        chan = 9 if inst.is_drum else next(chan_iter)
        synth.program_select(chan, sfid, 128 if inst.is_drum else 0, 0 if inst.is_drum else int(inst.program), is_drums=inst.is_drum)
        for n in inst.notes:
            on = int(round(n.start * sr))
            off = max(on + 1, int(round(n.end * sr)))
            events.append((on, 1, chan, int(n.pitch), int(n.velocity)))
            events.append((off, 0, chan, int(n.pitch), 0))
    if not events:
        raise AudioError("score: no notes to render; check that the piece has notes in the rendered span")
    events.sort()
    total = events[-1][0] + int(tail_s * sr)
    out = np.zeros(total, dtype=np.float32)
    pos = 0
    for sample, kind, chan, key, vel in events:
        if sample > pos:
            out[pos:sample] = _generate_mono(synth, sample - pos)
            pos = sample
        if kind == 1:
            synth.noteon(chan, key, vel)
        else:
            synth.noteoff(chan, key)
    if total > pos:
        out[pos:total] = _generate_mono(synth, total - pos)
    synth.sounds_off()  # the next render starts from silence
    if not np.isfinite(out).all():
        raise AudioError("render: synthesiser produced non-finite samples; report this piece")
    peak = float(np.abs(out).max())
    if peak < 1e-4:
        raise AudioError("render: synthesised audio is silent; check programs and note velocities")
    if normalize:
        out *= TARGET_PEAK / peak
    return out


def _generate_mono(synth, n: int) -> np.ndarray:
    buf = synth.generate_simple(int(n))
    stereo = np.frombuffer(buf, dtype=np.float32).reshape(-1, 2)
    return stereo.mean(axis=1)


def render_score(score, program: int | Sequence[int], tempo_scale: float = 1.0, sr: int = SAMPLE_RATE, *,
                 tempo_bpm: float | None = None, max_duration_s: float | None = None) -> np.ndarray:
    """Render a music21 score to mono float32 audio.

    ``program``: one GM program for every part, or one per part. ``tempo_bpm`` defaults to the
    score's first metronome mark (else 90); ``tempo_scale`` multiplies it (2.0 = twice as fast)."""
    if tempo_scale <= 0:
        raise ConfigError(f"tempo_scale={tempo_scale}: must be positive")
    bpm = (tempo_bpm or score_tempo_bpm(score) or 90.0) * float(tempo_scale)
    pm = score_to_midi(score, program, bpm, max_duration_s=max_duration_s)
    return render_midi(pm, sr)


def score_tempo_bpm(score) -> float | None:
    """Quarter-note tempo of the first metronome mark, or None when the score has none."""
    from music21 import tempo

    for mm in score.recurse().getElementsByClass(tempo.MetronomeMark):
        try:
            qbpm = mm.getQuarterBPM()
        except Exception:  # noqa: BLE001 - music21 raises various types for odd marks
            qbpm = None
        if qbpm and 20 <= qbpm <= 300:
            return float(qbpm)
    return None
