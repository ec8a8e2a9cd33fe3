"""Quality and CPU speed of the default compressor on the held-out dev split.

For each dev record (teacher data, never trained on) and rate, in faithful mode:
* keep-F1: predicted keep vs teacher keep over the word runs (``\\w+``) of the original;
* answer retention: share of QA answers with some occurrence whose words all survive.
Methods: the model (via ``policies.engine.Compressor``), random word dropping (seeded,
averaged over seeds) and "rare words first" (word frequency of the training split),
all at the same cl100k token budget. Each is run with plain scores and with the
protection the default policy adds (digits forced, default protected identifiers).
Speed: int8 model, 2k-token inputs, ``--threads`` intra-op threads.

    python bench/quality.py --model models/default --json bench/out/quality.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from onnx_export.train.labels import PIECE, Labelled, label_all, norm, read_records  # noqa: E402
from onnx_export.train.split import DEV_FRACTION, SEED, split_ids  # noqa: E402
from policies.protect import compile_patterns, find_protected  # noqa: E402
from policies.tokens import count_tokens, get_encoding  # noqa: E402

WORD_SEP = "\t\t|\t\t"
DIGIT = re.compile(r"\d")
WORDCH = re.compile(r"\w")
ENC = get_encoding("cl100k_base")

Mask = np.ndarray  # bool per character of the original text


# ---------------------------------------------------------------- scoring
def content_pieces(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in PIECE.finditer(text) if WORDCH.match(m.group())]


def piece_f1(recs: list[Labelled], masks: list[Mask]) -> float:
    """Keep-F1 pooled over all word runs of all records."""
    tp = fp = fn = 0
    for rec, mask in zip(recs, masks, strict=True):
        gold = {(p.start, p.end): p.keep for p in rec.pieces}
        for s, e in content_pieces(rec.text):
            pred = bool(mask[s:e].any())
            g = gold.get((s, e), False)
            tp += pred and g
            fp += pred and not g
            fn += g and not pred
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


def answer_hits(rec: Labelled, mask: Mask) -> tuple[int, int]:
    """(retained, total) answers: some verbatim occurrence has all its words kept."""
    low = rec.text.lower()
    hit = 0
    for qa in rec.qa:
        ans = qa.get("a", "").lower()
        pos = low.find(ans) if ans else -1
        ok = False
        while pos >= 0 and not ok:
            spans = content_pieces(rec.text[pos : pos + len(ans)])
            ok = all(mask[pos + s : pos + e].any() for s, e in spans)
            pos = low.find(ans, pos + 1)
        hit += ok
    return hit, len(rec.qa)


def retention(recs: list[Labelled], masks: list[Mask]) -> float:
    hits = [answer_hits(r, m) for r, m in zip(recs, masks, strict=True)]
    return sum(h for h, _ in hits) / max(1, sum(n for _, n in hits))


# ---------------------------------------------------------------- methods
def protected_words(text: str, words: list[tuple[int, int]]) -> np.ndarray:
    """Words the default policy forces: any digit, or inside a default protected span."""
    spans = find_protected(text, compile_patterns((), True))
    forced = np.array([bool(DIGIT.search(text[s:e])) for s, e in words], dtype=bool)
    for i, (s, e) in enumerate(words):
        if not forced[i]:
            forced[i] = any(a < e and s < b for a, b in spans)
    return forced


_COSTS: dict[str, list[int]] = {}


def _word_costs(rec: Labelled) -> list[int]:
    """cl100k tokens per whitespace word (with its leading space), cached per record."""
    if rec.id not in _COSTS:
        _COSTS[rec.id] = [count_tokens(" " + rec.text[s:e], ENC) for s, e in rec.words]
    return _COSTS[rec.id]


def budget_select(rec: Labelled, order: list[int], rate: float, forced: np.ndarray) -> Mask:
    """Keep forced words, then words in ``order`` while the cl100k budget allows."""
    text = rec.text
    budget = rate * count_tokens(text, ENC)
    cost = _word_costs(rec)
    keep = forced.copy()
    used = float(sum(c for c, f in zip(cost, forced, strict=True) if f))
    for i in order:
        if keep[i]:
            continue
        if used + cost[i] > budget:
            continue
        keep[i] = True
        used += cost[i]
    mask = np.zeros(len(text), dtype=bool)
    for (s, e), k in zip(rec.words, keep, strict=True):
        if k:
            mask[s:e] = True
    return mask


def random_masks(recs: list[Labelled], rate: float, policy: bool, seed: int) -> list[Mask]:
    out = []
    for rec in recs:
        order = list(range(len(rec.words)))
        random.Random(f"{seed}:{rec.id}").shuffle(order)
        forced = _forced(rec, policy)
        out.append(budget_select(rec, order, rate, forced))
    return out


def rare_masks(recs: list[Labelled], rate: float, policy: bool, freq: Counter[str]) -> list[Mask]:
    out = []
    for rec in recs:
        scores = []
        for s, e in rec.words:
            runs = [norm(m.group()) for m in PIECE.finditer(rec.text[s:e])]
            runs = [r for r in runs if r]
            scores.append(min((freq[r] for r in runs), default=10**9))
        order = sorted(range(len(rec.words)), key=lambda i: (scores[i], i))
        out.append(budget_select(rec, order, rate, _forced(rec, policy)))
    return out


def _forced(rec: Labelled, policy: bool) -> np.ndarray:
    if policy:
        return protected_words(rec.text, rec.words)
    return np.zeros(len(rec.words), dtype=bool)


def model_masks(comp: Any, recs: list[Labelled], rate: float, policy: bool) -> list[Mask]:
    """Engine faithful mode; kept words located back in the original from the word labels."""
    out = []
    for rec in recs:
        kwargs: dict[str, Any] = {"mode": "faithful", "rate": rate, "return_word_label": True}
        if policy:
            spans = find_protected(rec.text, compile_patterns((), True))
            kwargs.update(force_reserve_digit=True, protected_spans=[spans])
        res = comp.compress(rec.text, **kwargs)
        out.append(mask_from_labels(rec.text, res["fn_labeled_original_prompt"]))
    return out


def mask_from_labels(text: str, labelled: str) -> Mask:
    """Char mask of kept words; the engine's words are substrings of the text, in order."""
    mask = np.zeros(len(text), dtype=bool)
    pos = 0
    for pair in labelled.split(WORD_SEP) if labelled else []:
        word, _, label = pair.rpartition(" ")
        at = text.find(word, pos)
        if at < 0:
            continue
        if label == "1":
            mask[at : at + len(word)] = True
        pos = at + len(word)
    return mask


