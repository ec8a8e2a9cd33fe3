"""Teacher alignment: word labels, dropped punctuation, repeats, filtering."""

from __future__ import annotations

from onnx_export.train.labels import align_words, drop_reason, label_all, label_record, norm


def _kept_words(text: str, compressed: str) -> list[str]:
    rec = label_record({"id": "r", "genre": "g", "text": text, "compressed": compressed})
    return [text[s:e] for (s, e), k in zip(rec.words, rec.word_keep, strict=True) if k]


def _kept_pieces(text: str, compressed: str) -> list[str]:
    rec = label_record({"id": "r", "genre": "g", "text": text, "compressed": compressed})
    return [text[p.start : p.end] for p in rec.pieces if p.keep]


def test_norm_strips_punctuation_and_case() -> None:
    assert norm("Tuesday,") == "tuesday"
    assert norm("(£14.2m)") == "142m"
    assert norm("—") == ""


def test_dropped_punctuation_still_matches() -> None:
    text = "On Tuesday, the council voted 5-4 (narrowly)."
    assert _kept_words(text, "Tuesday council voted 5-4 narrowly") == [
        "Tuesday,",
        "council",
        "voted",
        "5-4",
        "(narrowly).",
    ]
    # the comma and brackets themselves are dropped pieces, the dash inside 5-4 is kept
    assert _kept_pieces(text, "Tuesday council voted 5-4 narrowly") == [
        "Tuesday",
        "council",
        "voted",
        "5",
        "-",
        "4",
        "narrowly",
    ]


def test_kept_punctuation_is_the_adjacent_one() -> None:
    text = "a, b, c."
    assert _kept_pieces(text, "a c.") == ["a", "c", "."]
    assert _kept_pieces(text, "a b, c") == ["a", "b", ",", "c"]


def test_repeated_words_align_in_order() -> None:
    text = "the cat saw the dog and the cat ran"
    assert _kept_words(text, "cat dog cat ran") == ["cat", "dog", "cat", "ran"]
    rec = label_record({"id": "r", "genre": "g", "text": text, "compressed": "cat dog cat ran"})
    assert rec.word_keep == [False, True, False, False, True, False, False, True, True]


def test_greedy_alignment_window_and_misses() -> None:
    original = ["a", "b", "c", "d", "e"]
    assert align_words(original, ["b", "x", "d"]) == [1, -1, 3]  # a miss keeps the cursor
    assert align_words(original, ["e"], window=2) == [-1]
    assert align_words(original, ["b", "a"]) == [1, -1]  # never backwards


def test_partial_word_deletion_in_code() -> None:
    text = "lastScan: { at: ISODate('2025-09-24T16:42:11Z'), facility: 'HUB' }"
    kept = _kept_pieces(text, "2025-09-24T16:42:11Z, 'HUB'")
    assert "ISODate" not in kept and "2025" in kept and "HUB" in kept


def test_filtering_by_variation_and_gap() -> None:
    good = {"id": "ok", "genre": "g", "text": "alpha beta gamma delta", "compressed": "alpha gamma"}
    invented = {"id": "inv", "genre": "g", "text": "alpha beta gamma", "compressed": "alpha zeta"}
    reordered = {"id": "ord", "genre": "g", "text": "alpha beta gamma", "compressed": "gamma alpha"}
    kept, report = label_all([good, invented, reordered])
    assert [r.id for r in kept] == ["ok"]
    assert report.total == 3 and report.kept == 1
    assert report.dropped == {"variation_rate": 1, "alignment_gap": 1}
    assert sorted(report.dropped_ids) == ["inv", "ord"]
    assert "kept 1" in report.summary()
    assert drop_reason(label_record(good)) is None
