"""Snapshot: one finished, immutable index version opened for reading -- passages, vectors, BM25.

``Passages`` is the SQLite side (records, passages, filters, facts for
``qa info``, consistency counts for ``qa verify``) and needs no FAISS;
``Snapshot`` adds the vectors and the lexical index for searching.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..citation import Citation
from ..errors import IndexStoreError, IngestError
from ..query import Filters
from ..records import Record, Section, citation_from_dict, load_json
from .compact import code_size, decode_vectors, sentence_spans, unit_rows, unpack_text
from .layout import MANIFEST, PASSAGES, VECTORS
from .lexical import LexicalIndex, SubsetBM25
from .manifest import Manifest, file_facts
from .vectors import VectorIndex

SCHEMA = """
CREATE TABLE records (
    pmid     TEXT PRIMARY KEY,
    version  INTEGER NOT NULL,
    title    TEXT,
    journal  TEXT,
    year     INTEGER,
    doi      TEXT,
    mesh     TEXT NOT NULL,       -- JSON list of MeSH descriptor names
    abstract BLOB NOT NULL,       -- zlib-compressed UTF-8 (qa.store.compact)
    sections TEXT NOT NULL,       -- JSON list of [label, start, end] into the abstract
    hash     TEXT NOT NULL,       -- content hash: an unchanged record is never re-embedded
    citation TEXT NOT NULL        -- JSON object: authors, issue, pages, publication types (qa.citation)
);
CREATE TABLE chunks (
    id        INTEGER PRIMARY KEY, -- the vector's id in FAISS
    pmid      TEXT NOT NULL REFERENCES records(pmid),
    ordinal   INTEGER NOT NULL,
    section   TEXT,
    start     INTEGER NOT NULL,    -- offsets into the record's abstract
    end       INTEGER NOT NULL,
    sentences TEXT NOT NULL,       -- JSON list of [start, end] into the record's abstract
    n_tokens  INTEGER NOT NULL,
    text_hash TEXT NOT NULL        -- hash of the embedded text: its vector can be reused
);
CREATE INDEX chunks_pmid ON chunks(pmid);
CREATE TABLE sentences (
    pmid      INTEGER PRIMARY KEY, -- the record's PMID as a number (the rowid: no second index)
    codes     BLOB NOT NULL        -- 3-bit codes of its sentence vectors (qa.store.compact), in the order of
);                                 -- compact.sentence_spans over its passages: scored for the answer block
"""
PAGE_SIZE = 8192  # bytes: a record's sentence codes (about 1.7 KB) overflow a 4 KB page's share more often

PassageScores = dict[int, tuple[str, float]]  # chunk id -> (pmid, cosine)
SQL_BATCH = 900  # ids bound per IN (...) query: stay under SQLite's variable limit (999 in older builds)
KEPT_FILTERS = 8  # filters whose allowed records a snapshot keeps (``Snapshot.allowed``)
# Snapshots whose vectors and passages together are at most this big are hashed on every load (SHA-256
# runs at ~1.9 GB/s here: 14 ms for the 26 MB of the 1,001-abstract index); larger ones check sizes on
# load and are hashed by `qa verify` and `qa ask --verify`.
LOAD_HASH_LIMIT = 256 * 1024 * 1024  # bytes


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
    citation: Citation = Citation()


@dataclass(frozen=True)
class StoredSentence:
    """A sentence of an abstract with its vector, for choosing the sentences that answer."""

    pmid: str
    start: int  # offsets into the record's abstract
    end: int
    text: str
    section: str | None
    vector: np.ndarray


# A filter that leaves at most this many passages has them scored exactly, from vectors kept with the filter:
# at most 20,000 x 384 x 4 bytes (31 MB) a filter, KEPT_FILTERS of them. Reading them back from an ivf-sq8 index
# took 33-57 ms an ask at 1M passages (a journal filter of 18,779 passages); the product takes 1 ms.
EXACT_FILTER_LIMIT = 20_000


@dataclass(frozen=True)
class Allowed:
    """What a filter lets through: its records (as PMIDs and as FTS5 rowids) and passages (ids, and FAISS's
    selector of them), made once per filter, since at 154,000 records each form costs 10-30 ms an ask."""

    pmids: list[str]
    rowids: frozenset[int]
    chunks: np.ndarray
    owners: tuple[str, ...] = ()  # the PMID of each of ``chunks``
    selector: Any = None  # FAISS's selector of ``chunks``, for a filter that leaves many
    vectors: np.ndarray | None = None  # the vectors of ``chunks``, for one that leaves few (scored exactly)
    bm25: LazyBM25 | None = None  # its records' term counts, for one that leaves few (``lexical.SubsetBM25``)


class LazyBM25:
    """A filter's ``SubsetBM25``, made on its first lexical search: a dense-only ask never pays for it (about
    0.75 s for a filter of 2,870 records at 1M passages)."""

    def __init__(self, make: Callable[[], SubsetBM25]) -> None:
        self._make, self._lock = make, threading.Lock()
        self._value: SubsetBM25 | None = None

    def get(self) -> SubsetBM25:
        with self._lock:
            if self._value is None:
                self._value = self._make()
            return self._value


@dataclass(frozen=True)
class Consistency:
    """Counts ``qa verify`` compares: rows against vectors, records against passages and lexical rows."""

    integrity: str
    records: int
    chunk_ids: frozenset[int]
    orphan_chunks: int  # passages whose record is missing
    bare_records: int  # records without passages
    lexical_rows: int
    sentence_records: int  # records with stored sentences (every record should have them)
    misfit_sentence_rows: int = 0  # records whose sentence codes do not fit their sentences (damaged)


# A record's passages with their sentence offsets, in passage order: ``compact.sentence_spans`` finds its
# sentences from them (``spans_by_record``).
PASSAGE_SPANS = "SELECT pmid, section, sentences FROM chunks WHERE {} ORDER BY pmid, ordinal"


def spans_by_record(rows: Iterable[Sequence[Any]]) -> Iterator[tuple[str, Iterator[tuple[str | None, Any]]]]:
    """``PASSAGE_SPANS``' rows grouped by record, each group as ``compact.sentence_spans`` takes it."""
    for pmid, group in itertools.groupby(rows, key=lambda row: row[0]):
        yield pmid, ((section, stored_offsets(spans, pmid, "sentence offsets")) for _, section, spans in group)


