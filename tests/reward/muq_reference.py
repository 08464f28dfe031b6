"""Test-only access to the ``muq`` package (0.1.0, installed ``--no-deps`` by scripts/setup.sh) as the
reference for musicjudge's own MuQ / MuQ-MuLan.

The package cannot run here as published, so three stand-ins are supplied *only while it is
imported and its models are built* (then removed from ``sys.modules``, so nothing else in the
test session sees a fake ``torchaudio``):

* ``torchaudio``: ``transforms.MelSpectrogram`` and ``AmplitudeToDB`` by torchaudio's definitions
  (the fixture's ``reference_run/torchaudio_stand_in_*.py``, the same the CMI-RM golden run used);
  the SpecAugment classes ``audio.py`` imports are never called by the pretrained towers;
* ``x_clip.tokenizer``: only ``tokenizer.vocab_size`` is read (a default argument of the
  from-scratch text transformer MuQ-MuLan does not use); the real package needs torchvision;
* transformers 5's ``Wav2Vec2ConformerEncoder`` no longer returns ``hidden_states`` (the package
  reads ``out["hidden_states"]``, transformers 4's output); the shim runs the same transformers
  encoder and collects each layer's input plus the final output, transformers 4's tuple.

Each stand-in only adapts an interface; the numerics under test (front-end, subsampling,
conformer, MuLan towers) are the package's and transformers' own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any, Iterator

import torch

FIXTURE_RUN = Path(__file__).parent / "fixtures" / "cmi_rm" / "reference_run"
HAVE_MUQ = importlib.util.find_spec("muq") is not None and importlib.util.find_spec("einops") is not None \
    and importlib.util.find_spec("easydict") is not None
SKIP_REASON = ("the 'muq' package (reference for the equivalence tests) is not installed; "
               "scripts/setup.sh installs muq==0.1.0 einops easydict with --no-deps")


def _module_from_file(name: str, path: Path, package: bool = False) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=[] if package else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _conformer_shim() -> type:
    from transformers.models.wav2vec2_conformer import modeling_wav2vec2_conformer as w2v2

    class Wav2Vec2ConformerEncoder4(w2v2.Wav2Vec2ConformerEncoder):
        """transformers' encoder with transformers 4's output (``hidden_states`` = inputs of each layer + final)."""

        def __init__(self, config: Any) -> None:
            cfg = w2v2.Wav2Vec2ConformerConfig.from_dict(dict(config))
            cfg._attn_implementation = "eager"
            super().__init__(cfg)

        def forward(self, hidden_states, attention_mask=None, output_hidden_states=False, **_: Any):
            states: list[torch.Tensor] = []
            hooks = [layer.register_forward_pre_hook(lambda _m, args: states.append(args[0])) for layer in self.layers]
            try:
                out = super().forward(hidden_states, attention_mask=attention_mask)
            finally:
                for h in hooks:
                    h.remove()
            last = out.last_hidden_state
            return {"last_hidden_state": last, "hidden_states": tuple(states) + (last,)}

    return Wav2Vec2ConformerEncoder4


@contextlib.contextmanager
def stand_ins() -> Iterator[None]:
    """torchaudio / x_clip stand-ins and the encoder shim, for importing muq and building its models."""
    from transformers.models.wav2vec2_conformer import modeling_wav2vec2_conformer as w2v2

    added = []
    if "torchaudio" not in sys.modules:
        pkg = types.ModuleType("torchaudio")
        pkg.__path__ = []  # a package
        sys.modules["torchaudio"] = pkg
        transforms = _module_from_file("torchaudio.transforms", FIXTURE_RUN / "torchaudio_stand_in_transforms.py")
        pkg.transforms = transforms
        added += ["torchaudio", "torchaudio.transforms"]
    if "x_clip" not in sys.modules:
        xc = types.ModuleType("x_clip")
        xc.__path__ = []
        tok = types.ModuleType("x_clip.tokenizer")
        tok.tokenizer = types.SimpleNamespace(vocab_size=49408)
        xc.tokenizer = tok
        sys.modules["x_clip"], sys.modules["x_clip.tokenizer"] = xc, tok
        added += ["x_clip", "x_clip.tokenizer"]
    original = w2v2.Wav2Vec2ConformerEncoder
    w2v2.Wav2Vec2ConformerEncoder = _conformer_shim()
    try:
        import muq  # noqa: F401 - imported while the stand-ins are in place

        yield
    finally:
        w2v2.Wav2Vec2ConformerEncoder = original
        for name in added:
            sys.modules.pop(name, None)
