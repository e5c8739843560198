"""Pipeline: the local build -- ingest -> chunk -> embed -> store -- for ``qa build`` and ``qa remove``.

Every build is an update of the live snapshot (an empty one for the first build or ``full=True``):
incoming records are staged, compared by content hash with what is indexed, and only new or changed
records are chunked and embedded -- and even then a passage whose text did not change keeps its
vector. Nothing to change means no new snapshot at all. ``update_index`` is that one update, under
the index's lock; building from files, removing PMIDs and assembling shards (``shards.assemble``)
differ only in what they stage and how new records get their vectors.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..embed import Chunk, Chunker, Embedder, is_exported
from ..embed.onnx import encoder_checksums, encoder_model_file, install_encoder
from ..errors import QAError
from ..ingest import read_source
from ..records import Record, normalize_pmid
from ..store import IndexStore, Manifest, Plan, Snapshot, SnapshotWriter, fault_point
from . import batches
from .batches import Tally, check_sources, encode_batch
from .chunk_pool import Pending, auto_workers, chunking
from .options import BuildOptions, BuildReport, BuildSettings, ProgressCallback, no_progress, resolve_settings

Stage = Callable[[SnapshotWriter, BuildReport, ProgressCallback], None]
Fill = Callable[[SnapshotWriter, Plan, BuildReport, ProgressCallback], None]


def build_index(
    sources: Iterable[str | Path],
    index: str | Path = "index",
    options: BuildOptions | None = None,
    *,
    embedder: Embedder | None = None,
    progress: ProgressCallback | None = None,
    **settings: Any,
) -> BuildReport:
    """Add PubMed files to the index at ``index`` (creating it), embedding only what is new or changed.

    Later files win: a PMID seen twice keeps its last record, and a ``<DeleteCitation>``
    removes PMIDs, whether indexed before or read earlier in this build. ``full=True``
    rebuilds from ``sources`` alone. The live index is replaced only once the new one is
    complete. Model, backend and chunking settings default to the existing index's (with
    ``full=True``, to the package defaults). ``settings`` are ``BuildOptions`` fields
    (``full=True``, ``model=...``), given instead of or on top of ``options``.
    """
    options = replace(options or BuildOptions(), **settings)
    if options.workers is not None and options.workers < 1:
        raise QAError(f"workers must be at least 1, not {options.workers}")
    files = check_sources(sources, skip_bad=options.skip_bad)
    store = IndexStore(index)

    def stage(writer: SnapshotWriter, report: BuildReport, notify: ProgressCallback) -> None:
        tally = Tally()
        for path in files:
            tally.read(read_source(path, skip_bad=options.skip_bad), writer.stage_record, writer.stage_deletions,
                       lambda n: notify("read", n, None))  # fmt: skip
        record_tally(report, tally)
        # With an index already there, input with nothing to index is a no-op (qa update re-fetching
        # records that have no abstract, say); for a new index it is almost surely a mistake.
        if (options.full or not store.exists()) and writer.staged_count() == 0 and not writer.plan().deleted:
            raise QAError(f"no records with an abstract in {', '.join(str(f) for f in files)}; nothing to index")

    return update_index(store, stage, [str(f) for f in files], options, embedder, progress)


def record_tally(report: BuildReport, tally: Tally) -> None:
    report.records_read, report.replaced = tally.records_read, tally.replaced
    report.skipped, report.bad = dict(tally.skipped), list(tally.bad)


def remove_records(
    pmids: Iterable[str], index: str | Path = "index", *, embedder: Embedder | None = None
) -> BuildReport:
    """Delete PMIDs from an existing index (a new snapshot without them; nothing is re-embedded)."""
    given = [str(p).strip() for p in pmids]
    bad = [p for p in given if normalize_pmid(p) is None]
    if bad:
        raise QAError(f"not a PMID: {bad[0][:40]!r}")
    wanted = [normalize_pmid(p) or p for p in given]
    if not wanted:
        raise QAError("no PMIDs given")
    store = IndexStore(index)
    store.current_dir()  # a clear error when there is no index yet

    def stage(writer: SnapshotWriter, report: BuildReport, notify: ProgressCallback) -> None:
        writer.stage_deletions(wanted)

    return update_index(store, stage, [], BuildOptions(), embedder, None)


# ----------------------------------------------------------------- the update


def update_index(
    store: IndexStore,
    stage: Stage,
    sources: list[str],
    options: BuildOptions,
    embedder: Embedder | None = None,
    progress: ProgressCallback | None = None,
    fill: Fill | None = None,
) -> BuildReport:
    """Stage, plan, apply and commit one build under the index's lock.

    ``fill`` writes the new and changed records with their passages and vectors; by default they are
    chunked and embedded here (``_embed``), from shards they are copied (``shards.assemble``).
    """
    update = _Update(store, options, BuildReport(index=str(store.path), sources=sources, full=options.full),
                     progress or no_progress, time.perf_counter())  # fmt: skip
    with _locked(store), contextlib.ExitStack() as open_files:
        store.remove_stale()  # unfinished builds a crash left behind
        base = None
        if store.exists() and not options.full:
            base = open_files.enter_context(contextlib.closing(store.open()))
        update.run(base, stage, fill, embedder)
    update.report.seconds = time.perf_counter() - update.started
    return update.report


@contextlib.contextmanager
def first_build(index: str | Path) -> Iterator[None]:
    """Around everything a build does (fetching from PubMed included): when the index folder did not exist
    before and no snapshot was published, a failure or Ctrl-C leaves no folder behind (no ``.lock``,
    ``fetch/`` or ``models/``)."""
    store = IndexStore(index)
    new_folder = not store.path.exists()
    finished = False
    try:
        yield
        finished = True
    finally:
        if not finished and new_folder and store.path.is_dir() and not store.exists():
            shutil.rmtree(store.path, ignore_errors=True)


@contextlib.contextmanager
def _locked(store: IndexStore) -> Iterator[None]:
    """The index's build lock for the duration; a failed first build leaves no folder behind."""
    new_folder = not store.path.exists()
    lock = store.lock()
    finished = False
    try:
        yield
        finished = True
    finally:
        lock.release()
        if not finished and new_folder and not store.exists():
            shutil.rmtree(store.path, ignore_errors=True)


