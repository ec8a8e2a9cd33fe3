"""Applies a route's compression rules to a chat request.

The runner owns the engine (loaded only when some route compresses) and the
segment cache. ``apply`` never raises for a compression problem: it fails open
(the original bytes go upstream, the status says why) unless the route says
``on_error: fail_closed``, in which case ``outcome.reject`` carries a 502.
Nothing changed means the client's exact bytes are forwarded. See docs/policies.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from policies.amounts import parse_rate_header
from policies.bundle import resolve_model_path
from policies.config import Config, RouteConfig, UpstreamConfig
from policies.dispatch import (
    THREAD_CHARS,
    Engine,
    EngineFailure,
    compress_regions,
    filter_documents,
)
from policies.rewrite import Plan, build_plan, count_prompt, rebuild
from policies.segment_cache import SegmentCache
from policies.tokens import (
    DEFAULT_ENCODING,
    encoding_for_model,
    encoding_name_for_model,
    get_encoding,
)

log = logging.getLogger("linguagate.policy")

BYPASS_HEADER = "x-linguagate-bypass"
RATE_HEADER = "x-linguagate-rate"
_TRUE = {"1", "true", "yes", "on"}

T = TypeVar("T")


@dataclass
class PolicyOutcome:
    body: bytes
    changed: bool = False
    status: str = "none"
    tokens_before: int | None = None
    tokens_after: int | None = None
    encoding: str | None = None
    compression_ms: float = 0.0
    reject: Exception | None = None  # a proxy.errors.ProxyError for fail_closed


def _proxy_error(status: int, message: str, code: str) -> Exception:
    from proxy.errors import ProxyError  # proxy imports policies, not the other way round

    return ProxyError(status, message, code=code)


def _text_size(messages: list[Any]) -> int:
    """Characters that counting/planning will tokenize: texts and tool-call arguments."""
    size = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            size += len(content)
        elif isinstance(content, list):
            size += sum(len(str(p.get("text") or "")) for p in content if isinstance(p, dict))
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    size += len(str(function.get("arguments") or ""))
                    size += len(str(function.get("name") or ""))
    return size


async def _maybe_thread(big: bool, func: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(func, *args) if big else func(*args)


class PolicyRunner:
    """Owns the engine (if any route compresses) and applies rules per request."""

    def __init__(
        self,
        config: Config,
        engine: Engine | None = None,
        cache: SegmentCache | None = None,
    ) -> None:
        self.config = config
        self.engine: Engine | None = engine
        self.cache = cache if cache is not None else SegmentCache()
        self.needs_engine = any(route.compress for route in config.routes)
        self.load_error: str | None = None
        model = config.model
        self.model_id = f"{model.path}|{model.variant or 'auto'}"

    @classmethod
    def from_config(cls, config: Config) -> PolicyRunner:
        """The engine itself is loaded by :meth:`start` (off the event loop)."""
        return cls(config)

    @property
    def ready(self) -> bool:
        """True once the engine is loaded, or when no route needs one."""
        return self.engine is not None or not self.needs_engine

    async def start(self) -> None:
        await asyncio.to_thread(self._preload_encodings)
        if self.engine is None and self.needs_engine:
            try:
                self.engine = await asyncio.to_thread(self._load_engine)
            except Exception as exc:  # missing or broken bundle: compression off, proxy up
                self.load_error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "compression is OFF: cannot load model bundle %r (%s); requests on "
                    "compressing routes are forwarded unchanged with status skipped:no_model",
                    self.config.model.path,
                    self.load_error,
                )
                return
        start = getattr(self.engine, "start", None)
        if start is not None:
            await start()

    def _preload_encodings(self) -> None:
        """Load tiktoken files now, so the first request's deadline is not spent on it."""
        names = {DEFAULT_ENCODING, "cl100k_base"}
        names.update(u.tokenizer for u in self.config.upstreams.values() if u.tokenizer)
        for name in sorted(names):
            try:
                get_encoding(name)
            except Exception as exc:  # counted lazily (and reported) on first use instead
                log.warning("cannot load tiktoken encoding %s: %s", name, exc)

    def _load_engine(self) -> Engine:
        from policies.engine import AsyncCompressor, Compressor  # heavy: onnxruntime

        model = self.config.model
        path = resolve_model_path(model.path)
        comp = Compressor.from_bundle(
            path, device=model.device, variant=model.variant, threads=model.threads
        )
        log.info("compression model loaded from %s on %s", path, comp.device)
        engine: Engine = AsyncCompressor(
            comp,
            queue_size=model.queue_size,
            batch_window_ms=model.batch_window_ms,
            max_batch_tokens=model.max_batch_tokens,
        )
        return engine

    async def close(self) -> None:
        close = getattr(self.engine, "close", None)
        if close is not None:
            await close()

    async def apply(
        self,
        route: RouteConfig,
        upstream: UpstreamConfig,
        body: dict[str, Any],
        raw: bytes,
        headers: Mapping[str, str],
    ) -> PolicyOutcome:
        """Compress ``body`` per ``route`` and say what happened; never raises."""
        started = time.perf_counter()
        outcome = await self._apply(route, upstream, body, raw, headers)
        outcome.compression_ms = round((time.perf_counter() - started) * 1000.0, 3)
        return outcome

    async def _apply(
        self,
        route: RouteConfig,
        upstream: UpstreamConfig,
        body: dict[str, Any],
        raw: bytes,
        headers: Mapping[str, str],
    ) -> PolicyOutcome:
        if not route.compress:
            return PolicyOutcome(body=raw, status="none")
        lowered = {k.lower(): v for k, v in headers.items()}
        if route.allow_bypass and lowered.get(BYPASS_HEADER, "").strip().lower() in _TRUE:
            return PolicyOutcome(body=raw, status="bypassed")
        override: float | None = None
        if route.allow_rate_header and RATE_HEADER in lowered:
            try:
                override = parse_rate_header(lowered[RATE_HEADER])
            except ValueError:
                message = (
                    f"invalid {RATE_HEADER} header {lowered[RATE_HEADER]!r}: "
                    "expected a number greater than 0 and at most 1"
                )
                reject = _proxy_error(400, message, "invalid_rate_header")
                return PolicyOutcome(body=raw, status="error:bad_rate_header", reject=reject)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return PolicyOutcome(body=raw, status="none")
        if self.engine is None:
            return self._failed(
                route, raw, "skipped:no_model", "the compression model is not loaded"
            )
        enc_name = encoding_name_for_model(_model(body), upstream.tokenizer)
        deadline = route.deadline_ms / 1000.0 if route.deadline_ms else None
        try:
            return await asyncio.wait_for(
                self._compress(route, body, raw, messages, enc_name, override), deadline
            )
        except TimeoutError:
            return self._failed(route, raw, "error:deadline", "compression missed its deadline")
        except EngineFailure as exc:
            log.warning("compression engine failed on route %s: %s", route.name, exc)
            return self._failed(route, raw, "error:engine", "the compression engine failed")
        except Exception as exc:
            if type(exc).__name__ == "EngineBusy":
                return self._failed(route, raw, "skipped:engine_busy", "the compressor is busy")
            log.exception("compression failed on route %s", route.name)
            return self._failed(route, raw, "error:internal", "compression failed")

    def _failed(self, route: RouteConfig, raw: bytes, status: str, why: str) -> PolicyOutcome:
        outcome = PolicyOutcome(body=raw, status=status)
        if route.on_error == "fail_closed":
            message = f"route {route.name!r} requires compression and it failed: {why} ({status})"
            outcome.reject = _proxy_error(502, message, "compression_failed")
        return outcome

    async def _compress(
        self,
        route: RouteConfig,
        body: dict[str, Any],
        raw: bytes,
        messages: list[Any],
        enc_name: str,
        override: float | None,
    ) -> PolicyOutcome:
        assert self.engine is not None
        encoding = encoding_for_model(_model(body), enc_name)
        big = _text_size(messages) > THREAD_CHARS
        rules = route.compress
        plan: Plan = await _maybe_thread(
            big, build_plan, messages, rules, encoding, enc_name, override
        )
        if plan.doc_groups:
            await filter_documents(self.engine, plan, rules, messages)
        await compress_regions(self.engine, self.cache, plan, rules, self.model_id)
        result = await _maybe_thread(big, rebuild, body, plan, encoding)
        before = plan.tokens_before
        if result.body is None:
            return PolicyOutcome(
                body=raw,
                status="none",
                tokens_before=before,
                tokens_after=before,
                encoding=enc_name,
            )
        return PolicyOutcome(
            body=result.body,
            changed=True,
            status="applied",
            tokens_before=before,
            tokens_after=result.tokens_after,
            encoding=enc_name,
        )

    async def count(
        self, upstream: UpstreamConfig, body: dict[str, Any]
    ) -> tuple[int | None, str | None]:
        """Whole-prompt token count with the target model's encoding (off the event loop)."""
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list):
            return None, None
        enc_name = encoding_name_for_model(_model(body), upstream.tokenizer)
        encoding = encoding_for_model(_model(body), enc_name)
        big = _text_size(messages) > THREAD_CHARS  # a thread hand-off costs more than a small count
        return await _maybe_thread(big, count_prompt, messages, encoding), enc_name


def _model(body: dict[str, Any]) -> str | None:
    model = body.get("model")
    return model if isinstance(model, str) else None
