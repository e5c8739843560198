"""Build: the pipeline that runs ingest -> chunk -> embed -> store for ``qa build`` and ``qa remove``.

Every build is an update of the live snapshot (an empty one for the first
build or ``full=True``): incoming records are staged, compared by content
hash with what is indexed, and only new or changed records are chunked and
embedded -- and even then a passage whose text did not change keeps its
vector. Nothing to change means no new snapshot at all. This module only
wires the stages together and keeps the tally a user sees at the end.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .chunk import Chunk, Chunker, ChunkSettings
from .chunk_pool import Pending, auto_workers, chunking
from .embed import Embedder, check_same_model
from .errors import QAError
from .ingest import expand_sources, probe_source, read_source
from .records import Bad, Deletion, Record, Skipped, normalize_pmid
from .store import (
    IndexStore,
    Manifest,
    Plan,
    Snapshot,
    SnapshotWriter,
    fault_point,
    file_facts,
    record_hash,
    resolve_index_type,
    text_hash,
)
from .store.layout import encoder_checksums, encoder_model_file

if TYPE_CHECKING:
    from .shards import ShardEntry, ShardSet

DEFAULT_BACKEND = "onnx-int8"  # 2.3x the build throughput of torch fp32 at -0.0003 MRR@10 (README "Speed")

ProgressCallback = Callable[[str, int, "int | None"], None]
"""Called as ``progress(stage, done, total)``; stages are "fetch", "prepare" (the one-time encoder
export), "read", "embed" and, from shards, "shards"."""


@dataclass(frozen=True)
class BuildOptions:
    """How to build; None means "what the index was built with, else the default".

    ``workers`` is 1 by default: chunking runs in the build's own process, safe in any script. More
    chunk in that many worker processes while the encoder runs; they are started with "spawn", so the
    script needs the usual ``if __name__ == "__main__":`` guard. None picks by the number of records
    to embed and of CPUs (``chunk_pool.auto_workers``), as ``qa build`` does. The index is the same
    either way.
    """

    full: bool = False  # rebuild from the given sources alone
    skip_bad: bool = False  # index the good records and list the bad ones instead of stopping
    model: str | None = None
    backend: str | None = None
    index_type: str = "auto"
    chunk_tokens: int | None = None
    overlap_sentences: int | None = None
    device: str | None = None
    batch_size: int | None = None
    pubmed: dict[str, Any] | None = None  # the PubMed search to remember for `qa update`
    workers: int | None = 1  # processes that chunk; see above
    precision: str | None = None  # torch backend: "fp16" or "fp32" (None: fp16 on CUDA, else fp32)


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
    sentences_embedded: int = 0  # sentence vectors for the answer block (reused when their text is unchanged)
    warnings: list[str] = field(default_factory=list)  # e.g. PMIDs PubMed did not return (--allow-partial)
    seconds: float = 0.0
    embed_seconds: float = 0.0  # encoding passages
    sentence_seconds: float = 0.0  # encoding sentences
    shards: int = 0  # made from shards (qa index from-shards, --engine ray): the shards read
    shards_made: int = 0  # --engine ray: shards made by this run (the others were complete already)
    workers: int = 0  # --engine ray: Ray workers that made them; embed times above are summed over them
    chunks_from_shards: int = 0  # passages (with their vectors) taken from shards into the index

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
            "warnings": list(self.warnings),
            "records_indexed": self.records_indexed,
            "chunks": self.chunks,
            "chunks_embedded": self.chunks_embedded,
            "chunks_reused": self.chunks_reused,
            "sentences_embedded": self.sentences_embedded,
            "seconds": round(self.seconds, 2),
            "embed_seconds": round(self.embed_seconds, 2),
            "sentence_seconds": round(self.sentence_seconds, 2),
            "chunks_per_second": round(self.chunks_per_second, 1),
            "shards": self.shards,
            "shards_made": self.shards_made,
            "workers": self.workers,
            "chunks_from_shards": self.chunks_from_shards,
        }


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
    files = expand_sources(sources)
    if not files:
        raise QAError("no input files given")
    if not options.skip_bad:
        for path in files:  # a wrong file fails in a moment, before the encoder is prepared or anything is made
            probe_source(path)
    store = IndexStore(index)

    def stage(writer: SnapshotWriter, report: BuildReport, notify: ProgressCallback) -> None:
        _stage_files(files, writer, report, notify, options.skip_bad)
        # With an index already there, input with nothing to index is a no-op (qa update re-fetching
        # records that have no abstract, say); for a new index it is almost surely a mistake.
        fresh = options.full or not store.exists()
        if fresh and writer.staged_count() == 0 and not writer.plan().deleted:
            raise QAError(f"no records with an abstract in {', '.join(str(f) for f in files)}; nothing to index")

    return _update(store, stage, [str(f) for f in files], options, embedder, progress)


def _stage_files(
    files: list[Path], writer: SnapshotWriter, report: BuildReport, notify: ProgressCallback, skip_bad: bool
) -> None:
    """Read every file into the writer's staging tables, counting what was read, skipped and bad."""
    skipped: Counter[str] = Counter()
    for path in files:
        for event in read_source(path, skip_bad=skip_bad):
            if isinstance(event, Record):
                report.records_read += 1
                report.replaced += writer.stage_record(event)
            elif isinstance(event, Deletion):
                writer.stage_deletions(event.pmids)
            elif isinstance(event, Bad):
                report.bad.append(event.message)
            elif isinstance(event, Skipped):
                report.records_read += 1
                skipped[event.reason] += 1
            notify("read", report.records_read, None)
    report.skipped = dict(skipped)


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

    return _update(store, stage, [], BuildOptions(), embedder, None)