def stored_offsets(text: Any, pmid: str, what: str, labelled: bool = False) -> list[tuple[Any, ...]]:
    """A stored JSON list of ``[start, end]`` offsets (``[label, start, end]`` when ``labelled``), checked: a
    large index is not hashed on load, so a damaged column must be one line, not a traceback."""
    try:
        rows = json.loads(text)  # not load_json: its depth scan triples the cost (qa verify reads every row);
        width = 3 if labelled else 2  # too deep a list ends in RecursionError, caught below
        if not isinstance(rows, list) or any(not isinstance(r, list) or len(r) != width for r in rows):
            raise ValueError("not a list of offsets")
        out = [tuple(r) for r in rows]
        if any(type(v) is not int or v < 0 for r in out for v in r[width - 2 :]):
            raise ValueError("offsets that are not whole numbers")
        if any(r[-2] > r[-1] for r in out):
            raise ValueError("an offset that ends before it starts")
        if labelled and any(r[0] is not None and not isinstance(r[0], str) for r in out):
            raise ValueError("a label that is not text")
        return out
    except (ValueError, TypeError, RecursionError) as exc:
        raise _damaged(pmid, what, exc) from None


def stored_mesh(text: Any, pmid: str) -> list[str]:
    """A record's stored MeSH headings, checked as ``stored_offsets`` is."""
    try:
        mesh = load_json(text)
        if not isinstance(mesh, list) or not all(isinstance(m, str) for m in mesh):
            raise ValueError("not a list of headings")
        return mesh
    except (ValueError, TypeError, RecursionError) as exc:
        raise _damaged(pmid, "MeSH headings", exc) from None


def _damaged(pmid: str, what: str, exc: Exception) -> IndexStoreError:
    """The one-line refusal of a damaged stored column."""
    return IndexStoreError(f"passages.sqlite: PMID {pmid}: damaged {what} ({str(exc)[:80]}); run `qa verify`, "
                           "then rebuild with qa build --full")  # fmt: skip


def stored_citation(text: str, pmid: str) -> Citation:
    """A record's stored citation, checked as strictly as at ingest: the index is a file like any other."""
    try:
        return citation_from_dict(load_json(text), "passages.sqlite", pmid)
    except (ValueError, TypeError, RecursionError, IngestError) as exc:
        raise IndexStoreError(f"passages.sqlite: PMID {pmid}: damaged citation ({str(exc)[:120]})") from None


