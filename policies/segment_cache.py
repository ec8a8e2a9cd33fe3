"""LRU cache of compressed pieces, so a document repeated across requests is free.

Keys are (model, rule fingerprint, rate, digest of the text); values are the
compressed text. Bounded by entry count and by stored bytes. Thread-safe: the
policy code fills it from the event loop and from worker threads.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

CacheKey = tuple[str, str, float, bytes]


def text_digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20).digest()


class SegmentCache:
    def __init__(self, max_entries: int = 4096, max_bytes: int = 64 << 20) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._data: OrderedDict[CacheKey, str] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @staticmethod
    def _cost(value: str) -> int:
        return 64 + 4 * len(value)  # rough upper bound of a str's memory

    def get(self, key: CacheKey) -> str | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: CacheKey, value: str) -> None:
        cost = self._cost(value)
        if self.max_entries <= 0 or cost > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= self._cost(old)
            self._data[key] = value
            self._bytes += cost
            while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
                _, evicted = self._data.popitem(last=False)
                self._bytes -= self._cost(evicted)