# ----------------------------------------------------------------- from shards


def index_from_shards(
    shards: str | Path,
    index: str | Path = "index",
    options: BuildOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    **settings: Any,
) -> BuildReport:
    """Make the index at ``index`` from the shards of a distributed build, embedding nothing.

    Shards are read in the source order ``shards.json`` lists, so the snapshot is the one a local
    ``build_index`` of the same files in that order writes: the same records, passage ids and vectors.
    Like a local build it updates an existing index (``full=True`` rebuilds from the shards alone); that
    index must have the shards' model, backend, chunking and int8 encoder. Into an empty snapshot, IVF
    types are trained on a sample first and then filled batch by batch, never holding every vector;
    flat (below 100,000 passages under ``auto``) holds them all, as it does in a local build.
    """
    from .shards import ShardSet, install_encoder

    options = replace(options or BuildOptions(), **settings)
    shard_set = ShardSet.open(shards)
    s = shard_set.settings
    options = replace(options, model=s.model, backend=s.backend, chunk_tokens=s.chunk_tokens,
                      overlap_sentences=s.overlap_sentences)  # fmt: skip
    store = IndexStore(index)
    store.live_name()  # a file, or a symlinked pointer, is refused before anything is written
    created = not store.path.exists()
    try:
        encoder_dir = None
        if s.backend == "onnx-int8":
            encoder_dir = store.layout.encoder_dir_for(s.model)
            install_encoder(shard_set.encoder_dir, encoder_dir)
        embedder = Embedder(s.model, backend=s.backend, encoder_dir=encoder_dir, export=False)
        if embedder.dimension != shard_set.dimension:
            raise QAError(f"the shards hold {shard_set.dimension}-d vectors, the model makes {embedder.dimension}-d")

        def stage(writer: SnapshotWriter, report: BuildReport, notify: ProgressCallback) -> None:
            _stage_shards(shard_set, writer, report, notify)
            if (options.full or not store.exists()) and writer.staged_count() == 0 and not writer.plan().deleted:
                raise QAError(f"no records with an abstract in the shards at {shard_set.dir}; nothing to index")

        def fill(writer: SnapshotWriter, plan: Plan, report: BuildReport, notify: ProgressCallback) -> None:
            _fill_from_shards(shard_set, writer, plan, options.index_type, report, notify)

        report = _update(store, stage, shard_set.sources, options, embedder, progress, fill)
    except BaseException:
        if created and not store.exists():
            shutil.rmtree(store.path, ignore_errors=True)
        raise
    report.shards = len(shard_set.unique())
    return report


def _stage_shards(shard_set: ShardSet, writer: SnapshotWriter, report: BuildReport, notify: ProgressCallback) -> None:
    """Stage the shards' records and deletions in source order, as ``_stage_files`` stages the files."""
    skipped: Counter[str] = Counter()
    for shard in shard_set.shards:
        for event in shard.events():
            if isinstance(event, Record):
                report.records_read += 1
                report.replaced += writer.stage_record(event)
            else:
                writer.stage_deletions(event.pmids)
            notify("read", report.records_read, None)
        skipped.update(shard.manifest.skipped)
        report.records_read += sum(shard.manifest.skipped.values())
        report.bad += shard.manifest.bad
    report.skipped = dict(skipped)


