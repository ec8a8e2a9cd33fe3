"""Fine-tune a BERT encoder as a keep/drop token classifier (label 1 = keep).

Plain PyTorch loop rather than ``transformers.Trainer``: the job is small, must run on
a shared 2-core CPU with a time cap, and must be deterministic from a seed.
"""

from __future__ import annotations

import json
import math
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onnx_export.train.dataset import IGNORE, Chunk, collate

ID2LABEL = {0: "drop", 1: "keep"}


@dataclass
class TrainConfig:
    """Hyper-parameters; the defaults are the recipe of the shipped model."""

    epochs: int = 3
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.1  # fraction of all steps
    seed: int = 13
    max_steps: int = 0  # 0 = no cap (smoke tests use 2)
    max_minutes: float = 0.0  # 0 = no cap; stop after the current step, then evaluate
    threads: int = 0  # torch intra-op threads (0 = leave torch's default)
    freeze_embeddings: bool = True  # word embeddings stay pretrained (small data; cheaper steps)
    freeze_layers: int = 3  # bottom encoder layers kept frozen: no backward through them
    eval_batch_size: int = 32


@dataclass
class TrainResult:
    best_epoch: int
    best_dev: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0


def keep_f1(pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Precision/recall/F1 of the keep class (1) over labelled positions."""
    tp = float(np.sum((pred == 1) & (gold == 1)))
    fp = float(np.sum((pred == 1) & (gold == 0)))
    fn = float(np.sum((pred == 0) & (gold == 1)))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    acc = float(np.mean(pred == gold)) if gold.size else 0.0
    return {"precision": p, "recall": r, "f1": f1, "accuracy": acc}


def load_classifier(base: str | Path) -> Any:
    """BertForTokenClassification from encoder weights with a fresh 2-label head.

    Loading a ``BertModel`` checkpoint into the token-classification class is the
    point (the head is new), so transformers' "newly initialized" notice is expected.
    """
    from transformers import AutoModelForTokenClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*newly initialized.*")
            model = AutoModelForTokenClassification.from_pretrained(
                str(base),
                num_labels=2,
                id2label=ID2LABEL,
                label2id={v: k for k, v in ID2LABEL.items()},
            )
    finally:
        hf_logging.set_verbosity(verbosity)
    return model


def _batches(chunks: Sequence[Chunk], size: int, rng: random.Random | None) -> list[list[Chunk]]:
    order = list(range(len(chunks)))
    if rng is not None:
        rng.shuffle(order)
    return [[chunks[i] for i in order[k : k + size]] for k in range(0, len(order), size)]


def _freeze(model: Any, cfg: TrainConfig) -> None:
    """Freeze embeddings and the bottom layers: on a shared 2-core CPU the backward pass
    through them costs more than the little they gain on ~500 records."""
    if cfg.freeze_embeddings or cfg.freeze_layers:
        for p in model.base_model.embeddings.parameters():
            p.requires_grad_(False)
    for layer in model.base_model.encoder.layer[: cfg.freeze_layers]:
        for p in layer.parameters():
            p.requires_grad_(False)


def _fit_steps(
    total: int, step_s: float, cfg: TrainConfig, n_dev: int, log: Callable[[str], None]
) -> int:
    """Shrink the schedule so training plus per-epoch dev passes fit ``max_minutes``.

    The learning rate then still decays to zero at the end, instead of the run being
    cut mid-schedule. The step count is logged (``--max-steps`` reproduces it).
    """
    eval_s = n_dev / cfg.batch_size * step_s / 2.5  # forward only, roughly
    budget = cfg.max_minutes * 60 - eval_s * min(cfg.epochs, 2)
    fit = max(3, int(budget / step_s))
    if fit < total:
        log(f"time cap {cfg.max_minutes:g} min at {step_s:.1f}s/step: {fit} of {total} steps")
        return fit
    return total


def evaluate(model: Any, chunks: Sequence[Chunk], batch_size: int = 32) -> dict[str, float]:
    """Dev loss and keep-F1 at the argmax (threshold 0.5)."""
    import torch

    model.eval()
    preds: list[np.ndarray] = []
    golds: list[np.ndarray] = []
    losses: list[float] = []
    with torch.no_grad():
        for batch in _batches(chunks, batch_size, None):
            arrays = collate(batch)
            t = {k: torch.from_numpy(v) for k, v in arrays.items()}
            out = model(**t)
            losses.append(float(out.loss) * len(batch))
            sel = arrays["labels"] != IGNORE
            preds.append(out.logits.argmax(-1).numpy()[sel])
            golds.append(arrays["labels"][sel])
    metrics = keep_f1(np.concatenate(preds), np.concatenate(golds))
    metrics["loss"] = sum(losses) / max(1, len(chunks))
    return metrics


def train(
    model: Any,
    train_chunks: Sequence[Chunk],
    dev_chunks: Sequence[Chunk],
    cfg: TrainConfig,
    out_dir: Path,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train, evaluate on dev after each epoch, save the best epoch (by keep-F1) to out_dir."""
    import torch

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rng = random.Random(cfg.seed)
    _freeze(model, cfg)
    steps_per_epoch = math.ceil(len(train_chunks) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    plan = {"total": total, "warmup": max(1, int(total * cfg.warmup))}  # total may shrink

    def lr_factor(s: int) -> float:
        if s < plan["warmup"]:
            return (s + 1) / plan["warmup"]
        return max(0.0, (plan["total"] - s) / max(1, plan["total"] - plan["warmup"]))

    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_factor)
    out_dir = Path(out_dir)
    result = TrainResult(best_epoch=-1, best_dev={"f1": -1.0})
    start = time.monotonic()
    step = 0
    stop = False
    log(f"training: {len(train_chunks)} chunks, {steps_per_epoch} steps/epoch, {total} steps")
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        running = 0.0
        for i, batch in enumerate(_batches(train_chunks, cfg.batch_size, rng), 1):
            t = {k: torch.from_numpy(v) for k, v in collate(batch).items()}
            loss = model(**t).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optim.step()
            sched.step()
            optim.zero_grad()
            step += 1
            running += loss.item()
            elapsed = time.monotonic() - start
            if step == 3 and cfg.max_minutes:
                total = _fit_steps(total, elapsed / 3, cfg, len(dev_chunks), log)
                plan["total"] = total
                plan["warmup"] = max(3, int(total * cfg.warmup))
            if i % 10 == 0 or i == steps_per_epoch:
                eta = elapsed / step * (total - step)
                log(
                    f"epoch {epoch} step {i}/{steps_per_epoch} loss {running / i:.4f} "
                    f"lr {sched.get_last_lr()[0]:.2e} elapsed {elapsed / 60:.1f}m "
                    f"eta {eta / 60:.1f}m"
                )
            if step >= total:
                stop = True
                break
        dev = evaluate(model, dev_chunks, cfg.eval_batch_size)
        entry = {"epoch": epoch, "step": step, "train_loss": running / max(1, i), **dev}
        result.history.append(entry)
        log(
            f"epoch {epoch} dev: loss {dev['loss']:.4f} keep-F1 {dev['f1']:.4f} "
            f"P {dev['precision']:.4f} R {dev['recall']:.4f} acc {dev['accuracy']:.4f}"
        )
        if dev["f1"] > result.best_dev["f1"]:
            result.best_epoch, result.best_dev = epoch, dev
            model.save_pretrained(str(out_dir))
            log(f"  new best (epoch {epoch}) saved to {out_dir}")
        if stop:
            break
    result.steps = step
    result.seconds = time.monotonic() - start
    (out_dir / "train_history.json").write_text(
        json.dumps({"config": asdict(cfg), **asdict(result)}, indent=2) + "\n"
    )
    return result
