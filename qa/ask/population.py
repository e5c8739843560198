"""Who a question is asked for, and the words by which a record says it studies them.

A finding in one population does not carry to another: a record on day-case cholecystectomy that reads "safe"
does not say it is safe in pregnancy (bench/answers/near_together.jsonl nt011), and a trial of tonsil-bed packing
in children does not say what it does for adults (verdicts.jsonl v27). A question word names a population
(``population_of``: "pregnancy", "children", "elderly"); a record studies that population when its title,
abstract or MeSH headings hold any word of it (``POPULATION_WORDS``: "geriatric" for "elderly", MeSH's "Child"
for "children", "gestational" for "pregnancy"). Matching the question's own word only, as stop 32 did, took a
record that writes "geriatric" for one that never names the elderly, and "teenagers" for one lacking "teens".
Both lists were written from clinical usage, not mined from the sets they are measured on.
"""

from __future__ import annotations

import re

# The question's word (a whole content term, as the lexical index splits it) -> the population it names.
_ASKED = {
    "pregnancy": r"pregnan\w*|antenatal|prenatal|trimesters?",
    "children": r"child\w*|kids|paediatric\w*|pediatric\w*|schoolchildren",
    "infants": r"infan\w*|neonat\w*|newborns?|preterm",  # not "baby": "help me have a baby" asks of birth
    "adolescents": r"adolescen\w*|teens?|teenage\w*",
    "adults": r"adults?",
    "elderly": r"elderly|older|geriatric\w*|octogenarians?|nonagenarians?",
    "breastfeeding": r"breastfe\w*|lactating|lactation",
}
_ASKED_RE = {name: re.compile(pattern, re.IGNORECASE) for name, pattern in _ASKED.items()}

# The population -> FTS5 patterns a record that studies it holds (a quoted word, ``*`` for a prefix). The index
# stems with Porter, a prefix too: "adolescen"* finds nothing ("adolescents" is stored as "adolesc"), and "aged"
# finds every "age" (but in the MeSH headings only "Aged" and "Middle Aged"). Wide on purpose: a missed word
# costs a needless "does not mention" warning; a word too many only lets one record through. Not "adolescent" for
# children: MeSH adds "Adolescent" to an adult series that took a few teenagers (verdicts.jsonl v59, a test item,
# read for this: hernia repair in adults of mean age 45 read "Yes" asked about children). Nor "baby" for infants
# in a question: "will metformin help me have a baby?" (in_scope.jsonl i54, a test item, read for this) asks of
# a birth, and its IVF record was told it does not mention "baby".
POPULATION_WORDS: dict[str, tuple[str, ...]] = {
    "pregnancy": ('"pregnan"*', '"gestation"*', '"antenatal"*', '"prenatal"*', '"obstetric"*', '"trimester"*',
                  '"parturient"*', '"maternal"*', '"antepartum"', '"intrapartum"', '"peripartum"', '"fetal"',
                  '"fetus"*', '"foetal"'),
    "children": ('"child"*', '"kids"', '"paediatric"*', '"pediatric"*', '"infant"*', '"toddler"*',
                 '"schoolchild"*', '"boys"', '"girls"', '"juvenile"*', '"neonat"*', '"newborn"*'),
    "infants": ('"infan"*', '"neonat"*', '"newborn"*', '"preterm"*', '"prematur"*', '"babies"', '"baby"',
                '"perinat"*', '"nicu"'),
    "adolescents": ('"adolescent"*', '"teen"*', '"youth"*', '"juvenile"*', '"paediatric"*', '"pediatric"*',
                    '"student"*', '"schoolchild"*'),
    "adults": ('"adult"*', '"men"', '"women"', '"elderly"', '"older"', '"geriatric"*', '"veteran"*'),
    "elderly": ('"elderly"', '"older"', '"geriatric"*', '"octogenarian"*', '"nonagenarian"*', '"centenarian"*',
                '"old age"', '"nursing home"*', 'mesh : "aged"'),  # MeSH's "Aged": 65 and over
    "breastfeeding": ('"breastfe"*', '"breast feeding"', '"breast fed"', '"breast milk"', '"human milk"',
                      '"nursing mothers"'),  # not "lactation": Porter stores it as it stores "lactate"
}


def population_of(term: str) -> str | None:
    """The population a question term names ("pregnant" -> "pregnancy", "teens" -> "adolescents"), or None."""
    return next((name for name, pattern in _ASKED_RE.items() if pattern.fullmatch(term)), None)


def names_population(term: str) -> bool:
    """Whether a question term names who is treated ("pregnancy", "children", "elderly"; not "lactate")."""
    return population_of(term) is not None


__all__ = ["POPULATION_WORDS", "population_of", "names_population"]
