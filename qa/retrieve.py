"""Retrieve: answer a question with ranked, citable passages from an index."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .embed import Embedder, canonical_model_name
from .errors import ModelError, QAError
from .ingest import pubmed_url
from .store import IndexStore, Snapshot, StoredChunk

MAX_QUESTION_CHARS = 2000


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
    ) -> None:
        self.store = IndexStore(index)
        self.snapshot: Snapshot = self.store.open()
        built_with = self.snapshot.manifest.model
        asked = canonical_model_name(model) if model else (embedder.name if embedder else None)
        if asked and asked != built_with:
            raise ModelError(
                f"index {self.store.path} was built with model {built_with!r}, not {asked!r}; "
                f"query it with that model or rebuild with --model"
            )
        self.embedder = embedder or Embedder(built_with, device=device)

    @property
    def manifest(self):  # type: ignore[no-untyped-def]
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

    def search(self, question: str, k: int = 5, *, all_passages: bool = False, highlight: bool = True) -> list[Hit]:
        """The ``k`` best passages for ``question``; by default the single best passage per PMID."""
        question = " ".join((question or "").split())
        if not question:
            raise QAError("the question is empty")
        if k < 1:
            raise QAError("k must be at least 1")
        question = question[:MAX_QUESTION_CHARS]
        snapshot = self.snapshot
        query = self.embedder.encode([question])
        total = int(snapshot.index.ntotal)
        n = min(total, k if all_passages else k * 4)
        while True:
            scores, ids = snapshot.search(query, n)
            picked: list[tuple[int, float]] = []
            seen: set[str] = set()
            stored = snapshot.chunks([int(i) for i in ids[0] if i >= 0])
            for cid, score in zip(ids[0], scores[0]):
                chunk = stored.get(int(cid))
                if chunk is None:
                    continue
                if not all_passages:
                    if chunk.pmid in seen:
                        continue
                    seen.add(chunk.pmid)
                picked.append((int(cid), float(score)))
                if len(picked) == k:
                    break
            if len(picked) == k or n >= total:
                break
            n = min(total, n * 4)
        chunks = [stored[cid] for cid, _ in picked]
        marks = self._highlights(query[0], chunks) if highlight else [None] * len(chunks)
        return [
            Hit(
                rank=rank,
                pmid=c.pmid,
                title=c.title,
                journal=c.journal,
                year=c.year,
                section=c.section,
                text=c.text,
                score=score,
                url=pubmed_url(c.pmid),
                doi=c.doi,
                start=c.start,
                end=c.end,
                highlight=mark,
            )
            for rank, ((_, score), c, mark) in enumerate(zip(picked, chunks, marks), start=1)
        ]

    def _highlights(self, query: np.ndarray, chunks: list[StoredChunk]) -> list[tuple[int, int] | None]:
        """The sentence of each passage closest to the question, scored with the same model."""
        texts: list[str] = []
        owners: list[int] = []
        for i, c in enumerate(chunks):
            for s, e in c.sentences:
                texts.append(c.text[s:e])
                owners.append(i)
        best: list[tuple[int, int] | None] = [c.sentences[0] if len(c.sentences) == 1 else None for c in chunks]
        if not texts:
            return best
        scores = self.embedder.encode(texts) @ query
        top: dict[int, tuple[float, int]] = {}
        for j, (owner, score) in enumerate(zip(owners, scores)):
            if owner not in top or score > top[owner][0]:
                top[owner] = (float(score), j)
        offsets = [s for c in chunks for s in c.sentences]
        for owner, (_, j) in top.items():
            best[owner] = offsets[j]
        return best

    def close(self) -> None:
        self.snapshot.close()

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Hit", "Retriever"]
