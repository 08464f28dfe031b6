"""MuQ and MuQ-MuLan in musicjudge's own code (no ``muq`` package, no torchaudio).

* :mod:`.frontend` - the log-mel front-end on ``torch.stft`` (torchaudio's definition);
* :mod:`.conformer` - the wav2vec2-conformer encoder (``transformers``' parameter names);
* :mod:`.model` - :class:`MuQ`, :func:`build_muq_from_config`, :func:`muq_frames`;
* :mod:`.mulan` - the MuLan towers and :class:`MuQMuLan` (XLM-R through ``transformers``);
* :mod:`.loading` - official folders / hub ids with strict key matching (:func:`load_muq`,
  :func:`load_muq_mulan`);
* :mod:`.tiny` - tiny random-weight folders for tests and smoke runs.

Checked against the ``muq`` package (0.1.0) on tiny random configs and, through CMI-RM, against
the CMI-RewardBench reference (``tests/reward/test_muq.py``, ``tests/reward/test_cmi_rm.py``).
"""

from musicjudge.reward.muq.loading import build_muq_mulan, load_muq, load_muq_mulan, load_strict, resolve_pretrained
from musicjudge.reward.muq.model import SAMPLE_RATE, MuQ, build_muq_from_config, muq_frames
from musicjudge.reward.muq.mulan import MulanAudioFrames, MulanTextTokens, MuQMuLan, build_text_model

__all__ = ["SAMPLE_RATE", "MuQ", "MuQMuLan", "MulanAudioFrames", "MulanTextTokens", "build_muq_from_config",
           "build_muq_mulan", "build_text_model", "load_muq", "load_muq_mulan", "load_strict", "muq_frames",
           "resolve_pretrained"]