# ---------------------------------------------------------------- speed
def speed(comp: Any, texts: list[str], target: int = 2000, runs: int = 10) -> dict[str, float]:
    """cl100k tokens per second through ``compress`` (rate 0.5) for ~2k-token inputs."""
    docs: list[str] = []
    cur = ""
    for t in texts:
        cur = f"{cur}\n\n{t}" if cur else t
        if count_tokens(cur, ENC) >= target:
            docs.append(cur)
            cur = ""
    docs = docs[:runs]
    comp.compress(docs[0], rate=0.5)  # warm-up (session, arena)
    times, toks = [], []
    for d in docs:
        t0 = time.perf_counter()
        comp.compress(d, rate=0.5)
        times.append(time.perf_counter() - t0)
        toks.append(count_tokens(d, ENC))
    per = [n / t for n, t in zip(toks, times, strict=True)]
    return {
        "tokens_per_s_median": statistics.median(per),
        "input_tokens_mean": statistics.mean(toks),
        "ms_median": 1000 * statistics.median(times),
        "runs": len(docs),
    }


# ---------------------------------------------------------------- main
def load_split(data: Path, seed: int) -> tuple[list[Labelled], list[Labelled]]:
    records = list(read_records(data))
    labelled, _ = label_all(records)
    _train, dev_ids = split_ids(((r["id"], r["genre"]) for r in records), DEV_FRACTION, seed)
    dev = set(dev_ids)
    return [r for r in labelled if r.id not in dev], [r for r in labelled if r.id in dev]


def evaluate(
    name: str, make: Callable[[float, bool], list[Mask]], recs: list[Labelled], rates: list[float]
) -> list[dict[str, Any]]:
    rows = []
    for rate in rates:
        for policy in (False, True):
            masks = make(rate, policy)
            kept = sum(
                count_tokens(_kept_text(r.text, m), ENC) for r, m in zip(recs, masks, strict=True)
            )
            total = sum(count_tokens(r.text, ENC) for r in recs)
            rows.append(
                {
                    "method": name,
                    "rate": rate,
                    "protect": "digits+ids" if policy else "plain",
                    "keep_f1": piece_f1(recs, masks),
                    "answer_retention": retention(recs, masks),
                    "achieved_rate": kept / max(1, total),
                }
            )
    return rows


