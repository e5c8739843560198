"""Store: the on-disk index -- FAISS vectors, SQLite passages and a manifest -- written atomically.

Layout of an index directory::

    CURRENT                 name of the live snapshot (replaced atomically)
    snap-<time>-<id>/       manifest.json, vectors.faiss, passages.sqlite
    .build-<id>/            a build in progress; never read, removed by the next build
    .lock                   held by the one build allowed at a time

A build writes a complete new snapshot beside the old one and only then points
``CURRENT`` at it, so a crash, Ctrl-C or failed parse at any moment leaves the
previous index exactly as it was. Nothing is pickled: vectors are FAISS's own
format, everything else is SQLite and JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .chunk import Chunk
from .errors import IndexStoreError
from .ingest import Record, Section

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
PASSAGES = "passages.sqlite"
CURRENT = "CURRENT"
LOCK = ".lock"

_SCHEMA = """
CREATE TABLE records (
    pmid     TEXT PRIMARY KEY,
    version  INTEGER NOT NULL,
    title    TEXT,
    journal  TEXT,
    year     INTEGER,
    doi      TEXT,
    mesh     TEXT NOT NULL,       -- JSON list of MeSH descriptor names
    abstract TEXT NOT NULL,
    sections TEXT NOT NULL        -- JSON list of [label, start, end] into abstract
);
CREATE TABLE chunks (
    id        INTEGER PRIMARY KEY, -- the vector's id in FAISS
    pmid      TEXT NOT NULL REFERENCES records(pmid),
    ordinal   INTEGER NOT NULL,
    section   TEXT,
    start     INTEGER NOT NULL,    -- offsets into records.abstract
    end       INTEGER NOT NULL,
    sentences TEXT NOT NULL,       -- JSON list of [start, end] into records.abstract
    n_tokens  INTEGER NOT NULL
);
CREATE INDEX chunks_pmid ON chunks(pmid);
"""


@dataclass
class Manifest:
    """What an index holds and how it was made; the first thing every reader checks."""

    model: str
    dimension: int
    max_seq_length: int
    chunking: dict[str, Any]
    records: int
    chunks: int
    built_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    build_seconds: float = 0.0
    sources: list[str] = field(default_factory=list)
    index_type: str = "flat-ip"
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_file(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexStoreError(f"{path}: unreadable manifest ({exc})") from None
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            found = data.get("format_version") if isinstance(data, dict) else None
            raise IndexStoreError(
                f"{path}: index format {found!r} is not supported by this version (expected {FORMAT_VERSION}); "
                "rebuild the index with qa build"
            )
        known = {f for f in cls.__dataclass_fields__}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise IndexStoreError(f"{path}: incomplete manifest ({exc})") from None


@dataclass(frozen=True)
class StoredChunk:
    """A passage read back from the index, with its record's citation fields."""

    id: int
    pmid: str
    ordinal: int
    section: str | None
    start: int
    end: int
    text: str
    sentences: tuple[tuple[int, int], ...]  # offsets into ``text``
    title: str | None
    journal: str | None
    year: int | None
    doi: str | None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


class IndexStore:
    """An index directory: which snapshot is live, one writer at a time, readers at will."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        return (self.path / CURRENT).is_file()

    def current_dir(self) -> Path:
        pointer = self.path / CURRENT
        if not pointer.is_file():
            if not self.path.exists():
                raise IndexStoreError(f"no index at {self.path}: run `qa build FILE...` first")
            raise IndexStoreError(f"no index built in {self.path} yet: run `qa build FILE...` first")
        name = pointer.read_text(encoding="utf-8").strip()
        if not name.startswith("snap-") or "/" in name:
            raise IndexStoreError(f"{pointer}: corrupt pointer {name[:40]!r}; rebuild with qa build")
        return self.path / name

    def manifest(self) -> Manifest:
        return Manifest.from_file(self.current_dir() / MANIFEST)

    def open(self) -> Snapshot:
        """The live snapshot; retries if a build swaps it between reading CURRENT and opening files."""
        for _ in range(5):
            directory = self.current_dir()
            if directory.is_dir():
                try:
                    return Snapshot(directory)
                except FileNotFoundError:
                    pass
            time.sleep(0.05)
        raise IndexStoreError(f"{self.path}: live snapshot {self.current_dir().name} is missing; rebuild with qa build")

    def lock(self, timeout: float = 0) -> Any:
        """An exclusive lock for writers; a second build fails at once with a clear message."""
        from filelock import FileLock, Timeout

        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path / LOCK), timeout=timeout)
        try:
            lock.acquire()
        except Timeout:
            raise IndexStoreError(
                f"another build is running on {self.path} (lock {self.path / LOCK} is held); wait for it to finish"
            ) from None
        return lock

    def begin(self, *, dimension: int) -> SnapshotWriter:
        """Start a new snapshot; call under ``lock()``."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.remove_stale()
        return SnapshotWriter(self, self.path / f".build-{uuid.uuid4().hex[:12]}", dimension)

    def remove_stale(self) -> None:
        """Delete unfinished builds and snapshots that are no longer live (call under the lock)."""
        live = None
        if self.exists():
            live = (self.path / CURRENT).read_text(encoding="utf-8").strip()
        for child in self.path.iterdir():
            if child.is_dir() and (
                child.name.startswith(".build-") or (child.name.startswith("snap-") and child.name != live)
            ):
                shutil.rmtree(child, ignore_errors=True)

    def publish(self, snapshot_dir: Path) -> None:
        """Point CURRENT at a finished snapshot: the single atomic step of every build."""
        tmp = self.path / f".{CURRENT}.{uuid.uuid4().hex[:8]}"
        tmp.write_text(snapshot_dir.name + "\n", encoding="utf-8")
        _fsync_file(tmp)
        os.replace(tmp, self.path / CURRENT)
        _fsync_dir(self.path)