def _fill_from_shards(
    shard_set: ShardSet, writer: SnapshotWriter, plan: Plan, index_type: str, report: BuildReport,
    notify: ProgressCallback,
) -> None:  # fmt: skip
    """Write new and changed records with the passages, vectors and sentence vectors their shards hold.

    Records come in the order a local build embeds them (``plan.new``, then ``plan.changed``, each by
    PMID) and the shards' entries are sorted by PMID, so both are walked side by side: one pass, and
    only one batch of vectors in memory (besides a flat index's own).
    """
    from .shards import ShardError

    segments = [plan.new, plan.changed]
    total = len(plan.new) + len(plan.changed)
    notify("shards", 0, total)
    bound = sum(shard.manifest.passages for shard in shard_set.unique())  # the most passages there can be
    if writer.vectors.count == 0 and resolve_index_type(index_type, bound) != "flat":

        def entries() -> Iterator[ShardEntry]:
            return (entry for segment in segments for entry in shard_set.entries_for(segment))

        n_new = sum(len(entry.chunks) for entry in entries())
        writer.prepare_vectors(n_new, lambda positions: _vectors_at(entries(), positions, shard_set.dimension))
    done = 0
    for segment in segments:
        found = shard_set.entries_for(segment)
        for records in writer.staged_records(segment, BATCH_RECORDS):
            chunks: list[Chunk] = []
            vectors: list[np.ndarray] = []
            rows: list[tuple[str, int, int, str | None]] = []
            sentence_vectors: list[np.ndarray] = []
            for record in records:
                entry = next(found)
                if entry.record_hash != record_hash(record):
                    raise ShardError(f"shard {entry.shard.name}: PMID {record.pmid} differs from its record")
                record_chunks = entry.chunk_objects(record)
                record_rows = sentence_rows(record_chunks)
                if len(record_rows) != entry.sentences:
                    raise ShardError(f"shard {entry.shard.name}: sentences of PMID {record.pmid} do not match")
                writer.put_record(record)
                chunks += record_chunks
                rows += record_rows
                vectors.append(entry.vectors())
                sentence_vectors.append(entry.sentence_vectors())
            writer.add_sentences(rows, _stacked(sentence_vectors, shard_set.dimension))
            writer.add_chunks(chunks, _stacked(vectors, shard_set.dimension))
            fault_point("embed")
            report.chunks_from_shards += len(chunks)
            done += len(records)
            notify("shards", done, total)


def _stacked(blocks: list[np.ndarray], dimension: int) -> np.ndarray:
    return np.concatenate(blocks) if blocks else np.zeros((0, dimension), dtype=np.float32)


def _vectors_at(entries: Iterable[ShardEntry], positions: np.ndarray, dimension: int) -> np.ndarray:
    """The vectors at ascending ``positions`` of the passages that ``entries`` hold, in turn."""
    out = np.zeros((len(positions), dimension), dtype=np.float32)
    i = start = 0
    for entry in entries:
        if i == len(positions):
            break
        end = start + len(entry.chunks)
        while i < len(positions) and positions[i] < end:
            out[i] = entry.shard.vectors[entry.row + int(positions[i]) - start]
            i += 1
        start = end
    return out


# ----------------------------------------------------------------- live PubMed


@dataclass(frozen=True)
class PubmedSource:
    """Where and how to reach E-utilities (None: the environment's or NCBI's defaults)."""

    eutils_url: str | None = None
    api_key: str | None = None
    email: str | None = None
    allow_partial: bool = False  # index what arrived when PubMed leaves PMIDs out, instead of stopping

    def client(self) -> Any:
        from .pubmed import EUtils

        return EUtils(self.eutils_url, api_key=self.api_key, email=self.email)


@dataclass(frozen=True)
class Fetched:
    """Records fetched for an index: the file, the search to remember, and what did not arrive."""

    path: Path
    pubmed: dict[str, Any] | None
    warnings: tuple[str, ...] = ()


