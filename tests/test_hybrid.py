"""Hybrid retrieval, filters, cited answers, follow-ups and `qa eval` on the real subset index."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qa import Retriever
from qa.answer import MIN_SCORE, extract_answer
from qa.cli import app
from qa.conversation import Conversation, is_follow_up, parse_filters
from qa.embed import Embedder
from qa.errors import QAError
from qa.evaluate import evaluate, score_ranking
from qa.query import Filters, Hit
from qa.records import Record
from qa.retrieve import Fusion, fuse
from qa.store.lexical import match_expression, terms

from .conftest import IL6_QUESTION, SEED_PMID, SUBSET_SIZE

runner = CliRunner()


@pytest.fixture(scope="module")
def retriever(small_index: Path, embedder: Embedder) -> Retriever:
    return Retriever(small_index, embedder=embedder)


@pytest.fixture(scope="module")
def subset(pubmedqa_records: list[Record]) -> list[Record]:
    return pubmedqa_records[:SUBSET_SIZE]


# ------------------------------------------------------------------ lexical


def test_biomedical_terms_survive_tokenization() -> None:
    assert "il6" in terms("IL-6") and "il6" in terms("IL6")  # both spellings meet
    assert {"covid19", "covid", "19"} <= set(terms("COVID-19"))
    assert "cd4plus" in terms("CD4+ T cells") and "cd4" in terms("CD4+ T cells")
    assert "tnfalpha" in terms("TNF-α")
    assert "005" in terms("p<0.05") and "0" not in terms("p<0.05")
    assert match_expression("?!?") is None
    assert (
        match_expression("Which IL-6 inhibitors are registered?")
        == '"il6" OR "il" OR "6" OR "inhibitors" OR "registered"'
    )


def test_lexical_mode_matches_spelling_variants(retriever: Retriever) -> None:
    # the seed abstract writes "IL6"; the question writes "IL-6"
    hits = retriever.search("IL-6 siltuximab tocilizumab", k=3, mode="lexical")
    assert hits[0].pmid == SEED_PMID


def test_lexical_mode_returns_only_matching_records(retriever: Retriever) -> None:
    assert retriever.search("siltuximab", k=10, mode="lexical")[0].pmid == SEED_PMID
    assert [h.pmid for h in retriever.search("siltuximab", k=10, mode="lexical")] == [SEED_PMID]
    assert retriever.search("zzqxv", k=5, mode="lexical") == []
    assert len(retriever.search("zzqxv", k=5, mode="dense")) == 5  # meaning always finds neighbours


def test_unknown_mode_is_refused(retriever: Retriever) -> None:
    with pytest.raises(QAError, match="unknown mode"):
        retriever.search("x", mode="sparse")  # type: ignore[arg-type]


# ------------------------------------------------------------------- fusion


def test_fuse_weighted_uses_the_lexical_ceiling() -> None:
    dense = {"a": 0.80, "b": 0.70, "c": 0.60}
    lexical = {"a": 0.0, "b": 9.0, "c": 3.0}
    fused = fuse(dense, lexical, Fusion("weighted", 0.4), lexical_ceiling=10.0)
    assert fused["a"] == pytest.approx(0.4 * 0.80)
    assert fused["b"] == pytest.approx(0.4 * 0.70 + 0.6 * 0.9)
    assert max(fused, key=fused.__getitem__) == "b"
    # a weak lexical match (far below the ceiling) cannot outvote a clearly closer meaning
    weak = fuse(dense, {"a": 0.0, "b": 0.5, "c": 0.2}, Fusion("weighted", 0.4), lexical_ceiling=10.0)
    assert max(weak, key=weak.__getitem__) == "a"
    # without a ceiling the question's best BM25 is the scale
    assert fuse(dense, lexical, Fusion("weighted", 0.4))["b"] == pytest.approx(0.4 * 0.70 + 0.6)


def test_fuse_rrf() -> None:
    fused = fuse({"a": 0.9, "b": 0.8}, {"b": 5.0, "c": 1.0}, Fusion("rrf", rrf_k=60))
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["a"] == pytest.approx(1 / 61) and fused["c"] == pytest.approx(1 / 62)
    assert fuse({}, {}, Fusion()) == {}


def test_hybrid_is_at_least_as_good_as_either_mode(retriever: Retriever, queries, subset) -> None:
    indexed = {r.pmid for r in subset}
    sample = dict(list(((qid, q) for qid, q in queries.items() if q[1] in indexed))[:80])
    qs = {qid: q for qid, (q, _) in sample.items()}
    qrels = {qid: {pmid: 1} for qid, (_, pmid) in sample.items()}
    scores = {m: evaluate(retriever, qs, qrels, mode=m) for m in ("dense", "lexical", "hybrid")}
    assert scores["hybrid"].mrr_at_10 >= scores["dense"].mrr_at_10
    assert scores["hybrid"].mrr_at_10 >= scores["lexical"].mrr_at_10 - 0.005
    assert scores["hybrid"].recall_at_1 >= 0.95


# ------------------------------------------------------------------ filters


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_year_filter_still_returns_k(retriever: Retriever, subset: list[Record], mode: str) -> None:
    year = 2002  # six records of the subset
    expected = {r.pmid for r in subset if r.year == year}
    assert len(expected) == 6
    hits = retriever.search("patients treatment outcome", k=5, mode=mode, filters=Filters(year_from=year, year_to=year))
    if mode == "lexical":
        assert 1 <= len(hits) <= 5
    else:
        assert len(hits) == 5
    assert {h.pmid for h in hits} <= expected and all(h.year == year for h in hits)


def test_mesh_and_journal_filters(retriever: Retriever, subset: list[Record]) -> None:
    with_term = {r.pmid for r in subset if "Anticoagulants" in r.mesh}
    hits = retriever.search("bleeding risk", k=10, filters=Filters(mesh=("anticoagulants",)))
    assert {h.pmid for h in hits} == with_term  # case-insensitive; all 3 come back although k is 10
    hits = retriever.search("bleeding risk", k=5, filters=Filters(journal="cancer research"))
    assert [h.pmid for h in hits] == [SEED_PMID]
    assert retriever.search("x", k=5, filters=Filters(year_from=2030)) == []
    both = retriever.search("a", k=5, filters=Filters(mesh=("Anticoagulants", "Humans")))
    assert {h.pmid for h in both} <= with_term


def test_parse_filters() -> None:
    f = parse_filters('year>=2010 year<=2015 mesh="Breast Neoplasms" journal=lancet')
    assert f == Filters(year_from=2010, year_to=2015, mesh=("Breast Neoplasms",), journal="lancet")
    assert parse_filters("year=2012") == Filters(year_from=2012, year_to=2012)
    assert parse_filters("off", f) == Filters()
    with pytest.raises(QAError):
        parse_filters("colour=red")
    with pytest.raises(QAError):
        parse_filters("year>=soon")


# ------------------------------------------------------------------ answers


def make_hit(rank: int, pmid: str, sentences: list[tuple[str, float]]) -> Hit:
    text, spans, pos = "", [], 0
    for sentence, score in sentences:
        if text:
            text += " "
            pos += 1
        spans.append((pos, pos + len(sentence), score))
        text += sentence
        pos += len(sentence)
    return Hit(rank=rank, pmid=pmid, title=None, journal=None, year=None, section="RESULTS", text=text,
               score=1.0 / rank, url="", sentences=tuple(spans))  # fmt: skip


def test_extract_answer_picks_cited_sentences() -> None:
    hits = [
        make_hit(1, "1", [("Background words.", 0.2), ("Drug X lowers CRP.", 0.71)]),
        make_hit(2, "2", [("Drug X also lowers IL-6.", 0.66), ("Unrelated.", 0.1)]),
        make_hit(3, "3", [("Drug X lowers CRP.", 0.70)]),  # repeated sentence is not repeated
        make_hit(4, "4", [("Beyond the top three passages.", 0.99)]),
    ]
    answer = extract_answer(hits)
    assert [s.pmid for s in answer.sentences] == ["1", "2"]
    assert answer.text == "Drug X lowers CRP. [1] Drug X also lowers IL-6. [2]"
    assert answer.to_dict()["sentences"][0] == {"text": "Drug X lowers CRP.", "pmid": "1", "section": "RESULTS",
                                                "score": 0.71}  # fmt: skip
    assert extract_answer([make_hit(1, "1", [("Nothing close.", MIN_SCORE - 0.01)])]).sentences == ()
    assert len(extract_answer([make_hit(1, "1", [(f"S{i}.", 0.6) for i in range(6)])]).sentences) == 3


def test_ask_returns_an_answer_citing_the_seed(retriever: Retriever) -> None:
    response = retriever.ask(IL6_QUESTION, k=5)
    first = response.answer.sentences[0]
    assert first.pmid == SEED_PMID and first.text.startswith("Clinically registered IL6 inhibitors include")
    assert response.answer.text.startswith(first.text + f" [{SEED_PMID}]")
    data = response.to_dict()
    assert set(data) >= {"question", "hits", "answer", "mode"} and data["mode"] == "hybrid"
    assert set(data["answer"]) == {"text", "sentences"}


# ------------------------------------------------------------- conversation


def test_follow_up_detection() -> None:
    assert is_follow_up("and what about its side effects?")
    assert is_follow_up("What about children?")
    assert is_follow_up("Is it safe?")
    assert not is_follow_up(IL6_QUESTION)
    assert not is_follow_up("Does tocilizumab cause liver injury in rheumatoid arthritis?")


def test_conversation_carries_context_until_new_topic(retriever: Retriever) -> None:
    talk = Conversation(retriever, k=3)
    first = talk.ask(IL6_QUESTION)
    assert first.query is None
    follow = talk.ask("and what about their safety?")
    assert follow.query == f"{IL6_QUESTION} and what about their safety?"
    assert follow.hits[0].pmid == SEED_PMID  # alone, "their safety" would not find it
    alone = retriever.search("and what about their safety?", k=3)
    assert SEED_PMID not in [h.pmid for h in alone]
    talk.new_topic()
    assert talk.ask("and what about their safety?").query is None


def test_chat_json_script_with_commands(small_index: Path) -> None:
    script = "\n".join(
        [IL6_QUESTION, "and what about their safety?", "/new", "/mode lexical", "/filter year>=2005 year<=2008",
         "randomized trial mortality", "/filter off", "/mode dense", "mitochondria programmed cell death", "/quit"]
    )  # fmt: skip
    result = runner.invoke(app, ["chat", "--index", str(small_index), "--json", "-k", "3"], input=script)
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["mode"] for a in answers] == ["hybrid", "hybrid", "lexical", "dense"]
    assert answers[1]["query"].startswith(IL6_QUESTION)
    assert answers[2]["query"] == "randomized trial mortality"
    assert all(2005 <= h["year"] <= 2008 for h in answers[2]["hits"])
    assert answers[0]["answer"]["sentences"][0]["pmid"] == SEED_PMID


def test_ask_cli_filters_and_answer(small_index: Path) -> None:
    result = runner.invoke(app, ["ask", IL6_QUESTION, "--index", str(small_index), "--json", "--journal", "clinical"])
    data = json.loads(result.stdout)
    assert [h["pmid"] for h in data["hits"]] == [SEED_PMID]
    text = runner.invoke(app, ["ask", IL6_QUESTION, "--index", str(small_index), "-k", "2"]).stdout
    assert text.startswith("Answer") and f"[{SEED_PMID}]" in text
    empty = runner.invoke(app, ["ask", "x", "--index", str(small_index), "--year-from", "2030"])
    assert empty.exit_code == 0 and "No record matches the filters" in empty.stderr
    bad = runner.invoke(app, ["ask", "x", "--index", str(small_index), "--year-from", "2010", "--year-to", "2000"])
    assert bad.exit_code == 1 and "is after" in bad.stderr
    bad_mode = runner.invoke(app, ["ask", "x", "--index", str(small_index), "--mode", "sparse"])
    assert bad_mode.exit_code == 1 and "unknown mode" in bad_mode.stderr


# --------------------------------------------------------------------- eval


def test_score_ranking_by_hand() -> None:
    m = score_ranking(["9", "1", "9", "3"], {"1": 1})
    assert m["recall_at_1"] == 0 and m["recall_at_5"] == 1 and m["mrr_at_10"] == 0.5
    assert m["ndcg_at_10"] == pytest.approx(1 / math.log2(3))
    assert score_ranking(["5"], {"1": 1})["mrr_at_10"] == 0.0


def test_eval_cli_on_a_small_fixture(small_index: Path, tmp_path: Path, queries, subset) -> None:
    indexed = {r.pmid for r in subset}
    chosen = [(qid, q, p) for qid, (q, p) in queries.items() if p in indexed][:12]
    qfile, rfile = tmp_path / "q.jsonl", tmp_path / "qrels.tsv"
    qfile.write_text("".join(json.dumps({"_id": qid, "text": q}) + "\n" for qid, q, _ in chosen)
                     + json.dumps({"_id": "unjudged", "text": "not in qrels"}) + "\n")  # fmt: skip
    rfile.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{qid}\t{p}\t1\n" for qid, _, p in chosen))
    result = runner.invoke(app, ["eval", str(qfile), str(rfile), "--index", str(small_index), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"dense", "lexical", "hybrid"}
    for metrics in data.values():
        assert metrics["queries"] == 12
        assert set(metrics) == {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "queries"}
        assert 0.0 <= metrics["recall@1"] <= metrics["recall@5"] <= metrics["recall@10"] <= 1.0
    assert data["hybrid"]["recall@10"] >= 0.9
    one = json.loads(runner.invoke(app, ["eval", str(qfile), str(rfile), "--index", str(small_index),
                                         "--mode", "lexical", "--json"]).stdout)  # fmt: skip
    assert one == {"lexical": data["lexical"]}
    table = runner.invoke(app, ["eval", str(qfile), str(rfile), "--index", str(small_index), "--mode", "dense"])
    assert "recall@1" in table.stdout and "dense" in table.stdout
    rfile.write_text("qid\tpmid\n")
    bad = runner.invoke(app, ["eval", str(qfile), str(rfile), "--index", str(small_index)])
    assert bad.exit_code == 1 and "header" in bad.stderr
