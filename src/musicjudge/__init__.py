"""musicjudge: judge music-generation models and their outputs.

Two pillars: loss-profile probes of audio-token language models (``musicjudge.probe``) and
reward models / a reward benchmark under compositional multimodal instructions
(``musicjudge.reward``, ``musicjudge.bench``).
"""

__version__ = "0.1.0"

from musicjudge.errors import MusicjudgeError  # noqa: E402

__all__ = ["__version__", "MusicjudgeError"]
