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

import hashlib
import json
import math
import os
import shutil
import signal
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
from .ingest import Record, Section, record_from_dict, record_to_dict
from .lexical import BM25_K1, COLUMN_WEIGHTS, FTS_SCHEMA, document_text, match_expression, terms

FORMAT_VERSION = 3  # 2: FTS5 lexical table; 3: content hashes for incremental builds
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
    sections TEXT NOT NULL,       -- JSON list of [label, start, end] into abstract
    hash     TEXT NOT NULL        -- content hash: an unchanged record is never re-embedded
);
CREATE TABLE chunks (
    id        INTEGER PRIMARY KEY, -- the vector's id in FAISS
    pmid      TEXT NOT NULL REFERENCES records(pmid),
    ordinal   INTEGER NOT NULL,
    section   TEXT,
    start     INTEGER NOT NULL,    -- offsets into records.abstract
    end       INTEGER NOT NULL,
    sentences TEXT NOT NULL,       -- JSON list of [start, end] into records.abstract
    n_tokens  INTEGER NOT NULL,
    text_hash TEXT NOT NULL        -- hash of the embedded text: its vector can be reused
);
CREATE INDEX chunks_pmid ON chunks(pmid);
"""

# Incoming records of one build, resolved before anything is embedded (TEMP: never in the snapshot).
_STAGING = """
CREATE TEMP TABLE staged (pmid TEXT PRIMARY KEY, hash TEXT NOT NULL, record TEXT NOT NULL);
CREATE TEMP TABLE staged_deletions (pmid TEXT PRIMARY KEY);
"""


INDEX_TYPES = ("auto", "flat", "ivf-sq8")
IVF_THRESHOLD = 100_000  # passages; below it exact search is fast enough and needs no training
DEFAULT_NPROBE = 32


def resolve_index_type(requested: str, n_vectors: int) -> str:
    """The vector index for ``n_vectors``: exact below the threshold, IVF with 8-bit codes above it."""
    if requested not in INDEX_TYPES:
        raise IndexStoreError(f"unknown index type {requested!r}; choose one of {', '.join(INDEX_TYPES)}")
    if requested != "auto":
        return requested
    return "flat" if n_vectors < IVF_THRESHOLD else "ivf-sq8"


def index_kind(index: Any) -> str:
    import faiss

    return "ivf-sq8" if isinstance(index, faiss.IndexIVF) else "flat"


def all_ids(index: Any) -> np.ndarray:
    """Every id stored in a flat (IDMap2) or IVF index."""
    import faiss

    if isinstance(index, faiss.IndexIVF):
        lists = index.invlists
        parts = [
            faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
            for i in range(index.nlist)
            if lists.list_size(i)
        ]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return faiss.vector_to_array(index.id_map)


def convert_index(index: Any, kind: str, dimension: int) -> Any:
    """Rebuild ``index`` as ``kind`` keeping every id (IVF: trained on a sample of the vectors)."""
    import faiss

    if index_kind(index) == kind:
        return index
    ids = all_ids(index)
    if kind != "flat" and len(ids) == 0:
        return index  # nothing to train on; an empty index stays flat
    if kind == "flat":
        out = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    else:
        n = len(ids)
        # about 4 x sqrt(n) lists, but at least 39 training points per list (FAISS's minimum)
        nlist = int(max(1, min(65536, 4 * math.sqrt(max(n, 1)), n // 39)))
        quantizer = faiss.IndexFlatIP(dimension)
        out = faiss.IndexIVFScalarQuantizer(
            quantizer, dimension, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        sample = np.random.default_rng(0).choice(ids, size=min(n, 64 * nlist), replace=False) if n else ids
        out.train(index.reconstruct_batch(np.sort(sample)))
        out.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct and remove by id
    for i in range(0, len(ids), 50_000):
        block = ids[i : i + 50_000]
        out.add_with_ids(index.reconstruct_batch(block), block)
    return out


def record_hash(record: Record) -> str:
    return hashlib.sha256(json.dumps(record_to_dict(record), sort_keys=True).encode()).hexdigest()[:32]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class Plan:
    """What a build will change, decided before any embedding."""

    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    deleted: list[str] = field(default_factory=list)  # present in the base and withdrawn
    not_found: list[str] = field(default_factory=list)  # asked to delete but not indexed

    @property
    def is_noop(self) -> bool:
        return not (self.new or self.changed or self.deleted)


@dataclass(frozen=True)
class Filters:
    """Restrict retrieval to some records; applied inside the search so k results still come back."""

    year_from: int | None = None
    year_to: int | None = None
    mesh: tuple[str, ...] = ()  # every term must be a MeSH descriptor of the record (case-insensitive)
    journal: str | None = None  # case-insensitive substring of the journal name

    def __bool__(self) -> bool:
        return bool(self.year_from or self.year_to or self.mesh or self.journal)

    def describe(self) -> str:
        parts = []
        if self.year_from or self.year_to:
            parts.append(f"year {self.year_from or ''}-{self.year_to or ''}")
        parts += [f"MeSH {m!r}" for m in self.mesh]
        if self.journal:
            parts.append(f"journal ~ {self.journal!r}")
        return ", ".join(parts) or "none"


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
    index_type: str = "flat"  # "flat" (exact inner product) or "ivf-sq8"
    nprobe: int = DEFAULT_NPROBE  # ivf-sq8: inverted lists searched per question
    backend: str = "torch"  # how vectors were made: "torch" or "onnx-int8"
    pubmed: dict[str, Any] | None = None  # the PubMed search this index follows (`qa update`)
    encoder: str | None = None  # onnx-int8: the exported encoder's folder, relative to the index
    encoder_sha256: str | None = None  # onnx-int8: checksum of the encoder's model.onnx
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"bytes", "sha256"}
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


def file_facts(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def fault_point(name: str) -> None:
    """Crash tests: ``QA_TEST_KILL_AT=name`` makes the process SIGKILL itself here, as a power cut would."""
    if os.environ.get("QA_TEST_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


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
                except IndexStoreError:
                    if self.current_dir() == directory and directory.is_dir():
                        raise  # not a swap in progress: a real problem with the live snapshot
                except (OSError, sqlite3.Error) as exc:
                    if self.current_dir() == directory and directory.is_dir():
                        raise IndexStoreError(f"{directory}: cannot open ({exc}); run `qa verify`") from None
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

    def begin(self, *, dimension: int, base: Snapshot | None = None, index_type: str = "auto") -> SnapshotWriter:
        """Start a new snapshot, empty or from a copy of ``base``; call under ``lock()``."""
        self.path.mkdir(parents=True, exist_ok=True)
        resolve_index_type(index_type, 0)  # reject unknown names before any work
        return SnapshotWriter(self, self.path / f".build-{uuid.uuid4().hex[:12]}", dimension, base, index_type)

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
    """Fills a temporary directory, starting from a copy of the live snapshot (or empty).

    ``commit`` turns it into the live snapshot; ``abort`` throws it away.
    """

    def __init__(
        self,
        store: IndexStore,
        directory: Path,
        dimension: int,
        base: Snapshot | None = None,
        index_type: str = "auto",
    ) -> None:
        import faiss

        self.store = store
        self.dir = directory
        self.dir.mkdir(parents=True)
        self.index_type = index_type
        if base is not None:
            shutil.copyfile(base.dir / PASSAGES, self.dir / PASSAGES)
            self.index = faiss.read_index(str(base.dir / VECTORS))  # a private, writable copy
        else:
            self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self.db = sqlite3.connect(self.dir / PASSAGES)
        # Durability comes from fsync + rename at commit, so skip the journal while filling.
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        if base is None:
            self.db.executescript(_SCHEMA)
            self.db.execute(FTS_SCHEMA)
        self.db.executescript(_STAGING)
        self.cancelled: set[str] = set()  # staged records withdrawn by a later deletion
        self.dimension = dimension
        (top,) = self.db.execute("SELECT MAX(id) FROM chunks").fetchone()
        self._next_id = 0 if top is None else int(top) + 1

    # -- staging: resolve "last record wins" and deletions before embedding --

    def stage_record(self, record: Record) -> bool:
        """Queue a record; True if an earlier record of this build had the same PMID."""
        existed = self.db.execute("SELECT 1 FROM staged WHERE pmid=?", (record.pmid,)).fetchone() is not None
        self.db.execute(
            "INSERT OR REPLACE INTO staged VALUES (?,?,?)",
            (record.pmid, record_hash(record), json.dumps(record_to_dict(record))),
        )
        self.db.execute("DELETE FROM staged_deletions WHERE pmid=?", (record.pmid,))
        return existed

    def stage_deletions(self, pmids: Iterable[str]) -> int:
        """Queue deletions; returns how many records read earlier in this build they cancel."""
        cancelled = 0
        for pmid in pmids:
            if self.db.execute("DELETE FROM staged WHERE pmid=?", (pmid,)).rowcount:
                cancelled += 1
                self.cancelled.add(pmid)
            self.db.execute("INSERT OR IGNORE INTO staged_deletions VALUES (?)", (pmid,))
        return cancelled

    def staged_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM staged").fetchone()[0])

    def plan(self) -> Plan:
        plan = Plan()
        rows = self.db.execute(
            "SELECT s.pmid, s.hash, r.hash FROM staged s LEFT JOIN records r ON r.pmid = s.pmid ORDER BY s.pmid"
        )
        for pmid, new_hash, old_hash in rows:
            if old_hash is None:
                plan.new.append(pmid)
            elif old_hash != new_hash:
                plan.changed.append(pmid)
            else:
                plan.unchanged += 1
        for pmid, present in self.db.execute(
            "SELECT d.pmid, r.pmid IS NOT NULL FROM staged_deletions d LEFT JOIN records r ON r.pmid = d.pmid"
        ):
            if present:
                plan.deleted.append(pmid)
            elif pmid not in self.cancelled:
                plan.not_found.append(pmid)
        return plan

    def staged_records(self, pmids: Sequence[str], batch: int = 256) -> Iterator[list[Record]]:
        for i in range(0, len(pmids), batch):
            chunk = list(pmids[i : i + batch])
            marks = ",".join("?" * len(chunk))
            rows = dict(self.db.execute(f"SELECT pmid, record FROM staged WHERE pmid IN ({marks})", chunk).fetchall())
            yield [record_from_dict(json.loads(rows[p])) for p in chunk]  # type: ignore[misc]

    # -- applying changes ------------------------------------------------------

    def delete_records(self, pmids: Iterable[str]) -> int:
        """Remove records with their passages, vectors and lexical rows; returns how many existed."""
        removed = 0
        for pmid in pmids:
            self._remove_chunks(pmid)
            self.db.execute("DELETE FROM lexical WHERE rowid=?", (int(pmid),))
            removed += self.db.execute("DELETE FROM records WHERE pmid=?", (pmid,)).rowcount
        return removed

    def reusable_vectors(self, pmid: str) -> dict[str, np.ndarray]:
        """Vectors of a record's current passages by text hash, to reuse when its text is unchanged."""
        rows = self.db.execute("SELECT id, text_hash FROM chunks WHERE pmid=?", (pmid,)).fetchall()
        if not rows:
            return {}
        vectors = self.index.reconstruct_batch(np.asarray([r[0] for r in rows], dtype=np.int64))
        return {h: vectors[i] for i, (_, h) in enumerate(rows)}

    def _remove_chunks(self, pmid: str) -> None:
        ids = [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE pmid=?", (pmid,))]
        if ids:
            self.index.remove_ids(np.asarray(ids, dtype=np.int64))
            self.db.execute("DELETE FROM chunks WHERE pmid=?", (pmid,))

    def put_record(self, record: Record) -> None:
        """Store a record (replacing an older version and its passages) and index it lexically."""
        self._remove_chunks(record.pmid)
        spans = [[label, s, e] for label, s, e in record.section_spans]
        self.db.execute(
            "INSERT OR REPLACE INTO records VALUES (?,?,?,?,?,?,?,?,?,?)",
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
                record_hash(record),
            ),
        )
        self.db.execute("DELETE FROM lexical WHERE rowid=?", (int(record.pmid),))
        self.db.execute(
            "INSERT INTO lexical(rowid, title, abstract, mesh) VALUES (?,?,?,?)",
            (
                int(record.pmid),
                document_text(record.title),
                document_text(record.abstract),
                document_text(" ; ".join(record.mesh)),
            ),
        )

    def record_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def add_chunks(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk")
        ids = np.arange(self._next_id, self._next_id + len(chunks), dtype=np.int64)
        self._next_id += len(chunks)
        self.db.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?)",
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
                    text_hash(c.embed_text),
                )
                for i, c in zip(ids, chunks)
            ],
        )
        if len(chunks):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)

    def commit(self, manifest: Manifest) -> Path:
        import faiss

        kind = resolve_index_type(self.index_type, int(self.index.ntotal))
        if self.index_type == "auto" and index_kind(self.index) == "ivf-sq8":
            kind = "ivf-sq8"  # an index that grew into IVF stays IVF; --index-type flat converts back
        self.index = convert_index(self.index, kind, self.dimension)
        manifest.index_type = kind
        manifest.chunks = int(self.index.ntotal)
        manifest.records = self.record_count()
        (n_chunks,) = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()
        if n_chunks != manifest.chunks:  # never publish vectors and rows that disagree
            raise IndexStoreError(f"internal error: {manifest.chunks} vectors but {n_chunks} passages; index unchanged")
        fault_point("write-sqlite")
        self.db.commit()
        self.db.close()
        fault_point("write-faiss")
        faiss.write_index(self.index, str(self.dir / VECTORS))
        manifest.files = {name: file_facts(self.dir / name) for name in (PASSAGES, VECTORS)}
        (self.dir / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
        for name in (PASSAGES, VECTORS, MANIFEST):
            _fsync_file(self.dir / name)
        final = self.store.path / f"snap-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        os.rename(self.dir, final)
        _fsync_dir(self.store.path)
        fault_point("swap")
        self.store.publish(final)
        self.store.remove_stale()
        return final

    def abort(self) -> None:
        try:
            self.db.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _record_from_row(row: Sequence[Any]) -> Record:
    pmid, version, title, journal, year, doi, mesh, abstract, sections = row[:9]
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
            expected = self.manifest.files.get(f.name, {}).get("bytes")
            if expected is not None and f.stat().st_size != expected:
                raise IndexStoreError(
                    f"{f}: {f.stat().st_size} bytes, the manifest says {expected}: the file was truncated or "
                    "changed; run `qa verify`, then rebuild with `qa build --full`"
                )
        try:
            # IVF lists are memory-mapped: the OS pages in what queries touch, nothing is copied.
            flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if self.manifest.index_type == "ivf-sq8" else 0
            self.index = faiss.read_index(str(vectors), flags)
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
        self._n_records = int(self.db.execute("SELECT count(*) FROM records").fetchone()[0])
        self._df_cache: dict[str, int] = {}

    def close(self) -> None:
        self.db.close()

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

    # -- filters -----------------------------------------------------------

    def filter_pmids(self, filters: Filters) -> list[str]:
        """PMIDs of the records a filter lets through."""
        where, args = [], []
        if filters.year_from is not None:
            where.append("year >= ?")
            args.append(filters.year_from)
        if filters.year_to is not None:
            where.append("year <= ?")
            args.append(filters.year_to)
        if filters.journal:
            where.append("lower(journal) LIKE ?")
            args.append(f"%{filters.journal.lower()}%")
        for term in filters.mesh:
            where.append("EXISTS (SELECT 1 FROM json_each(records.mesh) WHERE lower(json_each.value) = ?)")
            args.append(term.lower())
        sql = "SELECT pmid FROM records" + (" WHERE " + " AND ".join(where) if where else "")
        return [row[0] for row in self.db.execute(sql, args)]

    def pmids_of(self, chunk_ids: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for i in range(0, len(chunk_ids), 900):
            batch = [int(c) for c in chunk_ids[i : i + 900]]
            marks = ",".join("?" * len(batch))
            out.update(self.db.execute(f"SELECT id, pmid FROM chunks WHERE id IN ({marks})", batch).fetchall())
        return out

    def chunk_ids_of(self, pmids: Sequence[str]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i in range(0, len(pmids), 900):  # stay under SQLite's variable limit
            batch = list(pmids[i : i + 900])
            marks = ",".join("?" * len(batch))
            for pmid, cid in self.db.execute(f"SELECT pmid, id FROM chunks WHERE pmid IN ({marks})", batch):
                out.setdefault(pmid, []).append(cid)
        return out

    # -- dense ---------------------------------------------------------------

    def dense_search(
        self, query: np.ndarray, n: int, allowed_chunk_ids: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """``(chunk id, cosine)`` of the ``n`` nearest passages, optionally only among some ids."""
        import faiss

        total = int(self.index.ntotal)
        ivf = self.manifest.index_type == "ivf-sq8"
        selector = None
        if allowed_chunk_ids is not None:
            if len(allowed_chunk_ids) == 0:
                return []
            selector = faiss.IDSelectorBatch(np.asarray(allowed_chunk_ids, dtype=np.int64))
            n = max(1, min(n, len(allowed_chunk_ids)))
        else:
            n = max(1, min(n, total))
        if ivf:
            params: Any = faiss.SearchParametersIVF(nprobe=self.manifest.nprobe, sel=selector)
        else:
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
        x = np.ascontiguousarray(query, dtype=np.float32)
        scores, ids = self.index.search(x, n, params=params) if params is not None else self.index.search(x, n)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def dense_scores(self, query: np.ndarray, chunk_ids: Sequence[int]) -> np.ndarray:
        """Exact cosine of the query with given passages (vectors read back from FAISS)."""
        if not chunk_ids:
            return np.zeros(0, dtype=np.float32)
        vectors = self.index.reconstruct_batch(np.asarray(chunk_ids, dtype=np.int64))
        return vectors @ np.asarray(query, dtype=np.float32).reshape(-1)

    # -- lexical -------------------------------------------------------------

    def lexical_search(
        self, question: str, n: int, allowed_pmids: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """``(pmid, BM25)`` of the best-matching records, highest first (SQLite FTS5)."""
        expression = match_expression(question)
        if expression is None or n < 1:
            return []
        weights = ", ".join(str(w) for w in COLUMN_WEIGHTS)
        sql = f"SELECT rowid, -bm25(lexical, {weights}) AS score FROM lexical WHERE lexical MATCH ?"
        args: list[Any] = [expression]
        if allowed_pmids is not None:
            if not allowed_pmids:
                return []
            sql += " AND rowid IN (SELECT value FROM json_each(?))"
            args.append(json.dumps([int(p) for p in allowed_pmids]))
        sql += " ORDER BY score DESC LIMIT ?"
        args.append(n)
        return [(str(rowid), float(score)) for rowid, score in self.db.execute(sql, args)]

    def lexical_ceiling(self, question: str) -> float:
        """The BM25 a record holding every question term would approach: sum of idf x (k1 + 1) x top weight."""
        total = 0.0
        for term in dict.fromkeys(terms(question, drop_stopwords=True)):
            n = self._document_frequency(term)
            if n:
                idf = max(1e-6, math.log((self._n_records - n + 0.5) / (n + 0.5)))  # FTS5's own idf
                total += idf * (BM25_K1 + 1) * max(COLUMN_WEIGHTS)
        return total

    def _document_frequency(self, term: str) -> int:
        # The snapshot never changes, so counts can be kept for the life of this reader.
        n = self._df_cache.get(term)
        if n is None:
            (n,) = self.db.execute("SELECT count(*) FROM lexical WHERE lexical MATCH ?", (f'"{term}"',)).fetchone()
            if len(self._df_cache) < 100_000:
                self._df_cache[term] = n
        return n

    def record(self, pmid: str) -> Record | None:
        row = self.db.execute(
            "SELECT pmid, version, title, journal, year, doi, mesh, abstract, sections FROM records WHERE pmid=?",
            (pmid,),
        ).fetchone()
        return _record_from_row(row) if row else None

    def pmids(self) -> set[str]:
        """Every PMID indexed in this snapshot."""
        return {pmid for (pmid,) in self.db.execute("SELECT pmid FROM records")}


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
        "index_type": manifest.index_type + (f" (nprobe {manifest.nprobe})" if manifest.index_type != "flat" else ""),
        "backend": manifest.backend,
        "built_at": manifest.built_at,
        "build_seconds": manifest.build_seconds,
        "sources": manifest.sources,
        "size_bytes": size,
        "format_version": manifest.format_version,
    }


__all__ = [
    "INDEX_TYPES",
    "IVF_THRESHOLD",
    "resolve_index_type",
    "convert_index",
    "all_ids",
    "Plan",
    "record_hash",
    "text_hash",
    "IndexStore",
    "Snapshot",
    "SnapshotWriter",
    "Manifest",
    "StoredChunk",
    "Filters",
    "FORMAT_VERSION",
    "describe",
]
