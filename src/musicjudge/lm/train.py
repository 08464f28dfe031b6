"""Train the built-in world's tokenizer and music LM on the corpus (``musicjudge lm train``).

Steps (each cached / resumable):
1. fit the mel residual-VQ tokenizer on training-split audio and measure it on held-out audio;
2. encode every corpus clip to codes (cached next to the run);
3. train a ``MusicgenForCausalLM`` on random crops of the training codes with the shared
   delay-pattern loss :func:`musicjudge.lm.scoring.decoder_token_nll`; a checkpoint (weights +
   AdamW moments, safetensors) is written every ``checkpoint_every`` steps and an interrupted run
   resumes from it;
4. evaluate: held-out per-token loss vs the uniform loss ln(V), and held-out clips vs the same
   clips with their frames shuffled; write ``MODEL_CARD.md`` and ``train_metrics.json``.
Everything is seeded: the same corpus + seed + settings give the same weights.
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musicjudge.errors import ConfigError
from musicjudge.io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl


@dataclass
class TrainConfig:
    seed: int = 0
    steps: int = 320
    batch_size: int = 4
    crop_frames: int = 250
    # every `long_every`-th step trains on full-length crops so positions up to a 15 s clip are seen
    long_crop_frames: int = 750
    long_batch_size: int = 2
    long_every: int = 4
    lr: float = 3e-3
    warmup_steps: int = 20
    # std of the code-embedding init: MusicGen's 0.02 leaves the codes buried under the sinusoidal
    # positions (amplitude 1) and a briefly trained model sits at the unigram loss for long
    embed_init_std: float = 0.5
    weight_decay: float = 0.01
    hidden_size: int = 192
    num_layers: int = 4
    num_heads: int = 4
    ffn_dim: int = 768
    dropout: float = 0.0
    codebook_size: int = 256
    num_codebooks: int = 4
    tokenizer_frames: int = 120_000
    kmeans_iters: int = 20
    time_budget_s: float | None = None  # stop early (and say so) when training exceeds this
    checkpoint_every: int = 50
    eval_clip_s: float = 15.0
    threads: int = 2
    corpus_limit: int | None = None
    extra: dict = field(default_factory=dict)


def train_builtin(corpus_manifest: str | Path, out_dir: str | Path, config: TrainConfig | None = None,
                  *, work_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Train tokenizer + LM from a corpus manifest into ``out_dir``; returns the metrics dict."""
    import torch

    from musicjudge.data.corpus import load_clip, read_corpus
    from musicjudge.lm.builtin import BuiltinLM, decoder_config, save_decoder
    from musicjudge.lm.tokenizer import MelRVQTokenizer, TokenizerConfig, tokenizer_quality, train_tokenizer

    cfg = config or TrainConfig()
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.crop_frames < 8:
        raise ConfigError(f"steps={cfg.steps}, batch_size={cfg.batch_size}, crop_frames={cfg.crop_frames}: must be positive (crop >= 8)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(work_dir) if work_dir else out / "_work"
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    rows = read_corpus(corpus_manifest)
    train_rows = [r for r in rows if r["split"] == "train"]
    heldout_rows = [r for r in rows if r["split"] == "heldout" and r["duration_s"] >= cfg.eval_clip_s]
    if len(train_rows) < 4:
        raise ConfigError(f"{corpus_manifest}: only {len(train_rows)} training pieces; build a larger corpus first")
    t_start = time.perf_counter()

    # 1. tokenizer ----------------------------------------------------------------------------
    tok_cfg = TokenizerConfig(num_codebooks=cfg.num_codebooks, codebook_size=cfg.codebook_size)
    if (out / "tokenizer.safetensors").exists():
        tokenizer = MelRVQTokenizer.load(out)
        tok_stats = json.loads((out / "tokenizer_config.json").read_text()).get("stats", {})
    else:
        waves = [load_clip(r) for r in train_rows]
        t0 = time.perf_counter()
        tokenizer, fit = train_tokenizer(waves, tok_cfg, max_frames=cfg.tokenizer_frames, kmeans_iters=cfg.kmeans_iters,
                                         seed=cfg.seed, progress=progress)
        del waves
        quality = tokenizer_quality(tokenizer, [load_clip(r, cfg.eval_clip_s) for r in heldout_rows[:12]])
        tok_stats = {**fit, "heldout": quality, "fit_seconds": round(time.perf_counter() - t0, 1)}
        tokenizer.save(out, stats=tok_stats)

    # 2. codes ------------------------------------------------------------------------------------
    codes_path = work / "codes.safetensors"
    train_codes, heldout_codes = _encode_all(tokenizer, train_rows, heldout_rows, codes_path, cfg.eval_clip_s, progress)

    # 3. training ------------------------------------------------------------------------------
    from transformers import MusicgenForCausalLM

    from musicjudge.lm.scoring import decoder_token_nll

    torch.manual_seed(cfg.seed)
    dcfg = decoder_config(codebook_size=cfg.codebook_size, num_codebooks=cfg.num_codebooks, hidden_size=cfg.hidden_size,
                          num_layers=cfg.num_layers, num_heads=cfg.num_heads, ffn_dim=cfg.ffn_dim,
                          max_positions=max(2048, cfg.long_crop_frames + cfg.num_codebooks + 8), dropout=cfg.dropout)
    model = MusicgenForCausalLM(dcfg)
    with torch.no_grad():
        for emb in model.model.decoder.embed_tokens:
            emb.weight.normal_(0.0, cfg.embed_init_std)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg.warmup_steps, cfg.steps))
    ckpt = work / "checkpoint"
    start_step = _load_checkpoint(ckpt, model, opt, sched) if ckpt.exists() else 0
    log_path = work / "train_log.jsonl"
    lengths = np.array([c.shape[1] for c in train_codes])
    weights = lengths / lengths.sum()  # sample pieces by length: every frame equally likely
    from tqdm import tqdm

    model.train()
    stopped_early = False
    t_train = time.perf_counter()
    prior_seconds = _prior_train_seconds(log_path)
    bar = tqdm(range(start_step, cfg.steps), desc="train LM", unit="step", disable=not progress, initial=start_step,
               total=cfg.steps)
    for step in bar:
        rng = np.random.default_rng([cfg.seed, step])  # per-step stream: resuming replays the same batches
        long = cfg.long_every > 0 and step % cfg.long_every == cfg.long_every - 1
        batch = _sample_batch(train_codes, weights, cfg.long_batch_size if long else cfg.batch_size,
                              cfg.long_crop_frames if long else cfg.crop_frames, rng)
        out_nll = decoder_token_nll(model, batch, pad_token_id=dcfg.pad_token_id, bos_token_id=dcfg.bos_token_id)
        out_nll.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        elapsed = prior_seconds + time.perf_counter() - t_train
        loss_value = out_nll.loss.item()
        append_jsonl(log_path, {"step": step + 1, "loss": round(loss_value, 5), "lr": sched.get_last_lr()[0],
                                "seconds": round(elapsed, 2)})
        bar.set_postfix(loss=f"{loss_value:.3f}")
        done = step + 1
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            _save_checkpoint(ckpt, model, opt, sched, done)
        if cfg.time_budget_s is not None and elapsed > cfg.time_budget_s and done < cfg.steps:
            _save_checkpoint(ckpt, model, opt, sched, done)
            stopped_early = True
            break
    model.eval()
    log = read_jsonl(log_path)
    train_seconds = log[-1]["seconds"] if log else 0.0
    steps_done = log[-1]["step"] if log else start_step

    # 4. evaluation + files -----------------------------------------------------------------------
    extra = {"train_config": asdict(cfg), "steps_done": steps_done}
    save_decoder(model, out, extra=extra, fp16=True)
    lm = BuiltinLM.from_pretrained(out)  # evaluate exactly what ships (fp16 weights reloaded)
    metrics = evaluate_builtin(lm, heldout_rows, heldout_codes, train_codes, cfg, progress=progress)
    metrics.update({
        "corpus_manifest": str(corpus_manifest), "train_pieces": len(train_rows), "heldout_pieces": len(heldout_rows),
        "train_frames": int(lengths.sum()), "train_seconds": train_seconds, "steps_done": steps_done,
        "stopped_early_by_time_budget": stopped_early, "total_seconds": round(time.perf_counter() - t_start, 1),
        "final_train_loss_avg_last20": float(np.mean([r["loss"] for r in log[-20:]])) if log else None,
        "parameters": int(sum(p.numel() for p in model.parameters())), "tokenizer": tok_stats,
        "train_config": asdict(cfg), "machine": f"{platform.machine()} {platform.processor()}, threads={cfg.threads}",
        "torch": torch.__version__,
    })
    atomic_write_json(out / "train_metrics.json", metrics)
    atomic_write_text(out / "MODEL_CARD.md", model_card(metrics, rows))
    return metrics


