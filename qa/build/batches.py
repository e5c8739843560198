"""Batches: the one copy of a build's inner loop, shared by the local pipeline and the shard workers.

"A shard build makes the same vectors as a local build" rests on this module, not on two copies
kept in step: both check their sources with ``check_sources``, count what they read with ``Tally``,
and encode records ``BATCH_RECORDS`` at a time with ``encode_batch`` -- passages one text per call
(exact), each batch's sentences together. A shard worker imports this and ``chunk``, nothing of the
local pipeline.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..embed import Chunk, Embedder
from ..errors import QAError
from ..ingest import expand_sources, probe_source
from ..records import Bad, Deletion, Event, Record, Skipped
from ..store import sentence_spans, text_hash

BATCH_RECORDS = 256  # records per encoder batch: the same in every engine, so their vectors agree

SentenceRow = tuple[str, int, int, "str | None"]  # (pmid, start, end, section) of one sentence


def check_sources(sources: Iterable[str | Path], *, skip_bad: bool) -> list[Path]:
    """The files to read; a wrong one fails in a moment, before an encoder is prepared or anything is made."""
    files = expand_sources(sources)
    if not files:
        raise QAError("no input files given")
    if not skip_bad:
        for path in files:
            probe_source(path)
    return files


@dataclass
class Tally:
    """What a build read: records (with an abstract or skipped), PMIDs read twice, skips by reason, bad ones."""

    records_read: int = 0
    replaced: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)

    def read(
        self,
        events: Iterable[Event],
        on_record: Callable[[Record], bool | None],
        on_deletion: Callable[[Sequence[str]], object],
        notify: Callable[[int], None] | None = None,
    ) -> None:
        """Pass each record and deletion on (``on_record`` returns whether it replaced one), counting the rest."""
        for event in events:
            if isinstance(event, Record):
                self.records_read += 1
                self.replaced += bool(on_record(event))
            elif isinstance(event, Deletion):
                on_deletion(event.pmids)
            elif isinstance(event, Skipped):
                self.records_read += 1
                self.skipped[event.reason] += 1
            elif isinstance(event, Bad):
                self.bad.append(event.message)
            if notify is not None:
                notify(self.records_read)

    def add_counts(self, skipped: Mapping[str, int], bad: Sequence[str]) -> None:
        """Skips and bad records counted elsewhere (a shard's manifest), as if read here."""
        self.skipped.update(skipped)
        self.records_read += sum(skipped.values())
        self.bad += bad


def sentence_rows(chunks: Sequence[Chunk]) -> list[SentenceRow]:
    """Each sentence of the chunks' records once, ``(pmid, start, end, section)``, by PMID and then in the order
    the store reads them back in (``compact.sentence_spans``: passages overlap)."""
    by_record: dict[str, list[tuple[str | None, Sequence[tuple[int, int]]]]] = {}
    for chunk in chunks:
        by_record.setdefault(chunk.pmid, []).append((chunk.section, chunk.sentences))
    return [(pmid, s, e, section) for pmid in sorted(by_record) for s, e, section in sentence_spans(by_record[pmid])]


@dataclass
class EncodedBatch:
    """One batch's passage and sentence vectors, with how many were encoded (not reused) and how long it took."""

    vectors: np.ndarray
    sentence_rows: list[SentenceRow]
    sentence_vectors: np.ndarray
    encoded: int = 0
    sentences_encoded: int = 0
    seconds: float = 0.0
    sentence_seconds: float = 0.0


def encode_batch(
    records: Sequence[Record],
    chunks: Sequence[Chunk],
    embedder: Embedder,
    dimension: int,
    reuse: Mapping[str, np.ndarray] | None = None,
    reuse_sentences: Mapping[str, np.ndarray] | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> EncodedBatch:
    """Vectors for a batch of records and their chunks: passages one at a time (exact), sentences batched.

    ``reuse`` maps a passage's text hash, ``reuse_sentences`` a sentence's text, to a vector already in
    the index: those are copied, not encoded. Sentence vectors are only ever compared with questions,
    never looked up, so they may be batched (``exact=False``). ``on_progress`` gets the share of the
    batch's characters encoded, after each of the encoder's own batches: a batch of 256 records takes a
    minute on 2 cores, too long for a bar that moves only between them (it sat at 0/301 for 95 s of a
    133 s build). The encoder's batches stay what they were; slicing the texts instead moved the int8
    sentence vectors, and with them two marked answers of bench/quality.py.
    """
    abstracts = {r.pmid: r.abstract for r in records}
    rows = sentence_rows(chunks)
    sentence_texts = [abstracts[pmid][s:e] for pmid, s, e, _ in rows]
    texts = [c.embed_text for c in chunks]
    keys = [text_hash(t) for t in texts]
    reuse, reuse_sentences = reuse or {}, reuse_sentences or {}
    work = _Work(sum(len(t) for t in sentence_texts if t not in reuse_sentences)
                 + sum(len(t) for t, k in zip(texts, keys) if k not in reuse), on_progress)  # fmt: skip
    sentence_vectors, sentences_encoded, sentence_seconds = _vectors(
        sentence_texts, sentence_texts, reuse_sentences, embedder, dimension, work, exact=False
    )
    vectors, encoded, seconds = _vectors(texts, keys, reuse, embedder, dimension, work)
    return EncodedBatch(vectors, rows, sentence_vectors, encoded, sentences_encoded, seconds, sentence_seconds)


class _Work:
    """Characters encoded of a batch, reported as a share to ``report``."""

    def __init__(self, total: int, report: Callable[[float], None] | None) -> None:
        self.total, self.done, self.report = max(1, total), 0, report

    def add_texts(self, texts: Sequence[str], positions: Sequence[int]) -> None:
        self.done += sum(len(texts[i]) for i in positions)
        if self.report is not None:
            self.report(min(1.0, self.done / self.total))


def _vectors(
    texts: list[str],
    keys: list[str],
    reuse: Mapping[str, np.ndarray],
    embedder: Embedder,
    dimension: int,
    work: _Work,
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
        asked = [texts[i] for i in fresh]
        vectors[fresh] = embedder.encode(asked, exact=exact, on_encoded=lambda done: work.add_texts(asked, done))
        seconds = time.perf_counter() - t0
    for i, key in enumerate(keys):
        if key in reuse:
            vectors[i] = reuse[key]
    return vectors, len(fresh), seconds


__all__ = ["BATCH_RECORDS", "check_sources", "Tally", "sentence_rows", "encode_batch", "EncodedBatch", "SentenceRow"]
