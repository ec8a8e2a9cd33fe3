"""Engine vs llmlingua 0.2.2 (PyTorch) on the same random weights of the real architectures.

Speed does not depend on the weights, so random checkpoints with the real layer
sizes and vocabulary sizes (a small trained tokenizer padded to the real vocab)
stand in for the published models. Each input is compressed by llmlingua's
``compress_prompt_llmlingua2`` and by the engine (reference and faithful modes),
one after the other in the same process, so the ratio is measured side by side.

Example (what docs/bench-engine.md reports):
    nice -n 10 python bench/engine.py --models mbert --sizes 1000,4000,16000 \\
        --variants fp32,int8 --work /tmp/lg-bench --out docs/bench-engine.md
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS: dict[str, dict[str, Any]] = {
    # name -> family + real sizes (vocab without the 100 [NEWi] rows)
    "mbert": {
        "family": "bert",
        "dir": "rand-bert-base-multilingual-cased",
        "layers": 12,
        "hidden": 768,
        "heads": 12,
        "ffn": 3072,
        "vocab": 119547,
    },
    "xlmr": {
        "family": "xlm-roberta",
        "dir": "rand-xlm-roberta-large",
        "layers": 24,
        "hidden": 1024,
        "heads": 16,
        "ffn": 4096,
        "vocab": 250002,
    },
}


def build(name: str, work: Path, variants: list[str], cuda: bool) -> tuple[Path, Path]:
    """Random checkpoint + exported bundle (cached in ``work``)."""
    from tests.fixtures.models import build_checkpoint

    spec = MODELS[name]
    ckpt = work / spec["dir"]
    if not (ckpt / "config.json").exists():
        t0 = time.perf_counter()
        build_checkpoint(
            spec["family"],
            ckpt,
            layers=spec["layers"],
            hidden=spec["hidden"],
            heads=spec["heads"],
            ffn=spec["ffn"],
            vocab_size=2000,
            pad_vocab_to=spec["vocab"],
        )
        print(f"[{name}] checkpoint built in {time.perf_counter() - t0:.0f}s", flush=True)
    bundle = work / f"bundle-{name}"
    manifest = bundle / "linguagate.json"
    have = set(json.loads(manifest.read_text())["files"]) if manifest.exists() else set()
    want_int8 = "int8" in variants
    if not manifest.exists() or (want_int8 and "model.int8.onnx" not in have):
        from onnx_export.export import export_bundle

        t0 = time.perf_counter()
        export_bundle(
            ckpt,
            bundle,
            fp16=cuda,
            int8=want_int8,
            optimize=True,
            check=False,
            progress=lambda m: print(f"[{name}] export {m}", flush=True),
        )
        print(f"[{name}] bundle exported in {time.perf_counter() - t0:.0f}s", flush=True)
    return ckpt, bundle


def make_text(n_tokens: int) -> str:
    """Corpus prose of about ``n_tokens`` cl100k tokens."""
    from policies.tokens import count_tokens, get_encoding
    from tests.fixtures.models import corpus_lines

    enc = get_encoding("cl100k_base")
    lines = [line for line in corpus_lines() if "<|endoftext|>" not in line]
    out: list[str] = []
    total = 0
    i = 0
    while total < n_tokens:
        line = lines[i % len(lines)]
        out.append(line)
        total += count_tokens(line, enc) + 1
        i += 1
    return "\n".join(out)


def timed(fn: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mbert", help="comma list: mbert,xlmr")
    ap.add_argument("--sizes", default="1000,4000,16000", help="input sizes in cl100k tokens")
    ap.add_argument("--variants", default="fp32,int8", help="engine variants: fp32,int8,fp16")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--repeat", type=int, default=1, help="best of N timed runs per cell")
    ap.add_argument("--no-llmlingua", action="store_true", help="engine only")
    ap.add_argument("--work", default="/tmp/linguagate-bench", help="cache for checkpoints")
    ap.add_argument("--out", default=None, help="write a markdown report here")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)

    from policies.tokens import get_encoding

    get_encoding("cl100k_base")  # seed tiktoken's cache so llmlingua works offline
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    variants = [v for v in args.variants.split(",") if v]
    rows: list[dict[str, Any]] = []
    for name in [m for m in args.models.split(",") if m]:
        ckpt, bundle = build(name, work, variants, args.device == "cuda")
        texts = {n: make_text(n) for n in sizes}
        torch_s: dict[int, float] = {}
        if not args.no_llmlingua:
            from llmlingua import PromptCompressor

            pc = PromptCompressor(model_name=str(ckpt), use_llmlingua2=True, device_map=args.device)
            pc.compress_prompt_llmlingua2(texts[sizes[0]][:2000], rate=0.5)  # warm-up
            for n in sizes:
                torch_s[n] = timed(
                    functools.partial(pc.compress_prompt_llmlingua2, texts[n], rate=0.5),
                    args.repeat,
                )
                print(f"[{name}] llmlingua {n} tok: {torch_s[n]:.2f}s", flush=True)
            del pc
            gc.collect()
        from policies.engine import Compressor

        for variant in variants:
            comp = Compressor.from_bundle(bundle, device=args.device, variant=variant)
            comp.compress(texts[sizes[0]][:2000], mode="reference", rate=0.5)  # warm-up
            for n in sizes:
                model_tokens = len(comp.tokenizer.encode_ids(texts[n]))
                ref = timed(
                    functools.partial(comp.compress, texts[n], mode="reference", rate=0.5),
                    args.repeat,
                )
                fai = timed(functools.partial(comp.compress, texts[n], rate=0.5), args.repeat)
                row = {
                    "model": name,
                    "device": comp.device,
                    "variant": variant,
                    "tokens": n,
                    "model_tokens": model_tokens,
                    "llmlingua_s": torch_s.get(n),
                    "reference_s": ref,
                    "faithful_s": fai,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
            del comp
            gc.collect()
    report = render(rows, " ".join(sys.argv))
    print(report)
    if args.out:
        Path(args.out).write_text(report)
    return 0


def render(rows: list[dict[str, Any]], command: str) -> str:
    import onnxruntime
    import torch

    lines = [
        "# Engine benchmark: ONNX Runtime engine vs llmlingua 0.2.2 (PyTorch)",
        "",
        f"Command: `nice -n 10 python {command}`",
        "",
        f"Host: {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"onnxruntime {onnxruntime.__version__}. Random weights, real architecture sizes. "
        "Times are seconds per input (best of --repeat), compress rate 0.5; "
        "speed-up = llmlingua / engine.",
        "",
        "| model | device | variant | cl100k tokens | model tokens | llmlingua s | "
        "engine reference s | speed-up | engine faithful s | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = r["llmlingua_s"]

        def ratio(x: float, base: float | None = base) -> str:
            return f"{base / x:.2f}x" if base else "-"

        lines.append(
            f"| {r['model']} | {r['device']} | {r['variant']} | {r['tokens']} | "
            f"{r['model_tokens']} | {base:.2f} | {r['reference_s']:.2f} | "
            f"{ratio(r['reference_s'])} | {r['faithful_s']:.2f} | {ratio(r['faithful_s'])} |"
            if base
            else f"| {r['model']} | {r['device']} | {r['variant']} | {r['tokens']} | "
            f"{r['model_tokens']} | - | {r['reference_s']:.2f} | - | {r['faithful_s']:.2f} | - |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
