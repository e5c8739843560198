"""Whom a question asks about, and whether a record studies them (``qa.ask.population``), on real records."""

from __future__ import annotations

import sqlite3

import pytest

from qa.ask.population import POPULATION_WORDS, names_population, population_of
from qa.ask.retrieve import studying_population
from qa.records import Record
from qa.store.lexical import LexicalIndex

HIP_FRACTURE_OVER_75 = "11833948"  # "patients aged over 75 years"; MeSH Aged: never the word "elderly"
PEDIATRIC_ASTHMA = "24785562"  # dexamethasone for pediatric asthma exacerbations; MeSH Child
ADULT_EPILEPSY = "26818046"  # zonisamide in adult patients; MeSH Adult
DAY_CASE_CHOLECYSTECTOMY = "16968183"  # day-case laparoscopic cholecystectomy: no word of pregnancy


def test_a_question_word_names_a_population_and_lactate_does_not() -> None:
    assert population_of("pregnant") == population_of("antenatal") == "pregnancy"
    assert population_of("teens") == population_of("adolescents") == "adolescents"
    assert population_of("geriatric") == population_of("older") == "elderly"
    assert population_of("kids") == population_of("paediatric") == "children"
    assert names_population("lactation") and not names_population("lactate") and not names_population("surgery")


def test_every_population_pattern_finds_the_words_it_is_written_for() -> None:
    """The index stems with Porter, a prefix too: "adolescen"* finds no "adolescents" (stored "adolesc"). Each
    pattern must find a word it was written for, in an FTS5 table like the index's."""
    db = sqlite3.connect(":memory:")
    LexicalIndex.create(db)
    lexical = LexicalIndex(db)
    words = {
        "pregnancy": "pregnancies gestational antenatal prenatal obstetrical trimester parturients maternal "
        "antepartum intrapartum peripartum fetal fetuses foetal",
        "children": "childhood kids paediatric pediatric infants toddlers schoolchildren boys girls "
        "juvenile neonates newborns",
        "infants": "infancy neonatal newborn preterm prematurity babies baby perinatal nicu",
        "adolescents": "adolescence teenagers youths juvenile paediatric pediatric students schoolchildren",
        "adults": "adults men women elderly older geriatrics veterans",
        "elderly": "elderly older geriatric octogenarians nonagenarians centenarians old-age nursing-homes",
        "breastfeeding": "breastfed breast-feeding breast-fed breast-milk human-milk nursing-mothers",
    }
    assert set(words) == set(POPULATION_WORDS)
    pmid = 1
    for text in words.values():
        for word in text.split():
            lexical.put(str(pmid), None, f"A study of {word.replace('-', ' ')} with results.", ())
            pmid += 1
    lexical.put(str(pmid), None, "A study of lactate levels and age in surgery.", ("Middle Aged",))
    for name, patterns in POPULATION_WORDS.items():
        for pattern in patterns:
            assert lexical.holding_any([pattern], [])[0] >= 1, (name, pattern)
    assert lexical.holding_any(POPULATION_WORDS["adults"], [str(pmid)])[1] == set()  # "age" is not "aged"
    assert lexical.holding_any(POPULATION_WORDS["breastfeeding"], [str(pmid)])[1] == set()  # nor lactate lactation


@pytest.fixture(scope="module")
def lexical(pubmedqa_records: list[Record]) -> LexicalIndex:
    db = sqlite3.connect(":memory:")
    LexicalIndex.create(db)
    index = LexicalIndex(db)
    wanted = {HIP_FRACTURE_OVER_75, PEDIATRIC_ASTHMA, ADULT_EPILEPSY, DAY_CASE_CHOLECYSTECTOMY}
    chosen = [r for r in pubmedqa_records if r.pmid in wanted]
    chosen += [r for r in pubmedqa_records if "pregnan" in r.abstract.lower()][:3]
    assert len(chosen) == 7
    for r in chosen:
        index.put(r.pmid, r.title, r.abstract, r.mesh)
    return index


def test_a_record_studies_a_population_in_its_own_words(lexical: LexicalIndex) -> None:
    """ "elderly" asked of a record on patients aged over 75 (MeSH Aged): it studies them. Before, the question's
    own word was looked for, and two shared titles lost a right bottom line so ("elderly" asked, "geriatric" or
    "aged over 75" written)."""
    question = "Does a delay in transfer to rehabilitation worsen outcome for elderly people after hip fracture?"
    assert studying_population(lexical, question, [HIP_FRACTURE_OVER_75]) == ([HIP_FRACTURE_OVER_75], [])


def test_a_record_of_another_population_is_named_for_what_it_lacks(lexical: LexicalIndex) -> None:
    """A trial in children does not say what a drug does for adults, nor a day-case series for pregnancy; a
    question that names no population keeps every record."""
    question = "Is dexamethasone effective for asthma attacks in adults?"
    kept, lacked = studying_population(lexical, question, [PEDIATRIC_ASTHMA, ADULT_EPILEPSY])
    assert kept == [ADULT_EPILEPSY] and lacked == ["adults"]
    question = "Is laparoscopic cholecystectomy safe during pregnancy?"
    assert studying_population(lexical, question, [DAY_CASE_CHOLECYSTECTOMY]) == ([], ["pregnancy"])
    question = "Is dexamethasone effective for asthma attacks in children?"
    assert studying_population(lexical, question, [PEDIATRIC_ASTHMA, ADULT_EPILEPSY])[1] == []
    question = "Is laparoscopic cholecystectomy safe?"
    assert studying_population(lexical, question, [DAY_CASE_CHOLECYSTECTOMY]) == ([DAY_CASE_CHOLECYSTECTOMY], [])


def test_a_population_no_record_studies_lacks_nothing(lexical: LexicalIndex) -> None:
    """When no record of the collection names breastfeeding, a record cannot be faulted for not naming it: what
    the collection lacks is told by the absent-word rule instead."""
    question = "Is zonisamide safe while breastfeeding?"
    assert lexical.holding_any(POPULATION_WORDS["breastfeeding"], [])[0] == 0
    assert studying_population(lexical, question, [ADULT_EPILEPSY]) == ([ADULT_EPILEPSY], [])
