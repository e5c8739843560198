"""Verdict: the bottom line of a yes/no question -- "yes", "no", "mixed" or "unclear" -- from what the
records that answer it conclude.

A question is yes/no by its form (it opens with an auxiliary verb: "Do statins ...", "Is it safe ...").
Each answering record's conclusion (its CONCLUSIONS section, else its answer sentences) is read by a
small classifier -- TF-IDF of words and word pairs, with the words after a negation marked
(``tokens``) and the question's own words replaced by one placeholder (``against_question``: "did not
reduce QW" is a "no" whatever the question is about; tune-half CV 0.690 -> 0.704), and a multinomial
logistic model over them (yes / no / maybe), trained on the tuning half
of PubMedQA's expert verdicts (``bench/train_verdict.py``; weights in ``qa/data/verdict.json``, plain
JSON). A record whose most likely verdict is below the model's ``abstain`` probability says nothing.
Then: records that agree give their verdict, records that disagree give "mixed", a record that reads
"maybe" gives "mixed", and nothing decided, or nothing read from the best record, gives "unclear".

One rule sits above the classifier: a conclusion that speaks against a finding in so many words ("cast doubt
on", "did not improve", "is not justified", "no significant benefit": ``speaks_against``) never reads as a
plain "yes". With only 467 conclusions to learn from, the classifier never saw "doubt" twice and read "The
results of this study cast doubt on the suggested advantage of HBO ..." as "yes" at 0.70: a bottom line
printed over the sentence that contradicts it.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import QAError
from .comparison import compared_options, comparison_verdict

VERDICTS = ("yes", "no", "mixed", "unclear")
LABELS = ("yes", "no", "maybe")  # what one record's conclusion says (PubMedQA's labels)
VECTOR_SIZE = 384  # multilingual-e5-small's vectors, read beside the words by ``VerdictModel.with_vector``

_AUXILIARY = (
    "is are was were do does did can could should would will has have had may might must shall "
    "isn't aren't wasn't weren't don't doesn't didn't can't cannot couldn't shouldn't wouldn't won't hasn't haven't"
).split()
_YES_NO = re.compile(r"^\W*(?:" + "|".join(re.escape(a) for a in _AUXILIARY) + r")\b", re.IGNORECASE)
_WORD = re.compile(r"[\w']+")
_NEGATOR = re.compile(r"^(?:not|no|never|neither|nor|without|cannot|failed|fail|fails|lack|lacks|lacked|none)$")
_CLAUSE_END = re.compile(r"[.,;:!?()]")
_PIECES = re.compile(r"([\w']+)")
_STOP = frozenset(
    "the a an of in on for to and or with by is are was were do does did be been as at from that this these those "
    "it its than into after before during between among can could should would will may might has have had not no "
    "any there their they them who which what how".split()
)
QUESTION_WORD = "QW"
_STEM = 6  # words that share their first six letters count as the same word ("reduce", "reduces", "reduced")
# Words a conclusion uses to say that a finding does not hold, written from how abstracts word it (not mined
# from the data). Of the tune half's 467 conclusions, 75 hold one: 54 "no", 14 "yes" (such as "no significant
# difference in complications": safe), 7 "maybe"; of the cross-validated readings, it held back 3 "yes", 2 wrong.
_AGAINST = re.compile(
    r"\bcasts? (?:serious |some )?doubts?\b"
    r"|\bno (?:significant |clear |additional |added |further |real |major |apparent |measurable |beneficial "
    r"|demonstrable |clinical(?:ly)? (?:relevant |significant )?)?(?:benefits?|advantages?|differences?|effects?"
    r"|improvements?|associations?|role|value|impact|influence|evidence|correlation|relationship|reduction"
    r"|increase|change)\b"
    r"|\b(?:is|are|was|were|be|seems?|appears?) (?:not |neither )(?:justified|warranted|recommended|necessary"
    r"|required|supported|beneficial|effective|associated|useful|superior|helpful|indicated|advisable|reliable"
    r"|accurate|sufficient|predictive|related|correlated|different|better|worse|safe|feasible)\b"
    r"|\b(?:unnecessary|unjustified|ineffective|unreliable|inaccurate|insufficient|questionable|unwarranted"
    r"|not routinely)\b"
    r"|\b(?:did|does|do|could|can|will|would|should) not (?:improve|reduce|increase|affect|influence|alter"
    r"|differ|show|change|predict|support|justify|provide|prevent|decrease|lead|result|appear|seem|confer|offer"
    r"|add|correlate|replace|benefit)\b"
    r"|\bfailed to\b|\bno longer\b|\bnot (?:be )?(?:routinely |generally )?(?:recommended|used|advocated)\b",
    re.IGNORECASE,
)


# A question about safety ("Is metformin safe in pregnancy?", "Can a negative D-dimer safely rule out PE?") is
# answered by what a conclusion says of harms, not of benefit: the classifier, which learned "does the finding
# hold", read "no benefit in metformin co-treatment before and during IVF" as "No" to the safety question, and
# "does not seem to be associated with a worse risk of ... spinal haematoma" (safe) as "no" too. Questions
# whether something is harmful ("dangerous", "risky") stay with the classifier: of the tune half's three, the
# rule read none (such words mostly describe a subject: "risky sexual behavior").
_ASKS_SAFE = re.compile(r"\b(?:safe|safely)\b", re.IGNORECASE)
_ASKS_BENEFIT = re.compile(r"\b(?:effective|efficacious|beneficial|feasible|useful|superior|better|improve\w*)\b",
                           re.IGNORECASE)  # fmt: skip
# A sentence that only asks for more study says nothing of safety ("studies are needed to determine which regimen
# is appropriate to safely anticoagulate").
_HEDGED = re.compile(r"\b(?:needed|required|warranted|necessary) to\b|\bremains? (?:unclear|unknown|to be)\b"
                     r"|\bfurther (?:studies|research|trials)\b|\bwhether\b", re.IGNORECASE)  # fmt: skip
_SAFE = re.compile(r"\b(?:safe|safely|well[- ]tolerated)\b"
                   r"|\b(?:low|acceptable|minimal|few|no|rare|negligible)\s+(?:[\w-]+\s+){0,2}?(?:complications?"
                   r"|morbidity|mortality|toxicity|toxicities|adverse (?:events?|effects?|outcomes?)"
                   r"|side[- ]effects?)\b", re.IGNORECASE)  # fmt: skip
_HARM = re.compile(r"\b(?:unsafe|harmful|dangerous|hazardous|contraindicated|should be avoided)\b"
                   r"|\b(?:significant|high|higher|increased|increases?|excess|excessive|substantial|considerable"
                   r"|greater|worse|elevated)\s+(?:[\w-]+\s+){0,3}?(?:complications?|morbidity|mortality|toxicity"
                   r"|adverse|risks?|harms?|bleeding|deaths?|side[- ]effects?)\b", re.IGNORECASE)  # fmt: skip
_NEGATED = re.compile(r"\b(?:not|no|never|without|neither|nor|cannot)\b|n't\b", re.IGNORECASE)
_SAFETY_CLAUSES = re.compile(r"(?<=[.;])\s+|,\s+(?:and|but|whereas|although|while)\s+")


def asks_about_safety(question: str) -> bool:
    """Whether a question asks if something is safe ("Is it safe ...", "Can ... safely ...")."""
    return bool(_ASKS_SAFE.search(question))


def reads_safe(text: str) -> str | None:
    """What a conclusion says of safety: "yes" (safe: "can safely be performed", "no major complications",
    "not associated with a worse risk of ..."), "no" (not: "a significant complication rate", "not safe"),
    "maybe" (both), or None (it does not speak of harms at all: "no benefit" is not "unsafe"). A clause that
    negates a harm before naming it reads safe, one that negates "safe" reads not safe."""
    said: set[str] = set()
    for clause in _SAFETY_CLAUSES.split(text):
        if _HEDGED.search(clause):
            continue
        found = [(m, False) for m in _SAFE.finditer(clause)] + [(m, True) for m in _HARM.finditer(clause)]
        for match, is_harm in found:
            before = clause[max(0, match.start() - 60) : match.start()]
            negated = bool(_NEGATED.search(before)) and not match.group(0).lower().startswith(("no ", "few "))
            said.add("no" if is_harm != negated else "yes")
    if not said:
        return None
    return "maybe" if len(said) > 1 else said.pop()


def speaks_against(text: str) -> bool:
    """Whether ``text`` says in so many words that a finding does not hold ("cast doubt on", "did not
    reduce", "is not justified"): such a conclusion is never read as a plain "yes"."""
    return bool(_AGAINST.search(text))


def against_question(text: str, question: str) -> str:
    """``text`` with each word the question also holds (by its first six letters) replaced by ``QW``.

    The classifier then learns how a conclusion treats the question's own subject ("QW did not improve
    QW") rather than which subjects tend to get a "yes"."""
    asked = {w[:_STEM] for w in _WORD.findall(question.lower()) if len(w) > 2 and w not in _STOP}
    if not asked:
        return text
    pieces = _PIECES.split(text)
    for i in range(1, len(pieces), 2):
        word = pieces[i].lower()
        if len(word) > 2 and word not in _STOP and word[:_STEM] in asked:
            pieces[i] = QUESTION_WORD
    return "".join(pieces)


_WH = re.compile(
    r"^\W*(?:(?:and|but|so|or|then|in|for|of|at|to|with|by|from|on|about)\s+)*"
    r"(?:what|which|how|why|when|where|who|whom|whose)\b",
    re.IGNORECASE,
)
_CLAUSES = re.compile(r"\s*(?::|--|\u2014|;|\.\s|\?\s)\s*")


def is_yes_no(question: str) -> bool:
    """Whether a question asks for yes or no, judged by its form.

    Yes: a clause that opens with an auxiliary verb ("Do statins ...", "Amblyopia: is visual loss
    permanent?"), or a question mark after a statement ("Aripiprazole: a new risk factor for gambling?").
    No: a last clause that opens with a question word ("What was the mortality?"), or no question at all.
    """
    clauses = [c for c in _CLAUSES.split(question.strip()) if c.strip()]
    if not clauses:
        return False
    if any(_YES_NO.match(c) for c in clauses):
        return True
    return question.rstrip().endswith("?") and not _WH.match(clauses[-1]) and not _WH.match(clauses[0])


def tokens(text: str) -> list[str]:
    """Lower-case words and word pairs; a word after a negation, up to the clause's end, gets ``not_``.

    "did not reduce mortality" -> did, not, not_reduce, not_mortality, and the pairs of those.
    """
    words: list[str] = []
    negated = False
    for piece in re.split(r"([.,;:!?()])", text.lower()):
        if _CLAUSE_END.fullmatch(piece):
            negated = False
            continue
        for word in _WORD.findall(piece):
            words.append("not_" + word if negated else word)
            if _NEGATOR.match(word) or word.endswith("n't"):
                negated = True
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


@dataclass(frozen=True)
class VerdictModel:
    """TF-IDF (sublinear tf, l2-normalised) and a logistic model per label, read from plain JSON; and, in
    ``with_vector``, the same trained with the conclusion's e5 vector beside its words (``read``)."""

    vocabulary: dict[str, int]
    idf: tuple[float, ...]
    coef: tuple[tuple[float, ...], ...]  # one row per label in LABELS
    intercept: tuple[float, ...]
    abstain: float  # a record's best label below this probability: it says nothing
    trained_on: str = ""
    vector_coef: tuple[tuple[float, ...], ...] = ()  # one row per label over the e5 vector (VECTOR_SIZE); () none
    with_vector: VerdictModel | None = None  # the reader that also reads the conclusion's e5 vector

    def probabilities(self, text: str, question: str = "", vector: np.ndarray | None = None) -> dict[str, float]:
        """Probability of each label for a conclusion, read against the question it should answer; ``vector``:
        the conclusion's e5 vector, for a model trained with it (``vector_coef``)."""
        counts = Counter(t for t in tokens(against_question(text, question)) if t in self.vocabulary)
        weights = {self.vocabulary[t]: (1.0 + math.log(n)) * self.idf[self.vocabulary[t]] for t, n in counts.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        scores = [b + sum(row[i] * w / norm for i, w in weights.items()) for row, b in zip(self.coef, self.intercept)]
        if self.vector_coef and vector is not None:
            scores = [s + float(np.dot(row, vector)) for s, row in zip(scores, self.vector_coef)]
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        return {label: e / sum(exps) for label, e in zip(LABELS, exps)}

    def read(self, text: str, question: str = "", vector: Callable[[], np.ndarray | None] | None = None) -> str | None:
        """What one conclusion says: "yes", "no" or "maybe"; None when the model is not sure enough, or when
        it would say "yes" to a conclusion that speaks against a finding (``speaks_against``). A question about
        safety is answered by what the conclusion says of harms (``reads_safe``), and one that compares two
        options by which of them the conclusion favours (``qa.ask.comparison``), not by the classifier.

        ``vector``, when given, yields the conclusion's e5 vector (``SecondOpinion.passage_vector``; asked only
        here, since it costs an encoding): then ``with_vector`` reads it, else the words alone. On the tune half
        (cross-validated) the vector took the readings given right from 78% to 84% at the same abstaining rule."""
        comparison = compared_options(question)
        if comparison is not None:  # which option it favours, not whether its finding is positive
            return comparison_verdict(text, comparison)
        safety = asks_about_safety(question)
        safe = reads_safe(text) if safety else None
        if safety and (safe not in ("yes", "no") or not _ASKS_BENEFIT.search(question)):
            return safe  # what it says of harms, whatever the classifier reads: nothing to encode
        model, seen = self, None
        if self.with_vector is not None and vector is not None:
            seen = _usable(vector())
            model = self.with_vector if seen is not None else self
        probabilities = model.probabilities(text, question, seen)
        label = max(probabilities, key=probabilities.__getitem__)
        sure = probabilities[label] >= model.abstain and not (label == "yes" and speaks_against(text))
        read = label if sure else None
        if not safety:
            return read
        # a safety question that also asks whether it works ("safe and effective"): "maybe" where they disagree
        return "maybe" if read in ("yes", "no") and read != safe else safe

    @classmethod
    def load(cls, path: str | Path | None = None) -> VerdictModel:
        """The bundled model (``qa/data/verdict.json``), or one at ``path``."""
        if path is None:
            text, where = resources.files("qa.data").joinpath("verdict.json").read_text(encoding="utf-8"), "verdict"
        else:
            where = str(path)
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise QAError(f"{where}: cannot read the verdict model ({type(e).__name__})") from None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise QAError(f"{where}: not a verdict model") from None
        model = _model_from(data, where, vector=False)
        if isinstance(data, dict) and data.get("with_vector") is not None:
            model = replace(model, with_vector=_model_from(data["with_vector"], where, vector=True))
        return model

    def to_dict(self) -> dict[str, Any]:
        out = {"labels": list(LABELS), "vocabulary": self.vocabulary, "idf": list(self.idf),
               "coef": [list(r) for r in self.coef], "intercept": list(self.intercept), "abstain": self.abstain,
               "trained_on": self.trained_on}  # fmt: skip
        if self.vector_coef:
            out["vector_coef"] = [list(r) for r in self.vector_coef]
        if self.with_vector is not None:
            out["with_vector"] = self.with_vector.to_dict()
        return out


def _model_from(data: Any, where: str, *, vector: bool) -> VerdictModel:
    """One reader from its JSON, its sizes checked; ``vector``: it must carry ``vector_coef`` too."""

    def rows(value: Any) -> tuple[tuple[float, ...], ...]:
        if not isinstance(value, list) or not all(isinstance(row, list) for row in value):
            raise TypeError  # a row of digits as one string would otherwise read as that many numbers
        return tuple(tuple(map(float, row)) for row in value)

    try:
        if not isinstance(data, dict) or not isinstance(data.get("labels"), list):
            raise TypeError
        model = VerdictModel({str(k): int(v) for k, v in data["vocabulary"].items()}, tuple(map(float, data["idf"])),
                             rows(data["coef"]), tuple(map(float, data["intercept"])), float(data["abstain"]),
                             str(data.get("trained_on", "")), rows(data["vector_coef"]) if vector else ())  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        raise QAError(f"{where}: not a verdict model") from None
    size = len(model.idf)
    numbers = [*model.idf, *model.intercept, model.abstain, *(v for row in model.coef + model.vector_coef for v in row)]
    if (data["labels"] != list(LABELS) or len(model.coef) != len(LABELS)
            or any(len(row) != size for row in model.coef) or len(model.intercept) != len(LABELS)
            or any(not 0 <= i < size for i in model.vocabulary.values())
            or (vector and (len(model.vector_coef) != len(LABELS)
                            or any(len(row) != VECTOR_SIZE for row in model.vector_coef)))):  # fmt: skip
        raise QAError(f"{where}: a verdict model with wrong sizes")
    if not all(math.isfinite(v) for v in numbers) or not 0.0 <= model.abstain <= 1.0:
        raise QAError(f"{where}: a verdict model with numbers out of range")
    return model


def _usable(vector: np.ndarray | None) -> np.ndarray | None:
    """The e5 vector when it is one (VECTOR_SIZE finite floats), else None: the words alone are read."""
    if vector is None:
        return None
    vector = np.asarray(vector, dtype=np.float64).reshape(-1)
    return vector if vector.shape == (VECTOR_SIZE,) and np.isfinite(vector).all() else None


def combine(readings: Sequence[str | None]) -> str:
    """One verdict from the records' readings, best record first: agreement, disagreement, or nothing. The best
    record leads: when it says nothing, a lesser one does not give the bottom line alone. Asked whether mitral
    valve replacement is as safe as repair, the closest record's conclusion read nothing and a record on
    prosthetic valve endocarditis ("single-valve replacement may be a safe strategy") printed "Yes"; its record
    found replacement deadlier. Of the 1,000 shared questions, one bottom line came so, and it was wrong."""
    said = [r for r in readings if r is not None]
    if not said or readings[0] is None:
        return "unclear"
    if "maybe" in said or ("yes" in said and "no" in said):
        return "mixed"
    return said[0]


def conclusion_of(sections: Sequence[Any], fallback: str = "") -> str:
    """A record's CONCLUSIONS section (what a verdict is read from), else ``fallback`` (its answer sentences)."""
    found = [s.text for s in sections if s.label and "CONCLUSION" in s.label.upper()]
    return " ".join(found) if found else fallback


__all__ = ["VERDICTS", "LABELS", "is_yes_no", "asks_about_safety", "reads_safe",
           "speaks_against", "tokens", "against_question", "VerdictModel", "combine", "conclusion_of"]