def fetch_for_index(
    index: str | Path,
    source: PubmedSource,
    *,
    query: str | None = None,
    pmids: list[str] | None = None,
    limit: int | None = None,
    progress: ProgressCallback | None = None,
) -> Fetched:
    """Fetch a search or a PMID list into the index's fetch folder (resumable)."""
    from .pubmed import fetch_records, query_digest

    if query is not None and pmids is not None:
        raise QAError("use --pubmed or --pmids, not both")
    key = query_digest(json.dumps([query, pmids, limit]))
    out = IndexStore(index).layout.fetch_file(key)
    notify = progress or _no_progress
    with source.client() as client:
        report = fetch_records(
            client,
            out,
            query=query if pmids is None else None,
            pmids=pmids,
            limit=limit,
            progress=lambda done, total: notify("fetch", done, total),
            allow_partial=source.allow_partial,
        )
    remembered = {"query": query, "max": limit} if query is not None else None
    return Fetched(out, remembered, tuple(report.warnings))


def update_from_pubmed(
    index: str | Path = "index", source: PubmedSource | None = None, *, progress: ProgressCallback | None = None
) -> BuildReport:
    """Re-run the PubMed search an index was built from; fetch and index only the PMIDs it does not have."""
    source = source or PubmedSource()
    store = IndexStore(index)
    manifest = store.manifest()
    if not manifest.pubmed or not manifest.pubmed.get("query"):
        raise QAError(f"{index} was not built from a PubMed search (qa build --pubmed QUERY); nothing to re-run")
    with source.client() as client:
        found = client.search(
            manifest.pubmed["query"], limit=manifest.pubmed.get("max"), allow_partial=source.allow_partial
        )
    passages = store.open_passages()
    try:
        indexed = passages.pmids()
    finally:
        passages.close()
    new = [p for p in found.pmids if p not in indexed]
    if not new:
        report = BuildReport(index=str(store.path), sources=[], unchanged=len(found.pmids))
        report.records_indexed, report.chunks = manifest.records, manifest.chunks
    else:
        fetched = fetch_for_index(index, source, pmids=new, progress=progress)
        report = build_index([fetched.path], index, progress=progress)
        report.warnings += list(fetched.warnings)
    report.warnings = list(found.warnings) + report.warnings
    return report


# ----------------------------------------------------------------- the update


def _no_progress(stage: str, done: int, total: int | None) -> None:
    pass


Stage = Callable[[SnapshotWriter, BuildReport, ProgressCallback], None]
Fill = Callable[[SnapshotWriter, Plan, BuildReport, ProgressCallback], None]


def _update(
    store: IndexStore,
    stage: Stage,
    sources: list[str],
    options: BuildOptions,
    embedder: Embedder | None,
    progress: ProgressCallback | None,
    fill: Fill | None = None,
) -> BuildReport:
    """Stage, plan, apply and commit one build under the index's lock.

    ``fill`` writes the new and changed records with their passages and vectors; by default they are
    chunked and embedded here (``_embed``), from shards they are copied (``index_from_shards``).
    """
    notify = progress or _no_progress
    started = time.perf_counter()
    report = BuildReport(index=str(store.path), sources=sources, full=options.full)
    new_folder = not store.path.exists()
    lock = store.lock()
    base: Snapshot | None = None
    try:
        store.remove_stale()  # unfinished builds a crash left behind
        if store.exists() and not options.full:
            base = store.open()
        settings = _settings(base.manifest if base is not None else None, store.path, options, embedder)
        embedder = embedder or _embedder(store, settings, options, notify)
        writer = store.begin(dimension=embedder.dimension, base=base, index_type=options.index_type)
        try:
            stage(writer, report, notify)
            plan = writer.plan()
            _count_plan(report, plan, writer)
            retype = base is not None and options.index_type not in ("auto", base.manifest.index_type)
            if base is not None and plan.is_noop and not retype:
                writer.abort()
                report.records_indexed, report.chunks = base.manifest.records, base.manifest.chunks
            else:
                writer.delete_records(plan.deleted)
                if fill is None:
                    chunker = Chunker(embedder.tokenizer, embedder.max_seq_length, settings.chunking)
                    _embed(writer, plan, embedder, chunker, report, notify, options.workers)
                else:
                    fill(writer, plan, report, notify)
                manifest = _manifest(store, base, embedder, settings, sources, options, started)
                writer.commit(manifest)
                report.records_indexed, report.chunks = manifest.records, manifest.chunks
        except BaseException:
            writer.abort()
            raise
    except BaseException:
        if base is not None:
            base.close()
            base = None
        lock.release()
        if new_folder and not store.exists():  # a failed first build leaves nothing behind
            shutil.rmtree(store.path, ignore_errors=True)
        raise
    if base is not None:
        base.close()
    lock.release()
    report.seconds = time.perf_counter() - started
    return report