class SnapshotWriter:
    """Fills a temporary directory; ``commit`` turns it into the live snapshot."""

    def __init__(self, store: IndexStore, directory: Path, dimension: int) -> None:
        import faiss

        self.store = store
        self.dir = directory
        self.dir.mkdir(parents=True)
        self.db = sqlite3.connect(self.dir / PASSAGES)
        # Durability comes from fsync + rename at commit, so skip the journal while filling.
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.executescript(_SCHEMA)
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self.dimension = dimension
        self._next_id = 0

    # records are staged first so that "last one wins" and deletions resolve before chunking
    def put_record(self, record: Record) -> bool:
        """Store a record; True if it replaced an earlier one with the same PMID."""
        existed = self.db.execute("SELECT 1 FROM records WHERE pmid=?", (record.pmid,)).fetchone() is not None
        spans = [[label, s, e] for label, s, e in record.section_spans]
        self.db.execute(
            "INSERT OR REPLACE INTO records VALUES (?,?,?,?,?,?,?,?,?)",
            (
                record.pmid,
                record.version,
                record.title,
                record.journal,
                record.year,
                record.doi,
                json.dumps(list(record.mesh)),
                record.abstract,
                json.dumps(spans),
            ),
        )
        return existed

    def delete_records(self, pmids: Iterable[str]) -> int:
        removed = 0
        for pmid in pmids:
            removed += self.db.execute("DELETE FROM records WHERE pmid=?", (pmid,)).rowcount
        return removed

    def record_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def iter_records(self, batch: int = 256) -> Iterator[list[Record]]:
        cursor = self.db.execute(
            "SELECT pmid, version, title, journal, year, doi, mesh, abstract, sections FROM records ORDER BY pmid"
        )
        while rows := cursor.fetchmany(batch):
            yield [_record_from_row(r) for r in rows]

    def add_chunks(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk")
        ids = np.arange(self._next_id, self._next_id + len(chunks), dtype=np.int64)
        self._next_id += len(chunks)
        self.db.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?)",
            [
                (
                    int(i),
                    c.pmid,
                    c.ordinal,
                    c.section,
                    c.start,
                    c.end,
                    json.dumps([list(s) for s in c.sentences]),
                    c.n_tokens,
                )
                for i, c in zip(ids, chunks)
            ],
        )
        if len(chunks):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)

    def commit(self, manifest: Manifest) -> Path:
        import faiss

        manifest.chunks = int(self.index.ntotal)
        manifest.records = self.record_count()
        self.db.commit()
        self.db.close()
        faiss.write_index(self.index, str(self.dir / VECTORS))
        (self.dir / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
        for name in (PASSAGES, VECTORS, MANIFEST):
            _fsync_file(self.dir / name)
        final = self.store.path / f"snap-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        os.rename(self.dir, final)
        _fsync_dir(self.store.path)
        self.store.publish(final)
        self.store.remove_stale()
        return final

    def abort(self) -> None:
        try:
            self.db.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _record_from_row(row: Sequence[Any]) -> Record:
    pmid, version, title, journal, year, doi, mesh, abstract, sections = row
    return Record(
        pmid=pmid,
        version=version,
        title=title,
        journal=journal,
        year=year,
        doi=doi,
        mesh=tuple(json.loads(mesh)),
        sections=tuple(Section(label, abstract[s:e]) for label, s, e in json.loads(sections)),
    )


class Snapshot:
    """One finished, immutable snapshot opened for reading."""

    def __init__(self, directory: Path) -> None:
        import faiss

        self.dir = directory
        self.manifest = Manifest.from_file(directory / MANIFEST)
        vectors = directory / VECTORS
        passages = directory / PASSAGES
        for f in (vectors, passages):
            if not f.is_file():
                raise FileNotFoundError(f)
        try:
            self.index = faiss.read_index(str(vectors))
        except RuntimeError as exc:
            raise IndexStoreError(
                f"{vectors}: unreadable FAISS index ({str(exc).splitlines()[-1][:120]}); rebuild with qa build"
            ) from None
        if self.index.d != self.manifest.dimension or self.index.ntotal != self.manifest.chunks:
            raise IndexStoreError(
                f"{vectors}: holds {self.index.ntotal} vectors of dimension {self.index.d}, manifest says "
                f"{self.manifest.chunks} of {self.manifest.dimension}; rebuild with qa build"
            )
        # Read-only and shareable across threads: readers never write.
        self.db = sqlite3.connect(f"file:{passages}?mode=ro", uri=True, check_same_thread=False)

    def close(self) -> None:
        self.db.close()

    def search(self, vectors: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        n = max(1, min(n, int(self.index.ntotal)))
        scores, ids = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), n)
        return scores, ids

    def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            f"SELECT c.id, c.pmid, c.ordinal, c.section, c.start, c.end, c.sentences, "
            f"r.title, r.journal, r.year, r.doi, r.abstract FROM chunks c JOIN records r ON r.pmid = c.pmid "
            f"WHERE c.id IN ({marks})",
            [int(i) for i in ids],
        ).fetchall()
        out = {}
        for cid, pmid, ordinal, section, start, end, sentences, title, journal, year, doi, abstract in rows:
            out[cid] = StoredChunk(
                id=cid,
                pmid=pmid,
                ordinal=ordinal,
                section=section,
                start=start,
                end=end,
                text=abstract[start:end],
                sentences=tuple((s - start, e - start) for s, e in json.loads(sentences)),
                title=title,
                journal=journal,
                year=year,
                doi=doi,
            )
        return out

    def record(self, pmid: str) -> Record | None:
        row = self.db.execute(
            "SELECT pmid, version, title, journal, year, doi, mesh, abstract, sections FROM records WHERE pmid=?",
            (pmid,),
        ).fetchone()
        return _record_from_row(row) if row else None

    def stats(self) -> dict[str, Any]:
        (records,) = self.db.execute("SELECT COUNT(*) FROM records").fetchone()
        (chunks,) = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()
        years = self.db.execute("SELECT MIN(year), MAX(year) FROM records").fetchone()
        size = sum(f.stat().st_size for f in self.dir.iterdir() if f.is_file())
        return {"records": records, "chunks": chunks, "year_min": years[0], "year_max": years[1], "bytes": size}


