"""Assemble: make an index from the shards of a distributed build (``qa index from-shards``).

Through the local pipeline's own ``update_index``: the shards' records are staged in source order and
the new and changed ones get the passages and vectors their shards hold, so the snapshot is the one
a local build of the same files writes. Nothing is embedded here.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ...embed import Chunk, Embedder, is_exported
from ...embed.onnx import install_encoder
from ...errors import QAError, ShardError
from ...store import IndexStore, Plan, SnapshotWriter, fault_point, record_hash, resolve_index_type
from .. import batches
from ..batches import SentenceRow, Tally, sentence_rows
from ..options import BuildOptions, BuildReport, ProgressCallback
from ..pipeline import record_tally, update_index
from .format import ShardEntry, ShardSet


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
        if is_exported(s.backend):
            encoder_dir = store.layout.encoder_dir_for(s.model)
            if not install_encoder(shard_set.encoder_dir, encoder_dir):
                raise ShardError(
                    f"{encoder_dir} differs from the encoder the shards were made with ({shard_set.encoder_dir}); "
                    "make the index in a new --index folder, or the shards again with this index's encoder"
                )
        embedder = Embedder(s.model, backend=s.backend, encoder_dir=encoder_dir, export=False)
        if embedder.dimension != shard_set.dimension:
            raise QAError(f"the shards hold {shard_set.dimension}-d vectors, the model makes {embedder.dimension}-d")

        def stage(writer: SnapshotWriter, report: BuildReport, notify: ProgressCallback) -> None:
            _stage_shards(shard_set, writer, report, notify)
            if (options.full or not store.exists()) and writer.staged_count() == 0 and not writer.plan().deleted:
                raise QAError(f"no records with an abstract in the shards at {shard_set.dir}; nothing to index")

        def fill(writer: SnapshotWriter, plan: Plan, report: BuildReport, notify: ProgressCallback) -> None:
            _fill_from_shards(shard_set, writer, plan, options.index_type, report, notify)

        report = update_index(store, stage, shard_set.sources, options, embedder, progress, fill)
    except BaseException:
        if created and not store.exists():
            shutil.rmtree(store.path, ignore_errors=True)
        raise
    report.shards = len(shard_set.unique())
    return report


def _stage_shards(shard_set: ShardSet, writer: SnapshotWriter, report: BuildReport, notify: ProgressCallback) -> None:
    """Stage the shards' records and deletions in source order, as a local build stages its files."""
    tally = Tally()
    for shard in shard_set.shards:
        tally.read(shard.events(), writer.stage_record, writer.stage_deletions, lambda n: notify("read", n, None))
        tally.add_counts(shard.manifest.skipped, shard.manifest.bad)
    record_tally(report, tally)


def _fill_from_shards(
    shard_set: ShardSet, writer: SnapshotWriter, plan: Plan, index_type: str, report: BuildReport,
    notify: ProgressCallback,
) -> None:  # fmt: skip
    """Write new and changed records with the passages, vectors and sentence vectors their shards hold.

    Records come in the order a local build embeds them (``plan.new``, then ``plan.changed``, each by
    PMID) and the shards' entries are sorted by PMID, so both are walked side by side: one pass, and
    only one batch of vectors in memory (besides a flat index's own).
    """
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
        for records in writer.staged_records(segment, batches.BATCH_RECORDS):
            chunks: list[Chunk] = []
            vectors: list[np.ndarray] = []
            rows: list[SentenceRow] = []
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



__all__ = ["index_from_shards"]