def _count_plan(report: BuildReport, plan: Plan, writer: SnapshotWriter) -> None:
    report.added, report.updated, report.unchanged = len(plan.new), len(plan.changed), plan.unchanged
    report.cancelled = len(writer.cancelled - set(plan.deleted))  # withdrawn before ever being indexed
    report.deleted, report.not_found = len(plan.deleted) + report.cancelled, plan.not_found


@dataclass(frozen=True)
class BuildSettings:
    """What a build runs with, after the index's own settings and the defaults are applied."""

    chunking: ChunkSettings
    model: str | None
    backend: str


def build_settings(index: str | Path, options: BuildOptions) -> BuildSettings:
    """The settings a build of ``index`` with ``options`` would use (for engines that embed elsewhere)."""
    store = IndexStore(index)
    built = store.manifest() if store.exists() and not options.full else None
    return _settings(built, store.path, options, None)


def _settings(built: Manifest | None, where: Path, options: BuildOptions, embedder: Embedder | None) -> BuildSettings:
    """What was asked, else what the index was built with, else the defaults; a mismatch needs --full."""
    defaults = ChunkSettings()
    backend = embedder.backend if embedder is not None else options.backend
    chunking = ChunkSettings(
        _first(options.chunk_tokens, built.chunking.get("chunk_tokens") if built else None, defaults.chunk_tokens),
        _first(
            options.overlap_sentences,
            built.chunking.get("overlap_sentences") if built else None,
            defaults.overlap_sentences,
        ),
    )
    if built is None:
        return BuildSettings(chunking, options.model, backend or DEFAULT_BACKEND)
    check_same_model(
        built.model,
        embedder.name if embedder is not None else options.model,
        where,
        hint="add --full to rebuild it with the new model",
    )
    if backend is not None and backend != built.backend:
        raise QAError(
            f"index {where} was built with the {built.backend} backend, not {backend}; "
            "add --full to rebuild it with the new backend"
        )
    if (chunking.chunk_tokens, chunking.overlap_sentences) != (
        built.chunking.get("chunk_tokens"),
        built.chunking.get("overlap_sentences"),
    ):
        raise QAError(
            f"index {where} was built with chunk_tokens={built.chunking.get('chunk_tokens')}, "
            f"overlap={built.chunking.get('overlap_sentences')}; add --full to rebuild it with new chunking"
        )
    return BuildSettings(chunking, built.model, built.backend)


def _first(*values: Any) -> Any:
    return next(v for v in values if v is not None)


def _embedder(store: IndexStore, settings: BuildSettings, options: BuildOptions, notify: ProgressCallback) -> Embedder:
    """The encoder for this build; the int8 ONNX export is made once per index (and said so)."""
    encoder_dir = store.layout.encoder_dir_for(settings.model) if settings.backend == "onnx-int8" else None
    embedder = Embedder(
        settings.model,
        backend=settings.backend,
        encoder_dir=encoder_dir,
        device=options.device,
        batch_size=options.batch_size,
        precision=options.precision,
    )
    if encoder_dir is not None and not encoder_model_file(encoder_dir).is_file():
        notify("prepare", 0, None)
    return embedder


def _manifest(
    store: IndexStore,
    base: Snapshot | None,
    embedder: Embedder,
    settings: BuildSettings,
    sources: list[str],
    options: BuildOptions,
    started: float,
) -> Manifest:
    previous = base.manifest if base is not None else None
    encoder_dir = embedder.encoder_dir if embedder.backend == "onnx-int8" else None
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
        build_seconds=round(time.perf_counter() - started, 2),
        sources=list(dict.fromkeys((previous.sources if previous else []) + [Path(s).name for s in sources])),
        backend=embedder.backend,
        pubmed=options.pubmed or (previous.pubmed if previous else None),
        encoder=store.layout.encoder_reference(encoder_dir) if encoder_dir is not None else None,
        encoder_sha256=file_facts(encoder_model_file(encoder_dir))["sha256"] if encoder_dir is not None else None,
        encoder_files=encoder_checksums(encoder_dir) if encoder_dir is not None else {},
    )


