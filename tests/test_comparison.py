"""Comparison: a question that compares two options gets its bottom line from which option the record favours."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa import Retriever
from qa.ask.comparison import compared_options, comparison_verdict, favoured
from qa.ask.verdict import VerdictModel, conclusion_of
from qa.embed import Embedder
from qa.records import Record


@pytest.fixture(scope="module")
def conclusions(pubmedqa_records: list[Record]) -> dict[str, str]:
    return {r.pmid: conclusion_of(r.sections) for r in pubmedqa_records}


def test_the_two_options_of_a_question_are_told_apart() -> None:
    better = compared_options("Are cromones better than inhaled corticosteroids at keeping children with asthma out "
                              "of hospital?")  # fmt: skip
    assert better is not None and better.form == "better"
    assert better.asked == {"cromones"} and better.other == {"inhaled", "corticosteroids"}  # "at keeping ...": setting
    as_good = compared_options("Is general anaesthesia as safe as a regional block for hip fracture repair?")
    assert as_good is not None and as_good.form == "as_good" and as_good.asked == {"general", "anaesthesia"}
    assert compared_options("Should the nasal septum be stitched rather than the nose packed?") is not None
    assert compared_options("Does the slow infusion work as well as the bolus?") is not None
    # not comparisons of two options: an association between groups, "as well as" that adds, no comparison at all
    assert compared_options("Is COPD more common in coal miners than in office workers?") is None
    assert compared_options("Do older patients do better if they have surgery as well as radiotherapy?") is None
    assert compared_options("Does dexamethasone reduce relapse in asthma?") is None


def test_a_conclusion_that_finds_no_difference_answers_as_good_yes_and_better_no(conclusions: dict[str, str]) -> None:
    """22758782: regional against general anaesthesia for hip fracture, "There is no difference in postoperative
    morbidity ..."."""
    text = conclusions["22758782"]
    safer = compared_options("Is regional anaesthesia safer than general anaesthesia for elderly hip fractures?")
    as_safe = compared_options("Is general anaesthesia as safe as a regional block for older people with a broken hip?")
    assert safer is not None and as_safe is not None
    assert favoured(text, safer) == {"neither"}
    assert comparison_verdict(text, safer) == "no" and comparison_verdict(text, as_safe) == "yes"


def test_the_favoured_option_gives_yes_asked_one_way_and_no_the_other(conclusions: dict[str, str]) -> None:
    """15841770: "inhaled steroids are better than cromones in preventing admissions for asthma". The classifier
    reads the positive finding as "yes" either way round; the comparison reader does not."""
    text = conclusions["15841770"]
    wrong_way = "Are cromones better than inhaled corticosteroids at keeping children with asthma out of hospital?"
    right_way = "Are inhaled steroids better than cromones at preventing asthma admissions in children?"
    assert comparison_verdict(text, compared_options(wrong_way)) == "no"  # type: ignore[arg-type]
    assert comparison_verdict(text, compared_options(right_way)) == "yes"  # type: ignore[arg-type]
    assert VerdictModel.load().read(text, wrong_way) == "no"  # the reader the bot uses takes this path


def test_an_option_written_as_an_acronym_is_found_by_its_initials(conclusions: dict[str, str]) -> None:
    """26965932: "E-ZES implantation provides superior efficacy and safety as compared with conventional BMS"."""
    text = conclusions["26965932"]
    question = ("For patients at high bleeding risk with coronary artery disease, does a zotarolimus-eluting "
                "Endeavor stent work better and more safely than a bare-metal stent?")  # fmt: skip
    assert comparison_verdict(text, compared_options(question)) == "yes"  # type: ignore[arg-type]


def test_a_finding_on_another_outcome_or_none_at_all_gives_nothing(conclusions: dict[str, str]) -> None:
    """26063028 finds less portal vein thrombosis with EDWS, and says nothing of rebleeding: asked about
    rebleeding it gives no bottom line (the classifier read "yes"); asked about thrombosis, "yes". A conclusion
    that compares nothing ("Combined treatment ... resulted in a favorable therapeutic effect") gives none."""
    text = conclusions["26063028"]
    rebleeding = compared_options("Does EDWS prevent recurrent variceal bleeding better than MED with splenectomy?")
    thrombosis = compared_options("Does EDWS lead to fewer portal vein thromboses than modified devascularization "
                                  "with splenectomy (MED)?")  # fmt: skip
    assert rebleeding is not None and thrombosis is not None
    assert comparison_verdict(text, rebleeding) is None and comparison_verdict(text, thrombosis) == "yes"
    assert comparison_verdict("Combined treatment resulted in a favorable therapeutic effect.", rebleeding) is None


def test_a_comparison_gets_the_record_s_bottom_line_end_to_end(small_index: Path, embedder: Embedder) -> None:
    """bench/answers/comparisons.jsonl k49 and k50 (dev), on the small index: before this reader the first read
    "yes" over "There is no difference in postoperative morbidity ..."."""
    retriever = Retriever(small_index, embedder=embedder)
    safer = retriever.ask("Is regional anaesthesia safer than general anaesthesia for elderly patients undergoing hip "
                          "fracture surgery?", k=5)  # fmt: skip
    assert safer.hits[0].pmid == "22758782" and safer.answer.verdict == "no"
    as_safe = retriever.ask("For an older person having a broken hip repaired, is general anaesthesia as safe as a "
                            "regional block in terms of complications and in-hospital death?", k=5)  # fmt: skip
    assert as_safe.hits[0].pmid == "22758782" and as_safe.answer.verdict == "yes"


def test_options_named_by_a_setting_or_a_figure_are_still_a_comparison() -> None:
    """Stop 36: "than on an emergency department stretcher" lost its option to the setting rule (B ended at "on"),
    and "a 5% rise" against "a 10% rise" lost both to the three-letter minimum; either left the question to the
    classifier, which read "yes" from a positive finding about the other option (comparisons.jsonl k122, k150)."""
    setting = compared_options("Is the tube placed correctly less often in flight than on an emergency department "
                               "stretcher?")  # fmt: skip
    assert setting is not None and setting.asked == {"flight"} and {"emergency", "stretcher"} <= setting.other
    figures = compared_options("Is a 10% rise in arm circumference as good as a 5% rise for finding lymphoedema?")
    assert figures is not None and "10" in figures.asked and figures.other == {"5"}


def test_a_conclusion_that_an_option_did_not_improve_or_affect_the_outcome_finds_no_difference(
    conclusions: dict[str, str],
) -> None:
    """16253970: "induction of more than one follicle did not improve the ongoing PR"; 22023714: "Delivery mode did
    not affect postpartum quality of life in rural China"."""
    more = compared_options("Do two or more follicles give a better ongoing pregnancy rate than one follicle in IUI?")
    assert more is not None and comparison_verdict(conclusions["16253970"], more) == "no"
    as_good = compared_options("Is a caesarean as good as a vaginal birth for a mother's quality of life afterwards?")
    assert as_good is not None and favoured(conclusions["22023714"], as_good) == {"neither"}
    assert comparison_verdict(conclusions["22023714"], as_good) == "yes"
