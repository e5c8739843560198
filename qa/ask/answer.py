"""Answer: the sentences of the top abstracts that state what was found, each cited.

Extractive on purpose: every word of the answer is a sentence of a cited
abstract, so nothing is invented. Every sentence of the top records is a
candidate (vectors stored at build time), scored by how close it is to the
question *and* by evidence that it reports a finding: its section (Results,
Conclusions) and conclusion phrasing. Sentences that state an aim or ask a
question lose: they restate the question instead of answering it. The weights
were chosen on the dev half of ``bench/answers`` (see ``bench/tune_answers.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..query import Answer, AnswerSentence, Hit
from ..store.snapshot import StoredSentence

_FINDING_LABELS = ("RESULT", "CONCLUSION", "FINDING", "INTERPRETATION", "DISCUSSION", "COMMENT", "SUMMARY")
_SETUP_LABELS = (
    "BACKGROUND", "OBJECTIVE", "AIM", "PURPOSE", "INTRODUCTION", "METHOD", "DESIGN", "SETTING", "PATIENT",
    "PARTICIPANT", "SUBJECT", "CONTEXT", "HYPOTHES", "MEASURE", "INTERVENTION", "MATERIAL", "PROCEDURE",
    "RATIONALE", "IMPORTANCE", "QUESTION", "CASE", "POPULATION", "SAMPLE", "STUDY", "SEARCH", "SELECTION",
    "EXTRACTION", "SOURCES",
)  # fmt: skip

_CONCLUSION = re.compile(
    r"\b(?:suggest|indicate|demonstrat|conclu|show(?:s|ed|n)?|found|reveal|was associated|were associated|"
    r"is associated|are associated|significant(?:ly)?|no (?:significant )?(?:difference|effect|benefit)|"
    r"did not|does not|do not|was not|were not|reduc|increas|improv|lower|higher|decreas|effective|"
    r"safe|superior|inferior|comparable|similar)",
    re.IGNORECASE,
)
_AIM = re.compile(
    r"^(?:the |our |this )?(?:aim|aims|purpose|objective|objectives|goal)s?\b"
    r"|^(?:in this (?:study|paper|review|article)|here),? we (?:aim|sought|investigat|examin|evaluat|assess|"
    r"determin|explor|test|review|describ|report|present|compar)"
    r"|^we (?:aimed|sought|set out|wanted|wished|hypothesi[sz]ed|investigated whether|examined whether|"
    r"asked whether|tested whether|evaluated whether|assessed whether)"
    r"|^(?:this|the present|the current) (?:study|trial|review|analysis|work) (?:was designed|aimed|aims|sought|"
    r"investigat|examin|evaluat|assess|determin|explor|compar)"
    r"|^to (?:assess|evaluate|determine|investigate|examine|compare|explore|describe|test|identify|analy[sz]e|"
    r"establish|characteri[sz]e|quantify|review|report|estimate|clarify|ascertain)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class AnswerWeights:
    """How much each piece of evidence moves a sentence's score, on top of its cosine to the question."""

    finding_section: float = 0.15  # Results, Conclusions, ... (+); Background, Objective, Methods, ... (-)
    conclusion: float = 0.08  # "suggest", "was associated with", "did not", "reduced", ...
    aim: float = 0.20  # "The aim of this study was ...", "To assess ...": restates, does not answer
    question: float = 0.20  # a sentence that asks
    rank: float = 0.10  # per rank below the first record
    same_record_margin: float = 0.30  # more sentences of the top record join within this of the first
    other_record_margin: float = 0.10  # records 2 and 3 join (one sentence each) within this of the first


DEFAULT_WEIGHTS = AnswerWeights()
MAX_SENTENCES = 3
TOP_RECORDS = 3  # records whose sentences are candidates
MIN_COSINE = 0.20  # a sentence further than this from the question does not answer it
NEAR_DUPLICATE = 0.92  # cosine above which two sentences say the same thing


def section_kind(label: str | None) -> int:
    """+1 for a section that reports findings, -1 for one that sets the study up, 0 when unknown."""
    if not label:
        return 0
    upper = label.upper()
    if any(word in upper for word in _FINDING_LABELS):
        return 1
    if any(word in upper for word in _SETUP_LABELS):
        return -1
    return 0


@dataclass(frozen=True)
class Evidence:
    """What a sentence shows besides its cosine; the features the weights apply to."""

    cosine: float
    finding_section: int  # +1, 0, -1
    conclusion: bool
    aim: bool
    question: bool

    @classmethod
    def of(cls, sentence: StoredSentence, cosine: float) -> Evidence:
        text = sentence.text.strip()
        return cls(
            cosine=cosine,
            finding_section=section_kind(sentence.section),
            conclusion=bool(_CONCLUSION.search(text)),
            aim=bool(_AIM.search(text)),
            question=text.endswith("?"),
        )

    def score(self, weights: AnswerWeights, rank: int = 1) -> float:
        return (
            self.cosine
            + weights.finding_section * self.finding_section
            + weights.conclusion * self.conclusion
            - weights.aim * self.aim
            - weights.question * self.question
            - weights.rank * (rank - 1)
        )


