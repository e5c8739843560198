"""Comparison: the bottom line of a question that compares two options ("Is A better than B?", "Is A as good
as B?"), read from which option a conclusion favours, not from whether its finding is positive.

The verdict classifier learned "does the finding hold", so a conclusion that favours B read "yes" to "Is A
better than B?": on the dev half of ``bench/answers/comparisons.jsonl`` (stop 35), 6 of its 10 bottom lines on
comparisons were the opposite of the record's ("Are cromones better than inhaled corticosteroids ...?" read
"Yes" over "inhaled steroids are better than cromones"). So a comparison is answered only here:
- the conclusion finds no difference ("no significant difference", "comparable", "was not superior"): "yes" to
  "as good as", "no" to "better than";
- it favours one option in so many words ("A provides superior efficacy compared with B", "A had a lower rate of
  thrombosis compared with B"), and that option's words are the question's: "yes" when it is the option asked
  about, "no" when it is the other;
- anything else, or both kinds of finding at once (better on one outcome, no different on another): nothing.

On that dev half, end to end: 17 of 26 right, 18 bottom lines, none opposite (5, 10 and 6 before); on its test
half, measured once: 6 of 24 right, 6 given, 1 opposite (7, 11 and 5 before); on a later held-out batch of 40,
13 right, 19 given, 6 opposite (13, 24 and 11 before; 3 of the 6 from comparisons this reader does not
recognise). A synonym ("stitched" for "suturing") or a finding given only in figures is beyond it, and then it
says nothing. Stop 36 (an option that begins with a preposition or is a figure, "did not improve" as no
difference; chosen on 60 more dev questions, k91-k150): dev 31 -> 32 of 86 right, opposite 2 -> 0; held out,
fresh 13 -> 18 of 40 right with 6 -> 7 opposite, a later batch (k151-k190) 5 -> 6 right with 2 opposite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9][a-z0-9'-]*")
_STOP = frozenset(
    "a an the of in on for to and or with by is are was were be been do does did can could should would will may "
    "might has have had it its this that these those than as at from into after before during between among who "
    "which what how patients patient people adults children women men treatment therapy group groups versus vs "
    "compared comparison use using used given give gives getting get".split()
)
_STEM = 5  # option words match by their first five letters, or as part of a longer word ("steroids" in
# "corticosteroids")

# The question: the clause that compares, at its comparative and its "than" / "as"
# "as well as" compares only after a verb of doing ("works as well as"); else it adds ("surgery as well as
# radiotherapy": the two together, asked of verdicts.jsonl v-dev, whose record compares them with radiotherapy alone)
_AS_GOOD = re.compile(
    r"\bas (?:good|effective|efficacious|safe|accurate|reliable|useful|successful|sensitive|beneficial|"
    r"safe and (?:effective|successful)|effective and safe) as\b|\bas much as\b"
    r"|\b(?:works?|performs?|do|does|functions?|heals?|lasts?)\s+as well as\b",
    re.IGNORECASE,
)
_BETTER = re.compile(
    r"\b(?:better|more (?:effective|efficacious|accurate|successful|useful|reliable|sensitive)|safer|"
    r"fewer|less|lower|shorter|longer|higher|more)\b(?P<between>[^?.;]{0,80}?)\bthan\b"
    r"|\b(?:superior|inferior|preferable) to\b|\brather than\b|\binstead of\b",
    re.IGNORECASE,
)
_AUXILIARY = re.compile(r"\b(?:is|are|was|were|do|does|did|can|could|should|would|will|may|might|has|have)\b",
                        re.IGNORECASE)  # fmt: skip
_PLACING = r"(?:on|in|at|with|by|from|during|after|when)"
_LEADING = re.compile(rf"^\W*(?:{_PLACING}\s+)+", re.IGNORECASE)
_LAST_PLACING = re.compile(rf".*\b{_PLACING}\s+", re.IGNORECASE | re.DOTALL)
_CONTEXT = re.compile(r"\b(?:for|in|at|during|among|after|when|while|on|by|to|from)\b|[,?;:]", re.IGNORECASE)
# Kinds of question that compare groups rather than options: "Is COPD more common in coal miners than ...?"
_ASSOCIATION = re.compile(r"\bmore (?:common|likely|often|frequent|prevalent)\b|\b(?:at )?higher risk\b", re.I)

# The conclusion: no difference, or one option favoured
_NO_DIFFERENCE = re.compile(
    r"\bno (?:statistically |clinically )?(?:significant |relevant |major )?(?:difference|advantage|benefit)s?\b"
    r"|\b(?:did|does|do) not (?:significantly )?differ\b|\bnot (?:significantly )?different\b"
    r"|\b(?:was|were|is|are) not (?:superior|better|inferior|worse)\b|\bcomparable\b|\bsimilar\b|\bequivalent\b"
    r"|\bequally\b|\bnon-?inferior\b|\bas (?:effective|safe|good|accurate|efficacious) as\b|\bidentical(?:ly)?\b",
    re.IGNORECASE,
)
# ... or one option made no difference to the outcome ("induction of more than one follicle did not improve the
# ongoing PR"), which does not end the sentence's reading: "A gives better X than B, but does not improve Y"
# favours A on one outcome and neither on another, and so gives no bottom line to "Is A better than B?".
_NO_EFFECT = re.compile(
    r"\b(?:did|does|do) not (?:appear to |seem to )?(?:significantly )?(?:affect|improve|alter|influence|change)\b"
    r"|\bnot (?:to be )?an important (?:variable|factor|determinant)\b",
    re.IGNORECASE,
)
_HARM = (r"(?:complications?|morbidity|mortality|deaths?|thrombos[ie]s|bleeding|rebleeding|haemorrhage|hemorrhage|"
         r"infections?|recurrences?|pain|adverse|side[- ]effects?|akathisia|failures?|readmissions?|admissions?|"
         r"costs?|stay|hospitali[sz]ations?|toxicity|relapses?|events?)")  # fmt: skip
_GOOD = r"(?:survival|success|efficacy|accuracy|sensitivity|specificity|response|control|healing|satisfaction)"


def _favouring(plain: str, fewer: str, more: str) -> re.Pattern[str]:
    """A cue that favours an option: a ``plain`` word ("superior"), ``fewer`` harms ("lower ... complications") or
    ``more`` good outcomes ("higher ... survival"), up to three words apart."""
    return re.compile(rf"\b(?:{plain})\b|\b(?:{fewer})\s+(?:[\w-]+\s+){{0,3}}?{_HARM}"
                      rf"|\b(?:{more})\s+(?:[\w-]+\s+){{0,3}}?{_GOOD}", re.IGNORECASE)  # fmt: skip


# The option named first in a sentence is favoured by _FAVOURS_FIRST, the one named second by _FAVOURS_SECOND.
_FAVOURS_FIRST = _favouring(
    "better|superior|more (?:effective|efficacious|accurate|successful)|safer|preferable|preferred|outperform\\w*"
    "|advantageous",
    "lower|fewer|less|reduced|decreased|shorter",
    "higher|greater|more|improved|increased|better",
)
_FAVOURS_SECOND = _favouring(
    "worse|inferior|less effective", "higher|greater|more|increased", "lower|reduced|decreased|less"
)
_SECOND = re.compile(r"\b(?:than|compared (?:with|to)|in comparison (?:with|to)|relative to|over|versus|vs\.?|to)\b",
                     re.IGNORECASE)  # fmt: skip
_ACRONYM = re.compile(r"\b[A-Z][A-Z-]*[A-Z]\b")  # "GES", "E-ZES", "BMS"
_NEGATION = re.compile(r"\b(?:not|no|never|without|nor)\b", re.IGNORECASE)
_SENTENCES = re.compile(r"(?<=[.;!?])\s+")


@dataclass(frozen=True)
class Comparison:
    """A question that compares two options: its form ("better": A better than B, fewer, rather than; "as_good":
    A as good as B), and the words of each option that the other lacks."""

    form: str
    asked: frozenset[str]
    other: frozenset[str]
    words: frozenset[str] = frozenset()  # all the question's words but its comparative
    asked_initials: frozenset[str] = frozenset()  # first letters of the words of each option's phrase, for
    other_initials: frozenset[str] = frozenset()  # the acronyms a conclusion writes them by ("GES", "BMS")


def compared_options(question: str) -> Comparison | None:
    """The two options a yes/no question compares, or None when it compares none (or compares groups: "more
    common in A than B" asks about an association, which the classifier reads)."""
    if _ASSOCIATION.search(question):
        return None
    as_good = _AS_GOOD.search(question)
    found = as_good or _BETTER.search(question)
    if found is None:
        return None
    before, after = question[: found.start()], question[found.end() :]
    opening = list(_AUXILIARY.finditer(before))
    before = before[opening[-1].end() :] if opening else before  # A begins after the verb that asks
    between = found.groupdict().get("between") or ""
    placed = _LEADING.match(after)
    if placed:  # B is a setting ("less often in flight than on a stretcher"): so is A, the last one named before
        after = after[placed.end() :]
        setting = _LAST_PLACING.match(before + " " + between)
        if setting is None:
            return None
        before = (before + " " + between)[setting.end() :]
    after = _CONTEXT.split(after, maxsplit=1)[0]  # B ends where the setting begins ("... for elderly patients")
    asked, other = _words(before), _words(after)
    initials = (_initials(before), _initials(after))
    asked, other = asked - other, other - asked
    if not asked or not other:
        return None
    words = _words(question) - (_words(found.group(0)) - _words(between))  # the outcome between stays a word
    words = {w for w in words if not w.isdigit()}  # a figure names an option, not what they are compared on
    return Comparison("as_good" if as_good else "better", frozenset(asked), frozenset(other), frozenset(words),
                      *initials)  # fmt: skip


def favoured(conclusion: str, comparison: Comparison) -> frozenset[str]:
    """What a conclusion's sentences find of the two options: "asked" (it favours the option asked about),
    "other" (the comparator), "neither" (no difference); empty when it says none of these plainly."""
    said: set[str] = set()
    for sentence in _SENTENCES.split(conclusion):
        if _NO_DIFFERENCE.search(sentence):
            said.add("neither")
            continue
        if _NO_EFFECT.search(sentence):
            said.add("neither")
        winner = _favoured_in(sentence, comparison)
        if winner is not None:
            said.add(winner)
    return frozenset(said)


def comparison_verdict(conclusion: str, comparison: Comparison) -> str | None:
    """ "yes" or "no" for the comparison from what the conclusion finds (``favoured``), or None. "As good as" is
    "yes" when it finds no difference or the option asked about better, on any outcome it speaks of; "better
    than" is "yes" only when every finding favours it, and "no" when none does."""
    said = favoured(conclusion, comparison)
    if not said:
        return None
    if comparison.form == "as_good":
        return "no" if said == {"other"} else "yes" if "other" not in said else None
    return "yes" if said == {"asked"} else "no" if "asked" not in said else None


def _favoured_in(sentence: str, comparison: Comparison) -> str | None:
    """The option one sentence favours in so many words ("A ... superior ... compared with B"), or None. The
    sentence must also speak of something else the question asks (``_speaks_to``): "EDWS had a lower rate of
    portal vein thrombosis compared with MED" says nothing of rebleeding, asked about."""
    for pattern, first in ((_FAVOURS_FIRST, True), (_FAVOURS_SECOND, False)):
        cue = pattern.search(sentence)
        if cue is None or _NEGATION.search(sentence[max(0, cue.start() - 12) : cue.start()]):
            continue
        second = _SECOND.search(sentence, cue.end())
        if second is None:
            continue
        before, after = sentence[: second.start()], sentence[second.end() :]
        x, y = _words(before), _words(after)
        x_side, y_side = _side(x, comparison, before), _side(y, comparison, after)
        if x_side is None or x_side == y_side:
            return None
        if not _speaks_to(x | y, comparison):
            return None
        return x_side if first else ("other" if x_side == "asked" else "asked")
    return None


def _speaks_to(words: set[str], comparison: Comparison) -> bool:
    """Whether a sentence's words hold one of the question's besides the options' own: what the options are
    compared on, or where ("asthma", "thrombosis")."""
    named = {w for w in words if _matches(w, comparison.asked | comparison.other)}
    return any(_matches(w, comparison.words) for w in words - named)


def _words(text: str) -> set[str]:
    """Content words, and numbers of any length: "a 5% rise" and "a 10% rise" are options by their figures."""
    return {w for w in _WORD.findall(text.lower()) if (len(w) > 2 or w.isdigit()) and w not in _STOP}


def _matches(word: str, option: frozenset[str]) -> bool:
    return any(word[:_STEM] == o[:_STEM] or (len(o) >= _STEM and o in word) or (len(word) >= _STEM and word in o)
               for o in option)  # fmt: skip


def _side(words: set[str], comparison: Comparison, text: str = "") -> str | None:
    """Which option a span of a conclusion names, by its words or by an acronym of an option's words ("GES" for
    gastric electrical stimulation, "E-ZES" for the zotarolimus-eluting Endeavor stent): "asked", "other", or
    None (neither or both)."""
    acronyms = [set(a.lower().replace("-", "")) for a in _ACRONYM.findall(text)]

    def names(option: frozenset[str], initials: frozenset[str], rival: frozenset[str]) -> bool:
        return any(_matches(w, option) for w in words) or any(a <= initials and not a <= rival for a in acronyms)

    asked = names(comparison.asked, comparison.asked_initials, comparison.other_initials)
    other = names(comparison.other, comparison.other_initials, comparison.asked_initials)
    return "asked" if asked and not other else "other" if other and not asked else None


def _initials(text: str) -> frozenset[str]:
    """The first letters of a phrase's words and of their hyphenated parts ("zotarolimus-eluting": z, e)."""
    return frozenset(part[0] for word in _WORD.findall(text.lower()) for part in word.split("-") if part)


__all__ = ["Comparison", "compared_options", "favoured", "comparison_verdict"]