def _kept_text(text: str, mask: Mask) -> str:
    """The kept characters, runs joined by one space (close to the faithful output)."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return " ".join(text[a:b] for a, b in zip(edges[::2], edges[1::2], strict=True))


def average(rows_by_seed: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for group in zip(*rows_by_seed, strict=True):
        row = dict(group[0])
        for key in ("keep_f1", "answer_retention", "achieved_rate"):
            row[key] = statistics.mean(r[key] for r in group)
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "distill")
    ap.add_argument("--rates", type=float, nargs="+", default=[0.5, 0.33])
    ap.add_argument("--seeds", type=int, default=5, help="random-baseline seeds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--split-seed", type=int, default=SEED)
    ap.add_argument("--json", type=Path, default=None, help="write results here")
    ap.add_argument("--variant", default="int8", help="bundle variant (int8 ships)")
    ap.add_argument("--limit", type=int, default=0, help="first N dev records (quick checks)")
    ap.add_argument("--speed-only", action="store_true", help="skip the quality table")
    args = ap.parse_args(argv)

    from policies.engine import Compressor

    train, dev = load_split(args.data, args.split_seed)
    if args.limit:
        dev = dev[: args.limit]
    freq: Counter[str] = Counter(
        norm(m.group()) for r in train for m in PIECE.finditer(r.text) if norm(m.group())
    )
    comp = Compressor.from_bundle(
        args.model, device="cpu", variant=args.variant, threads=args.threads
    )
    n_answers = sum(len(r.qa) for r in dev)
    print(f"dev: {len(dev)} records, {n_answers} answers; model {args.model} ({args.variant}, cpu)")

    if args.speed_only:  # re-measure speed (e.g. on a quieter machine), keep the table
        spd = speed(comp, [r.text for r in dev])
        print(_speed_line(spd, args))
        if args.json and args.json.is_file():
            payload = json.loads(args.json.read_text())
            payload["speed"] = {**spd, "threads": args.threads, "loadavg": os.getloadavg()[0]}
            args.json.write_text(json.dumps(payload, indent=2) + "\n")
        return 0

    def run_model(rate: float, policy: bool) -> list[Mask]:
        return model_masks(comp, dev, rate, policy)

    rows = evaluate("model", run_model, dev, args.rates)
    rows += evaluate("rare-first", lambda r, p: rare_masks(dev, r, p, freq), dev, args.rates)
    per_seed = []
    for seed in range(args.seeds):

        def run_random(rate: float, policy: bool, seed: int = seed) -> list[Mask]:
            return random_masks(dev, rate, policy, seed)

        per_seed.append(evaluate("random", run_random, dev, args.rates))
    rows += average(per_seed)
    spd = speed(comp, [r.text for r in dev])
    print_table(rows)
    print(_speed_line(spd, args))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "dev_records": len(dev),
            "answers": n_answers,
            "rows": rows,
            "speed": {**spd, "threads": args.threads, "loadavg": os.getloadavg()[0]},
            "variant": args.variant,
            "model": str(args.model),
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


def _speed_line(spd: dict[str, float], args: argparse.Namespace) -> str:
    return (
        f"speed ({args.variant}, cpu, {args.threads} threads): "
        f"{spd['tokens_per_s_median']:.0f} cl100k tokens/s for "
        f"{spd['input_tokens_mean']:.0f}-token inputs "
        f"({spd['ms_median']:.0f} ms median, {spd['runs']} runs, load {os.getloadavg()[0]:.1f})"
    )


def print_table(rows: list[dict[str, Any]]) -> None:
    """Side by side: one line per method and rate, plain | with digits+ids protection."""
    print(
        f"{'method':<11} {'rate':>5} | {'F1':>6} {'ans.ret':>7} {'rate*':>6} |"
        f" {'F1':>6} {'ans.ret':>7} {'rate*':>6}"
    )
    print(f"{'':<11} {'':>5} | {'plain scores':^22} | {'digits + protected ids':^22}")
    keyed = {(r["method"], r["rate"], r["protect"]): r for r in rows}
    for method in ("model", "rare-first", "random"):
        for rate in sorted({r["rate"] for r in rows}, reverse=True):
            cells = []
            for protect in ("plain", "digits+ids"):
                r = keyed[(method, rate, protect)]
                cells.append(
                    f"{r['keep_f1']:6.3f} {r['answer_retention']:7.1%} {r['achieved_rate']:6.2f}"
                )
            print(f"{method:<11} {rate:>5} | {cells[0]} | {cells[1]}")
    print("rate* = achieved cl100k rate (kept tokens / original tokens)")


if __name__ == "__main__":
    sys.exit(main())
