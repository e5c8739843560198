"""Assertions the test files share: one copy each."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qa.errors import IngestError
from qa.ingest import read_source
from qa.store import IndexStore, VectorIndex
from qa.store.compact import decode_vectors
from qa.store.layout import PASSAGES, VECTORS


def one_line_error(result: Any, *fragments: str, code: int = 1) -> str:
    """A CLI result that failed with ``code`` and one ``Error:`` line on stderr holding every fragment."""
    assert result.exit_code == code, result.output
    err = result.stderr.strip()
    assert err.startswith("Error: ") and "\n" not in err and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in err, err
    return err


def ingest_error(path: Path, *fragments: str) -> str:
    """Reading ``path`` fails with one short IngestError line that names the file and every fragment."""
    with pytest.raises(IngestError) as info:
        list(read_source(path))
    message = str(info.value)
    assert "\n" not in message and str(path) in message and len(message) < 400, message[:500]
    for fragment in fragments:
        assert fragment in message, message
    return message


def passage_text_hashes(index: Path, pmid: str) -> dict[int, str]:
    """Passage id -> hash of its embedded text, for one record of the live snapshot (read straight from SQLite)."""
    db = sqlite3.connect(f"file:{IndexStore(index).current_dir() / PASSAGES}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT id, text_hash FROM chunks WHERE pmid=?", (pmid,)).fetchall())
    finally:
        db.close()


def index_rows(index: Path, sql: str) -> list[tuple]:
    """The rows ``sql`` selects from the live snapshot's SQLite."""
    db = sqlite3.connect(IndexStore(index).current_dir() / PASSAGES)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


# The records' rows hold their (compressed) abstracts: equal records and equal offsets are equal passage texts.
PASSAGE_ROWS = "SELECT id, pmid, ordinal, section, start, end, sentences, n_tokens, text_hash FROM chunks ORDER BY id"
RECORD_ROWS = "SELECT * FROM records ORDER BY pmid"
SENTENCE_ROWS = "SELECT pmid, codes FROM sentences ORDER BY pmid"


def index_vectors(index: Path) -> tuple[np.ndarray, np.ndarray]:
    """The live snapshot's passage ids, sorted, and their vectors."""
    vectors = VectorIndex.read(IndexStore(index).current_dir() / VECTORS)
    ids = np.sort(vectors.ids())
    return ids, vectors.vectors(ids)


def same_index(a: Path, b: Path, *, sentence_cosine: float) -> None:
    """Two builds of the same sources: records, passage rows (ids, order, text, offsets, section), vectors
    and sentence rows agree. Sentence vectors are compared as read back from their 3-bit codes: two engines
    batch sentences differently (cosine >= 0.965 before coding), and each code moves a vector a little more."""
    assert index_rows(a, RECORD_ROWS) == index_rows(b, RECORD_ROWS)
    assert index_rows(a, PASSAGE_ROWS) == index_rows(b, PASSAGE_ROWS)
    ids_a, va = index_vectors(a)
    ids_b, vb = index_vectors(b)
    assert np.array_equal(ids_a, ids_b)
    assert float(np.min(np.sum(va * vb, axis=1))) >= 0.9999
    sa, sb = index_rows(a, SENTENCE_ROWS), index_rows(b, SENTENCE_ROWS)
    assert [(r[0], len(r[1])) for r in sa] == [(r[0], len(r[1])) for r in sb]
    dimension = IndexStore(a).manifest().dimension
    ha = np.concatenate([decode_vectors(r[1], dimension) for r in sa])
    hb = np.concatenate([decode_vectors(r[1], dimension) for r in sb])
    cosines = np.sum(ha * hb, axis=1) / np.linalg.norm(ha, axis=1) / np.linalg.norm(hb, axis=1)
    assert float(cosines.min()) >= sentence_cosine, float(cosines.min())
