"""Answer: the 1-3 sentences from the top passages that best answer a question, each cited.

Extractive on purpose: every word of the answer is a sentence of a cited
abstract, so nothing is invented. Sentences are scored with the embedding
model's cosine (computed once per search), discounted by their passage's rank
so that a sentence from the best-ranked abstract leads unless another is
clearly closer to the question.
"""

from __future__ import annotations

from collections.abc import Sequence

from .query import Answer, AnswerSentence, Hit

RANK_DISCOUNT = 0.05  # per rank below the first: sentence score x (1 - 0.05 x (rank - 1))
MIN_SCORE = 0.30  # below this cosine a sentence does not answer the question
RELATIVE_FLOOR = 0.12  # later sentences must be within this of the best one


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


__all__ = ["extract_answer", "MIN_SCORE"]
