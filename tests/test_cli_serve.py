"""``linguagate serve``: bad input gives one line and a non-zero exit; it really serves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from proxy.cli import main
from tests.fixtures.servers import free_port


def test_bad_port_argument(capsys):
    with pytest.raises(SystemExit) as info:
        main(["serve", "--port", "http"])
    assert info.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--port" in err[0]


def test_bad_config_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: {port: x}\nroutes: []\n")
    assert main(["serve", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("linguagate serve: error: invalid configuration: server.port (line 1)")
    assert "Traceback" not in err[0]


def test_missing_config_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LINGUAGATE_CONFIG", str(tmp_path / "nope.yaml"))
    assert main(["serve"]) == 2
    assert "cannot read config" in capsys.readouterr().err


def _serve(tmp_path, port: int, *extra: str) -> tuple[subprocess.Popen[str], list[str]]:
    """Start ``linguagate serve`` and wait for its startup line (no sleeping)."""
    env = {k: v for k, v in os.environ.items() if k != "LINGUAGATE_CONFIG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "serve", "--port", str(port), *extra],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        if "ready" in line or "Uvicorn running" in line:
            break
    return proc, lines


def test_query_strings_never_reach_the_log(tmp_path, stub):
    config = tmp_path / "c.yaml"
    config.write_text(
        f"upstreams: {{up: {{base_url: '{stub.url}'}}}}\n"
        "routes: [{upstream: up}]\nledger: {path: null}\n"
    )
    port = free_port()
    proc, lines = _serve(tmp_path, port, "--config", str(config))
    try:
        url = f"http://127.0.0.1:{port}/v1/models?api-key=SECRET-IN-QUERY"
        assert httpx.get(url, timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        _, out = proc.communicate(timeout=30)
    assert stub.requests[0].query == b"api-key=SECRET-IN-QUERY"  # forwarded, but not logged
    text = "".join(lines) + (out or "")
    assert "path=/v1/models" in text and "SECRET-IN-QUERY" not in text


def test_serve_default_config_runs(tmp_path):
    port = free_port()
    proc, lines = _serve(tmp_path, port)
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert response.status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 200  # the shipped default model is loaded
    finally:
        proc.send_signal(signal.SIGINT)
        _, out = proc.communicate(timeout=30)
    assert proc.returncode in (0, 130)  # uvicorn re-raises the SIGINT after a clean shutdown
    text = "".join(lines) + (out or "")
    assert "compression model loaded" in text and "compression is OFF" not in text
    assert "Traceback" not in text


def test_missing_model_bundle_one_line(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(
        f"model: {{path: {tmp_path / 'no-model'}}}\n"
        "upstreams: {up: {base_url: 'http://127.0.0.1:9/v1'}}\n"
        "routes: [{upstream: up, compress: [{rate: 0.5}]}]\n"
    )
    assert main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("linguagate serve: error: model:")
