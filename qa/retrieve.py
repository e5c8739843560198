"""Retrieve: answer a question with ranked, citable passages from an index.

Three modes rank records: ``dense`` (cosine of question and best passage),
``lexical`` (BM25 over title, abstract and MeSH in SQLite FTS5) and ``hybrid``
(both, fused). Every candidate of either side gets the other side's score
too, so fusion never guesses a missing value. Filters are applied inside both
searches, so k results come back even when most records are filtered out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .answer import Response, extract_answer
from .embed import Embedder, canonical_model_name
from .errors import ModelError, QAError
from .ingest import pubmed_url
from .store import Filters, IndexStore, Manifest, Snapshot, StoredChunk

MAX_QUESTION_CHARS = 2000
EXACT_FILTER_LIMIT = 20_000  # filtered searches over at most this many passages are scored exactly
Mode = Literal["dense", "lexical", "hybrid"]
MODES: tuple[str, ...] = ("dense", "lexical", "hybrid")
DEFAULT_MODE: Mode = "hybrid"


@dataclass(frozen=True)
class Fusion:
    """How hybrid mode combines the two rankings (defaults chosen on the shared dev questions)."""

    method: Literal["weighted", "rrf"] = "weighted"
    dense_weight: float = 0.4  # weighted: w x cosine + (1 - w) x BM25 / BM25 of an ideal match
    rrf_k: int = 60  # rrf: 1 / (rrf_k + rank)


@dataclass(frozen=True)
class Hit:
    """One ranked passage with everything needed to cite it."""

    rank: int
    pmid: str
    title: str | None
    journal: str | None
    year: int | None
    section: str | None
    text: str
    score: float
    url: str
    doi: str | None = None
    start: int = 0  # offsets of ``text`` inside the record's abstract
    end: int = 0
    highlight: tuple[int, int] | None = None  # best-matching sentence, offsets into ``text``
    sentences: tuple[tuple[int, int, float], ...] = field(default=(), repr=False)  # (start, end, cosine) in ``text``

    @property
    def best_sentence(self) -> str | None:
        return self.text[self.highlight[0] : self.highlight[1]] if self.highlight else None

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape of ``qa ask --json`` (keys are only ever added)."""
        return {
            "rank": self.rank,
            "pmid": self.pmid,
            "title": self.title,
            "journal": self.journal,
            "year": self.year,
            "section": self.section,
            "text": self.text,
            "score": round(self.score, 4),
            "url": self.url,
            "doi": self.doi,
            "best_sentence": self.best_sentence,
        }


def fuse(
    dense: dict[str, float], lexical: dict[str, float], fusion: Fusion, lexical_ceiling: float | None = None
) -> dict[str, float]:
    """Hybrid score per PMID from dense cosines and BM25 scores over the same candidates.

    Cosines live on a fixed scale; BM25 does not, so it is divided by ``lexical_ceiling``, the score
    a record containing every question term would approach. A question whose terms barely match
    anything then leans on meaning, while a rare exact term (a drug, a gene) that matches counts
    fully. Without a ceiling the best BM25 of the question is used.
    """
    keys = set(dense) | set(lexical)
    if not keys:
        return {}
    if fusion.method == "rrf":
        out = dict.fromkeys(keys, 0.0)
        for scores in (dense, lexical):
            ranked = sorted((p for p in scores if scores[p] > 0), key=lambda p: -scores[p])
            for rank, pmid in enumerate(ranked, start=1):
                out[pmid] += 1.0 / (fusion.rrf_k + rank)
        return out
    ceiling = lexical_ceiling or max((lexical.get(p, 0.0) for p in keys), default=0.0)
    w = fusion.dense_weight
    return {
        p: w * dense.get(p, 0.0) + (1 - w) * (min(1.0, lexical.get(p, 0.0) / ceiling) if ceiling > 0 else 0.0)
        for p in keys
    }


