"""Shard worker: parse, chunk and embed one source file into one shard, exactly as a local build would.

``ShardWorker`` loads the encoder once and then makes shard after shard; a distributed engine runs one per
worker (``shards.ray`` wraps it in a Ray actor), but nothing here needs Ray. Records are chunked with
the build's own ``Chunker`` and encoded in batches of ``BATCH_RECORDS`` in PMID order, passages one text
at a time like a local build, so every passage vector equals the local build's.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ...embed import Chunk, Chunker, ChunkSettings, Embedder, quiet_third_party
from ...embed.onnx import encoder_checksums
from ...errors import IngestError, QAError, ShardError
from ...ingest import read_source
from ...records import Record, record_to_dict
from ...store import record_hash
from .. import batches
from ..batches import Tally, encode_batch, sentence_rows
from .format import (
    EVENTS,
    PASSAGE_LIST,
    SHARD_MANIFEST,
    Shard,
    ShardManifest,
    ShardSettings,
    ShardWriter,
    chunk_to_dict,
    is_complete,
)


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker needs to embed as the build asks: plain data, sent once to each worker."""

    settings: ShardSettings
    encoder_dir: str | None  # exported backends: the encoder folder beside the shards (shared storage on a cluster)
    encoder_files: dict[str, str] = field(default_factory=dict)  # ... and the SHA-256 of each of its files
    device: str | None = None
    batch_size: int | None = None
    threads: int | None = None  # int8 encoder threads (the CPUs given to one worker)
    skip_bad: bool = False


@dataclass(frozen=True)
class ShardJob:
    """One source file to turn into the shard ``name`` inside ``directory``."""

    source: str
    name: str
    directory: str
    source_sha256: str


@dataclass(frozen=True)
class ShardResult:
    """What a worker reports back: small, so thousands of them cost nothing to collect."""

    name: str
    source: str
    made: bool = False  # False: it was already complete (a retried task whose first try finished)
    records: int = 0
    passages: int = 0
    sentences: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None  # one line, for a failure that trying again cannot fix (a bad file)


class ShardWorker:
    """Makes shards with one encoder, loaded once. A problem loading it (a wrong encoder file on a node) is
    reported by every ``make`` as one line, not as a worker that keeps dying and being restarted."""

    def __init__(self, spec: WorkerSpec) -> None:
        quiet_third_party()
        self.spec = spec
        self.problem: str | None = None
        try:
            self.embedder, self.chunker = _load(spec)
        except QAError as exc:
            self.problem = str(exc)

    def make(self, job: ShardJob) -> ShardResult:
        """Make one shard; errors a user must fix come back as one line instead of an exception."""
        try:
            if self.problem is not None:
                raise QAError(self.problem)
            return make_shard(job, self.embedder, self.chunker, self.spec)
        except QAError as exc:
            return ShardResult(job.name, Path(job.source).name, error=str(exc))


def _load(spec: WorkerSpec) -> tuple[Embedder, Chunker]:
    s = spec.settings
    encoder_dir = Path(spec.encoder_dir) if spec.encoder_dir else None
    embedder = Embedder(s.model, backend=s.backend, encoder_dir=encoder_dir, device=spec.device,
                        batch_size=spec.batch_size, export=False, threads=spec.threads,
                        precision=s.precision)  # fmt: skip
    if encoder_dir is not None and (not spec.encoder_files or encoder_checksums(encoder_dir) != spec.encoder_files):
        raise ShardError(f"{encoder_dir}: not the encoder this build was started with (or not reachable here)")
    chunker = Chunker(embedder.tokenizer, embedder.max_seq_length, ChunkSettings(s.chunk_tokens, s.overlap_sentences))
    return embedder, chunker


def make_shard(job: ShardJob, embedder: Embedder, chunker: Chunker, spec: WorkerSpec) -> ShardResult:
    """Parse, chunk and embed ``job.source`` into a complete shard (nothing when it is complete already)."""
    source = Path(job.source)
    final = Path(job.directory) / job.name
    if is_complete(final):
        return _result(Shard(final).manifest, made=False)
    writer = ShardWriter(Path(job.directory), job.name)
    try:
        manifest = _fill(writer, source, job, embedder, chunker, spec)
        return _result(writer.finish(manifest), made=True)
    except BaseException:
        writer.abort()
        raise


