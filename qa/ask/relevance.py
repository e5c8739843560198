"""Relevance: whether a record answers the question -- a judgement beyond the bi-encoder's cosine.

Signals the index already has for each hit's record, combined by two logistic models trained on the
train half of the shared questions, the dev halves of the hand-labelled sets and of
``bench/answers/out_of_scope.jsonl`` (``bench/train_relevance.py``; coefficients and thresholds in
``qa/data/relevance.json``, plain JSON):

- ``cosine``: the question against the record's closest passage (MiniLM)
- ``sentence``: ... against the record's closest sentence
- ``lexical``: the record's BM25 over the score a record holding every question term would approach
- ``coverage``: the idf-weighted share of the question's content terms the record contains
- ``absent``: the idf-weighted share of them that no record in the collection contains
- ``rare``: ... of those, the ones rare in written English (``rare_in_english``): a drug or a disease
  the collection never names ("tecovirimat", "hydroxyurea"), not a lay word ("keyhole", "heartbeat")
- ``behind``: how far the record's fused score is behind the best record's
- ``lead``: how far it is ahead of the next record's
- ``lacking``: the idf-weighted share of the question's terms rare in written English (``LACKING_ZIPF``)
  that other records hold and this one does not: a record on statins and stroke, asked about statins and
  dementia while other records speak of dementia, is the collection's closest, not its answer

A weak best passage gets a second opinion: the cosine of multilingual-e5-small (``qa.embed.second_opinion``, an
encoder trained on other pairs than MiniLM), and under ``RelevanceModel.second_floor`` it is no answer at all.

One more test sits beside the models, for a best record judged strong on a question asked on its own: ``rise``,
how much closer (cosine) the record comes when the question's words it lacks are left out of the question
(``RelevanceModel.rise_guard``). A near miss comes closer without the words it never names ("Do Amish
children brought up on traditional farms have less asthma and allergy?", of a record on farm children and
asthma: +0.17), while a real question in other words comes no closer, or moves away, since its words mean
something to the encoder. It costs one encoding of the shortened question.

The best record's ``relevance`` is the ``scope`` model's probability that the collection answers the
question: below ``answer_floor`` it is said not to, below ``strong`` the answer is marked uncertain.
Every other record's is the ``hit`` model's probability that it answers too. ``strong`` hits are shown
as answers, ``weak`` ones apart ("less related").
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import QAError

FEATURES = ("cosine", "sentence", "lexical", "coverage", "absent", "rare", "behind", "lead", "lacking")
# Rarer in written English than about once in 2 million words (wordfreq's Zipf scale, log10 of uses per
# billion words). Of the dev sets' words that no record holds, the drugs and diseases of the out-of-scope
# questions score 0-2.5 (hydroxyurea 1.6, ssris 2.5), lay words 2.8 and up (keyhole 2.8, scuba 3.3, tiny 4.6).
# The tokenizer's vocabulary, used before, missed "keyhole" as a word and let one lay question set the floor.
RARE_ZIPF = 2.7
# A subject word, for ``lacking``: rarer than about once in 100,000 words (dementia 3.8, aspirin 3.3, smoking 4.5,
# pregnancy 4.3; lay words that natural questions use and abstracts do not: notice 4.9, machine 4.9, go 6.0).
LACKING_ZIPF = 4.0
DENSE_WEIGHT = 0.5  # the fused score in ``behind`` and ``lead``: the same for every mode, so the model sees one scale


@dataclass(frozen=True)
class Signals:
    """The signals of one record for one question, in ``FEATURES`` order."""

    cosine: float
    sentence: float
    lexical: float
    coverage: float
    absent: float
    rare: float = 0.0  # of ``absent``: the terms rare in written English (``rare_in_english``)
    behind: float = 0.0  # the best record's fused score minus this one's
    lead: float = 0.0  # this record's fused score minus the next record's
    lacking: float = 0.0  # of the question: subject words other records hold and this one lacks

    def vector(self) -> np.ndarray:
        return np.array([getattr(self, name) for name in FEATURES], dtype=np.float64)

    @property
    def fused(self) -> float:
        return DENSE_WEIGHT * self.cosine + (1 - DENSE_WEIGHT) * self.lexical


@dataclass(frozen=True)
class Logistic:
    """One logistic model over standardized signals."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def probability(self, signals: Sequence[Signals]) -> list[float]:
        if not signals:
            return []
        return [float(p) for p in self.probabilities(np.stack([s.vector() for s in signals]))]

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for rows of signal vectors (``FEATURES`` order)."""
        z = ((x - np.array(self.mean)) / np.array(self.scale)) @ np.array(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))

    @classmethod
    def from_dict(cls, data: Any) -> Logistic:
        model = cls(tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["scale"]),
                    tuple(float(v) for v in data["coef"]), float(data["intercept"]))  # fmt: skip
        numbers = (*model.mean, *model.scale, *model.coef, model.intercept)
        if {len(model.mean), len(model.scale), len(model.coef)} != {len(FEATURES)}:
            raise ValueError("sizes")
        if not all(math.isfinite(v) for v in numbers) or min(model.scale) <= 0:
            raise ValueError("values")
        return model

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "scale": list(self.scale), "coef": list(self.coef),
                "intercept": self.intercept}  # fmt: skip


@dataclass(frozen=True)
class RelevanceModel:
    """Two logistic models over the same signals, and the two thresholds chosen on the dev sets.

    ``scope`` judges the best record: does the collection answer the question at all (below
    ``answer_floor``: "nothing in this collection answers that")? ``hit`` judges every other record:
    is it an answer too (``strong``), or only the collection's closest ("weak")?
    """

    hit: Logistic
    scope: Logistic
    answer_floor: float
    strong: float
    trained_on: str = ""
    rare_guard: float = 1.0  # a best record never reads strong when this share of the question is rare absent words
    lacking_guard: float = 1.0  # ... nor when this share is subject words other records hold and it lacks
    doubt_lacking: float = 1.0  # ... nor, below ``sure``, when this share is; no record this short gives a verdict
    sure: float = 1.0
    rise_guard: float = 1.0  # ... nor when it comes this much closer to the question without the words it lacks
    second_floor: float = 0.0  # a weak best passage under this e5 cosine (qa.embed.second_opinion) is no answer

    def judge(self, signals: Sequence[Signals]) -> list[float]:
        """Relevance of each record, best record first: its ``scope`` probability, the others' ``hit`` one."""
        if not signals:
            return []
        return self.scope.probability(signals[:1]) + self.hit.probability(signals[1:])

    def labels(self, relevance: Sequence[float], signals: Sequence[Signals] = ()) -> list[str]:
        """ "strong" or "weak" for each record, best first. A best record between ``answer_floor`` and
        ``strong`` is answered from, but weak: the answer says it is uncertain. So is one when the question
        names, to ``rare_guard`` of its weight, rare words that no record holds (COVID-19 to a collection
        without it), or, to ``lacking_guard``, subject words that other records hold and it lacks (dementia,
        asked of a record on statins and stroke): a close record about the rest of the question is not an
        answer."""
        out = ["strong" if r >= self.strong else "weak" for r in relevance]
        if out and signals and self.guarded(signals[0], relevance[0]):
            out[0] = "weak"
        if out and out[0] == "weak":  # no record is an answer when the best one is not
            out = ["weak"] * len(out)
        return out

    def guarded(self, best: Signals, relevance: float) -> bool:
        """Whether the best record reads weak whatever its relevance: the question names rare words no record
        holds (``rare_guard``), or subject words that other records hold and it lacks (``lacking_guard``; from
        ``doubt_lacking`` when its relevance is under ``sure``)."""
        lacking = self.lacking_guard if relevance >= self.sure else min(self.lacking_guard, self.doubt_lacking)
        return best.rare >= self.rare_guard or best.lacking >= lacking

    def may_conclude(self, signals: Sequence[float]) -> bool:
        """Whether a record, by its signals (``FEATURES`` order; none: not judged), may give a yes/no verdict:
        not when it lacks ``doubt_lacking`` of the question's subject words, since "Yes" answers all of it."""
        if not signals:
            return True
        if len(signals) != len(FEATURES):
            raise ValueError(f"{len(signals)} signals, not the {len(FEATURES)} of {', '.join(FEATURES)}")
        return signals[FEATURES.index("lacking")] < self.doubt_lacking

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RelevanceModel:
        try:
            if list(data["features"]) != list(FEATURES):
                raise ValueError("features")
            model = cls(Logistic.from_dict(data["hit"]), Logistic.from_dict(data["scope"]), float(data["answer_floor"]),
                        float(data["strong"]), str(data.get("trained_on", "")),
                        float(data.get("rare_guard", 1.0)), float(data.get("lacking_guard", 1.0)),
                        float(data.get("doubt_lacking", 1.0)), float(data.get("sure", 1.0)),
                        float(data.get("rise_guard", 1.0)), float(data.get("second_floor", 0.0)))  # fmt: skip
        except (KeyError, TypeError, ValueError):
            raise QAError(f"{where}: not a relevance model for features {', '.join(FEATURES)}") from None
        unit = (model.answer_floor, model.strong, model.doubt_lacking, model.sure, model.second_floor)
        if not all(0 <= v <= 1 for v in unit) or not (0 < model.rise_guard <= 2):
            raise QAError(f"{where}: relevance thresholds outside 0-1 (rise_guard: above 0, at most 2)")
        return model

    @classmethod
    def load(cls, path: str | Path | None = None) -> RelevanceModel:
        """The bundled model (``qa/data/relevance.json``), or one at ``path``."""
        if path is None:
            text = resources.files("qa.data").joinpath("relevance.json").read_text(encoding="utf-8")
            where = "qa/data/relevance.json"
        else:
            text, where = Path(path).read_text(encoding="utf-8"), str(path)
        try:
            data = json.loads(text)
        except ValueError:
            raise QAError(f"{where}: not JSON") from None
        return cls.from_dict(data, where)

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(FEATURES), "hit": self.hit.to_dict(), "scope": self.scope.to_dict(),
                "answer_floor": self.answer_floor, "strong": self.strong, "rare_guard": self.rare_guard,
                "lacking_guard": self.lacking_guard, "doubt_lacking": self.doubt_lacking, "sure": self.sure,
                "rise_guard": self.rise_guard, "second_floor": self.second_floor,
                "trained_on": self.trained_on}  # fmt: skip


