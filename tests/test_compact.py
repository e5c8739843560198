"""The compact SQLite side on real abstracts: 3-bit sentence codes, compressed abstracts, bytes per passage."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from qa.embed import Embedder
from qa.errors import IndexStoreError
from qa.store import IndexStore, Snapshot, file_facts
from qa.store.compact import code_size, decode_vectors, encode_vectors, unit_rows
from qa.store.layout import MANIFEST, PASSAGES


def _rows(index: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{IndexStore(index).current_dir() / PASSAGES}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_sentence_codes_read_back_close_to_what_the_encoder_gives(small_index: Path, embedder: Embedder) -> None:
    snapshot = IndexStore(small_index).open()
    try:
        pmids = sorted(snapshot.passages.pmids())[:25]
        sentences = [s for p in pmids for s in snapshot.passages.sentences([p])[p]]
    finally:
        snapshot.close()
    assert len(sentences) > 200
    fresh = embedder.encode([s.text for s in sentences])
    cosines = np.sum(np.stack([s.vector for s in sentences]) * fresh, axis=1)
    # the codes' own loss is 0.981 on average; the build batches sentences, which moves them a little more
    assert float(np.mean(cosines)) >= 0.96 and float(np.min(cosines)) >= 0.85, (np.mean(cosines), np.min(cosines))
    assert all(abs(float(np.linalg.norm(s.vector)) - 1) < 1e-5 for s in sentences)


def test_each_sentence_takes_its_bytes_and_codes_read_back_code_to_themselves(small_index: Path) -> None:
    dimension = IndexStore(small_index).manifest().dimension
    rows = _rows(small_index, "SELECT pmid, codes FROM sentences")
    assert len(rows) == IndexStore(small_index).manifest().records
    for _, codes in rows:
        assert len(codes) % code_size(dimension) == 0 and code_size(dimension) == 144
        assert encode_vectors(decode_vectors(codes, dimension)) == codes
        # the float16 rounding a shard keeps vectors in does not move a code either
        half = np.asarray(unit_rows(decode_vectors(codes, dimension)) * 1.0, dtype=np.float16).astype(np.float32)
        assert encode_vectors(half) == encode_vectors(unit_rows(decode_vectors(codes, dimension)))


def test_the_sqlite_side_holds_about_a_kilobyte_a_passage(small_index: Path) -> None:
    """The shared 1,001 records take 953 bytes a passage (``bench/capacity.py --sqlite``; 2,579 in format 6).
    This 201-record index carries the same fixed pages (one 8 KB page or more for each of ten tables and
    indexes, some 75 bytes a passage here) over a fifth of the passages."""
    store = IndexStore(small_index)
    passages = store.manifest().chunks
    size = (store.current_dir() / PASSAGES).stat().st_size
    assert size / passages <= 1100, size / passages
    (codes,) = _rows(small_index, "SELECT SUM(LENGTH(codes)) FROM sentences")[0]
    (abstracts,) = _rows(small_index, "SELECT SUM(LENGTH(abstract)) FROM records")[0]
    assert codes / passages <= 300 and abstracts / passages <= 150, (codes / passages, abstracts / passages)


def _damaged_copy(small_index: Path, tmp_path: Path, sql: str) -> Path:
    """A copy of the index with ``sql`` run on its SQLite, the manifest's file facts made to agree (a hostile
    file, not a torn one)."""
    copy = tmp_path / "index"
    shutil.copytree(small_index, copy)
    folder = IndexStore(copy).current_dir()
    db = sqlite3.connect(folder / PASSAGES)
    db.execute(sql)
    db.commit()
    db.close()
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][PASSAGES] = file_facts(folder / PASSAGES)
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize(
    ("sql", "read", "words"),
    [
        ("UPDATE sentences SET codes = substr(codes, 1, 100) WHERE pmid = {pmid}", "sentences", "sentence codes"),
        ("UPDATE records SET abstract = X'789c0011' WHERE pmid = '{pmid}'", "record", "damaged abstract"),
        ("UPDATE records SET abstract = zeroblob(64) WHERE pmid = '{pmid}'", "sentences", "damaged abstract"),
        # JSON columns: a large index is not hashed on load, so they are checked as they are read
        ("UPDATE chunks SET sentences = '[[0, 5], x' WHERE pmid = '{pmid}'", "sentences", "damaged sentence offsets"),
        ("UPDATE records SET sections = '[[\"A\", 0, -4]]' WHERE pmid = '{pmid}'", "record", "damaged sections"),
        ("UPDATE records SET mesh = '{{\"a\": 1}}' WHERE pmid = '{pmid}'", "record", "damaged MeSH headings"),
    ],
)
def test_a_damaged_sentence_row_or_abstract_is_refused_in_one_line(
    small_index: Path, tmp_path: Path, sql: str, read: str, words: str
) -> None:
    pmid = _rows(small_index, "SELECT pmid FROM records ORDER BY pmid LIMIT 1")[0][0]
    folder = _damaged_copy(small_index, tmp_path, sql.format(pmid=pmid))
    snapshot = Snapshot(folder, verify=True)
    try:
        with pytest.raises(IndexStoreError) as info:
            snapshot.passages.sentences([pmid]) if read == "sentences" else snapshot.passages.record(pmid)
    finally:
        snapshot.close()
    message = str(info.value)
    assert words in message and pmid in message and "\n" not in message and "rebuild" in message, message


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE sentences SET codes = codes || zeroblob(144) WHERE pmid = {pmid}",
        "UPDATE chunks SET sentences = '[[0, 5], x' WHERE pmid = '{pmid}'",  # reported, not a crash of verify
        "UPDATE chunks SET sentences = '[[9, 2]]' WHERE pmid = '{pmid}'",
    ],
)
def test_verify_finds_a_record_whose_codes_do_not_fit_its_sentences(
    small_index: Path, tmp_path: Path, sql: str
) -> None:
    from qa.store import verify_index

    assert verify_index(small_index).ok
    pmid = _rows(small_index, "SELECT pmid FROM records ORDER BY pmid LIMIT 1")[0][0]
    _damaged_copy(small_index, tmp_path, sql.format(pmid=pmid))
    report = verify_index(tmp_path / "index")
    assert not report.ok and any("1 whose codes do not fit their sentences" in p for p in report.problems), report
