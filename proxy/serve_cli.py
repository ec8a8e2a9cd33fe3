"""``linguagate serve [--config P] [--host H] [--port N]``: run the proxy with uvicorn."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="P",
        help="YAML configuration (default: $LINGUAGATE_CONFIG, else the embedded default)",
    )
    parser.add_argument("--host", metavar="H", help="listen address (overrides server.host)")
    parser.add_argument(
        "--port", metavar="N", type=_port, help="listen port (overrides server.port)"
    )


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 0-65535: {port}")
    return port


def _fail(message: str) -> int:
    print(f"linguagate serve: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from policies.config import ConfigError, resolve_config

    try:
        config = resolve_config(args.config)
    except ConfigError as exc:
        first = exc.problems[0]
        more = len(exc.problems) - 1
        suffix = f" (+{more} more; run linguagate check-config)" if more else ""
        return _fail(f"invalid configuration: {first}{suffix}")
    if config.compresses:  # a missing model is a one-line error, not a lifespan traceback
        from policies.bundle import BundleError, load_bundle, resolve_model_path

        try:
            load_bundle(resolve_model_path(config.model.path), verify=False)
        except BundleError as exc:
            return _fail(f"model: {exc}")
    host = args.host or config.server.host
    port = config.server.port if args.port is None else args.port

    import uvicorn

    from proxy.app import create_app

    level = config.server.log_level
    logging.basicConfig(
        level=logging.DEBUG if level == "trace" else level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if level != "trace":
        # httpx logs every request URL at INFO, query string included (which may carry
        # a client's key); LinguaGate's own access log omits it.
        for noisy in ("httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
            http="httptools" if importlib.util.find_spec("httptools") else "h11",
            lifespan="on",
            access_log=False,  # LinguaGate writes its own access log line
            log_level=level,
            log_config=None,
            server_header=False,
            date_header=True,
        )
    )
    try:
        server.run()
    except OSError as exc:
        return _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    except SystemExit as exc:
        return int(exc.code or 1)
    return 0 if server.started else 1
