"""Build: the pipeline that runs ingest -> chunk -> embed -> store for ``qa build``.

This module only wires the stages together and keeps the tally a user sees
at the end; each stage's logic lives in its own module.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .chunk import Chunker, ChunkSettings
from .embed import Embedder
from .errors import QAError
from .ingest import Deletion, Record, Skipped, expand_sources, read_source
from .store import IndexStore, Manifest

ProgressCallback = Callable[[str, int, "int | None"], None]
"""Called as ``progress(stage, done, total)``; stages are "read", "embed"."""


@dataclass
class BuildReport:
    """What a build did, for the summary line and for scripts (``--json``)."""

    index: str
    sources: list[str]
    records_read: int = 0
    records_indexed: int = 0
    replaced: int = 0
    deleted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.embed_seconds if self.embed_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "sources": self.sources,
            "records_read": self.records_read,
            "records_indexed": self.records_indexed,
            "replaced": self.replaced,
            "deleted": self.deleted,
            "skipped": dict(self.skipped),
            "chunks": self.chunks,
            "seconds": round(self.seconds, 2),
            "embed_seconds": round(self.embed_seconds, 2),
            "chunks_per_second": round(self.chunks_per_second, 1),
        }


def build_index(
    sources: Iterable[str | Path],
    index: str | Path = "index",
    *,
    model: str | None = None,
    chunk_tokens: int = ChunkSettings.chunk_tokens,
    overlap_sentences: int = ChunkSettings.overlap_sentences,
    device: str | None = None,
    batch_size: int | None = None,
    embedder: Embedder | None = None,
    progress: ProgressCallback | None = None,
) -> BuildReport:
    """Index PubMed files into ``index``, replacing what was there only once the new index is complete.

    Later files win: a PMID seen twice keeps its last record, and a
    ``<DeleteCitation>`` removes PMIDs read before it.
    """
    started = time.perf_counter()
    files = expand_sources(sources)
    if not files:
        raise QAError("no input files given")
    settings = ChunkSettings(chunk_tokens=chunk_tokens, overlap_sentences=overlap_sentences)
    embedder = embedder or Embedder(model, device=device, batch_size=batch_size)
    store = IndexStore(index)
    report = BuildReport(index=str(store.path), sources=[str(f) for f in files])
    skipped: Counter[str] = Counter()
    notify = progress or (lambda stage, done, total: None)

    lock = store.lock()
    try:
        writer = store.begin(dimension=embedder.dimension)
        try:
            for path in files:
                for event in read_source(path):
                    if isinstance(event, Record):
                        report.records_read += 1
                        report.replaced += writer.put_record(event)
                    elif isinstance(event, Deletion):
                        report.deleted += writer.delete_records(event.pmids)
                    elif isinstance(event, Skipped):
                        report.records_read += 1
                        skipped[event.reason] += 1
                    notify("read", report.records_read, None)
            total = writer.record_count()
            if total == 0:
                raise QAError(f"no records with an abstract in {', '.join(str(f) for f in files)}; nothing to index")
            chunker = Chunker(embedder.tokenizer, embedder.max_seq_length, settings)
            done = 0
            notify("embed", 0, total)
            for records in writer.iter_records():
                chunks = [c for r in records for c in chunker.chunk(r)]
                t0 = time.perf_counter()
                vectors = embedder.encode([c.embed_text for c in chunks])
                report.embed_seconds += time.perf_counter() - t0
                writer.add_chunks(chunks, vectors)
                done += len(records)
                report.chunks += len(chunks)
                notify("embed", done, total)
            report.records_indexed = total
            report.skipped = dict(skipped)
            report.seconds = time.perf_counter() - started
            writer.commit(
                Manifest(
                    model=embedder.name,
                    dimension=embedder.dimension,
                    max_seq_length=embedder.max_seq_length,
                    chunking={"chunk_tokens": settings.chunk_tokens, "overlap_sentences": settings.overlap_sentences},
                    records=total,
                    chunks=report.chunks,
                    build_seconds=round(report.seconds, 2),
                    sources=[f.name for f in files],
                )
            )
        except BaseException:
            writer.abort()
            raise
    finally:
        lock.release()
    report.seconds = time.perf_counter() - started
    return report


__all__ = ["build_index", "BuildReport", "ProgressCallback"]
