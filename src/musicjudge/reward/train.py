"""Training of fusion reward models on preference pairs.

Loss: Bradley-Terry per dimension on the score difference, ``BCE(sigmoid(s_A - s_B), y)`` with
y = 1 (A better), 0 (B better), 0.5 (tie); label smoothing eps moves hard labels to
``1 - eps/2`` and ``eps/2`` (ties stay 0.5); a dimension without a label is masked out.

Stages: stage 1 on pseudo-labelled pairs (usually with smoothing 0.1), stage 2 on human pairs
with ``init=CHECKPOINT``. Each epoch: validation pairwise accuracy per dimension (a tie in the
truth counts 0.5 whatever the prediction; a predicted tie counts 0.5), metrics row appended to
``metrics.csv``; the best epoch (mean validation accuracy) is kept; training stops after
``patience`` epochs without improvement. ``out_dir/last/`` holds the resumable state (weights,
optimizer moments and RNG in safetensors + JSON), so an interrupted run continues where it
stopped when started again with the same arguments.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from musicjudge.errors import ConfigError, ManifestError
from musicjudge.io import atomic_write_bytes, atomic_write_json, atomic_write_text, stable_hash
from musicjudge.report.figures import save_png
from musicjudge.reward.data import DIMENSIONS, PreferencePair
from musicjudge.reward.model import (
    HeadConfig,
    count_parameters,
    embed_for_items,
    instruction_inputs,
    instruction_texts,
    load_checkpoint,
    make_head,
    save_checkpoint,
)

_TARGET = {"A": 1.0, "B": 0.0, "tie": 0.5}


# ------------------------------------------------------------------------------------------
# Loss and accuracy
# ------------------------------------------------------------------------------------------


def smooth_targets(targets, smoothing: float):
    """Label smoothing for pairwise targets: y -> y (1 - eps) + eps/2 (ties stay 0.5)."""
    if not 0.0 <= smoothing < 1.0:
        raise ConfigError(f"label_smoothing={smoothing}: must be in [0, 1)")
    return targets * (1.0 - smoothing) + 0.5 * smoothing


def pairwise_bt_loss(score_a, score_b, targets, mask, *, smoothing: float = 0.0, weights=None):
    """Masked Bradley-Terry loss. score_*: [B, D]; targets in {1, 0, 0.5}: [B, D]; mask bool [B, D].
    Returns the mean over labelled entries (0 if none)."""
    import torch.nn.functional as F

    y = smooth_targets(targets, smoothing)
    loss = F.binary_cross_entropy_with_logits(score_a - score_b, y, reduction="none")
    m = mask.to(loss.dtype)
    if weights is not None:
        m = m * weights
    denom = m.sum()
    return (loss * m).sum() / denom.clamp_min(1.0) if denom > 0 else loss.sum() * 0.0


def pairwise_accuracy(score_a: np.ndarray, score_b: np.ndarray, preference: Sequence[str | None]) -> float:
    """Accuracy of one dimension: truth tie -> 0.5; predicted tie -> 0.5; unlabelled skipped."""
    credits = []
    for a, b, p in zip(score_a, score_b, preference):
        if p is None or not (np.isfinite(a) and np.isfinite(b)):
            continue
        if p == "tie" or a == b:
            credits.append(0.5)
        else:
            credits.append(1.0 if (a > b) == (p == "A") else 0.0)
    return float(np.mean(credits)) if credits else float("nan")


# ------------------------------------------------------------------------------------------
# Pair tensors
# ------------------------------------------------------------------------------------------


@dataclass
class PairArrays:
    """Embedded pairs ready for the head."""

    pairs: list[PreferencePair]
    audio_a: np.ndarray
    audio_b: np.ndarray
    text: np.ndarray
    lyrics: np.ndarray
    ref: np.ndarray
    present: np.ndarray  # [N, 3] text, lyrics, ref
    targets: np.ndarray  # [N, D]
    mask: np.ndarray  # [N, D]
    skipped: dict[str, str] = field(default_factory=dict)  # pair id -> reason

    def __len__(self) -> int:
        return len(self.pairs)

    def subset(self, index: np.ndarray) -> "PairArrays":
        return PairArrays([self.pairs[i] for i in index], self.audio_a[index], self.audio_b[index], self.text[index],
                          self.lyrics[index], self.ref[index], self.present[index], self.targets[index], self.mask[index],
                          dict(self.skipped))


def embed_pairs(encoder, pairs: Sequence[PreferencePair], *, progress: bool = True) -> PairArrays:
    """Embed every clip/text once; pairs whose clips cannot be read are skipped and recorded."""
    pairs = list(pairs)
    paths = [p for pair in pairs for p in (pair.audio_a, pair.audio_b, pair.instruction.ref_audio) if p]
    feats = embed_for_items(encoder, paths, instruction_texts([p.instruction for p in pairs]), progress=progress)
    bad = {p: m for p, m in encoder.failures.items()}
    kept, skipped = [], {}
    for pair in pairs:
        reason = bad.get(pair.audio_a) or bad.get(pair.audio_b)
        if reason is None and not all(np.all(np.isfinite(feats.audio[feats.audio_index[x]])) for x in (pair.audio_a, pair.audio_b)):
            reason = "non-finite features"
        if reason:
            skipped[pair.id] = reason
        else:
            kept.append(pair)
    if not kept:
        raise ManifestError(f"none of the {len(pairs)} pairs has readable audio (first problem: {next(iter(skipped.values()), '?')})")
    audio_dim, text_dim = feats.audio.shape[1], feats.text.shape[1] if feats.text.size else encoder.text_dim()
    audio_a = np.stack([feats.audio[feats.audio_index[p.audio_a]] for p in kept])
    audio_b = np.stack([feats.audio[feats.audio_index[p.audio_b]] for p in kept])
    text, lyrics, ref, present = instruction_inputs(feats, [p.instruction for p in kept], audio_dim, text_dim)
    targets = np.zeros((len(kept), len(DIMENSIONS)), np.float32)
    mask = np.zeros_like(targets, dtype=bool)
    for i, pair in enumerate(kept):
        for k, dim in enumerate(DIMENSIONS):
            if dim in pair.preference:
                targets[i, k] = _TARGET[pair.preference[dim]]
                mask[i, k] = True
    return PairArrays(kept, audio_a, audio_b, text, lyrics, ref, present, targets, mask, skipped)


# ------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.0
    patience: int = 10
    seed: int = 0
    swap_augment: bool = True  # also train on (B, A) with flipped targets: removes position bias
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    dropout: float = 0.1
    drop_text: float = 0.2
    drop_lyrics: float = 0.3
    drop_ref: float = 0.5
    attribute_terms: bool = True  # per-block and tempo/key matching terms when the encoder has a layout
    # "fusion": alignment from the transformer plus the matching terms; "terms": alignment only
    # from the matching terms, their weights warm-started by a convex Bradley-Terry fit
    alignment: str = "fusion"
    term_l2: float = 1.0  # inverse strength of that fit's L2 penalty (scikit-learn's C)


def _attribute_layout(encoder, audio_dim: int, text_dim: int) -> dict[str, Any] | None:
    """The encoder's feature layout (``attribute_layout()``), if it has one that fits the data."""
    layout = encoder.attribute_layout() if hasattr(encoder, "attribute_layout") else None
    if not layout:
        return None
    ends = [b for _, b in layout.get("blocks", {}).values()] + [layout[k][1] for k in ("audio_tempo", "audio_key") if k in layout]
    text_ends = [layout[k][1] for k in ("text_tempo", "text_key") if k in layout]
    if max(ends, default=0) > audio_dim or max(text_ends, default=0) > text_dim:
        return None
    return layout


