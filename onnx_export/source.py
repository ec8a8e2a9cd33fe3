"""Where a checkpoint comes from and what the bundle must know about it.

Resolving a hub id to a local snapshot first means every later step (export,
reference logits, tokenizer) reads the same files, and the manifest can record
the exact commit. Local directories get a content hash instead, so two bundles
built from different weights never claim the same revision.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAMILY_BY_MODEL_TYPE = {"xlm-roberta": "xlm-roberta", "roberta": "xlm-roberta", "bert": "bert"}
PLACEHOLDER_COUNT = 100  # LLMLingua-2 registers "[NEW0]".."[NEW99]" as special tokens
WEIGHT_SUFFIXES = (".safetensors", ".bin")
HUB_PATTERNS = [
    "config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "sentencepiece.bpe.model",
    "vocab.txt",
]
KEEP_LABEL = 1  # LLMLingua-2: column 1 is "preserve"


class ExportError(Exception):
    """The export cannot proceed; the message says why and what to do."""


@dataclass(frozen=True)
class Source:
    """A checkpoint available as a local directory, plus its provenance."""

    local_dir: Path
    model: str  # what the user passed (hub id or path)
    revision: str  # hub commit hash, or "sha256:<hash of config+weights>"
    kind: str  # "hub" or "local"

    def as_manifest(self) -> dict[str, str]:
        return {"model": self.model, "revision": self.revision, "kind": self.kind}


def resolve_source(model: str | Path, revision: str | None = None) -> Source:
    """Local directory as is; otherwise download the hub snapshot (needs internet)."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ExportError(f"{path} is not a Hugging Face checkpoint (no config.json)")
        return Source(path.resolve(), str(model), local_revision(path), "local")
    text = str(model)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise ExportError(f"{model}: no such checkpoint directory")
    return _download(text, revision)


def _download(repo_id: str, revision: str | None) -> Source:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError as exc:  # pragma: no cover - transformers depends on it
        raise ExportError(f"huggingface_hub is needed to download {repo_id}: {exc}") from exc
    try:
        local = Path(snapshot_download(repo_id, revision=revision, allow_patterns=HUB_PATTERNS))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise ExportError(f"cannot download {repo_id!r} from the Hugging Face hub: {exc}") from exc
    # snapshot_download returns .../snapshots/<commit hash>
    return Source(local, repo_id, local.name, "hub")


def local_revision(path: Path) -> str:
    """Hash of config.json and the weight files: a stable id for an unversioned directory."""
    digest = hashlib.sha256()
    weights = (p.name for p in path.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    names = ["config.json", *sorted(weights)]
    for name in names:
        digest.update(name.encode() + b"\0")
        with (path / name).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


def checkpoint_meta(local_dir: Path) -> dict[str, Any]:
    """Architecture facts from config.json that the exporter and the engine need."""
    config = json.loads((local_dir / "config.json").read_text())
    model_type = config.get("model_type", "")
    family = FAMILY_BY_MODEL_TYPE.get(model_type)
    if family is None:
        raise ExportError(
            f"unsupported model_type {model_type!r} (LLMLingua-2 uses xlm-roberta or bert)"
        )
    num_labels = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
    if num_labels < 2:
        raise ExportError(f"checkpoint has {num_labels} label(s); LLMLingua-2 needs 2")
    max_pos = int(config.get("max_position_embeddings", 512))
    # RoBERTa position ids start at pad_token_id + 1, so two rows are never used.
    offset = int(config.get("pad_token_id", 1)) + 1 if family == "xlm-roberta" else 0
    return {
        "family": family,
        "model_type": model_type,
        "architectures": list(config.get("architectures") or []),
        "num_labels": num_labels,
        "vocab_size": int(config["vocab_size"]),
        "hidden_size": int(config["hidden_size"]),
        "num_layers": int(config["num_hidden_layers"]),
        "num_heads": int(config["num_attention_heads"]),
        "max_seq_len": max_pos - offset,
    }