def describe(path: str | Path) -> dict[str, Any]:
    """What ``qa info`` shows, read from the manifest and SQLite only (no FAISS, no model)."""
    store = IndexStore(path)
    directory = store.current_dir()
    manifest = Manifest.from_file(directory / MANIFEST)
    passages = directory / PASSAGES
    if not passages.is_file():
        raise IndexStoreError(f"{passages}: missing; rebuild with qa build")
    db = sqlite3.connect(f"file:{passages}?mode=ro", uri=True)
    try:
        (records,) = db.execute("SELECT COUNT(*) FROM records").fetchone()
        (chunks,) = db.execute("SELECT COUNT(*) FROM chunks").fetchone()
        year_min, year_max = db.execute("SELECT MIN(year), MAX(year) FROM records").fetchone()
        (titled,) = db.execute("SELECT COUNT(*) FROM records WHERE title IS NOT NULL").fetchone()
    except sqlite3.DatabaseError as exc:
        raise IndexStoreError(f"{passages}: unreadable ({exc}); rebuild with qa build") from None
    finally:
        db.close()
    size = sum(f.stat().st_size for f in directory.iterdir() if f.is_file())
    return {
        "index": str(store.path.resolve()),
        "snapshot": directory.name,
        "records": records,
        "passages": chunks,
        "records_with_title": titled,
        "years": f"{year_min}-{year_max}" if year_min else None,
        "model": manifest.model,
        "dimension": manifest.dimension,
        "max_seq_length": manifest.max_seq_length,
        "chunking": manifest.chunking,
        "index_type": manifest.index_type,
        "built_at": manifest.built_at,
        "build_seconds": manifest.build_seconds,
        "sources": manifest.sources,
        "size_bytes": size,
        "format_version": manifest.format_version,
    }


__all__ = ["IndexStore", "Snapshot", "SnapshotWriter", "Manifest", "StoredChunk", "FORMAT_VERSION", "describe"]