def _scores(head, arrays: PairArrays, side: str, index=None, *, dropout_present=None):
    import torch

    sel = slice(None) if index is None else index
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a[sel]))  # noqa: E731
    present = t(arrays.present) if dropout_present is None else dropout_present
    audio = t(arrays.audio_a if side == "a" else arrays.audio_b)
    return head(audio, t(arrays.text), present[:, 0], t(arrays.lyrics), present[:, 1], t(arrays.ref), present[:, 2])


def fit_term_weights(head, arrays: PairArrays, *, c: float = 1.0) -> int:
    """Warm start of a ``alignment="terms"`` head: its term weights by a convex fit, L2-penalised
    logistic regression without intercept on the differences of the matching features of the two
    clips (Bradley-Terry with a linear score; each pair also swapped), over the pairs with an
    alignment preference. The optimum of the linear model is then epoch 0 of the training, so the
    weights do not depend on a learning rate or an epoch count. Returns the pairs used."""
    import torch
    from sklearn.linear_model import LogisticRegression

    k = DIMENSIONS.index("alignment")
    rows = np.flatnonzero(arrays.mask[:, k] & (arrays.targets[:, k] != 0.5))
    if len(rows) < 2 or len(set(arrays.targets[rows, k])) < 2:
        return 0
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a[rows]))  # noqa: E731
    present = t(arrays.present)
    with torch.no_grad():
        fa = head.matching_features(t(arrays.audio_a), t(arrays.text), present[:, 0], t(arrays.ref), present[:, 2])
        fb = head.matching_features(t(arrays.audio_b), t(arrays.text), present[:, 0], t(arrays.ref), present[:, 2])
    diff = (fa - fb).double().numpy()
    y = (arrays.targets[rows, k] > 0.5).astype(int)
    fit = LogisticRegression(C=c, fit_intercept=False, max_iter=5000).fit(np.concatenate([diff, -diff]), np.concatenate([y, 1 - y]))
    with torch.no_grad():
        head.term_weights.copy_(torch.from_numpy(fit.coef_[0]).to(head.term_weights.dtype))
    return len(rows)