@dataclass
class _Update:
    """One update in progress: what it was asked, what it reports, and the steps from plan to commit."""

    store: IndexStore
    options: BuildOptions
    report: BuildReport
    notify: ProgressCallback
    started: float

    def run(self, base: Snapshot | None, stage: Stage, fill: Fill | None, embedder: Embedder | None) -> None:
        built = base.manifest if base is not None else None
        settings = resolve_settings(built, self.store.path, self.options, embedder)
        embedder = self._embedder(settings, embedder)
        writer = self.store.begin(dimension=embedder.dimension, base=base, index_type=self.options.index_type)
        try:
            stage(writer, self.report, self.notify)
            plan = writer.plan()
            self._count(plan, writer)
            retype = built is not None and self.options.index_type not in ("auto", built.index_type)
            if built is not None and plan.is_noop and not retype:
                writer.abort()
                self.report.records_indexed, self.report.chunks = built.records, built.chunks
                return
            writer.delete_records(plan.deleted)
            if fill is None:
                chunker = Chunker(embedder.tokenizer, embedder.max_seq_length, settings.chunking)
                _embed(writer, plan, embedder, chunker, self.report, self.notify, self.options.workers)
            else:
                fill(writer, plan, self.report, self.notify)
            manifest = self._manifest(built, embedder, settings)
            self.store.commit(writer, manifest)
        except BaseException:
            writer.abort()
            raise
        self.report.records_indexed, self.report.chunks = manifest.records, manifest.chunks

    def _count(self, plan: Plan, writer: SnapshotWriter) -> None:
        report = self.report
        report.added, report.updated, report.unchanged = len(plan.new), len(plan.changed), plan.unchanged
        report.cancelled = len(writer.cancelled - set(plan.deleted))  # withdrawn before ever being indexed
        report.deleted, report.not_found = len(plan.deleted) + report.cancelled, plan.not_found

    def _embedder(self, settings: BuildSettings, given: Embedder | None) -> Embedder:
        """The encoder for this build. An exported one lives in the index's own ``models/`` folder: made
        there once (and said so), or copied there from the folder of an ``Embedder`` passed in."""
        target = self.store.layout.encoder_dir_for(settings.model)
        if given is not None:
            if given.exported and given.encoder_dir is not None and given.encoder_dir.resolve() != target.resolve():
                _ = given.dimension  # the export exists from here on
                if not install_encoder(given.encoder_dir, target):
                    raise QAError(f"{target} differs from the embedder's encoder {given.encoder_dir}; "
                                  "use a new --index folder, or rebuild with --full")  # fmt: skip
            return given
        exported = is_exported(settings.backend)
        embedder = Embedder(settings.model, backend=settings.backend, encoder_dir=target if exported else None,
                            device=self.options.device, batch_size=self.options.batch_size,
                            precision=self.options.precision)  # fmt: skip
        if exported and not encoder_model_file(target).is_file():
            self.notify("prepare", 0, None)
        return embedder

    def _manifest(self, built: Manifest | None, embedder: Embedder, settings: BuildSettings) -> Manifest:
        encoder_dir = self.store.layout.encoder_dir_for(embedder.name) if embedder.exported else None
        sources = (built.sources if built else []) + [Path(s).name for s in self.report.sources]
        return Manifest(
            model=embedder.name,
            dimension=embedder.dimension,
            max_seq_length=embedder.max_seq_length,
            chunking={
                "chunk_tokens": settings.chunking.chunk_tokens,
                "overlap_sentences": settings.chunking.overlap_sentences,
            },
            records=0,
            chunks=0,
            build_seconds=round(time.perf_counter() - self.started, 2),
            sources=list(dict.fromkeys(sources)),
            backend=embedder.backend,
            pubmed=self.options.pubmed or (built.pubmed if built else None),
            encoder=self.store.layout.encoder_reference(encoder_dir) if encoder_dir is not None else None,
            encoder_files=encoder_checksums(encoder_dir) if encoder_dir is not None else {},
        )


