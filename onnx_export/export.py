"""``export_bundle``: an LLMLingua-2 checkpoint to a verified model bundle.

Steps: resolve (download) -> tokenizer -> torch export + reference logits ->
optimise -> fp16 / int8 -> parity check -> manifest. The manifest is written
last, only when every check passed, so a failed export never looks like a bundle.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from onnx_export import parity
from onnx_export.bundle_writer import clear_bundle, finish_bundle, write_tokenizer
from onnx_export.source import (
    KEEP_LABEL,
    WEIGHT_SUFFIXES,
    ExportError,
    checkpoint_meta,
    resolve_source,
)
from onnx_export.steps import run_step, should_isolate
from policies.bundle import TOKENIZER, VARIANT_FILES

Progress = Callable[[str], None]
PARITY_FAILED = "parity-failed.json"


def export_bundle(
    model: str | Path,
    out_dir: Path,
    *,
    fp16: bool = False,
    int8: bool = False,
    optimize: bool = True,
    check: bool = True,
    revision: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Export ``model`` (hub id or local dir) into ``out_dir``; return the manifest.

    Raises :class:`ExportError` (with a message meant for the user) on any failure,
    including a parity check below ``parity.MIN_AGREEMENT``.
    """
    say: Progress = progress or (lambda _msg: None)
    out_dir = Path(out_dir).expanduser()
    timings: dict[str, float] = {}

    @contextmanager
    def step(name: str, what: str) -> Iterator[None]:
        say(f"{name}: {what} ...")
        start = time.perf_counter()
        yield
        timings[name] = round(time.perf_counter() - start, 2)
        say(f"{name}: done in {timings[name]:.1f}s")

    with step("download", f"resolving {model}"):
        source = resolve_source(model, revision)
    meta = checkpoint_meta(source.local_dir)
    if out_dir.resolve() == source.local_dir.resolve():
        raise ExportError(f"--out {out_dir} is the checkpoint directory; choose another")
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_bundle(out_dir)  # only now: a failed download must not destroy an old bundle
    (out_dir / PARITY_FAILED).unlink(missing_ok=True)
    pad_id = _pad_id(source.local_dir)
    isolate = should_isolate(_weights_size(source.local_dir))
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out_dir) as tmp:
        work = Path(tmp)
        (work / "raw").mkdir()
        raw = work / "raw" / "model.onnx"
        reference = work / "reference.npz"
        with step("tokenizer", "writing tokenizer.json"):
            tok_meta = write_tokenizer(source.local_dir, out_dir, meta["vocab_size"])
        with step("export", "torch -> ONNX (legacy exporter, opset 17, eager attention)"):
            onnx_meta = run_step(
                "to_onnx",
                "export_onnx",
                {
                    "local_dir": str(source.local_dir),
                    "onnx_path": str(raw),
                    "tokenizer_path": str(out_dir / TOKENIZER),
                    "reference_path": str(reference) if check else None,
                    "max_seq_len": meta["max_seq_len"],
                    "pad_id": pad_id,
                },
                isolate,
            )
        fp32 = out_dir / VARIANT_FILES["fp32"]
        if optimize:
            with step("optimize", "fusing attention, LayerNorm, GELU"):
                opt = run_step(
                    "optimize",
                    "optimize",
                    {
                        "raw_path": str(raw),
                        "out_path": str(fp32),
                        "num_heads": meta["num_heads"],
                        "hidden_size": meta["hidden_size"],
                    },
                    isolate,
                )
            say("optimize: fused " + ", ".join(f"{k} {v}" for k, v in opt["fused_ops"].items()))
            onnx_meta.update(optimized=True, fused_ops=opt["fused_ops"])
        else:
            with step("optimize", "skipped (--no-optimize); saving the raw graph"):
                run_step(
                    "optimize",
                    "save_unoptimized",
                    {"raw_path": str(raw), "out_path": str(fp32)},
                    isolate,
                )
            onnx_meta.update(optimized=False, fused_ops={})
        shutil.rmtree(work / "raw")
        if fp16:
            with step("fp16", "converting to float16 (fp32 inputs/outputs)"):
                run_step(
                    "quantize",
                    "to_fp16",
                    {"fp32_path": str(fp32), "out_path": str(out_dir / VARIANT_FILES["fp16"])},
                    isolate,
                )
        if int8:
            with step("int8", "dynamic int8 quantisation"):
                onnx_meta["int8"] = _quantize_int8(out_dir, isolate, per_channel=False)
        results = {}
        if check:
            with step("check", "parity against PyTorch"):
                results = _check_all(out_dir, reference, isolate, onnx_meta, say, timings)
    manifest_meta = {
        "family": meta["family"],
        "keep_label": KEEP_LABEL,
        "max_seq_len": meta["max_seq_len"],
        "do_lower_case": tok_meta["do_lower_case"],
        "source": source.as_manifest(),
        "model": {
            **meta,
            "pad_token_id": pad_id,
            **{k: tok_meta[k] for k in ("tokenizer_size", "placeholder_tokens")},
        },
        "onnx": {
            **onnx_meta,
            "inputs": ["input_ids", "attention_mask"],
            "outputs": ["logits"],
            "input_dtype": "int64",
            "dynamic_axes": ["batch", "seq"],
        },
        "parity": {"checked": check, "samples_words": parity.SAMPLE_WORDS, **results},
        "created_by": _versions(),
        "timings_s": timings,
    }
    failed = [v for v, r in results.items() if r.get("passed") is False]
    if failed:
        (out_dir / PARITY_FAILED).write_text(json.dumps(manifest_meta["parity"], indent=2) + "\n")
        lines = "; ".join(parity.summary_line(v, results[v]) for v in failed)
        raise ExportError(
            f"parity check failed: {lines}. No manifest written; details in "
            f"{out_dir / PARITY_FAILED}"
        )
    manifest = finish_bundle(out_dir, manifest_meta)
    say(f"bundle written to {out_dir}")
    return manifest