def predict_pairs(head, arrays: PairArrays, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Scores [N, D] for sides A and B."""
    import torch

    head.eval()
    out_a, out_b = [], []
    with torch.inference_mode():
        for start in range(0, len(arrays), batch_size):
            idx = np.arange(start, min(start + batch_size, len(arrays)))
            out_a.append(_scores(head, arrays, "a", idx).numpy())
            out_b.append(_scores(head, arrays, "b", idx).numpy())
    return np.concatenate(out_a), np.concatenate(out_b)


def evaluate_arrays(head, arrays: PairArrays) -> dict[str, float]:
    """Validation accuracy per dimension (and their mean)."""
    sa, sb = predict_pairs(head, arrays)
    out = {}
    for k, dim in enumerate(DIMENSIONS):
        prefs = [p.preference.get(dim) for p in arrays.pairs]
        out[f"acc_{dim}"] = pairwise_accuracy(sa[:, k], sb[:, k], prefs)
    values = [v for v in out.values() if np.isfinite(v)]
    out["acc_mean"] = float(np.mean(values)) if values else float("nan")
    return out


def _save_state(folder: Path, head, optimizer, state: dict[str, Any], generator) -> None:
    """Resumable state without pickle: tensors in safetensors, the rest in JSON."""
    import torch
    from safetensors.torch import save

    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Any] = {}
    param_ids = {id(p): i for i, p in enumerate(head.parameters())}
    steps: dict[str, float] = {}
    for p, st in optimizer.state.items():
        i = param_ids[id(p)]
        for name, value in st.items():
            if name == "step":
                steps[str(i)] = float(value)
            elif torch.is_tensor(value):
                tensors[f"opt.{i}.{name}"] = value.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.generator"] = generator.get_state()
    atomic_write_bytes(folder / "optimizer.safetensors", save(tensors))
    atomic_write_bytes(folder / "model.safetensors", save({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}))
    atomic_write_json(folder / "state.json", state | {"opt_steps": steps})


def _load_state(folder: Path, head, optimizer, generator) -> dict[str, Any]:
    import torch
    from safetensors.torch import load_file

    state = json.loads((folder / "state.json").read_text())
    head.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
    tensors = load_file(str(folder / "optimizer.safetensors"))
    params = list(head.parameters())
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, i, name = key.split(".", 2)
            optimizer.state[params[int(i)]][name] = value
    for i, step in state.get("opt_steps", {}).items():
        optimizer.state[params[int(i)]]["step"] = torch.tensor(step)
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.generator"])
    return state


@dataclass
class TrainResult:
    out_dir: Path
    best_epoch: int
    best_val: dict[str, float]
    history: list[dict[str, Any]]
    num_parameters: int
    n_train: int
    n_val: int
    skipped: dict[str, str]


def train_reward_model(
    encoder,
    train: PairArrays,
    val: PairArrays,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    init: str | Path | None = None,
    info: dict[str, Any] | None = None,
    progress: bool = True,
    log=print,
) -> TrainResult:
    """Train a FusionHead on embedded pairs; writes the best checkpoint to ``out_dir``."""
    import torch

    config = config or TrainConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(train) == 0 or len(val) == 0:
        raise ConfigError(f"need training and validation pairs (got {len(train)} / {len(val)})")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    audio_dim, text_dim = train.audio_a.shape[1], train.text.shape[1]
    if init is not None:
        init_cfg, head = load_checkpoint(init)
        if (head.cfg.audio_dim, head.cfg.text_dim) != (audio_dim, text_dim):
            raise ConfigError(f"{init}: checkpoint expects features {head.cfg.audio_dim}/{head.cfg.text_dim}-d, data gives {audio_dim}/{text_dim}-d; use the same encoder")
        if init_cfg["encoder"] != encoder.config():
            raise ConfigError(f"{init}: checkpoint was trained with encoder {init_cfg['encoder']}, not {encoder.config()}; use the same encoder settings")
    else:
        head = make_head(HeadConfig(audio_dim=audio_dim, text_dim=text_dim, d_model=config.d_model, n_layers=config.n_layers,
                                    n_heads=config.n_heads, dropout=config.dropout, drop_text=config.drop_text,
                                    drop_lyrics=config.drop_lyrics, drop_ref=config.drop_ref,
                                    layout=_attribute_layout(encoder, audio_dim, text_dim) if config.attribute_terms else None,
                                    alignment=config.alignment))
        with torch.no_grad():
            head.set_feature_stats(torch.from_numpy(np.concatenate([train.audio_a, train.audio_b])))
            # warm start of the linear text->features map on the preferred clip of each pair
            # (it matches the text in alignment pairs and is the clean rendering in musicality ones)
            better_a = (train.targets * train.mask).sum(1) > (0.5 * train.mask.sum(1))
            decided = np.any(train.mask & (train.targets != 0.5), axis=1) & train.present[:, 0]
            if decided.sum() >= 2:
                better = np.where(better_a[:, None], train.audio_a, train.audio_b)[decided]
                head.set_text_map(torch.from_numpy(train.text[decided]), torch.from_numpy(better))
            if config.alignment == "terms":
                fit_term_weights(head, train, c=config.term_l2)
    n_params = count_parameters(head)
    log(f"reward head: {n_params:,} trainable parameters; {len(train)} train / {len(val)} validation pairs")
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    # epochs/patience are left out so that a finished run can be extended by asking for more epochs
    resumable = {k: v for k, v in asdict(config).items() if k not in ("epochs", "patience")}
    run_key = stable_hash({"config": resumable, "init": str(init), "train": [p.id for p in train.pairs],
                           "val": [p.id for p in val.pairs], "encoder": encoder.config()})
    last = out_dir / "last"
    state: dict[str, Any] = {"run_key": run_key, "epoch": 0, "best_epoch": 0, "best_score": -1.0, "best_val": {}, "history": [],
                             "bad_epochs": 0}
    if (last / "state.json").exists():
        previous = json.loads((last / "state.json").read_text())
        if previous.get("run_key") == run_key:
            state = _load_state(last, head, optimizer, generator)
            log(f"resuming from epoch {state['epoch']} ({last})")
        else:
            log(f"{last}: state of a different run (other data or settings); starting fresh")
    drops = torch.tensor([head.cfg.drop_text, head.cfg.drop_lyrics, head.cfg.drop_ref])
    present_all = torch.from_numpy(train.present)
    targets_all = torch.from_numpy(train.targets)
    mask_all = torch.from_numpy(train.mask)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, initial=state["epoch"], desc="train reward", unit="epoch")
    start_time = time.time()
    if state["epoch"] == 0 and not state["history"]:
        # epoch 0 = the initialisation (warm start or --init checkpoint), so training can only help
        metrics = evaluate_arrays(head, val)
        state["history"].append({"epoch": 0, "train_loss": float("nan"), **{f"val_{k}": v for k, v in metrics.items()}, "seconds": 0.0})
        state.update(best_score=metrics["acc_mean"], best_epoch=0, best_val=metrics)
        save_checkpoint(out_dir, head, encoder.config(), (info or {}) | {
            "train_config": asdict(config), "best_epoch": 0, "val": metrics, "n_train": len(train), "n_val": len(val),
            "init": str(init) if init else None})
        _write_metrics(out_dir, state["history"])
    while state["epoch"] < config.epochs and state["bad_epochs"] < config.patience:
        head.train()
        order = torch.randperm(len(train), generator=generator)
        losses = []
        for start in range(0, len(train), config.batch_size):
            idx = order[start:start + config.batch_size]
            idx_np = idx.numpy()
            # modality dropout: the same condition is hidden for both sides of a pair
            keep = torch.rand((len(idx), 3), generator=generator) >= drops
            present = present_all[idx] & keep
            sa = _scores(head, train, "a", idx_np, dropout_present=present)
            sb = _scores(head, train, "b", idx_np, dropout_present=present)
            loss = pairwise_bt_loss(sa, sb, targets_all[idx], mask_all[idx], smoothing=config.label_smoothing)
            if config.swap_augment:
                loss = 0.5 * (loss + pairwise_bt_loss(sb, sa, 1.0 - targets_all[idx], mask_all[idx], smoothing=config.label_smoothing))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
            optimizer.step()
            losses.append(float(loss.detach()))
        state["epoch"] += 1
        metrics = evaluate_arrays(head, val)
        row = {"epoch": state["epoch"], "train_loss": float(np.mean(losses)), **{f"val_{k}": v for k, v in metrics.items()},
               "seconds": round(time.time() - start_time, 2)}
        state["history"].append(row)
        if metrics["acc_mean"] > state["best_score"] + 1e-9:
            state.update(best_score=metrics["acc_mean"], best_epoch=state["epoch"], best_val=metrics, bad_epochs=0)
            save_checkpoint(out_dir, head, encoder.config(), (info or {}) | {
                "train_config": asdict(config), "best_epoch": state["epoch"], "val": metrics, "n_train": len(train),
                "n_val": len(val), "init": str(init) if init else None})
        else:
            state["bad_epochs"] += 1
        _save_state(last, head, optimizer, state, generator)
        _write_metrics(out_dir, state["history"])
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", val=f"{metrics['acc_mean']:.3f}")
    if bar is not None:
        bar.close()
    plot_learning_curve(out_dir / "metrics.csv", out_dir / "learning_curve.png")
    atomic_write_json(out_dir / "train_summary.json", {
        "best_epoch": state["best_epoch"], "best_val": state["best_val"], "epochs_run": state["epoch"],
        "num_parameters": n_params, "n_train": len(train), "n_val": len(val), "skipped_train": train.skipped,
        "skipped_val": val.skipped, "config": asdict(config), "init": str(init) if init else None,
    })
    return TrainResult(out_dir, state["best_epoch"], state["best_val"], state["history"], n_params, len(train), len(val),
                       {**train.skipped, **val.skipped})


def _write_metrics(out_dir: Path, history: list[dict[str, Any]]) -> None:
    import pandas as pd

    atomic_write_text(out_dir / "metrics.csv", pd.DataFrame(history).to_csv(index=False))


def plot_learning_curve(metrics_csv: Path, png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.read_csv(metrics_csv)
    fig, ax1 = plt.subplots(figsize=(6.4, 3.6))
    ax1.plot(df["epoch"], df["train_loss"], color="tab:gray", label="train loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss")
    ax2 = ax1.twinx()
    for dim, colour in zip(DIMENSIONS, ("tab:blue", "tab:orange")):
        if f"val_acc_{dim}" in df:
            ax2.plot(df["epoch"], df[f"val_acc_{dim}"], color=colour, label=f"val acc {dim}")
    ax2.set_ylabel("validation pairwise accuracy")
    ax2.axhline(0.5, color="k", lw=0.5, ls=":")
    lines = ax1.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax2.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_png(fig, png)


# ------------------------------------------------------------------------------------------
# Evaluation by instruction kind, and the data-size sweep
# ------------------------------------------------------------------------------------------


def accuracy_table(score_a: np.ndarray, score_b: np.ndarray, pairs: Sequence[PreferencePair]):
    """Tidy accuracy per dimension x instruction kind (plus "all")."""
    import pandas as pd

    rows = []
    kinds = sorted({p.instruction.kind for p in pairs})
    for k, dim in enumerate(DIMENSIONS):
        for kind in ["all", *kinds]:
            sel = [i for i, p in enumerate(pairs) if (kind == "all" or p.instruction.kind == kind) and dim in p.preference]
            if not sel:
                continue
            acc = pairwise_accuracy(score_a[sel, k], score_b[sel, k], [pairs[i].preference[dim] for i in sel])
            rows.append({"dimension": dim, "instruction_kind": kind, "n_pairs": len(sel), "accuracy": acc})
    return pd.DataFrame(rows)


def subsample_sweep(encoder, train: PairArrays, val: PairArrays, test: PairArrays, out_dir: str | Path,
                    fractions: Sequence[float], config: TrainConfig | None = None, *, log=print):
    """Train on growing fractions of ``train`` (nested subsets, same seed) and report held-out
    accuracy against the number of pairs. Each fraction is its own resumable run folder."""
    import pandas as pd

    from musicjudge.reward.model import FusionRewardModel  # noqa: F401  (documented output type)

    out_dir = Path(out_dir)
    fractions = sorted(set(float(f) for f in fractions))
    if not fractions or fractions[0] <= 0 or fractions[-1] > 1:
        raise ConfigError(f"--subsample {fractions}: fractions must be in (0, 1]")
    config = config or TrainConfig()
    order = np.random.default_rng(config.seed).permutation(len(train))
    rows = []
    for frac in fractions:
        n = max(2, int(round(frac * len(train))))
        run_dir = out_dir / f"frac_{frac:g}"
        result = train_reward_model(encoder, train.subset(np.sort(order[:n])), val, run_dir, config, log=log, progress=False)
        _, head = load_checkpoint(run_dir)
        metrics = evaluate_arrays(head, test)
        rows.append({"fraction": frac, "n_pairs": n, "best_epoch": result.best_epoch, **{f"test_{k}": v for k, v in metrics.items()}})
        log(f"fraction {frac:g}: {n} pairs -> held-out accuracy " + ", ".join(f"{d} {metrics[f'acc_{d}']:.3f}" for d in DIMENSIONS))
    df = pd.DataFrame(rows)
    atomic_write_text(out_dir / "sweep.csv", df.to_csv(index=False))
    plot_sweep(df, out_dir / "sweep.png")
    return df


def plot_sweep(df, png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    for dim, colour in zip(DIMENSIONS, ("tab:blue", "tab:orange")):
        ax.plot(df["n_pairs"], df[f"test_acc_{dim}"], "o-", color=colour, label=dim)
    ax.axhline(0.5, color="k", lw=0.5, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("training pairs (pseudo-labelled)")
    ax.set_ylabel("held-out pairwise accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, png)