def _fill(
    writer: ShardWriter, source: Path, job: ShardJob, embedder: Embedder, chunker: Chunker, spec: WorkerSpec
) -> ShardManifest:
    t0 = time.perf_counter()
    manifest = ShardManifest(
        name=job.name, source=source.name, source_sha256=job.source_sha256, source_bytes=source.stat().st_size,
        settings=spec.settings.to_dict(), dimension=embedder.dimension, max_seq_length=embedder.max_seq_length,
    )  # fmt: skip
    copy = _copy_as_named(source, writer.path(SOURCE_COPY), job.source_sha256)
    try:
        with open(writer.path(EVENTS), "w", encoding="utf-8") as events:
            records = _read(copy, spec.skip_bad, events, manifest, shown_as=source)
    finally:
        shutil.rmtree(copy.parent, ignore_errors=True)
    t1 = time.perf_counter()
    chunks = [chunker.chunk(r) for r in records]
    t2 = time.perf_counter()
    manifest.records = len(records)
    manifest.passages = sum(len(c) for c in chunks)
    manifest.sentences = sum(len(sentence_rows(c)) for c in chunks)
    with open(writer.path(PASSAGE_LIST), "w", encoding="utf-8") as passages:
        seconds = _encode(writer, records, chunks, embedder, manifest, passages)
    manifest.seconds = {"read": t1 - t0, "chunk": t2 - t1, **seconds, "total": time.perf_counter() - t0}
    manifest.seconds = {k: round(v, 3) for k, v in manifest.seconds.items()}
    return manifest


SOURCE_COPY = ".source"  # the bytes this shard is made of, in its work folder until they are parsed


def _copy_as_named(source: Path, copy: Path, expected_sha256: str) -> Path:
    """Copy ``source`` while hashing it, and refuse the copy unless it has the hash the shard is named after.

    The shard's name binds the source's SHA-256 taken when the build started; parsing the file itself later
    would read whatever it holds by then, so a file edited during a build (and reverted after) once left a
    shard of the edited bytes under the name of the original ones."""
    digest = hashlib.sha256()
    copy.mkdir()
    copy = copy / source.name  # the file's own name: its format is sniffed by content, ties broken by name
    with open(source, "rb") as src, open(copy, "wb") as out:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
    if digest.hexdigest() != expected_sha256:
        copy.unlink(missing_ok=True)
        raise ShardError(f"{source.name} changed while the build was reading it; run the build again")
    return copy


def _read(
    source: Path, skip_bad: bool, events: IO[str], manifest: ShardManifest, shown_as: Path | None = None
) -> list[Record]:
    """Copy the file's records and deletions to ``events``; return the records it leaves standing, by PMID.
    Messages name ``shown_as`` (the user's file) rather than the copy being read."""
    standing: dict[str, Record | None] = {}  # the file's last word on each PMID: a record, or None (deleted)

    def on_record(record: Record) -> None:
        standing[record.pmid] = record
        events.write(json.dumps({"record": record_to_dict(record)}) + "\n")

    def on_deletion(pmids: tuple[str, ...]) -> None:
        standing.update(dict.fromkeys(pmids))
        events.write(json.dumps({"deleted": list(pmids)}) + "\n")

    def named(message: str) -> str:
        return message.replace(str(source), str(shown_as)) if shown_as is not None else message

    tally = Tally()
    try:
        tally.read(read_source(source, skip_bad=skip_bad), on_record, on_deletion)
    except IngestError as exc:
        raise IngestError(named(str(exc))) from None
    manifest.records_read, manifest.skipped = tally.records_read, dict(tally.skipped)
    manifest.bad = [named(b) for b in tally.bad]
    return [r for _, r in sorted(standing.items()) if r is not None]  # PMID order, as a local build embeds


def _encode(
    writer: ShardWriter, records: list[Record], chunks: list[list[Chunk]], embedder: Embedder,
    manifest: ShardManifest, passages: IO[str],
) -> dict[str, float]:  # fmt: skip
    """Encode the records in the local build's batches into the shard's arrays; list their passages."""
    vectors, sentence_vectors = writer.arrays(manifest.passages, manifest.sentences, manifest.dimension)
    row = sentence_row = 0
    seconds = {"embed": 0.0, "sentences": 0.0}
    for i in range(0, len(records), batches.BATCH_RECORDS):
        batch = range(i, min(i + batches.BATCH_RECORDS, len(records)))
        batch_chunks = [c for j in batch for c in chunks[j]]
        encoded = encode_batch([records[j] for j in batch], batch_chunks, embedder, manifest.dimension)
        vectors[row : row + len(batch_chunks)] = encoded.vectors
        sentence_vectors[sentence_row : sentence_row + len(encoded.sentence_rows)] = encoded.sentence_vectors
        row += len(batch_chunks)
        sentence_row += len(encoded.sentence_rows)
        seconds["embed"] += encoded.seconds
        seconds["sentences"] += encoded.sentence_seconds
        for j in batch:
            entry = {
                "pmid": records[j].pmid,
                "hash": record_hash(records[j]),
                "chunks": [chunk_to_dict(c) for c in chunks[j]],
                "sentences": len(sentence_rows(chunks[j])),
            }
            passages.write(json.dumps(entry) + "\n")
    vectors.flush()
    sentence_vectors.flush()
    del vectors, sentence_vectors
    return seconds


def _result(manifest: ShardManifest, *, made: bool) -> ShardResult:
    return ShardResult(manifest.name, manifest.source, made, manifest.records, manifest.passages,
                       manifest.sentences, dict(manifest.seconds))  # fmt: skip


__all__ = ["ShardWorker", "WorkerSpec", "ShardJob", "ShardResult", "make_shard", "SHARD_MANIFEST"]