def _check_all(
    out_dir: Path,
    reference: Path,
    isolate: bool,
    onnx_meta: dict[str, Any],
    say: Progress,
    timings: dict[str, float],
) -> dict[str, Any]:
    """Parity of every variant present; int8 is redone per-channel once if it falls short."""
    results: dict[str, Any] = {}
    for variant, name in VARIANT_FILES.items():
        path = out_dir / name
        if not path.is_file():
            continue
        result = _check(path, reference, variant, isolate)
        if variant == "int8" and result["passed"] is False and not onnx_meta["int8"]["per_channel"]:
            say(f"check: {parity.summary_line(variant, result)}; retrying int8 per-channel")
            start = time.perf_counter()
            onnx_meta["int8"] = _quantize_int8(out_dir, isolate, per_channel=True)
            timings["int8_per_channel"] = round(time.perf_counter() - start, 2)
            result = _check(path, reference, variant, isolate)
        say(f"check: {parity.summary_line(variant, result)}")
        results[variant] = result
    return results


def _check(path: Path, reference: Path, variant: str, isolate: bool) -> dict[str, Any]:
    return run_step(
        "parity",
        "check_variant",
        {
            "onnx_path": str(path),
            "reference_path": str(reference),
            "variant": variant,
            "keep_label": KEEP_LABEL,
            "min_agreement": parity.MIN_AGREEMENT[variant],  # read here so callers can change it
        },
        isolate,
    )


def _quantize_int8(out_dir: Path, isolate: bool, per_channel: bool) -> dict[str, Any]:
    return run_step(
        "quantize",
        "to_int8",
        {
            "fp32_path": str(out_dir / VARIANT_FILES["fp32"]),
            "out_path": str(out_dir / VARIANT_FILES["int8"]),
            "per_channel": per_channel,
        },
        isolate,
    )


def _pad_id(local_dir: Path) -> int:
    config = json.loads((local_dir / "config.json").read_text())
    pad = config.get("pad_token_id")
    return int(pad) if pad is not None else 0


def _weights_size(local_dir: Path) -> int:
    return sum(p.stat().st_size for p in local_dir.iterdir() if p.name.endswith(WEIGHT_SUFFIXES))


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for dist in ("linguagate", "torch", "transformers", "onnx", "onnxruntime-gpu", "onnxruntime"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return versions