BATCH_RECORDS = 256  # records per encoder batch: the same in serial and parallel builds, so their vectors agree


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
        batches = writer.staged_records(todo, BATCH_RECORDS)
        queue: deque[tuple[list[Record], Pending]] = deque()

        def fill() -> None:
            while len(queue) < ahead and (records := next(batches, None)) is not None:
                queue.append((records, submit(records)))

        fill()
        while queue:
            records, pending = queue.popleft()
            chunks = pending.result()
            fill()  # before encoding: the next batches are chunked meanwhile
            _store_batch(writer, records, chunks, embedder, report)
            done += len(records)
            notify("embed", done, len(todo))


def _store_batch(
    writer: SnapshotWriter, records: list[Record], chunks: list[Chunk], embedder: Embedder, report: BuildReport
) -> None:
    """Write one batch: records, then their passages and sentences with new or reused vectors."""
    reuse: dict[str, np.ndarray] = {}
    reuse_sentences: dict[str, np.ndarray] = {}
    for record in records:
        reuse.update(writer.reusable_vectors(record.pmid))
        reuse_sentences.update(writer.reusable_sentence_vectors(record.pmid))
        writer.put_record(record)
    _store_sentences(writer, records, chunks, embedder, report, reuse_sentences)
    texts = [c.embed_text for c in chunks]
    vectors, fresh, seconds = _vectors(texts, [text_hash(t) for t in texts], reuse, embedder, writer.dimension)
    report.embed_seconds += seconds
    writer.add_chunks(chunks, vectors)
    fault_point("embed")
    report.chunks_embedded += fresh
    report.chunks_reused += len(chunks) - fresh


def _vectors(
    texts: list[str],
    keys: list[str],
    reuse: dict[str, np.ndarray],
    embedder: Embedder,
    dimension: int,
    *,
    exact: bool = True,
) -> tuple[np.ndarray, int, float]:
    """Vectors for ``texts``: reused where the key is known, encoded otherwise; also how many were
    encoded and the seconds that took."""
    fresh = [i for i, key in enumerate(keys) if key not in reuse]
    vectors = np.zeros((len(texts), dimension), dtype=np.float32)
    seconds = 0.0
    if fresh:
        t0 = time.perf_counter()
        vectors[fresh] = embedder.encode([texts[i] for i in fresh], exact=exact)
        seconds = time.perf_counter() - t0
    for i, key in enumerate(keys):
        if key in reuse:
            vectors[i] = reuse[key]
    return vectors, len(fresh), seconds


def sentence_rows(chunks: list[Chunk]) -> list[tuple[str, int, int, str | None]]:
    """Each sentence of the chunks' records once, ``(pmid, start, end, section)``: passages overlap."""
    rows = {(chunk.pmid, s, e): chunk.section for chunk in chunks for s, e in chunk.sentences}
    return [(pmid, s, e, section) for (pmid, s, e), section in sorted(rows.items())]


def _store_sentences(
    writer: SnapshotWriter,
    records: list[Record],
    chunks: list[Chunk],
    embedder: Embedder,
    report: BuildReport,
    reuse: dict[str, np.ndarray],
) -> None:
    """Embed every sentence of the batch once, reusing the vectors of sentences whose text is unchanged."""
    abstracts = {r.pmid: r.abstract for r in records}
    rows = sentence_rows(chunks)
    texts = [abstracts[pmid][s:e] for pmid, s, e, *_ in rows]
    # batched (exact=False): these vectors are only ever compared with questions, never looked up
    vectors, fresh, seconds = _vectors(texts, texts, reuse, embedder, writer.dimension, exact=False)
    report.sentence_seconds += seconds
    writer.add_sentences(rows, vectors)
    report.sentences_embedded += fresh


__all__ = [
    "build_index",
    "index_from_shards",
    "build_settings",
    "BuildSettings",
    "remove_records",
    "update_from_pubmed",
    "fetch_for_index",
    "BuildOptions",
    "BuildReport",
    "PubmedSource",
    "Fetched",
    "ProgressCallback",
]
