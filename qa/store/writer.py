"""Writer: fills a new snapshot -- staging, the change plan, records, passages, vectors -- and commits it.

A build stages its incoming records first (last record wins, deletions
cancel), plans what is new, changed, unchanged or deleted by content hash,
and only then embeds. Durability comes from fsync + rename at commit; a
crash before that leaves only a ``.build-*`` folder that the next build
removes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..citation import citation_to_dict
from ..embed.chunk import Chunk
from ..errors import IndexStoreError
from ..records import Record, record_from_dict, record_to_dict
from .compact import decode_vectors, encode_vectors, pack_text, sentence_spans, unpack_text
from .durable import fault_point, fsync_dir, fsync_file
from .layout import MANIFEST, PASSAGES, VECTORS, IndexLayout
from .lexical import LexicalIndex
from .manifest import Manifest, file_facts
from .snapshot import PAGE_SIZE, PASSAGE_SPANS, SCHEMA, Snapshot, spans_by_record, stored_mesh
from .vectors import VectorIndex, resolve_index_type

# Incoming records of one build, resolved before anything is embedded (TEMP: never in the snapshot).
_STAGING = """
CREATE TEMP TABLE staged (pmid TEXT PRIMARY KEY, hash TEXT NOT NULL, record TEXT NOT NULL);
CREATE TEMP TABLE staged_deletions (pmid TEXT PRIMARY KEY);
"""


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


class SnapshotWriter:
    """Fills a temporary directory, starting from a copy of the live snapshot (or empty).

    ``commit`` turns it into the live snapshot; ``abort`` throws it away.
    """

    def __init__(
        self,
        layout: IndexLayout,
        directory: Path,
        dimension: int,
        base: Snapshot | None = None,
        index_type: str = "auto",
    ) -> None:
        self.layout = layout
        self.dir = directory
        self.dir.mkdir(parents=True)
        self.index_type = index_type
        if base is not None:
            shutil.copyfile(base.dir / PASSAGES, self.dir / PASSAGES)
            self.vectors = VectorIndex.read(base.dir / VECTORS)  # a private, writable copy
        else:
            self.vectors = VectorIndex.empty(dimension)
        self.db = sqlite3.connect(self.dir / PASSAGES)
        # Durability comes from fsync + rename at commit, so skip the journal while filling.
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        if base is None:
            self.db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            self.db.executescript(SCHEMA)
            LexicalIndex.create(self.db)
        self.db.executescript(_STAGING)
        self.lexical = LexicalIndex(self.db)
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
            out = []
            for p in chunk:
                record = record_from_dict(json.loads(rows[p]))
                assert isinstance(record, Record)  # staged records always have an abstract
                out.append(record)
            yield out

    # -- applying changes ------------------------------------------------------

    def delete_records(self, pmids: Iterable[str]) -> int:
        """Remove records with their passages, vectors and lexical rows; returns how many existed."""
        removed = 0
        for pmid in pmids:
            self._remove_chunks(pmid)
            self._unindex(pmid)
            removed += self.db.execute("DELETE FROM records WHERE pmid=?", (pmid,)).rowcount
        return removed

    def reusable_vectors(self, pmid: str) -> dict[str, np.ndarray]:
        """Vectors of a record's current passages by text hash, to reuse when its text is unchanged."""
        rows = self.db.execute("SELECT id, text_hash FROM chunks WHERE pmid=?", (pmid,)).fetchall()
        if not rows:
            return {}
        vectors = self.vectors.vectors([r[0] for r in rows])
        return {h: vectors[i] for i, (_, h) in enumerate(rows)}

    def reusable_sentence_vectors(self, pmid: str) -> dict[str, np.ndarray]:
        """Vectors of a record's current sentences by their text (as read back from their codes, which they
        code to again)."""
        row = self.db.execute("SELECT abstract FROM records WHERE pmid=?", (pmid,)).fetchone()
        codes = self.db.execute("SELECT codes FROM sentences WHERE pmid=?", (int(pmid),)).fetchone()
        if row is None or codes is None:
            return {}
        abstract = unpack_text(row[0], pmid)
        found = spans_by_record(self.db.execute(PASSAGE_SPANS.format("pmid=?"), (pmid,)))
        spans = next((sentence_spans(passages) for _, passages in found), [])
        vectors = decode_vectors(codes[0], self.dimension)
        if len(vectors) != len(spans):
            return {}  # damaged: encode them again
        return {abstract[s:e]: vectors[i] for i, (s, e, _) in enumerate(spans)}

    def _remove_chunks(self, pmid: str) -> None:
        ids = [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE pmid=?", (pmid,))]
        if ids:
            self.vectors.remove(ids)
            self.db.execute("DELETE FROM chunks WHERE pmid=?", (pmid,))
        self.db.execute("DELETE FROM sentences WHERE pmid=?", (int(pmid),))

    def add_sentences(self, rows: Sequence[tuple[str, int, int, str | None]], vectors: np.ndarray) -> None:
        """Store the sentences ``(pmid, start, end, section)`` of whole records, each record's in the order of
        ``compact.sentence_spans`` (which is how they are read back), as their vectors' codes. A vector is coded
        from its float16 rounding, as a shard keeps it, so every engine stores the same codes."""
        if len(rows) != len(vectors):
            raise ValueError("one vector per sentence")
        half = np.asarray(vectors, dtype=np.float16).astype(np.float32)
        records: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            records.setdefault(row[0], []).append(i)
        self.db.executemany(
            "INSERT INTO sentences VALUES (?,?)",
            [(int(pmid), encode_vectors(half[positions])) for pmid, positions in records.items()],
        )

    def _unindex(self, pmid: str) -> None:
        """Take a stored record out of the lexical index, by the text it was indexed from."""
        row = self.db.execute("SELECT title, abstract, mesh FROM records WHERE pmid=?", (pmid,)).fetchone()
        if row is not None:
            self.lexical.delete(pmid, row[0], unpack_text(row[1], pmid), stored_mesh(row[2], pmid))

    def put_record(self, record: Record) -> None:
        """Store a record (replacing an older version and its passages) and index it lexically."""
        self._remove_chunks(record.pmid)
        self._unindex(record.pmid)
        spans = [[label, s, e] for label, s, e in record.section_spans]
        self.db.execute(
            "INSERT OR REPLACE INTO records VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                record.pmid,
                record.version,
                record.title,
                record.journal,
                record.year,
                record.doi,
                json.dumps(list(record.mesh)),
                pack_text(record.abstract),
                json.dumps(spans),
                record_hash(record),
                json.dumps(citation_to_dict(record.citation)),
            ),
        )
        self.lexical.put(record.pmid, record.title, record.abstract, record.mesh)

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
        self.vectors.add(ids, vectors)

    def prepare_vectors(self, n_new: int, vectors_of: Callable[[np.ndarray], np.ndarray]) -> str:
        """Before ``n_new`` precomputed vectors are streamed into an empty snapshot: train the IVF index their
        number calls for now, on the very sample of their ids that ``commit``'s conversion would take, so they
        are added batch by batch and never all held in memory; the result equals adding them to a flat index
        and converting it. ``vectors_of(positions)`` gives the vectors at ascending positions (0-based) among
        the ``n_new``. A flat index, or a snapshot that already holds vectors, is left as it is. Returns the
        kind the vectors go into."""
        if self.vectors.count:
            return self.vectors.kind
        kind = resolve_index_type(self.index_type, n_new)
        if kind != "flat" and n_new:
            first = self._next_id
            ids = np.arange(first, first + n_new, dtype=np.int64)
            self.vectors = VectorIndex.trained(kind, self.dimension, ids, lambda sample: vectors_of(sample - first))
        return self.vectors.kind

    def commit(self, manifest: Manifest) -> Path:
        """Write and fsync the snapshot and rename it to its final name, which it returns; publishing it
        (pointing CURRENT at it) is the store's job (``IndexStore.publish``)."""
        # An index that grew into IVF stays IVF under auto; --index-type flat converts back.
        kind = resolve_index_type(self.index_type, self.vectors.count, current=self.vectors.kind)
        self.vectors = self.vectors.converted(kind)
        manifest.index_type = kind
        manifest.chunks = self.vectors.count
        manifest.records = self.record_count()
        (n_chunks,) = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()
        if n_chunks != manifest.chunks:  # never publish vectors and rows that disagree
            raise IndexStoreError(f"internal error: {manifest.chunks} vectors but {n_chunks} passages; index unchanged")
        fault_point("write-sqlite")
        self.db.commit()
        self.db.close()
        fault_point("write-faiss")
        self.vectors.write(self.dir / VECTORS)
        manifest.files = {name: file_facts(self.dir / name) for name in (PASSAGES, VECTORS)}
        (self.dir / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
        for name in (PASSAGES, VECTORS, MANIFEST):
            fsync_file(self.dir / name)
        final = self.layout.new_snapshot()
        os.rename(self.dir, final)
        fsync_dir(self.layout.root)
        return final

    def abort(self) -> None:
        try:
            self.db.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


__all__ = ["SnapshotWriter", "Plan", "record_hash", "text_hash"]
