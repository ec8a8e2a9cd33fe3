"""The shipped teacher data still passes the checks it was made with (check_distill.py)."""

from __future__ import annotations

from pathlib import Path

from onnx_export.train.labels import label_all, read_records

DATA = Path(__file__).resolve().parent.parent / "data" / "distill"


def test_records_are_clean_deletions_with_verbatim_answers() -> None:
    records = list(read_records(DATA))
    assert len(records) >= 500
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids))
    for r in records:
        words = len(r["text"].split())
        assert 120 <= words <= 700, r["id"]
        assert 0.15 <= len(r["compressed"].split()) / words <= 0.75, r["id"]
        assert len(r["qa"]) == 3, r["id"]
        for qa in r["qa"]:
            assert qa["a"] and qa["a"].lower() in r["text"].lower(), (r["id"], qa["a"])
    kept, report = label_all(records)
    assert report.kept == len(records), report.summary()
    assert all(rec.alignment_gap == 0 for rec in kept)
