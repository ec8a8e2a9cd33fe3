"""Tokenizer and manifest for a bundle directory.

The engine only has the ``tokenizers`` library at run time, so the bundle ships
the fast tokenizer's ``tokenizer.json``, with LLMLingua-2's ``[NEWi]``
placeholders already registered on the embedding rows the checkpoints reserve
for them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from onnx_export.source import PLACEHOLDER_COUNT, ExportError
from policies.bundle import MANIFEST, TOKENIZER, VARIANT_FILES, write_manifest

_MIN_REAL_VOCAB = 32  # fewer ordinary tokens than this is not a real vocabulary


def write_tokenizer(local_dir: Path, out_dir: Path, vocab_size: int) -> dict[str, Any]:
    """Save the fast tokenizer as ``tokenizer.json``; return its facts for the manifest."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(local_dir))
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot load the tokenizer of {local_dir}: {exc}") from exc
    if not getattr(tok, "is_fast", False):
        raise ExportError(f"{local_dir}: no fast tokenizer (tokenizer.json) can be built")
    backend = tok.backend_tokenizer
    base_size = backend.get_vocab_size(with_added_tokens=True)
    if backend.get_vocab_size(with_added_tokens=False) < _MIN_REAL_VOCAB:
        # transformers builds a specials-only tokenizer when vocab files are missing;
        # every word would become [UNK] and compression would be no better than random.
        raise ExportError(
            f"the tokenizer of {local_dir} has only {base_size} tokens (its vocabulary "
            "files are missing or unreadable); copy tokenizer.json or vocab.txt/"
            "sentencepiece.bpe.model into the checkpoint directory"
        )
    placeholders = [f"[NEW{i}]" for i in range(PLACEHOLDER_COUNT)]
    added = 0
    if backend.token_to_id(placeholders[0]) is None and vocab_size >= base_size + len(placeholders):
        # The checkpoints carry 100 extra embedding rows right after the base vocabulary.
        from tokenizers import AddedToken

        added = backend.add_special_tokens([AddedToken(t, special=True) for t in placeholders])
    final_size = backend.get_vocab_size(with_added_tokens=True)
    if final_size > vocab_size:
        raise ExportError(
            f"tokenizer has {final_size} tokens but the model embeds only {vocab_size}"
        )
    backend.save(str(out_dir / TOKENIZER))
    return {
        "tokenizer_size": final_size,
        "placeholder_tokens": added
        or (PLACEHOLDER_COUNT if backend.token_to_id(placeholders[0]) is not None else 0),
        "do_lower_case": do_lower_case(json.loads((out_dir / TOKENIZER).read_text())),
    }


def do_lower_case(tokenizer_json: dict[str, Any]) -> bool:
    """Whether the tokenizer's normalizer lowercases (BertNormalizer or Lowercase)."""

    def walk(node: Any) -> bool:
        if not isinstance(node, dict):
            return False
        kind = node.get("type")
        if kind == "Lowercase":
            return True
        if kind == "BertNormalizer":
            return bool(node.get("lowercase", False))
        if kind == "Sequence":
            return any(walk(child) for child in node.get("normalizers", []))
        return False

    return walk(tokenizer_json.get("normalizer"))


def clear_bundle(out_dir: Path) -> None:
    """Remove a previous bundle's files so the new manifest cannot list stale variants."""
    for name in (MANIFEST, TOKENIZER, *VARIANT_FILES.values()):
        for path in (out_dir / name, out_dir / f"{name}.data"):
            if path.is_file():
                path.unlink()


def finish_bundle(out_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Record which files each variant uses, then hash everything into the manifest."""
    variants: dict[str, dict[str, Any]] = {}
    for variant, name in VARIANT_FILES.items():
        if (out_dir / name).is_file():
            data = out_dir / f"{name}.data"
            if data.is_file():  # onnx writes it 0600; give it the .onnx file's mode
                data.chmod((out_dir / name).stat().st_mode & 0o777)
            variants[variant] = {
                "file": name,
                "external_data": data.name if data.is_file() else None,
            }
    if "fp32" not in variants:
        raise ExportError(f"{out_dir}: the fp32 model.onnx is missing")
    return write_manifest(out_dir, {**meta, "variants": variants})