def _record_from_row(row: Sequence[Any]) -> Record:
    pmid, version, title, journal, year, doi, mesh, packed, sections, citation = row[:10]
    abstract = unpack_text(packed, pmid)
    return Record(
        pmid=pmid,
        version=version,
        title=title,
        journal=journal,
        year=year,
        doi=doi,
        mesh=tuple(stored_mesh(mesh, pmid)),
        sections=tuple(Section(label, abstract[s:e])
                       for label, s, e in stored_offsets(sections, pmid, "sections", labelled=True)),  # fmt: skip
        citation=stored_citation(citation, pmid),
    )


def _casefold(text: str | None) -> str | None:
    """Unicode case folding, the same for stored values and filter terms ("Ödema" == "ödema")."""
    return unicodedata.normalize("NFKC", text).casefold() if isinstance(text, str) else text


class _ThreadConnections:
    """One read-only SQLite connection per thread, all closed together.

    A single shared connection serializes every query behind SQLite's connection mutex, and BM25
    is most of a question's time: with one connection per thread, concurrent questions
    (``qa serve``) run their SQL side by side.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[sqlite3.Connection] = []
        self._closed = False
        self.get()  # open one now: a missing or locked file fails here, not on the first question

    def get(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            with self._lock:
                if self._closed:
                    raise IndexStoreError(f"{self.path}: this snapshot was closed")
                db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
                # SQLite's lower() and LIKE fold ASCII only: "Ärztliche" would never match "ärztliche".
                db.create_function("qa_fold", 1, _casefold, deterministic=True)
                self._open.append(db)
            self._local.db = db
        return db

    def execute(self, sql: str, args: Sequence[Any] = (), /) -> sqlite3.Cursor:
        return self.get().execute(sql, args)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for db in self._open:
                db.close()
            self._open.clear()


class Passages:
    """The SQLite file of a snapshot, read-only and shareable between threads."""

    def __init__(self, path: Path, dimension: int | None = None) -> None:
        """``dimension``: of the sentence vectors, needed to read them back (``sentences``)."""
        if not path.is_file():
            raise IndexStoreError(f"{path}: missing; rebuild with qa build")
        self.path = path
        self.dimension = dimension
        self.db = _ThreadConnections(path)

    def close(self) -> None:
        self.db.close()

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise IndexStoreError(f"{self.path}: unreadable ({exc}); run `qa verify`, then rebuild") from None

    def record_count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM records")[0][0])

    def chunk_count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM chunks")[0][0])

    def facts(self) -> dict[str, Any]:
        """Counts and year range for ``qa info``."""
        year_min, year_max = self._query("SELECT MIN(year), MAX(year) FROM records")[0]
        return {
            "records": self.record_count(),
            "passages": self.chunk_count(),
            "records_with_title": int(self._query("SELECT COUNT(*) FROM records WHERE title IS NOT NULL")[0][0]),
            "years": f"{year_min}-{year_max}" if year_min else None,
        }

    def consistency(self) -> Consistency:
        (integrity,) = self._query("PRAGMA integrity_check")[0]
        return Consistency(
            integrity=str(integrity),
            records=self.record_count(),
            chunk_ids=frozenset(cid for (cid,) in self._query("SELECT id FROM chunks")),
            orphan_chunks=int(
                self._query("SELECT COUNT(*) FROM chunks WHERE pmid NOT IN (SELECT pmid FROM records)")[0][0]
            ),
            bare_records=int(
                self._query("SELECT COUNT(*) FROM records WHERE pmid NOT IN (SELECT pmid FROM chunks)")[0][0]
            ),
            lexical_rows=int(self._query("SELECT COUNT(*) FROM lexical")[0][0]),
            sentence_records=int(self._query(
                "SELECT COUNT(*) FROM sentences WHERE CAST(pmid AS TEXT) IN (SELECT pmid FROM records)")[0][0]),
            misfit_sentence_rows=self._misfit_sentence_rows(),
        )

    def _misfit_sentence_rows(self) -> int:
        """Records whose codes are not one code per sentence of their passages, read as the rows stream (1M
        passages' offsets are never held at once)."""
        if self.dimension is None:
            return 0
        size = code_size(self.dimension)
        lengths = {str(p): n for p, n in self._query("SELECT pmid, length(codes) FROM sentences")}
        misfits = 0
        try:
            for pmid, passages in spans_by_record(self.db.execute(PASSAGE_SPANS.format("1"))):
                try:
                    count = len(sentence_spans(passages))
                except IndexStoreError:  # damaged offsets (``stored_offsets``): the record is counted
                    count = -1
                misfits += lengths.get(pmid, 0) != size * count
        except sqlite3.DatabaseError as exc:
            raise IndexStoreError(f"{self.path}: unreadable ({exc}); run `qa verify`, then rebuild") from None
        return misfits

    def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._query(
            f"SELECT c.id, c.pmid, c.ordinal, c.section, c.start, c.end, c.sentences, "
            f"r.title, r.journal, r.year, r.doi, r.abstract, r.citation "
            f"FROM chunks c JOIN records r ON r.pmid = c.pmid "
            f"WHERE c.id IN ({marks})",
            [int(i) for i in ids],
        )
        out = {}
        citations: dict[str, Citation] = {}
        abstracts: dict[str, str] = {}
        for cid, pmid, ordinal, section, start, end, sentences, title, journal, year, doi, packed, citation in rows:
            if pmid not in citations:
                citations[pmid] = stored_citation(citation, pmid)
                abstracts[pmid] = unpack_text(packed, pmid)
            abstract = abstracts[pmid]
            out[cid] = StoredChunk(
                id=cid,
                pmid=pmid,
                ordinal=ordinal,
                section=section,
                start=start,
                end=end,
                text=abstract[start:end],
                sentences=tuple((s - start, e - start) for s, e in stored_offsets(sentences, pmid, "sentence offsets")),
                title=title,
                journal=journal,
                year=year,
                doi=doi,
                citation=citations[pmid],
            )
        return out

    def filter_pmids(self, filters: Filters) -> list[str]:
        """PMIDs of the records a filter lets through."""
        where, args = [], []
        if filters.year_from is not None:
            where.append("year >= ?")
            args.append(filters.year_from)
        if filters.year_to is not None:
            where.append("year <= ?")
            args.append(filters.year_to)
        if filters.journal:  # "contains", literally: instr() has no wildcards, unlike LIKE's % and _
            where.append("instr(qa_fold(journal), ?) > 0")
            args.append(_casefold(filters.journal))
        for term in filters.mesh:
            where.append("EXISTS (SELECT 1 FROM json_each(records.mesh) WHERE qa_fold(json_each.value) = ?)")
            args.append(_casefold(term))
        if filters.types:  # any of them: "--type rct,meta-analysis" is trials or meta-analyses
            marks = ",".join("?" * len(filters.types))
            where.append("EXISTS (SELECT 1 FROM json_each(records.citation, '$.publication_types') "
                         f"WHERE qa_fold(json_each.value) IN ({marks}))")  # fmt: skip
            args.extend(_casefold(t) for t in filters.types)
        sql = "SELECT pmid FROM records" + (" WHERE " + " AND ".join(where) if where else "")
        return [row[0] for row in self._query(sql, args)]

    def pmids_of(self, chunk_ids: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for i in range(0, len(chunk_ids), SQL_BATCH):
            batch = [int(c) for c in chunk_ids[i : i + SQL_BATCH]]
            marks = ",".join("?" * len(batch))
            out.update(self._query(f"SELECT id, pmid FROM chunks WHERE id IN ({marks})", batch))
        return out

    def chunk_ids_of(self, pmids: Sequence[str]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i in range(0, len(pmids), SQL_BATCH):
            batch = list(pmids[i : i + SQL_BATCH])
            marks = ",".join("?" * len(batch))
            for pmid, cid in self._query(f"SELECT pmid, id FROM chunks WHERE pmid IN ({marks})", batch):
                out.setdefault(pmid, []).append(cid)
        return out

    def sentences(self, pmids: Sequence[str]) -> dict[str, list[StoredSentence]]:
        """Every stored sentence of the given records, in abstract order, with its vector (unit length, read
        back from its codes)."""
        out: dict[str, list[StoredSentence]] = {p: [] for p in pmids}
        if not pmids:
            return out
        if self.dimension is None:
            raise IndexStoreError(f"{self.path}: opened without the vectors' dimension; sentences cannot be read")
        marks = ",".join("?" * len(pmids))
        abstracts = dict(self._query(f"SELECT pmid, abstract FROM records WHERE pmid IN ({marks})", list(pmids)))
        spans = {pmid: sentence_spans(passages) for pmid, passages in spans_by_record(
            self._query(PASSAGE_SPANS.format(f"pmid IN ({marks})"), list(pmids)))}  # fmt: skip
        codes = {str(p): c for p, c in self._query(f"SELECT pmid, codes FROM sentences WHERE pmid IN ({marks})",
                                                   [int(p) for p in pmids])}  # fmt: skip
        for pmid in pmids:
            if pmid not in abstracts or pmid not in codes:
                continue
            abstract = unpack_text(abstracts[pmid], pmid)
            rows = spans.get(pmid, [])
            vectors = self._sentence_vectors(pmid, codes[pmid], len(rows))
            out[pmid] = [StoredSentence(pmid, s, e, abstract[s:e], section, vectors[i])
                         for i, (s, e, section) in enumerate(rows)]  # fmt: skip
        return out

    def _sentence_vectors(self, pmid: str, codes: Any, count: int) -> np.ndarray:
        assert self.dimension is not None
        if not isinstance(codes, bytes) or len(codes) != count * code_size(self.dimension):
            raise IndexStoreError(f"{self.path}: PMID {pmid}: its sentence codes do not match its {count} sentences "
                                  "(damaged); run `qa verify`, then rebuild with qa build --full")  # fmt: skip
        return unit_rows(decode_vectors(codes, self.dimension))

    def lexical_rows(self, pmids: Sequence[str]) -> Iterator[tuple[int, str | None, str, list[str]]]:
        """The records' text as the lexical index was made from it: ``(rowid, title, abstract, MeSH)``."""
        for i in range(0, len(pmids), SQL_BATCH):
            batch = list(pmids[i : i + SQL_BATCH])
            marks = ",".join("?" * len(batch))
            for pmid, title, packed, mesh in self._query(
                f"SELECT pmid, title, abstract, mesh FROM records WHERE pmid IN ({marks})", batch
            ):
                yield int(pmid), title, unpack_text(packed, pmid), stored_mesh(mesh, pmid)

    def record(self, pmid: str) -> Record | None:
        rows = self._query(
            "SELECT pmid, version, title, journal, year, doi, mesh, abstract, sections, citation FROM records "
            "WHERE pmid=?",
            (pmid,),
        )
        return _record_from_row(rows[0]) if rows else None

    def pmids(self) -> set[str]:
        """Every PMID indexed."""
        return {pmid for (pmid,) in self._query("SELECT pmid FROM records")}


class Snapshot:
    """One finished, immutable snapshot opened for searching: manifest, passages, vectors, BM25."""

    def __init__(self, directory: Path, *, verify: bool | None = None) -> None:
        """Open a snapshot; ``verify`` hashes its files against the manifest (None: when they are small)."""
        self.dir = directory
        for name in (MANIFEST, VECTORS, PASSAGES):
            if (directory / name).is_symlink():
                raise IndexStoreError(f"{directory / name}: a symbolic link inside a snapshot; refused")
        self.manifest = Manifest.from_file(directory / MANIFEST)
        vectors, passages = directory / VECTORS, directory / PASSAGES
        for f in (vectors, passages):
            if not f.is_file():
                raise FileNotFoundError(f)
            expected = self.manifest.files.get(f.name, {}).get("bytes")
            if expected is not None and f.stat().st_size != expected:
                raise IndexStoreError(
                    f"{f}: {f.stat().st_size} bytes, the manifest says {expected}: the file was truncated or "
                    "changed; run `qa verify`, then rebuild with `qa build --full`"
                )
        if verify or (verify is None and sum(f.stat().st_size for f in (vectors, passages)) <= LOAD_HASH_LIMIT):
            for f in (vectors, passages):
                if file_facts(f)["sha256"] != self.manifest.files.get(f.name, {}).get("sha256"):
                    raise IndexStoreError(
                        f"{f}: its SHA-256 differs from the manifest's: the file was damaged or changed; "
                        "run `qa verify`, then rebuild with `qa build --full`"
                    )
        # IVF lists are memory-mapped: the OS pages in what queries touch, nothing is copied.
        self.vectors = VectorIndex.read(vectors, mmap=self.manifest.index_type != "flat", nprobe=self.manifest.nprobe)
        if self.vectors.dimension != self.manifest.dimension or self.vectors.count != self.manifest.chunks:
            raise IndexStoreError(
                f"{vectors}: holds {self.vectors.count} vectors of dimension {self.vectors.dimension}, manifest says "
                f"{self.manifest.chunks} of {self.manifest.dimension}; rebuild with qa build"
            )
        self.passages = Passages(passages, self.manifest.dimension)
        self.lexical = LexicalIndex(self.passages.db)
        self._allowed: dict[Filters, Allowed] = {}
        self._allowed_lock = threading.Lock()

    def close(self) -> None:
        self.passages.close()

    def allowed(self, filters: Filters) -> Allowed:
        """The records and passages a filter lets through, kept for the snapshot's life (the last
        ``KEPT_FILTERS`` filters): a conversation or a server asks many questions under one filter, and
        finding them took most of a filtered ask (``bench/scale.py``)."""
        with self._allowed_lock:
            found = self._allowed.get(filters)
        if found is None:
            pmids = self.passages.filter_pmids(filters)
            ids = self.passages.chunk_ids_of(pmids)
            chunks = np.fromiter((i for v in ids.values() for i in v), dtype=np.int64)
            owners = tuple(p for p, v in ids.items() for _ in v)
            few = len(chunks) <= EXACT_FILTER_LIMIT
            bm25 = LazyBM25(lambda: SubsetBM25.of(self.lexical, self.passages.lexical_rows(pmids))) if few else None
            found = Allowed(pmids, frozenset(int(p) for p in pmids), chunks, owners,
                            None if few else self.vectors.selector(chunks),
                            self.vectors.vectors(chunks) if few and len(chunks) else None, bm25)  # fmt: skip
            with self._allowed_lock:
                while len(self._allowed) >= KEPT_FILTERS:
                    self._allowed.pop(next(iter(self._allowed)))
                self._allowed[filters] = found
        return found

    def lexical_search(
        self, question: str, n: int, allowed: Allowed | None = None, also: Iterable[str] | None = None
    ) -> dict[str, float]:
        """BM25's top ``n`` records (among ``allowed``), highest first, and with ``also`` the BM25 of those
        records too (a hybrid search's dense candidates): from the filter's own counts when it leaves few
        records, else from FTS5 (``LexicalIndex.search``, ``search_and_score``)."""
        if allowed is not None and allowed.bm25 is not None:
            return allowed.bm25.get().search(question, n, also or ())
        rowids = allowed.rowids if allowed is not None else None
        if also is None:
            return self.lexical.search(question, n, rowids)
        return self.lexical.search_and_score(question, n, rowids, also)

    # -- dense ---------------------------------------------------------------

    def dense_search(
        self, query: np.ndarray, n: int, allowed: Allowed | None = None, *, records: int = 0
    ) -> PassageScores:
        """The nearest passages as ``chunk id -> (pmid, cosine)``, optionally only among ``allowed`` ones: at
        least ``n`` of them, and as many more as cover ``records`` records (or every passage there is).

        A filter that leaves at most ``EXACT_FILTER_LIMIT`` passages has them all scored exactly, once: an
        IVF index looks only in ``nprobe`` lists and could miss allowed passages outside them. Otherwise the
        index is asked for 4 times as many passages until they cover ``records`` records."""
        if allowed is not None and allowed.selector is None:
            if allowed.vectors is None:
                return {}
            scores = allowed.vectors @ np.asarray(query, dtype=np.float32).reshape(-1)
            out: PassageScores = {}
            seen: set[str] = set()
            for i in np.argsort(-scores, kind="stable"):
                if len(out) >= n and len(seen) >= records:
                    break
                out[int(allowed.chunks[i])] = (allowed.owners[i], float(scores[i]))
                seen.add(allowed.owners[i])
            return out
        limit = self.vectors.count if allowed is None else len(allowed.chunks)
        wanted = max(1, min(limit, n))
        while True:
            if allowed is not None:
                found = self.vectors.search(query, wanted, allowed.chunks, allowed.selector)
            else:
                found = self.vectors.search(query, wanted)
            pmids = self.passages.pmids_of([cid for cid, _ in found])
            out = {cid: (pmids[cid], s) for cid, s in found if cid in pmids}
            if len(set(pmids.values())) >= records or wanted >= limit:
                return out
            wanted = min(limit, wanted * 4)

    def dense_scores_of_records(self, query: np.ndarray, pmids: Sequence[str]) -> PassageScores:
        """Exact cosines of every passage of the given records."""
        ids_by_pmid = self.passages.chunk_ids_of(list(pmids))
        flat = [(p, cid) for p, cids in ids_by_pmid.items() for cid in cids]
        scores = self.vectors.scores(query, [cid for _, cid in flat])
        return {cid: (p, float(s)) for (p, cid), s in zip(flat, scores)}


__all__ = [
    "Snapshot", "Allowed", "Passages", "StoredChunk", "StoredSentence", "Consistency", "SCHEMA", "PAGE_SIZE",
    "PASSAGE_SPANS", "spans_by_record", "stored_offsets", "stored_mesh",
]  # fmt: skip
