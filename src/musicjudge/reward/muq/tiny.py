"""Tiny random-weight MuQ / MuQ-MuLan folders in the official layout: for tests, benchmarks of the
code path and offline smoke runs (``--backbone muq-mulan --backbone-model FOLDER``), never for real scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

TINY_W2V2 = {"hidden_act": "gelu", "num_attention_heads": 2, "intermediate_size": 40, "position_embeddings_type": "rotary",
             "rotary_embedding_base": 10000, "conv_depthwise_kernel_size": 7, "num_conv_pos_embeddings": 16,
             "num_conv_pos_embedding_groups": 4, "hidden_dropout": 0.0, "attention_dropout": 0.0,
             "activation_dropout": 0.0, "conformer_conv_dropout": 0.0, "layer_norm_eps": 1e-5}


def tiny_muq_config(**changes: Any) -> dict[str, Any]:
    cfg = {"label_rate": 25, "num_codebooks": 1, "codebook_dim": 4, "codebook_size": 16, "features": ["melspec_2048"],
           "hop_length": 240, "n_mels": 128, "conv_dim": 8, "encoder_dim": 24, "encoder_depth": 2,
           "stat": {"melspec_2048_mean": 6.77, "melspec_2048_std": 18.4}, "w2v2_config": dict(TINY_W2V2)}
    w2v2 = changes.pop("w2v2_config", {})
    cfg.update(changes)
    cfg["w2v2_config"].update(w2v2)
    return cfg


def tiny_mulan_config(muq_name: str = "muq_tiny", text_name: str = "xlm-roberta-tiny", *, muq_dim: int = 24,
                      text_dim: int = 20, dim: int = 32, dim_latent: int = 16) -> dict[str, Any]:
    tf = {"dim": dim, "tf_depth": 1, "heads": 2, "dim_head": 16, "attn_dropout": 0.0, "ff_dropout": 0.0, "ff_mult": 2}
    return {"mulan": {"sr": 24000, "clip_secs": 10, "dim_latent": dim_latent, "decoupled_contrastive_learning": True,
                      "hierarchical_contrastive_loss": False, "hierarchical_contrastive_loss_layers": None,
                      "sigmoid_contrastive_loss": False, "rank_contrast": True},
            "audio_model": {"name": muq_name, "model_dim": muq_dim, "use_layer_idx": -1},
            "text_model": {"name": text_name, "model_dim": text_dim, "use_layer_idx": -1},
            "audio_transformer": tf, "text_transformer": {**tf, "max_seq_len": 64}}


_WORDS = ("a an the and of with for in on slow fast calm happy sad bright dark piano organ guitar violin strings choir "
          "voice drums bass jazz rock pop folk classical chorale trio song music melody major minor tempo loud soft "
          "hello world love night day light sun rain sea heart sing dance").split()


def write_tiny_xlmr(folder: Path, *, hidden: int = 20, layers: int = 2, heads: int = 2, intermediate: int = 32) -> Path:
    """An XLM-R config (2 layers of width 20 by default) and a word-level tokenizer with XLM-R's
    special tokens (``tokenizer.json``)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = {t: i for i, t in enumerate(specials + _WORDS + list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'")) }
    vocab["<mask>"] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                       special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.save(str(folder / "tokenizer.json"))
    from transformers import XLMRobertaConfig

    XLMRobertaConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=intermediate, max_position_embeddings=514, pad_token_id=1, bos_token_id=0,
                     eos_token_id=2, type_vocab_size=1).save_pretrained(str(folder))
    return folder


def randomise_weights(module: torch.nn.Module, seed: int) -> None:
    """Seeded noise on every tensor (BatchNorm statistics included) so that no layer is an identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            else:
                t.add_(0.1 * torch.randn(t.shape, generator=g))


def build_tiny_muq(folder: str | Path, *, seed: int = 0, **changes: Any) -> Path:
    """``folder/config.json`` + ``model.safetensors`` of a random tiny MuQ."""
    from safetensors.torch import save_file

    from musicjudge.reward.muq.model import build_muq_from_config

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = tiny_muq_config(**changes)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    torch.manual_seed(seed)
    muq = build_muq_from_config(cfg)
    randomise_weights(muq, seed)
    save_file({k: v.contiguous() for k, v in muq.state_dict().items()}, str(folder / "model.safetensors"))
    return folder


def build_tiny_muq_mulan(folder: str | Path, *, seed: int = 0, muq_config: dict[str, Any] | None = None,
                         mulan_config: dict[str, Any] | None = None, xlmr: dict[str, int] | None = None,
                         randomise: bool = True) -> Path:
    """A random tiny MuQ-MuLan folder: ``config.json`` + ``model.safetensors`` (every tensor), with the
    tower configs in ``folder/muq_tiny`` and ``folder/xlm-roberta-tiny`` (other sizes: pass the
    configs; ``mulan_config`` must name those two folders)."""
    from safetensors.torch import save_file

    from musicjudge.reward.muq.loading import build_muq_mulan

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    muq_dir = folder / "muq_tiny"
    muq_dir.mkdir(exist_ok=True)
    (muq_dir / "config.json").write_text(json.dumps(muq_config or tiny_muq_config(), indent=2))
    write_tiny_xlmr(folder / "xlm-roberta-tiny", **(xlmr or {}))
    cfg = mulan_config or tiny_mulan_config()
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    torch.manual_seed(seed)
    model = build_muq_mulan(folder, cfg)
    if randomise:  # seeded noise on every tensor; off keeps torch's default initialisation (large sizes)
        randomise_weights(model, seed)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    return folder