@dataclass(frozen=True)
class Candidate:
    sentence: StoredSentence
    evidence: Evidence
    score: float
    rank: int  # of its record among the hits


def candidates(
    hits: Sequence[Hit],
    sentences: Mapping[str, Sequence[StoredSentence]],
    question: np.ndarray,
    weights: AnswerWeights = DEFAULT_WEIGHTS,
    top_records: int = TOP_RECORDS,
) -> list[Candidate]:
    """Every sentence of the top records, scored, best first."""
    ranks: dict[str, int] = {}
    for hit in hits:
        ranks.setdefault(hit.pmid, len(ranks) + 1)
    out = []
    for pmid, rank in ranks.items():
        if rank > top_records:
            break
        for sentence in sentences.get(pmid, ()):
            evidence = Evidence.of(sentence, float(sentence.vector @ question))
            out.append(Candidate(sentence, evidence, evidence.score(weights, rank), rank))
    out.sort(key=lambda c: -c.score)
    return out


def extract_answer(
    hits: Sequence[Hit],
    sentences: Mapping[str, Sequence[StoredSentence]],
    question: np.ndarray,
    weights: AnswerWeights = DEFAULT_WEIGHTS,
    max_sentences: int = MAX_SENTENCES,
) -> Answer:
    """The answer block: the top record's best sentence first, then what agrees with it, best first.

    After the first sentence come the best sentence of each of the next two records that state
    something as close to the question (within a margin of the first), then the top record's next
    best sentences within another margin; at most ``max_sentences``, never two that say the same.
    """
    pool = [c for c in candidates(hits, sentences, question, weights) if c.evidence.cosine >= MIN_COSINE]
    first = next((c for c in pool if c.rank == 1), None)
    if first is None:
        return Answer()
    chosen = [first]
    for rank in range(2, TOP_RECORDS + 1):  # records that agree come first: a finding stated twice
        best = next((c for c in pool if c.rank == rank), None)
        if (
            best is not None
            and best.score >= first.score - weights.other_record_margin
            and len(chosen) < max_sentences
            and not _repeats(best, chosen)
        ):
            chosen.append(best)
    for c in pool:  # then the top record's next best sentences
        if len(chosen) >= max_sentences or c.score < first.score - weights.same_record_margin:
            break
        if c.rank == 1 and c is not first and not _repeats(c, chosen):
            chosen.append(c)
    return Answer(
        tuple(
            AnswerSentence(text=c.sentence.text, pmid=c.sentence.pmid, section=c.sentence.section, score=c.score)
            for c in chosen
        )
    )


def led_by_conclusion(
    answer: Answer,
    sentences: Mapping[str, Sequence[StoredSentence]],
    pmid: str,
    question: np.ndarray,
    weights: AnswerWeights = DEFAULT_WEIGHTS,
    max_sentences: int = MAX_SENTENCES,
) -> Answer:
    """The answer opened by the sentence of ``pmid``'s CONCLUSIONS closest to the question, when it has such a
    section and that sentence is at least ``MIN_COSINE`` close: a bottom line is read from that section, so the
    sentence printed after "Yes, in this collection:" must be one it rests on. Picked by score over every
    section, the block opened a "Yes" with "Central acute vertigo was suspected in 16 (16.3%) patients." The
    other sentences follow in their order, less any that repeat it, at most ``max_sentences`` in all; so the
    first sentence may score below a later one."""
    concluding = [(s, float(s.vector @ question)) for s in sentences.get(pmid, ())
                  if s.section and "CONCLUSION" in s.section.upper()]  # fmt: skip
    if not concluding:
        return answer
    lead, cosine = max(concluding, key=lambda pair: pair[1])
    if cosine < MIN_COSINE:
        return answer
    key = (lead.pmid, lead.text.strip())
    if answer.sentences and (answer.sentences[0].pmid, answer.sentences[0].text.strip()) == key:
        return answer
    stored = {(s.pmid, s.text.strip()): s for record in sentences.values() for s in record}

    def repeats(sentence: AnswerSentence) -> bool:
        said = (sentence.pmid, sentence.text.strip())
        return said == key or (said in stored and _says_the_same(stored[said], lead))

    kept = [s for s in answer.sentences if not repeats(s)]
    score = Evidence.of(lead, cosine).score(weights)
    opened = AnswerSentence(text=lead.text, pmid=lead.pmid, section=lead.section, score=score)
    return replace(answer, sentences=(opened, *kept[: max_sentences - 1]))


def _repeats(candidate: Candidate, chosen: Sequence[Candidate]) -> bool:
    return any(_says_the_same(candidate.sentence, c.sentence) for c in chosen)


def _says_the_same(one: StoredSentence, other: StoredSentence) -> bool:
    """The same words, or near enough (``NEAR_DUPLICATE``): an answer block never holds both."""
    return float(one.vector @ other.vector) >= NEAR_DUPLICATE or one.text.strip() == other.text.strip()


__all__ = [
    "extract_answer",
    "led_by_conclusion",
    "candidates",
    "section_kind",
    "AnswerWeights",
    "DEFAULT_WEIGHTS",
    "Evidence",
    "Candidate",
    "MIN_COSINE",
]
