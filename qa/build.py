"""Build: the pipeline that runs ingest -> chunk -> embed -> store for ``qa build`` and ``qa remove``.

Every build is an update of the live snapshot (an empty one for the first
build or ``full=True``): incoming records are staged, compared by content
hash with what is indexed, and only new or changed records are chunked and
embedded -- and even then a passage whose text did not change keeps its
vector. Nothing to change means no new snapshot at all. This module only
wires the stages together and keeps the tally a user sees at the end.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .chunk import Chunk, Chunker, ChunkSettings
from .embed import DEFAULT_MODEL, Embedder, canonical_model_name, encoder_dir_name
from .errors import QAError
from .ingest import Bad, Deletion, Record, Skipped, expand_sources, normalize_pmid, read_source
from .store import IndexStore, Manifest, Plan, Snapshot, SnapshotWriter, fault_point, file_facts, text_hash

DEFAULT_BACKEND = "onnx-int8"  # 2.3x the build throughput of torch fp32 at -0.0003 MRR@10 (README "Speed")

ProgressCallback = Callable[[str, int, "int | None"], None]
"""Called as ``progress(stage, done, total)``; stages are "read", "embed"."""


@dataclass
class BuildReport:
    """What a build did, for the summary line and for scripts (``--json``)."""

    index: str
    sources: list[str]
    full: bool = False
    records_read: int = 0
    replaced: int = 0  # PMIDs seen more than once in this build's input (the last one kept)
    skipped: dict[str, int] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)  # with skip_bad: what could not be read, one line each
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0  # removed from the index, or withdrawn before ever being indexed
    cancelled: int = 0  # of those, records read earlier in this same build
    not_found: list[str] = field(default_factory=list)  # asked to delete, but not in the index
    records_indexed: int = 0  # records in the index afterwards
    chunks: int = 0  # passages in the index afterwards
    chunks_embedded: int = 0
    chunks_reused: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0

    @property
    def noop(self) -> bool:
        return not (self.added or self.updated or self.deleted - self.cancelled)

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "sources": self.sources,
            "full": self.full,
            "noop": self.noop,
            "records_read": self.records_read,
            "replaced": self.replaced,
            "skipped": dict(self.skipped),
            "bad": list(self.bad),
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "not_found": self.not_found,
            "records_indexed": self.records_indexed,
            "chunks": self.chunks,
            "chunks_embedded": self.chunks_embedded,
            "chunks_reused": self.chunks_reused,
            "seconds": round(self.seconds, 2),
            "embed_seconds": round(self.embed_seconds, 2),
            "chunks_per_second": round(self.chunks_per_second, 1),
        }


def build_index(
    sources: Iterable[str | Path],
    index: str | Path = "index",
    *,
    full: bool = False,
    model: str | None = None,
    backend: str | None = None,
    index_type: str = "auto",
    chunk_tokens: int | None = None,
    overlap_sentences: int | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    embedder: Embedder | None = None,
    progress: ProgressCallback | None = None,
    pubmed: dict[str, Any] | None = None,
    skip_bad: bool = False,
) -> BuildReport:
    """Add PubMed files to the index at ``index`` (creating it), embedding only what is new or changed.

    Later files win: a PMID seen twice keeps its last record, and a ``<DeleteCitation>``
    removes PMIDs, whether indexed before or read earlier in this build. ``full=True``
    rebuilds from ``sources`` alone. The live index is replaced only once the new one is
    complete. Model, backend and chunking settings default to the existing index's (with
    ``full=True``, to the package defaults).
    """
    files = expand_sources(sources)
    if not files:
        raise QAError("no input files given")
    notify = progress or (lambda stage, done, total: None)
    store = IndexStore(index)

    def stage(writer: SnapshotWriter, report: BuildReport) -> None:
        skipped: Counter[str] = Counter()
        cancelled = 0
        for path in files:
            for event in read_source(path, skip_bad=skip_bad):
                if isinstance(event, Record):
                    report.records_read += 1
                    report.replaced += writer.stage_record(event)
                elif isinstance(event, Deletion):
                    cancelled += writer.stage_deletions(event.pmids)
                elif isinstance(event, Bad):
                    report.bad.append(event.message)
                elif isinstance(event, Skipped):
                    report.records_read += 1
                    skipped[event.reason] += 1
                notify("read", report.records_read, None)
        report.skipped = dict(skipped)
        report.cancelled = cancelled
        # With an index already there, input with nothing to index is a no-op (qa update re-fetching
        # records that have no abstract, say); for a new index it is almost surely a mistake.
        fresh = full or not store.exists()
        if fresh and writer.staged_count() == 0 and not writer.plan().deleted:
            raise QAError(f"no records with an abstract in {', '.join(str(f) for f in files)}; nothing to index")

    options = _Options(model, backend, index_type, chunk_tokens, overlap_sentences, device, batch_size, pubmed)
    return _update(store, stage, [str(f) for f in files], full, notify, options, embedder)


def remove_records(
    pmids: Iterable[str], index: str | Path = "index", *, embedder: Embedder | None = None
) -> BuildReport:
    """Delete PMIDs from an existing index (a new snapshot without them; nothing is re-embedded)."""
    given = [str(p).strip() for p in pmids]
    bad = [p for p in given if normalize_pmid(p) is None]
    if bad:
        raise QAError(f"not a PMID: {bad[0]!r}")
    wanted = [normalize_pmid(p) or p for p in given]
    if not wanted:
        raise QAError("no PMIDs given")
    store = IndexStore(index)
    store.current_dir()  # a clear error when there is no index yet

    def stage(writer: SnapshotWriter, report: BuildReport) -> None:
        writer.stage_deletions(wanted)

    return _update(store, stage, [], False, lambda *a: None, _Options(), embedder)


@dataclass(frozen=True)
class _Options:
    """What the caller asked for; None means "what the index was built with, else the default"."""

    model: str | None = None
    backend: str | None = None
    index_type: str = "auto"
    chunk_tokens: int | None = None
    overlap_sentences: int | None = None
    device: str | None = None
    batch_size: int | None = None
    pubmed: dict[str, Any] | None = None  # the search to remember for `qa update`


def _update(
    store: IndexStore,
    stage: Callable[[SnapshotWriter, BuildReport], None],
    sources: list[str],
    full: bool,
    notify: ProgressCallback,
    options: _Options,
    embedder: Embedder | None,
) -> BuildReport:
    index_type = options.index_type
    started = time.perf_counter()
    report = BuildReport(index=str(store.path), sources=sources, full=full)
    lock = store.lock()
    base: Snapshot | None = None
    try:
        store.remove_stale()  # unfinished builds a crash left behind
        if store.exists() and not full:
            base = store.open()
        settings, model_name, backend = _settings(
            base, options.model, options.backend, options.chunk_tokens, options.overlap_sentences, embedder
        )
        if embedder is None:
            encoder_dir = store.path / "models" / encoder_dir_name(model_name or DEFAULT_MODEL)
            embedder = Embedder(
                model_name,
                backend=backend,
                encoder_dir=encoder_dir if backend == "onnx-int8" else None,
                device=options.device,
                batch_size=options.batch_size,
            )
        writer = store.begin(dimension=embedder.dimension, base=base, index_type=index_type)
        try:
            stage(writer, report)
            plan = writer.plan()
            report.added, report.updated, report.unchanged = len(plan.new), len(plan.changed), plan.unchanged
            report.cancelled = len(writer.cancelled - set(plan.deleted))  # withdrawn before ever being indexed
            report.deleted, report.not_found = len(plan.deleted) + report.cancelled, plan.not_found
            retype = base is not None and index_type not in ("auto", base.manifest.index_type)
            if base is not None and plan.is_noop and not retype:
                writer.abort()
                report.records_indexed, report.chunks = base.manifest.records, base.manifest.chunks
            else:
                writer.delete_records(plan.deleted)
                _embed(
                    writer,
                    plan,
                    embedder,
                    Chunker(embedder.tokenizer, embedder.max_seq_length, settings),
                    report,
                    notify,
                )
                previous = base.manifest.sources if base is not None else []
                manifest = Manifest(
                    model=embedder.name,
                    dimension=embedder.dimension,
                    max_seq_length=embedder.max_seq_length,
                    chunking={"chunk_tokens": settings.chunk_tokens, "overlap_sentences": settings.overlap_sentences},
                    records=0,
                    chunks=0,
                    build_seconds=round(time.perf_counter() - started, 2),
                    sources=list(dict.fromkeys(previous + [Path(s).name for s in sources])),
                    backend=embedder.backend,
                    pubmed=options.pubmed or (base.manifest.pubmed if base is not None else None),
                    encoder=(
                        str(embedder.encoder_dir.relative_to(store.path))
                        if embedder.backend == "onnx-int8" and embedder.encoder_dir is not None
                        else None
                    ),
                    encoder_sha256=(
                        file_facts(embedder.encoder_dir / "model.onnx")["sha256"]
                        if embedder.backend == "onnx-int8" and embedder.encoder_dir is not None
                        else None
                    ),
                )
                writer.commit(manifest)
                report.records_indexed, report.chunks = manifest.records, manifest.chunks
        except BaseException:
            writer.abort()
            raise
    finally:
        if base is not None:
            base.close()
        lock.release()
    report.seconds = time.perf_counter() - started
    return report


def _settings(
    base: Snapshot | None,
    model: str | None,
    backend: str | None,
    chunk_tokens: int | None,
    overlap_sentences: int | None,
    embedder: Embedder | None,
) -> tuple[ChunkSettings, str | None, str]:
    """Settings for this build: what was asked, else what the index was built with, else the defaults."""
    defaults = ChunkSettings()
    if embedder is not None:
        backend = embedder.backend
    if base is None:
        settings = ChunkSettings(
            chunk_tokens if chunk_tokens is not None else defaults.chunk_tokens,
            overlap_sentences if overlap_sentences is not None else defaults.overlap_sentences,
        )
        return settings, model, backend or DEFAULT_BACKEND
    built = base.manifest
    settings = ChunkSettings(
        chunk_tokens if chunk_tokens is not None else built.chunking.get("chunk_tokens", defaults.chunk_tokens),
        overlap_sentences
        if overlap_sentences is not None
        else built.chunking.get("overlap_sentences", defaults.overlap_sentences),
    )
    asked = embedder.name if embedder is not None else (canonical_model_name(model) if model else built.model)
    if asked != built.model:
        raise QAError(
            f"index {base.dir.parent} was built with model {built.model!r}, not {asked!r}; "
            "add --full to rebuild it with the new model"
        )
    if backend is not None and backend != built.backend:
        raise QAError(
            f"index {base.dir.parent} was built with the {built.backend} backend, not {backend}; "
            "add --full to rebuild it with the new backend"
        )
    if (settings.chunk_tokens, settings.overlap_sentences) != (
        built.chunking.get("chunk_tokens"),
        built.chunking.get("overlap_sentences"),
    ):
        raise QAError(
            f"index {base.dir.parent} was built with chunk_tokens={built.chunking.get('chunk_tokens')}, "
            f"overlap={built.chunking.get('overlap_sentences')}; add --full to rebuild it with new chunking"
        )
    return settings, built.model, built.backend


def _embed(
    writer: SnapshotWriter,
    plan: Plan,
    embedder: Embedder,
    chunker: Chunker,
    report: BuildReport,
    notify: ProgressCallback,
) -> None:
    """Chunk and embed new and changed records; reuse vectors of passages whose text is unchanged."""
    todo = plan.new + plan.changed
    done = 0
    notify("embed", 0, len(todo))

    def chunk_all(records: list[Record]) -> list[Chunk]:
        return [c for r in records for c in chunker.chunk(r)]

    # Chunking (pure Python) of the next batch overlaps with encoding (native code, GIL released).
    with ThreadPoolExecutor(max_workers=1) as pool:
        batches = writer.staged_records(todo)
        first = next(batches, None)
        pending = pool.submit(chunk_all, first) if first is not None else None
        current = first
        while current is not None and pending is not None:
            chunks = pending.result()
            following = next(batches, None)
            pending = pool.submit(chunk_all, following) if following is not None else None
            _store_batch(writer, current, chunks, embedder, report)
            done += len(current)
            notify("embed", done, len(todo))
            current = following


def _store_batch(
    writer: SnapshotWriter, records: list[Record], chunks: list[Chunk], embedder: Embedder, report: BuildReport
) -> None:
    """Write one batch: records, then their passages with new or reused vectors."""
    reuse: dict[str, np.ndarray] = {}
    for record in records:
        reuse.update(writer.reusable_vectors(record.pmid))
        writer.put_record(record)
    hashes = [text_hash(c.embed_text) for c in chunks]
    fresh = [i for i, h in enumerate(hashes) if h not in reuse]
    vectors = np.zeros((len(chunks), writer.dimension), dtype=np.float32)
    if fresh:
        t0 = time.perf_counter()
        vectors[fresh] = embedder.encode([chunks[i].embed_text for i in fresh])
        report.embed_seconds += time.perf_counter() - t0
    for i, h in enumerate(hashes):
        if h in reuse:
            vectors[i] = reuse[h]
    writer.add_chunks(chunks, vectors)
    fault_point("embed")
    report.chunks_embedded += len(fresh)
    report.chunks_reused += len(chunks) - len(fresh)


__all__ = ["build_index", "remove_records", "BuildReport", "ProgressCallback"]
