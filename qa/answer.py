"""Answer: the 1-3 sentences from the top passages that best answer a question, each cited.

Extractive on purpose: every word of the answer is a sentence of a cited
abstract, so nothing is invented. Sentences are scored with the embedding
model's cosine (computed once per search), discounted by their passage's rank
so that a sentence from the best-ranked abstract leads unless another is
clearly closer to the question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .retrieve import Hit

RANK_DISCOUNT = 0.05  # per rank below the first: sentence score x (1 - 0.05 x (rank - 1))
MIN_SCORE = 0.30  # below this cosine a sentence does not answer the question
RELATIVE_FLOOR = 0.12  # later sentences must be within this of the best one


@dataclass(frozen=True)
class AnswerSentence:
    text: str
    pmid: str
    section: str | None
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "pmid": self.pmid, "section": self.section, "score": round(self.score, 4)}


@dataclass(frozen=True)
class Answer:
    """``text`` is the sentences in order, each followed by ``[PMID]``; empty when nothing answers."""

    sentences: tuple[AnswerSentence, ...] = ()

    @property
    def text(self) -> str:
        return " ".join(f"{s.text} [{s.pmid}]" for s in self.sentences)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "sentences": [s.to_dict() for s in self.sentences]}


@dataclass(frozen=True)
class Response:
    """One answered question: the cited answer block and the ranked passages behind it."""

    question: str
    hits: list[Hit]
    answer: Answer = field(default_factory=Answer)
    mode: str = "hybrid"
    query: str | None = None  # what was searched, when a follow-up was expanded with earlier context

    def to_dict(self) -> dict[str, Any]:
        """The ``qa ask --json`` object: ``question``, ``hits``, ``answer``, ``mode``, ``query``."""
        return {
            "question": self.question,
            "query": self.query or self.question,
            "mode": self.mode,
            "answer": self.answer.to_dict(),
            "hits": [h.to_dict() for h in self.hits],
        }


def extract_answer(hits: Sequence[Hit], *, max_sentences: int = 3, top_hits: int = 3) -> Answer:
    """Pick the answer sentences from the sentence scores that come with each hit."""
    candidates: list[tuple[float, float, Hit, int, int]] = []
    for hit in hits[:top_hits]:
        discount = 1 - RANK_DISCOUNT * (hit.rank - 1)
        for start, end, cosine in hit.sentences:
            candidates.append((cosine * discount, cosine, hit, start, end))
    candidates.sort(key=lambda c: -c[0])
    chosen: list[AnswerSentence] = []
    seen: set[str] = set()
    best = None
    for score, cosine, hit, start, end in candidates:
        if cosine < MIN_SCORE:
            continue
        if best is None:
            best = score
        elif score < best - RELATIVE_FLOOR:
            break
        text = hit.text[start:end]
        if text in seen:  # overlapping passages repeat a sentence
            continue
        seen.add(text)
        chosen.append(AnswerSentence(text=text, pmid=hit.pmid, section=hit.section, score=score))
        if len(chosen) == max_sentences:
            break
    return Answer(tuple(chosen))


__all__ = ["Answer", "AnswerSentence", "Response", "extract_answer"]
