"""musicjudge.lm: music-LM scorers (MusicGen adapter, built-in LM) and the probe engine.

Light to import: torch/transformers load only when a model is built or scored."""

from musicjudge.lm.base import Condition, DelayPatternLM, MusicLM, TokenNLL, make_condition
from musicjudge.lm.loader import load_music_lm

__all__ = ["Condition", "DelayPatternLM", "MusicLM", "TokenNLL", "load_music_lm", "make_condition"]
