"""The model shipped in models/default: verifies, loads on CPU, compresses sensibly."""

from __future__ import annotations

import logging
import re

import pytest

from policies.bundle import load_bundle, resolve_model_path

TEXT = (
    "Maria Okafor opened the quarterly review on 12 March 2026. Revenue for the Northwind "
    "account rose to $4.2 million, mainly because the Lisbon office signed two new "
    "contracts in February. She said that the team should, in her opinion, probably "
    "consider hiring one or two additional engineers before the summer, although the "
    "budget for that has not really been approved yet. Ticket INC-20417 about the billing "
    "export is still open and is assigned to David Chen, who expects a fix by Friday. "
) * 3


@pytest.fixture(scope="module")
def default_compressor():  # type: ignore[no-untyped-def]
    from policies.engine import Compressor

    return Compressor.from_bundle(resolve_model_path("default"), device="cpu")


def test_shipped_bundle_verifies() -> None:
    bundle = load_bundle(resolve_model_path("default"))  # sha256 of every shipped file
    assert bundle.family == "bert" and set(bundle.variants) == {"int8"}
    size = sum(p.stat().st_size for p in bundle.path.iterdir() if p.is_file())
    assert size <= 25 * 1024 * 1024


def test_int8_only_bundle_stays_on_cpu_when_cuda_is_requested(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from policies.engine import Compressor

    with caplog.at_level(logging.INFO, logger="linguagate.engine"):
        comp = Compressor.from_bundle(resolve_model_path("default"), device="cuda")
    assert comp.device == "cpu"
    assert "only an int8 (CPU) variant" in caplog.text


def test_default_model_keeps_facts(default_compressor) -> None:  # type: ignore[no-untyped-def]
    out = default_compressor.compress(TEXT, rate=0.5, force_reserve_digit=True)
    compressed = out["compressed_prompt"]
    assert out["compressed_tokens"] < 0.6 * out["origin_tokens"]
    # faithful: every kept word and mark occurs verbatim in the original, in order
    pos = 0
    for piece in re.findall(r"\w+|[^\w\s]", compressed):
        pos = TEXT.index(piece, pos) + len(piece)
    assert " ." not in compressed and " ," not in compressed  # marks stay attached
    for fact in ("2026", "$4.2", "INC-20417"):
        assert fact in compressed
    # the trained model, unlike random dropping, keeps names over filler
    assert re.search(r"Okafor|Chen|Northwind|Lisbon", compressed)
    fillers = sum(compressed.count(w) for w in (" the ", " that ", " really ", " probably "))
    assert fillers < sum(TEXT.count(w) for w in (" the ", " that ", " really ", " probably ")) / 2