def evaluate_builtin(lm, heldout_rows: list[dict], heldout_codes: list, train_codes: list, cfg: TrainConfig,
                     progress: bool = False, shuffle_block_frames: int = 5) -> dict:
    """Held-out per-token loss vs uniform; original vs frame-shuffled clips (codes and audio)."""
    import torch

    from musicjudge.data.corpus import load_clip
    from musicjudge.lm.builtin import shuffled_frames, uniform_loss

    n_eval = min(len(heldout_codes), 40)
    held = lm.token_nll_batch(heldout_codes[:n_eval])
    held_losses = np.array([t.mean() for t in held])
    per_cb = torch.stack([torch.nanmean(t.codebook_curves(), dim=1) for t in held]).mean(0).tolist()
    rng = np.random.default_rng(cfg.seed)
    train_sub = [train_codes[i][:, : heldout_codes[0].shape[1]] for i in rng.choice(len(train_codes), min(20, len(train_codes)), replace=False)]
    train_losses = np.array([t.mean() for t in lm.token_nll_batch(train_sub)])
    # code-frame shuffle (pure sequence-order test) and audio shuffle (re-encoded, what the probe does)
    shuf_codes = [torch.from_numpy(shuffled_frames(c.numpy(), 1, seed=i)) for i, c in enumerate(heldout_codes[:n_eval])]
    shuf_code_losses = np.array([t.mean() for t in lm.token_nll_batch(shuf_codes)])
    n_audio = min(12, n_eval)
    hop = lm.tokenizer.config.hop_length
    audio_orig, audio_shuf = [], []
    for i, row in enumerate(heldout_rows[:n_audio]):
        wave = load_clip(row, cfg.eval_clip_s)
        audio_orig.append(lm.encode(wave))
        audio_shuf.append(lm.encode(shuffled_frames(wave, hop * shuffle_block_frames, seed=i).astype(np.float32)))
    a_orig = np.array([t.mean() for t in lm.token_nll_batch(audio_orig)])
    a_shuf = np.array([t.mean() for t in lm.token_nll_batch(audio_shuf)])
    return {
        "uniform_loss": uniform_loss(lm.codebook_size),
        "heldout_loss_mean": float(held_losses.mean()), "heldout_loss_std": float(held_losses.std()),
        "heldout_loss_per_codebook": [round(x, 4) for x in per_cb], "heldout_clips": int(n_eval),
        "train_clip_loss_mean": float(train_losses.mean()),
        "code_shuffle_loss_mean": float(shuf_code_losses.mean()),
        "code_shuffle_higher_fraction": float((shuf_code_losses > held_losses).mean()),
        "audio_shuffle_block_frames": shuffle_block_frames,
        "audio_original_loss_mean": float(a_orig.mean()), "audio_shuffled_loss_mean": float(a_shuf.mean()),
        "audio_shuffle_higher_fraction": float((a_shuf > a_orig).mean()), "audio_shuffle_clips": int(n_audio),
    }


