"""Model bundles: the directory format the exporter writes and the engine loads.

A bundle is ``linguagate.json`` (metadata and file hashes), ``tokenizer.json`` and
one or more ONNX variants (``model.onnx`` fp32, ``model.fp16.onnx``,
``model.int8.onnx``). Loading verifies hashes so that a truncated download or a
half-copied directory fails at startup with a clear message, not with garbage
compressions later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "linguagate.json"
TOKENIZER = "tokenizer.json"
FORMAT_VERSION = 1
VARIANT_FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}
FAMILIES = ("xlm-roberta", "bert")


class BundleError(Exception):
    """A bundle is missing, incomplete, corrupt or of an unknown format."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A verified model bundle on disk."""

    path: Path
    family: str  # "xlm-roberta" or "bert"
    keep_label: int  # index of the "keep" class in the logits
    max_seq_len: int  # including the two special tokens
    variants: dict[str, Path]  # variant name -> ONNX file present in the bundle
    source: dict[str, Any] = field(default_factory=dict)  # model id, revision
    do_lower_case: bool = False
    meta: dict[str, Any] = field(default_factory=dict)  # the whole manifest

    @property
    def tokenizer_path(self) -> Path:
        return self.path / TOKENIZER

    def pick_variant(self, device: str, variant: str | None = None) -> str:
        """Variant for ``device`` ("cpu"/"cuda"): fp16 on CUDA, int8 then fp32 on CPU."""
        if variant:
            if variant not in self.variants:
                raise BundleError(
                    f"bundle {self.path} has no {variant!r} variant "
                    f"(it has: {', '.join(sorted(self.variants))})"
                )
            return variant
        order = ("fp16", "fp32", "int8") if device == "cuda" else ("int8", "fp32")
        for name in order:
            if name in self.variants:
                return name
        raise BundleError(f"bundle {self.path} has no variant usable on {device}")


def write_manifest(directory: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Write ``linguagate.json`` for ``directory``, hashing every bundle file present."""
    directory = Path(directory)
    files: dict[str, dict[str, Any]] = {}
    models = VARIANT_FILES.values()
    # ``<model>.data`` holds the weights of models over protobuf's 2 GB limit.
    for name in (TOKENIZER, *models, *(f"{m}.data" for m in models)):
        path = directory / name
        if path.exists():
            files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest = {"format": FORMAT_VERSION, **meta, "files": files}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def load_bundle(path: str | Path, verify: bool = True) -> Bundle:
    """Read and check a bundle; raise :class:`BundleError` naming what is wrong."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise BundleError(f"model bundle {root} is not a directory")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"model bundle {root} has no {MANIFEST} (not a bundle, or incomplete)")
    try:
        meta = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{manifest_path}: unreadable manifest: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise BundleError(f"{manifest_path}: unsupported bundle format {found!r}")
    family = meta.get("family")
    if family not in FAMILIES:
        raise BundleError(f"{manifest_path}: unknown model family {family!r}")
    for key, low in (("keep_label", 0), ("max_seq_len", 1)):
        value = meta.get(key, low)
        if type(value) is not int or value < low:
            raise BundleError(f"{manifest_path}: bad {key} {value!r} (integer >= {low} expected)")
    files = meta.get("files")
    if not isinstance(files, dict) or TOKENIZER not in files:
        raise BundleError(f"{manifest_path}: manifest lists no {TOKENIZER}")
    for name, info in files.items():
        if not isinstance(info, dict) or Path(name).name != name:
            raise BundleError(f"{manifest_path}: bad files entry {name!r}")
        file_path = root / name
        if not file_path.is_file():
            raise BundleError(f"model bundle {root} is incomplete: {name} is missing")
        if verify:
            if file_path.stat().st_size != info.get("bytes"):
                raise BundleError(
                    f"model bundle {root}: {name} has {file_path.stat().st_size} bytes, "
                    f"manifest says {info.get('bytes')} (truncated or replaced?)"
                )
            if sha256_file(file_path) != info.get("sha256"):
                raise BundleError(f"model bundle {root}: {name} does not match its sha256")
    variants = {
        variant: root / filename for variant, filename in VARIANT_FILES.items() if filename in files
    }
    if not variants:
        raise BundleError(f"model bundle {root} contains no ONNX model")
    return Bundle(
        path=root,
        family=family,
        keep_label=int(meta.get("keep_label", 1)),
        max_seq_len=int(meta.get("max_seq_len", 512)),
        variants=variants,
        source=dict(meta.get("source") or {}),
        do_lower_case=bool(meta.get("do_lower_case", False)),
        meta=meta,
    )


DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "default"


def resolve_model_path(path: str) -> Path:
    """``"default"`` means the bundle shipped with LinguaGate."""
    return DEFAULT_MODEL_DIR if path == "default" else Path(path).expanduser()