def record_signals(
    pmids: Sequence[str],
    cosine: Mapping[str, float],
    sentence: Mapping[str, float],
    lexical: Mapping[str, float],
    coverage: Mapping[str, float],
    absent: float,
    rare: float = 0.0,
    lacking: Mapping[str, float] | None = None,
) -> dict[str, Signals]:
    """Signals per record; ``lexical`` is BM25 over the question's ceiling, clipped to 1."""
    lacking = lacking or {}
    raw = {
        p: Signals(cosine.get(p, 0.0), sentence.get(p, cosine.get(p, 0.0)), min(1.0, max(0.0, lexical.get(p, 0.0))),
                   coverage.get(p, 0.0), absent, rare, lacking=lacking.get(p, 0.0))  # fmt: skip
        for p in pmids
    }
    order = sorted(raw, key=lambda p: -raw[p].fused)
    best = raw[order[0]].fused if order else 0.0
    following = {p: raw[order[i + 1]].fused if i + 1 < len(order) else 0.0 for i, p in enumerate(order)}
    return {p: replace(s, behind=best - s.fused, lead=s.fused - following[p]) for p, s in raw.items()}


def lacking_subjects(shares: Mapping[str, float], holders: Mapping[str, set[str]], pmid: str) -> dict[str, float]:
    """The question's subject words (rarer in English than ``LACKING_ZIPF``) that some record holds and
    ``pmid`` does not, with their shares: what the record leaves out of the question. wordfreq's small list
    (words down to Zipf 3, 15 ms to load against 140 ms for the full one) tells the same words apart at this
    threshold; a cold ``qa ask`` pays about 0.13 s more for importing wordfreq."""
    return {term: shares[term] for term, held in holders.items()
            if pmid not in held and english_frequency(term) < LACKING_ZIPF}  # fmt: skip


def english_frequency(term: str) -> float:
    """How common ``term`` is in written English (wordfreq's Zipf scale, small list): "often" 5.4, "anxious"
    4.1, "dementia" 3.8; a subject word is rarer than ``LACKING_ZIPF``."""
    from wordfreq import zipf_frequency

    return zipf_frequency(term, "en", wordlist="small")


def rare_in_english(word: str) -> bool:
    """Whether ``word`` is rarer in written English than ``RARE_ZIPF`` (wordfreq): a name the collection
    lacks ("tenecteplase") says more about what it cannot answer than a plain word ("keyhole") does."""
    from wordfreq import zipf_frequency  # about 0.2 s to load its list, only for a word no record holds

    return zipf_frequency(word, "en") < RARE_ZIPF


__all__ = [
    "FEATURES",
    "RARE_ZIPF",
    "LACKING_ZIPF",
    "Signals",
    "Logistic",
    "RelevanceModel",
    "lacking_subjects",
    "english_frequency",
    "rare_in_english",
    "record_signals",
]