def _encode_all(tokenizer, train_rows, heldout_rows, path: Path, eval_clip_s: float, progress: bool):
    """Codes of full training pieces and of the first ``eval_clip_s`` of held-out pieces (cached)."""
    import torch
    from safetensors.torch import load_file, save_file
    from tqdm import tqdm

    from musicjudge.data.corpus import load_clip
    from musicjudge.io import stable_hash

    key = stable_hash({"tok": tokenizer.codebooks[:, :2, :4].tolist(), "train": [r["id"] for r in train_rows],
                       "held": [r["id"] for r in heldout_rows], "clip": eval_clip_s})
    if path.exists():
        data = load_file(str(path))
        if json.loads(path.with_suffix(".json").read_text()).get("key") == key:
            return ([data[f"train.{i}"] for i in range(len(train_rows))],
                    [data[f"held.{i}"] for i in range(len(heldout_rows))])
    tensors: dict[str, Any] = {}
    for i, r in enumerate(tqdm(train_rows, desc="encode train", disable=not progress)):
        tensors[f"train.{i}"] = tokenizer.encode(load_clip(r)).to(torch.int16)
    for i, r in enumerate(tqdm(heldout_rows, desc="encode held-out", disable=not progress)):
        tensors[f"held.{i}"] = tokenizer.encode(load_clip(r, eval_clip_s)).to(torch.int16)
    save_file(tensors, str(path))
    atomic_write_json(path.with_suffix(".json"), {"key": key})
    return ([tensors[f"train.{i}"] for i in range(len(train_rows))],
            [tensors[f"held.{i}"] for i in range(len(heldout_rows))])