# ----------------------------------------------------------------- embedding


def _embed(
    writer: SnapshotWriter,
    plan: Plan,
    embedder: Embedder,
    chunker: Chunker,
    report: BuildReport,
    notify: ProgressCallback,
    workers: int | None = None,
) -> None:
    """Chunk and embed new and changed records; reuse vectors of passages whose text is unchanged.

    The next batches are chunked (pure Python) while the current one is encoded: in a thread with one
    worker, else in worker processes. Either way the batches, their order and so the encoder's calls
    are the same, which keeps the index identical.
    """
    todo = plan.new + plan.changed
    done = 0
    notify("embed", 0, len(todo))
    workers = workers or auto_workers(len(todo), gpu=bool(todo) and embedder.on_gpu)
    with chunking(chunker, workers) as (submit, ahead):
        records_in_batches = writer.staged_records(todo, batches.BATCH_RECORDS)
        queue: deque[tuple[list[Record], Pending]] = deque()

        def top_up() -> None:
            while len(queue) < ahead and (records := next(records_in_batches, None)) is not None:
                queue.append((records, submit(records)))

        top_up()
        while queue:
            records, pending = queue.popleft()
            chunks = pending.result()
            top_up()  # before encoding: the next batches are chunked meanwhile
            moved = partial(_moved, notify, done, len(records), len(todo))  # the bar moves inside a batch too
            _store_batch(writer, records, chunks, embedder, report, moved)
            done += len(records)
            notify("embed", done, len(todo))


def _moved(notify: ProgressCallback, done: int, batch: int, total: int, share: float) -> None:
    notify("embed", done + int(share * batch), total)


def _store_batch(
    writer: SnapshotWriter,
    records: list[Record],
    chunks: list[Chunk],
    embedder: Embedder,
    report: BuildReport,
    on_progress: Callable[[float], None] | None = None,
) -> None:
    """Write one batch: records, then their passages and sentences with new or reused vectors."""
    reuse: dict[str, np.ndarray] = {}
    reuse_sentences: dict[str, np.ndarray] = {}
    for record in records:
        reuse.update(writer.reusable_vectors(record.pmid))
        reuse_sentences.update(writer.reusable_sentence_vectors(record.pmid))
        writer.put_record(record)
    batch = encode_batch(records, chunks, embedder, writer.dimension, reuse, reuse_sentences, on_progress)
    writer.add_sentences(batch.sentence_rows, batch.sentence_vectors)
    writer.add_chunks(chunks, batch.vectors)
    fault_point("embed")
    report.embed_seconds += batch.seconds
    report.sentence_seconds += batch.sentence_seconds
    report.sentences_embedded += batch.sentences_encoded
    report.chunks_embedded += batch.encoded
    report.chunks_reused += len(chunks) - batch.encoded


__all__ = ["build_index", "remove_records", "update_index", "record_tally", "Stage", "Fill"]
