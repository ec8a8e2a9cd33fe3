"""Train/dev split: by record, stratified by genre, deterministic from the seed."""

from __future__ import annotations

from pathlib import Path

from onnx_export.train.split import read_split, split_ids, write_split


def _items() -> list[tuple[str, str]]:
    return [
        (f"{g}-{i:02d}", g) for g, n in (("news", 20), ("forum", 6), ("legal", 9)) for i in range(n)
    ]


def test_stratified_and_disjoint() -> None:
    train, dev = split_ids(_items(), dev_fraction=0.2, seed=1)
    assert not set(train) & set(dev)
    assert len(train) + len(dev) == 35
    per_genre = {g: sum(1 for d in dev if d.startswith(g)) for g in ("news", "forum", "legal")}
    assert per_genre == {"news": 4, "forum": 2, "legal": 2}
    assert len(dev) / 35 >= 0.15


def test_deterministic_and_seeded(tmp_path: Path) -> None:
    a = split_ids(_items(), 0.2, seed=7)
    assert a == split_ids(list(reversed(_items())), 0.2, seed=7)
    assert a != split_ids(_items(), 0.2, seed=8)
    write_split(tmp_path / "split.json", *a, seed=7, dev_fraction=0.2)
    assert read_split(tmp_path / "split.json") == a


def test_shipped_data_split_has_every_genre_in_dev() -> None:
    from onnx_export.train.labels import read_records

    records = list(read_records(Path(__file__).resolve().parent.parent / "data" / "distill"))
    _train, dev = split_ids((r["id"], r["genre"]) for r in records)
    genres = {r["genre"] for r in records}
    dev_genres = {r["genre"] for r in records if r["id"] in set(dev)}
    assert dev_genres == genres
    assert len(dev) >= 0.15 * len(records)