def _sample_batch(codes: list, weights: np.ndarray, batch_size: int, crop: int, rng: np.random.Generator):
    import torch

    pick = rng.choice(len(codes), size=batch_size, p=weights)
    length = min(crop, min(codes[i].shape[1] for i in pick))
    out = torch.empty(batch_size, codes[0].shape[0], length, dtype=torch.long)
    for b, i in enumerate(pick):
        start = int(rng.integers(0, codes[i].shape[1] - length + 1))
        out[b] = codes[i][:, start : start + length].long()
    return out


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _save_checkpoint(directory: Path, model, opt, sched, step: int) -> None:
    """Weights + AdamW moments as safetensors (no pickle), step/scheduler state as JSON."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(directory / "model.tmp"))
    opt_tensors = {}
    params = [p for g in opt.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        st = opt.state.get(p, {})
        for name in ("exp_avg", "exp_avg_sq"):
            if name in st:
                opt_tensors[f"{i}.{name}"] = st[name].contiguous()
        if "step" in st:
            opt_tensors[f"{i}.step"] = torch_tensor(st["step"])
    save_file(opt_tensors, str(directory / "optim.tmp"))
    (directory / "model.tmp").replace(directory / "model.safetensors")
    (directory / "optim.tmp").replace(directory / "optim.safetensors")
    atomic_write_json(directory / "state.json", {"step": step, "scheduler": sched.state_dict()})


def torch_tensor(x):
    import torch

    return x.detach().clone().reshape(1).float() if isinstance(x, torch.Tensor) else torch.tensor([float(x)])


def _load_checkpoint(directory: Path, model, opt, sched) -> int:
    from safetensors.torch import load_file

    state_path = directory / "state.json"
    if not state_path.exists():
        return 0
    state = json.loads(state_path.read_text())
    model.load_state_dict(load_file(str(directory / "model.safetensors")), strict=True)
    tensors = load_file(str(directory / "optim.safetensors"))
    params = [p for g in opt.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        if f"{i}.exp_avg" in tensors:
            opt.state[p] = {"exp_avg": tensors[f"{i}.exp_avg"], "exp_avg_sq": tensors[f"{i}.exp_avg_sq"],
                            "step": tensors[f"{i}.step"].reshape(())}
    sched.load_state_dict(state["scheduler"])
    return int(state["step"])


def _prior_train_seconds(log_path: Path) -> float:
    if not log_path.exists():
        return 0.0
    log = read_jsonl(log_path)
    return float(log[-1]["seconds"]) if log else 0.0


def model_card(m: dict, corpus_rows: list[dict]) -> str:
    """MODEL_CARD.md text from the metrics of a training run."""
    import collections

    tc = m["train_config"]
    tok = m.get("tokenizer", {})
    held = tok.get("heldout", {})
    by_coll = collections.Counter((r["collection"], r["split"]) for r in corpus_rows)
    colls = sorted({c for c, _ in by_coll})
    coll_lines = "\n".join(f"| {c} | {by_coll[(c, 'train')]} | {by_coll[(c, 'heldout')]} |" for c in colls)
    db = 10 / math.log(10)  # nats of log-power -> dB
    stage = held.get("stage_logmel_l1", [])
    stage_txt = ", ".join(f"{x:.3f} ({x * db:.1f} dB)" for x in stage)
    return f"""# musicjudge built-in music LM (`--model builtin`)

A small MusicGen-architecture decoder (`transformers.MusicgenForCausalLM`, same delay pattern and
BOS frame as MusicGen, unconditional) over a mel residual-VQ tokenizer, both trained on the
built-in corpus. It exists so that every musicjudge probe runs offline; real MusicGen checkpoints
are one flag away (`--model facebook/musicgen-small` or a local path).

