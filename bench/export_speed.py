"""Size and CPU speed of the exported variants, on the real architectures with random weights.

Builds a random-init checkpoint with the real config (mBERT-base and/or
XLM-R-large) plus a tiny trained tokenizer (speed does not depend on vocabulary
content; the classifier is scaled so logits are decisive), runs
``export_bundle(int8=True, fp16=True)`` on it (parity thresholds for fp16/int8
lowered to 0 so the agreement is reported, not enforced), then times fp32 and
int8 with ONNX Runtime's CPU EP, alternating the two in one run so the ratio is
measured under the same machine load. Everything lives under --work (default a
new /tmp directory) and is deleted afterwards unless --keep.

    nice -n 10 python bench/export_speed.py --family bert --family xlm-roberta
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CONFIGS: dict[str, dict[str, Any]] = {
    "bert": dict(
        vocab_size=119647,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
        pad_token_id=0,
        num_labels=2,
    ),
    "xlm-roberta": dict(
        vocab_size=250102,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        max_position_embeddings=514,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=2,
    ),
}
NAMES = {"bert": "bert-base-multilingual-cased", "xlm-roberta": "xlm-roberta-large"}
SHAPES = [(1, 512), (4, 128)]
CLASSIFIER_SCALE = 25.0  # random init gives near-zero logits, i.e. mostly coin-flip ties
VARIANTS = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}


def build_checkpoint(family: str, out: Path) -> None:
    """Random real-size model + tiny trained tokenizer (run in a child process)."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import (  # type: ignore[attr-defined]
        BertConfig,
        BertForTokenClassification,
        BertTokenizerFast,
        XLMRobertaConfig,
        XLMRobertaForTokenClassification,
        XLMRobertaTokenizerFast,
    )

    text = ["the council approved the budget for the new park and street repairs"] * 50
    torch.manual_seed(0)
    model: Any
    if family == "xlm-roberta":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tok.train_from_iterator(
            text,
            trainers.UnigramTrainer(vocab_size=200, special_tokens=specials, unk_token="<unk>"),
        )
        vocab = [(p, float(s)) for p, s in json.loads(tok.to_str())["model"]["vocab"]]
        XLMRobertaTokenizerFast(vocab=vocab).save_pretrained(str(out))
        model = XLMRobertaForTokenClassification(XLMRobertaConfig(**CONFIGS[family]))
    else:
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok.train_from_iterator(
            text, trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials)
        )
        BertTokenizerFast(vocab=dict(tok.get_vocab()), do_lower_case=False).save_pretrained(
            str(out)
        )
        model = BertForTokenClassification(BertConfig(**CONFIGS[family]))
    with torch.no_grad():  # like tests/fixtures: decisive logits, as a trained head has
        model.classifier.weight.mul_(CLASSIFIER_SCALE)
    model.eval().save_pretrained(str(out))


def file_mb(bundle: Path, name: str) -> float:
    paths = [bundle / name, bundle / f"{name}.data"]
    return sum(p.stat().st_size for p in paths if p.is_file()) / 1e6


def time_variants(bundle: Path, variants: list[str], runs: int) -> dict[str, dict[str, float]]:
    """Median ms per run() for each variant and shape, fp32/int8 runs interleaved."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    sessions = {
        v: ort.InferenceSession(
            str(bundle / VARIANTS[v]), options, providers=["CPUExecutionProvider"]
        )
        for v in variants
    }
    rng = np.random.default_rng(0)
    results: dict[str, dict[str, float]] = {v: {} for v in variants}
    for batch, seq in SHAPES:
        feed = {
            "input_ids": rng.integers(5, 150, size=(batch, seq), dtype=np.int64),
            "attention_mask": np.ones((batch, seq), dtype=np.int64),
        }
        samples: dict[str, list[float]] = {v: [] for v in variants}
        for v in variants:  # warm-up
            sessions[v].run(["logits"], feed)
        for _ in range(runs):
            for v in variants:
                start = time.perf_counter()
                sessions[v].run(["logits"], feed)
                samples[v].append((time.perf_counter() - start) * 1000)
        for v in variants:
            results[v][f"b{batch}s{seq}"] = statistics.median(samples[v])
    return results


def bench_family(family: str, work: Path, runs: int) -> str:
    from onnx_export import parity
    from onnx_export.export import export_bundle

    # Report agreement on random weights instead of failing on it.
    parity.MIN_AGREEMENT.update(fp16=0.0, int8=0.0)

    checkpoint = work / f"random-{NAMES[family]}"
    bundle = work / f"bundle-{family}"
    start = time.perf_counter()
    subprocess.run([sys.executable, __file__, "_build", family, str(checkpoint)], check=True)
    build_s = time.perf_counter() - start

    def say(msg: str) -> None:
        print(f"  [{family}] {msg}", file=sys.stderr, flush=True)

    manifest = export_bundle(checkpoint, bundle, fp16=True, int8=True, progress=say)
    shutil.rmtree(checkpoint)
    say("timing fp32 vs int8 on the CPU EP ...")
    timing = time_variants(bundle, ["fp32", "int8"], runs)
    t, p, fused = manifest["timings_s"], manifest["parity"], manifest["onnx"]["fused_ops"]
    lines = [f"### {NAMES[family]} (random weights, real config)", ""]
    lines.append(
        "| variant | size MB | b1 s512 ms | tok/s | b4 s128 ms | tok/s | parity vs torch |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for v in VARIANTS:
        size = file_mb(bundle, VARIANTS[v])
        res = p.get(v, {})
        par = (
            f"agree {res['keep_agreement']:.2%}, max diff {res['max_abs_logit_diff']:.1e}"
            if res.get("passed") is not None
            else res.get("status", "-")
        )
        if v in timing:
            a, b = timing[v]["b1s512"], timing[v]["b4s128"]
            lines.append(
                f"| {v} | {size:.0f} | {a:.0f} | {512e3 / a:.0f} | {b:.0f} | "
                f"{512e3 / b:.0f} | {par} |"
            )
        else:
            lines.append(f"| {v} | {size:.0f} | (CUDA variant) | | | | {par} |")
    r1 = timing["fp32"]["b1s512"] / timing["int8"]["b1s512"]
    r4 = timing["fp32"]["b4s128"] / timing["int8"]["b4s128"]
    lines += [
        "",
        f"int8 speed-up over fp32 (same run, interleaved): b1 s512 **{r1:.2f}x**, "
        f"b4 s128 **{r4:.2f}x** (median of {runs} runs each, intra_op_num_threads=2)",
        "",
    ]
    lines.append("fused ops: " + ", ".join(f"{k} {v}" for k, v in fused.items() if v))
    lines.append("")
    lines.append(
        f"times (s): build random checkpoint {build_s:.0f}, "
        + ", ".join(f"{k} {v:.0f}" for k, v in t.items())
    )
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", action="append", choices=sorted(CONFIGS))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work", type=Path, default=None, help="scratch dir (default /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the bundles")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="linguagate-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    report = []
    try:
        for family in args.family or ["bert"]:
            report.append(bench_family(family, work, args.runs))
            if not args.keep:
                shutil.rmtree(work / f"bundle-{family}", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_build":
        build_checkpoint(sys.argv[2], Path(sys.argv[3]))
        sys.exit(0)
    sys.exit(main())
