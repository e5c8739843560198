"""Assertions the test files share: one copy each."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from qa.errors import IngestError
from qa.ingest import read_source
from qa.store import IndexStore
from qa.store.layout import PASSAGES


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