## Data
Real scores from music21's corpus rendered at 32 kHz mono with tinysoundfont and the General MIDI
soundfont TimGM6mb.sf2 (first <= {m['train_config'].get('extra', {}).get('max_duration_s', 30)} s of each piece),
deterministic GM instrumentation and tempo per piece. Split by piece; the `classical` collection
(piano renders) is wholly held out. Corpus manifest: `{Path(m['corpus_manifest']).name}`.

| collection | train pieces | held-out pieces |
|---|---|---|
{coll_lines}

Training frames: {m['train_frames']:,} ({m['train_frames'] / 50 / 3600:.2f} h of audio at 50 frames/s).

## Tokenizer (mel residual VQ)
32 kHz, hop 640 (50 frames/s), n_fft 2048, 80 log-mel bands (30 Hz-16 kHz), {tc['num_codebooks']} residual
k-means codebooks of {tc['codebook_size']}; decode = mel pseudo-inverse + Griffin-Lim (32 iterations).
**Look-ahead: 2 frames** (centred 2048-sample window, hop 640), exposed as `lookahead_frames`.
Fitted on {tok.get('fit_frames', '?'):,} training frames.

Reconstruction on {held.get('clips', '?')} held-out clips (mean |log-mel error|, nats of power, after 1..K stages):
{stage_txt}.
Per-stage quantisation error on the fitting frames (MSE of standardised log-mel after 1..K stages):
{', '.join(f'{x:.4f}' for x in tok.get('stage_mse_standardised', []))}.
End to end (codes -> Griffin-Lim audio -> re-analysed): {held.get('griffin_lim_logmel_l1')} nats;
Griffin-Lim of the unquantised mel alone: {held.get('unquantised_griffin_lim_logmel_l1')} nats.

## Model
{m['parameters']:,} parameters (fp16 storage): hidden {tc['hidden_size']}, {tc['num_layers']} layers,
{tc['num_heads']} heads, FFN {tc['ffn_dim']}, dropout {tc['dropout']}, sinusoidal positions, cross-attention unused.
Trained {m['steps_done']} steps (of {tc['steps']} planned{', stopped by the time budget' if m['stopped_early_by_time_budget'] else ''}),
batch {tc['batch_size']} x {tc['crop_frames']} frames (random crops; every {tc['long_every']}-th step {tc['long_batch_size']} x {tc['long_crop_frames']} frames),
AdamW lr {tc['lr']} (warm-up {tc['warmup_steps']}, cosine to 10%), betas (0.9, 0.95), weight decay {tc['weight_decay']},
grad-clip 1.0, code-embedding init std {tc['embed_init_std']}, seed {tc['seed']}, {tc['threads']} CPU threads.
Training time: {m['train_seconds']:.0f} s of optimisation ({m['total_seconds']:.0f} s including tokenizer, encoding, evaluation)
on {m['machine']}; torch {m['torch']}.

## Quality (measured after reloading the shipped fp16 weights)
| measure | value |
|---|---|
| uniform loss ln({tc['codebook_size']}) | {m['uniform_loss']:.3f} nats/token |
| held-out loss ({m['heldout_clips']} clips x {tc['eval_clip_s']:.0f} s) | **{m['heldout_loss_mean']:.3f} +- {m['heldout_loss_std']:.3f}** |
| held-out loss per codebook | {', '.join(f'{x:.3f}' for x in m['heldout_loss_per_codebook'])} |
| training-piece loss (20 crops) | {m['train_clip_loss_mean']:.3f} |
| held-out, code frames shuffled | {m['code_shuffle_loss_mean']:.3f} (higher than original for {m['code_shuffle_higher_fraction']:.0%} of clips) |
| held-out audio, original / {m['audio_shuffle_block_frames']}-frame blocks shuffled | {m['audio_original_loss_mean']:.3f} / {m['audio_shuffled_loss_mean']:.3f} (shuffled higher for {m['audio_shuffle_higher_fraction']:.0%} of {m['audio_shuffle_clips']} clips) |

## Limits
A toy-scale model of synthesised (General MIDI) music: its losses are not comparable in absolute
terms with MusicGen's EnCodec-token losses; use it to exercise and test the probes offline.
Reproduce: `musicjudge lm train --out DIR{f" --corpus-limit {tc['corpus_limit']}" if tc.get('corpus_limit') else ""}`
(same corpus, seed and settings give the same weights up to CPU floating-point non-determinism).
"""
