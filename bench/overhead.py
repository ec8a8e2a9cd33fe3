"""Latency LinguaGate adds (compression off) vs calling the upstream directly, and vs LiteLLM.

Starts, as separate processes: a stub OpenAI upstream (uvicorn), LinguaGate
(``linguagate serve``) pointed at it and, when installed in its own venv, LiteLLM's
proxy pointed at the same stub. Then measures, in one run, client-observed latency
for the three targets: sequential and concurrent (64 in flight), non-streaming and
streaming (time to the last byte). "Added" = percentile(target) - percentile(direct).

    .venv/bin/python bench/overhead.py [--requests 400] [--concurrent-requests 1280]
        [--litellm .cache/litellm-venv/bin/litellm]

LiteLLM goes in a separate venv (never .venv):
    python3.11 -m venv .cache/litellm-venv && .cache/litellm-venv/bin/pip install 'litellm[proxy]'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
# Sent by the client to every target; LiteLLM refuses to start without a master key.
BENCH_KEY = "sk-bench-" + "5f3c9a1e7b2d4c60" * 3
PROMPT = [{"role": "user", "content": "Summarise the following text. " + "lorem ipsum " * 40}]
N_CHUNKS = 20

# --------------------------------------------------------------------------- stub upstream


async def _read_body(receive):  # type: ignore[no-untyped-def]
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


def _stub_app():  # type: ignore[no-untyped-def]
    completion = json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello there! " * 8},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 120, "completion_tokens": 24, "total_tokens": 144},
        }
    ).encode()

    def chunk(delta: dict, finish: str | None = None) -> bytes:
        body = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": f"tok{i} "}) for i in range(N_CHUNKS)]
    events.append(chunk({}, "stop"))
    usage = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": {"prompt_tokens": 120, "completion_tokens": 24, "total_tokens": 144},
    }
    usage_event = b"data: " + json.dumps(usage).encode() + b"\n\n"

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = await _read_body(receive)
        if scope["path"].endswith("/models"):
            payload = b'{"object":"list","data":[{"id":"gpt-4o-mini","object":"model"}]}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        request = json.loads(body or b"{}")
        if not request.get("stream"):
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(completion)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": completion})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for event in events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        if (request.get("stream_options") or {}).get("include_usage"):
            await send({"type": "http.response.body", "body": usage_event, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    return app


def run_bare(port: int, upstream: str) -> None:
    """Baseline: the thinnest raw-ASGI + httpx relay (no routing, records, headers work)."""

    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=256))

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = await _read_body(receive)
        request = client.build_request(scope["method"], upstream + scope["path"][3:], content=body)
        response = await client.send(request, stream=True)
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [
                    (k, v)
                    for k, v in response.headers.raw
                    if k.lower() not in (b"transfer-encoding", b"connection")
                ],
            }
        )
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await response.aclose()
        await send({"type": "http.response.body", "body": b""})

    _serve(app, port)


def run_stub(port: int) -> None:
    _serve(_stub_app(), port)


def _serve(app: Any, port: int) -> None:
    """Serve ``app`` on loopback the same way for every measured process."""
    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            httpx.get(url, timeout=2.0)
            return True
        except httpx.HTTPError:
            time.sleep(0.2)
    return False


def start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --------------------------------------------------------------------------- measuring


async def one(client: httpx.AsyncClient, url: str, stream: bool) -> float | None:
    """Latency in ms to the last byte, or None when the request failed."""
    body = {"model": "gpt-4o-mini", "messages": PROMPT, "stream": stream}
    t0 = time.perf_counter()
    try:
        if stream:
            async with client.stream("POST", url, json=body) as response:
                async for _ in response.aiter_raw():
                    pass
        else:
            response = await client.post(url, json=body)
    except httpx.HTTPError:
        return None
    elapsed = time.perf_counter() - t0
    return elapsed * 1000.0 if response.status_code == 200 else None


async def sequential(
    targets: dict[str, str], n: int, stream: bool
) -> dict[str, list[float | None]]:
    """Round-robin over the targets so drift on a shared box hits all of them alike."""
    out: dict[str, list[float | None]] = {name: [] for name in targets}
    headers = {"authorization": f"Bearer {BENCH_KEY}"}
    async with httpx.AsyncClient(timeout=60, headers=headers) as client:
        for url in targets.values():  # warm-up
            for _ in range(20):
                await one(client, url, stream)
        for _ in range(n):
            for name, url in targets.items():
                out[name].append(await one(client, url, stream))
    return out


async def concurrent(
    targets: dict[str, str], total: int, stream: bool, in_flight: int = 64, rounds: int = 4
) -> dict[str, list[float | None]]:
    out: dict[str, list[float | None]] = {name: [] for name in targets}
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    headers = {"authorization": f"Bearer {BENCH_KEY}"}
    async with httpx.AsyncClient(timeout=120, limits=limits, headers=headers) as client:
        for url in targets.values():  # warm-up: open the pool
            await asyncio.gather(*(one(client, url, stream) for _ in range(in_flight)))
        per_round = max(in_flight, total // rounds)
        for _ in range(rounds):
            for name, url in targets.items():
                sem = asyncio.Semaphore(in_flight)

                async def bounded(url: str = url, sem: asyncio.Semaphore = sem) -> float | None:
                    async with sem:
                        return await one(client, url, stream)

                out[name] += await asyncio.gather(*(bounded() for _ in range(per_round)))
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(title: str, data: dict[str, list[float | None]]) -> list[str]:
    ok = {name: [v for v in values if v is not None] for name, values in data.items()}
    direct50, direct99 = pct(ok["direct"], 0.5), pct(ok["direct"], 0.99)
    lines = [
        f"### {title}",
        "",
        "| target | p50 ms | p99 ms | added p50 ms | added p99 ms | ok | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    added: dict[str, float] = {}
    for name, values in ok.items():
        failed = len(data[name]) - len(values)
        if not values:
            lines.append(f"| {name} | - | - | - | - | 0 | {failed} |")
            continue
        p50, p99 = pct(values, 0.5), pct(values, 0.99)
        a50, a99 = p50 - direct50, p99 - direct99
        if name != "direct":
            added[name] = a50
        extra = "- | -" if name == "direct" else f"{a50:.2f} | {a99:.2f}"
        lines.append(f"| {name} | {p50:.2f} | {p99:.2f} | {extra} | {len(values)} | {failed} |")
    if "linguagate" in added and "litellm" in added and added["linguagate"] > 0:
        ratio = added["litellm"] / added["linguagate"]
        lines.append("")
        lines.append(
            f"Added p50: LiteLLM {added['litellm']:.2f} ms vs LinguaGate "
            f"{added['linguagate']:.2f} ms ({ratio:.1f}x)."
        )
    lines.append("")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="sequential requests per target")
    parser.add_argument(
        "--concurrent-requests",
        type=int,
        default=1280,
        help="requests per target in the 64-in-flight test",
    )
    parser.add_argument(
        "--litellm",
        default=str(ROOT / ".cache/litellm-venv/bin/litellm"),
        help="litellm executable (in its own venv)",
    )
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare-relay baseline")
    parser.add_argument("--stub-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bare-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stub_port:
        run_stub(args.stub_port)
        return 0
    if args.bare_port:
        run_bare(args.bare_port, args.upstream)
        return 0

    work = Path(tempfile.mkdtemp(prefix="lg-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    notes: list[str] = []
    try:
        stub_port, lg_port = free_port(), free_port()
        procs.append(
            start([sys.executable, __file__, "--stub-port", str(stub_port)], work / "stub.log")
        )
        stub_url = f"http://127.0.0.1:{stub_port}/v1"
        if not wait_ready(stub_url + "/models", procs[-1]):
            print("stub upstream failed to start", file=sys.stderr)
            return 1
        config = work / "linguagate.yaml"
        config.write_text(
            f"server: {{host: 127.0.0.1, port: {lg_port}, access_log: true, log_level: warning}}\n"
            f"upstreams: {{stub: {{base_url: '{stub_url}', max_connections: 256}}}}\n"
            "routes: [{name: bench, prefix: /, upstream: stub, compress: []}]\n"
            "ledger: {path: null}\n"
        )
        linguagate = (
            shutil.which("linguagate", path=str(Path(sys.executable).parent)) or "linguagate"
        )
        procs.append(start([linguagate, "serve", "--config", str(config)], work / "linguagate.log"))
        if not wait_ready(f"http://127.0.0.1:{lg_port}/healthz", procs[-1]):
            print((work / "linguagate.log").read_text(), file=sys.stderr)
            return 1
        targets = {
            "direct": stub_url + "/chat/completions",
            "linguagate": f"http://127.0.0.1:{lg_port}/v1/chat/completions",
        }
        if not args.no_bare:
            bare_port = free_port()
            procs.append(
                start(
                    [
                        sys.executable,
                        __file__,
                        "--bare-port",
                        str(bare_port),
                        "--upstream",
                        stub_url,
                    ],
                    work / "bare.log",
                )
            )
            if wait_ready(f"http://127.0.0.1:{bare_port}/v1/models", procs[-1]):
                targets["bare-relay"] = f"http://127.0.0.1:{bare_port}/v1/chat/completions"
        if args.no_litellm:
            notes.append("LiteLLM: skipped (--no-litellm).")
        elif not Path(args.litellm).exists():
            notes.append(f"LiteLLM: not installed at {args.litellm}; comparison skipped.")
        else:
            ll_port = free_port()
            ll_config = work / "litellm.yaml"
            ll_config.write_text(
                "model_list:\n"
                "  - model_name: gpt-4o-mini\n"
                "    litellm_params:\n"
                "      model: openai/gpt-4o-mini\n"
                f"      api_base: {stub_url}\n"
                "      api_key: sk-bench\n"
                "litellm_settings:\n"
                "  telemetry: false\n"
                "general_settings:\n"
                f"  master_key: {BENCH_KEY}\n"
            )
            env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
            procs.append(
                start(
                    [
                        args.litellm,
                        "--config",
                        str(ll_config),
                        "--port",
                        str(ll_port),
                        "--host",
                        "127.0.0.1",
                        "--num_workers",
                        "1",
                    ],
                    work / "litellm.log",
                    env,
                )
            )
            if wait_ready(f"http://127.0.0.1:{ll_port}/health/liveliness", procs[-1], 300):
                targets["litellm"] = f"http://127.0.0.1:{ll_port}/v1/chat/completions"
            else:
                tail = (work / "litellm.log").read_text(errors="replace")[-600:]
                notes.append(f"LiteLLM: failed to start; comparison skipped. Log tail: {tail!r}")

        out = [
            f"Targets: {', '.join(targets)}; stub returns {N_CHUNKS + 2} SSE events or one JSON.",
            f"Machine: {os.cpu_count()} CPUs (shared); all processes on this box.",
            "",
        ]
        for stream in (False, True):
            kind = "streaming" if stream else "non-streaming"
            seq = asyncio.run(sequential(targets, args.requests, stream))
            section = report(f"sequential, {kind}", seq)
            print("\n".join(section), flush=True)
            conc = asyncio.run(concurrent(targets, args.concurrent_requests, stream))
            section += report(f"64 in flight, {kind}", conc)
            print("\n".join(section[-(len(targets) + 7) :]), flush=True)
            out += section
        out += notes
        print("\n".join(["", "=" * 60, *out]))
        return 0
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