class Retriever:
    """Loads an index and its model once, then answers many questions.

    >>> retriever = Retriever("index")                      # doctest: +SKIP
    >>> [h.pmid for h in retriever.search("IL-6 inhibitors", k=3)]  # doctest: +SKIP
    """

    def __init__(
        self,
        index: str | Path = "index",
        *,
        model: str | None = None,
        device: str | None = None,
        embedder: Embedder | None = None,
        fusion: Fusion | None = None,
        faiss_threads: int | None = 1,
    ) -> None:
        if faiss_threads:
            import faiss

            # One question at a time runs ~4x faster on one OpenMP thread than on all cores (measured
            # here). The setting is FAISS's and process-wide; pass faiss_threads=None to leave it alone.
            faiss.omp_set_num_threads(faiss_threads)
        self.store = IndexStore(index)
        self.snapshot: Snapshot = self.store.open()
        built_with = self.snapshot.manifest.model
        asked = canonical_model_name(model) if model else (embedder.name if embedder else None)
        if asked and asked != built_with:
            raise ModelError(
                f"index {self.store.path} was built with model {built_with!r}, not {asked!r}; "
                f"query it with that model or rebuild with --model"
            )
        manifest = self.snapshot.manifest
        self.embedder = embedder or Embedder(
            built_with,
            backend=manifest.backend,
            encoder_dir=self.store.path / manifest.encoder if manifest.encoder else None,
            device=device,
        )
        self.fusion = fusion or Fusion()

    @property
    def manifest(self) -> Manifest:
        return self.snapshot.manifest

    def warm_up(self) -> None:
        """Load the model now rather than on the first question (for interactive use)."""
        self.embedder.encode(["warm up"])

    def reload(self) -> bool:
        """Switch to a newer snapshot if a build has published one; True if it changed."""
        if self.store.current_dir() == self.snapshot.dir:
            return False
        fresh = self.store.open()
        if fresh.manifest.model != self.embedder.name:
            fresh.close()
            raise ModelError(
                f"index {self.store.path} was rebuilt with model {fresh.manifest.model!r}; restart to use it"
            )
        old, self.snapshot = self.snapshot, fresh
        old.close()
        return True

    # ------------------------------------------------------------------ search

    def ask(
        self,
        question: str,
        k: int = 5,
        *,
        mode: Mode = DEFAULT_MODE,
        filters: Filters | None = None,
        all_passages: bool = False,
        query: str | None = None,
    ) -> Response:
        """Ranked passages plus a cited extractive answer (what ``qa ask`` shows).

        ``query``, when given, is searched instead of ``question`` (a follow-up expanded with context).
        """
        hits = self.search(query or question, k, mode=mode, filters=filters, all_passages=all_passages)
        return Response(question=question, hits=hits, answer=extract_answer(hits), mode=mode, query=query)

    def search(
        self,
        question: str,
        k: int = 5,
        *,
        mode: Mode = DEFAULT_MODE,
        filters: Filters | None = None,
        all_passages: bool = False,
        highlight: bool = True,
    ) -> list[Hit]:
        """The ``k`` best passages for ``question``; by default the single best passage per PMID."""
        question = " ".join((question or "").split())
        if not question:
            raise QAError("the question is empty")
        if k < 1:
            raise QAError("k must be at least 1")
        if mode not in MODES:
            raise QAError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        question = question[:MAX_QUESTION_CHARS]
        snapshot = self.snapshot  # one consistent snapshot for the whole question
        query = self.embedder.encode([question])[0]

        allowed_pmids: list[str] | None = None
        allowed_chunks: np.ndarray | None = None
        if filters:
            allowed_pmids = snapshot.filter_pmids(filters)
            ids = snapshot.chunk_ids_of(allowed_pmids)
            allowed_chunks = np.fromiter((i for v in ids.values() for i in v), dtype=np.int64)
            if not allowed_pmids:
                return []

        depth = max(50, 4 * k)
        # passage-level dense scores: chunk id -> (pmid, cosine)
        passages: dict[int, tuple[str, float]] = {}
        lexical: dict[str, float] = {}
        if mode in ("dense", "hybrid"):
            passages.update(self._dense_candidates(snapshot, query, depth, k, allowed_chunks, all_passages))
        if mode in ("lexical", "hybrid"):
            lexical = dict(snapshot.lexical_search(question, depth, allowed_pmids))
        # Give every candidate record both scores: dense for lexical-only records, BM25 for dense-only ones.
        candidate_pmids = {p for p, _ in passages.values()} | set(lexical)
        have_dense = {p for p, _ in passages.values()}
        missing_dense = [p for p in candidate_pmids if p not in have_dense]
        if missing_dense:
            ids_by_pmid = snapshot.chunk_ids_of(missing_dense)
            flat = [(p, cid) for p, cids in ids_by_pmid.items() for cid in cids]
            scores = snapshot.dense_scores(query, [cid for _, cid in flat])
            for (p, cid), s in zip(flat, scores):
                passages[cid] = (p, float(s))
        if mode == "hybrid":
            missing_lex = [p for p in candidate_pmids if p not in lexical]
            if missing_lex:
                lexical.update(snapshot.lexical_search(question, len(missing_lex), missing_lex))

        best_dense: dict[str, float] = {}
        for pmid, s in passages.values():
            if s > best_dense.get(pmid, -2.0):
                best_dense[pmid] = s
        if mode == "dense":
            record_score = best_dense
        elif mode == "lexical":
            record_score = {p: lexical[p] for p in lexical}
        else:
            record_score = fuse(
                best_dense,
                {p: lexical.get(p, 0.0) for p in best_dense},
                self.fusion,
                snapshot.lexical_ceiling(question),
            )

        ranked = self._rank_passages(passages, record_score, best_dense, mode, all_passages)[:k]
        stored = snapshot.chunks([cid for cid, _ in ranked])
        chunks = [stored[cid] for cid, _ in ranked]
        scored = self._sentence_scores(query, chunks) if highlight else [()] * len(chunks)
        hits = []
        for rank, ((_, score), chunk, sentences) in enumerate(zip(ranked, chunks, scored), start=1):
            mark = max(sentences, key=lambda t: t[2])[:2] if sentences else None
            hits.append(
                Hit(
                    rank=rank,
                    pmid=chunk.pmid,
                    title=chunk.title,
                    journal=chunk.journal,
                    year=chunk.year,
                    section=chunk.section,
                    text=chunk.text,
                    score=score,
                    url=pubmed_url(chunk.pmid),
                    doi=chunk.doi,
                    start=chunk.start,
                    end=chunk.end,
                    highlight=mark,
                    sentences=sentences,
                )
            )
        return hits

    def _dense_candidates(
        self,
        snapshot: Snapshot,
        query: np.ndarray,
        depth: int,
        k: int,
        allowed: np.ndarray | None,
        all_passages: bool,
    ) -> dict[int, tuple[str, float]]:
        """Nearest passages, widening the search until it covers ``depth`` records (or everything)."""
        if allowed is not None and len(allowed) <= EXACT_FILTER_LIMIT:
            # A filter leaving few passages: score them all exactly. An approximate (IVF) index
            # would only look in nprobe lists and could miss allowed passages outside them.
            ids = [int(i) for i in allowed]
            pmids = snapshot.pmids_of(ids)
            scores = snapshot.dense_scores(query, ids)
            return {cid: (pmids[cid], float(s)) for cid, s in zip(ids, scores) if cid in pmids}
        limit = int(snapshot.index.ntotal) if allowed is None else len(allowed)
        n = min(limit, depth * 4)
        while True:
            found = snapshot.dense_search(query.reshape(1, -1), n, allowed)
            pmids = snapshot.pmids_of([cid for cid, _ in found])
            out = {cid: (pmids[cid], s) for cid, s in found if cid in pmids}
            enough = len(out) >= k if all_passages else len({p for p, _ in out.values()}) >= min(depth, limit)
            if enough or n >= limit:
                return out
            n = min(limit, n * 4)

    @staticmethod
    def _rank_passages(
        passages: dict[int, tuple[str, float]],
        record_score: dict[str, float],
        best_dense: dict[str, float],
        mode: str,
        all_passages: bool,
    ) -> list[tuple[int, float]]:
        """Passages in answer order: records by their score, and within a record by cosine."""
        if mode == "dense":
            order = sorted(passages.items(), key=lambda kv: -kv[1][1])
            scored = [(cid, s) for cid, (_, s) in order]
        else:
            # a passage inherits its record's score; the record's best passage keeps it whole
            order = sorted(
                passages.items(),
                key=lambda kv: (-record_score.get(kv[1][0], float("-inf")), -kv[1][1]),
            )
            scored = [(cid, record_score[p] - (best_dense.get(p, s) - s)) for cid, (p, s) in order if p in record_score]
            if mode == "lexical":
                scored = [(cid, s) for cid, s in scored if passages[cid][0] in record_score]
        if all_passages:
            return scored
        seen: set[str] = set()
        out = []
        for cid, s in scored:
            pmid = passages[cid][0]
            if pmid not in seen:
                seen.add(pmid)
                out.append((cid, s))
        return out

    def _sentence_scores(
        self, query: np.ndarray, chunks: list[StoredChunk]
    ) -> list[tuple[tuple[int, int, float], ...]]:
        """Cosine of the question with every sentence of each passage, scored with the same model."""
        texts = [c.text[s:e] for c in chunks for s, e in c.sentences]
        if not texts:
            return [()] * len(chunks)
        scores = self.embedder.encode(texts, exact=False) @ query
        out, j = [], 0
        for c in chunks:
            out.append(tuple((s, e, float(scores[j + i])) for i, (s, e) in enumerate(c.sentences)))
            j += len(c.sentences)
        return out

    def close(self) -> None:
        self.snapshot.close()

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Hit", "Retriever", "Fusion", "Filters", "fuse", "MODES", "DEFAULT_MODE", "Mode"]
