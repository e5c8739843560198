"""Build and retrieve end to end on real abstracts: the right PMID comes back, with its citation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qa import Hit, Retriever, build_index
from qa.embed import Embedder
from qa.errors import IndexStoreError, IngestError, ModelError, QAError
from qa.store import FORMAT_VERSION, IndexStore

from .conftest import IL6_QUESTION, SEED_PMID, SUBSET_SIZE


@pytest.fixture(scope="module")
def retriever(small_index: Path, embedder: Embedder) -> Retriever:
    return Retriever(small_index, embedder=embedder)


def test_il6_question_finds_the_seed_record_first(retriever: Retriever) -> None:
    hits = retriever.search(IL6_QUESTION, k=5)
    top = hits[0]
    assert top.pmid == SEED_PMID
    assert top.title == "Interleukin-6 As a Therapeutic Target"
    assert top.journal == "Clinical cancer research" and top.year == 2015
    assert top.url == f"https://pubmed.ncbi.nlm.nih.gov/{SEED_PMID}/"
    assert "siltuximab" in top.text and "tocilizumab" in top.text
    assert top.best_sentence == (
        "Clinically registered IL6 inhibitors include siltuximab, an anti-IL6 mAb, and tocilizumab, an anti-IL6R mAb."
    )
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))


def test_shared_questions_find_their_pmid_in_top_5(
    retriever: Retriever, queries: dict[str, tuple[str, str]], pubmedqa_records
) -> None:
    indexed = {r.pmid for r in pubmedqa_records[:SUBSET_SIZE]}
    sample = [(q, pmid) for q, pmid in queries.values() if pmid in indexed][::10]  # spread over the subset
    assert len(sample) == SUBSET_SIZE // 10
    found = sum(pmid in [h.pmid for h in retriever.search(q, k=5, highlight=False)] for q, pmid in sample)
    assert found >= 0.9 * len(sample), f"only {found}/{len(sample)} questions found their PMID in the top 5"


def test_one_hit_per_pmid_unless_all_passages(retriever: Retriever) -> None:
    hits = retriever.search("randomized trial mortality", k=20)
    assert len(hits) == 20 and len({h.pmid for h in hits}) == 20
    passages = retriever.search("randomized trial mortality", k=60, all_passages=True)
    assert len(passages) == 60 and len({h.pmid for h in passages}) < 60
    assert len({(h.pmid, h.start) for h in passages}) == 60


def test_hit_offsets_point_into_the_record(retriever: Retriever) -> None:
    for hit in retriever.search("Does the use of steroids reduce complications?", k=5):
        record = retriever.snapshot.passages.record(hit.pmid)
        assert record is not None and record.abstract[hit.start : hit.end] == hit.text
        assert hit.highlight and hit.best_sentence and hit.best_sentence in hit.text
        assert set(hit.to_dict()) >= {"rank", "pmid", "title", "journal", "year", "section", "text", "score", "url"}


def test_k_larger_than_the_collection_returns_everything(seed_index: Path, embedder: Embedder) -> None:
    with Retriever(seed_index, embedder=embedder) as r:
        assert [h.pmid for h in r.search("anything at all", k=50)] == [SEED_PMID]


def test_bad_questions_are_user_errors(retriever: Retriever) -> None:
    with pytest.raises(QAError, match="empty"):
        retriever.search("   \n ")
    assert retriever.search("!!!???", k=3)  # punctuation still gets an answer, not an exception
    assert retriever.search("IL-6 " * 20000, k=1)  # a 100 KB question is cut to size, not a crash


def test_manifest_records_model_and_counts(small_index: Path) -> None:
    manifest = IndexStore(small_index).manifest()
    assert manifest.model == "all-MiniLM-L6-v2" and manifest.dimension == 384
    assert manifest.records == SUBSET_SIZE + 1
    assert manifest.chunks > manifest.records
    assert manifest.chunking == {"chunk_tokens": 128, "overlap_sentences": 1}
    on_disk = json.loads((IndexStore(small_index).current_dir() / "manifest.json").read_text())
    assert on_disk["format_version"] == FORMAT_VERSION and on_disk["built_at"]


def test_querying_with_another_model_is_refused(small_index: Path, tmp_path: Path) -> None:
    other = tmp_path / "some-other-model"
    other.mkdir()
    with pytest.raises(ModelError, match="was built with model 'all-MiniLM-L6-v2'"):
        Retriever(small_index, model=str(other))


def test_missing_index_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IndexStoreError, match="qa build"):
        Retriever(tmp_path / "nowhere")


# --------------------------------------------------------- rebuild semantics


def answers(index: Path, embedder: Embedder) -> list[tuple[str, float, str]]:
    with Retriever(index, embedder=embedder) as r:
        return [(h.pmid, round(h.score, 5), h.text) for h in r.search(IL6_QUESTION, k=3, all_passages=True)]


def test_interrupted_build_keeps_the_old_index(seed_index: Path, shared: Path, embedder: Embedder) -> None:
    before = answers(seed_index, embedder)
    snapshot = IndexStore(seed_index).current_dir()

    def interrupt(stage: str, done: int, total: int | None) -> None:
        if stage == "embed" and done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_index(
            sorted((shared / "samples" / "biopython").glob("pubmed*.xml")),
            seed_index,
            embedder=embedder,
            progress=interrupt,
        )
    assert IndexStore(seed_index).current_dir() == snapshot
    assert answers(seed_index, embedder) == before
    assert not [p for p in seed_index.iterdir() if p.name.startswith(".build-")]


def test_the_embed_bar_moves_inside_a_batch(tmp_path: Path, subset_jsonl: Path, embedder: Embedder) -> None:
    """Progress counts records as they are parsed, before the encoder has finished anything, then as their
    texts are encoded, not only when a batch of 256 is done: a build of 60 real records (one batch) reports
    every parsed record, then several steps between 0 and 60, never backwards, ending at 60."""
    lines = subset_jsonl.read_text(encoding="utf-8").splitlines()[:60]
    source = tmp_path / "sixty.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    events: list[tuple[str, int, int | None]] = []
    build_index([source], tmp_path / "index", embedder=embedder, progress=lambda *event: events.append(event))
    seen = [(d, t) for stage, d, t in events if stage == "embed"]
    done = [d for d, _ in seen]
    assert {t for _, t in seen} == {60} and done[-1] == 60 and done == sorted(done), seen
    assert len({d for d in done if 0 < d < 60}) >= 3, seen
    first_encoded = next(i for i, (stage, d, _) in enumerate(events) if stage == "embed" and d > 0)
    parsed = [d for stage, d, _ in events[:first_encoded] if stage == "read"]
    assert parsed[:3] == [1, 2, 3] and parsed[-1] == 60, parsed


def test_failed_multi_file_build_keeps_the_old_index(
    seed_index: Path, shared: Path, embedder: Embedder, tmp_path: Path
) -> None:
    before = answers(seed_index, embedder)
    broken = tmp_path / "broken.xml"
    broken.write_text("<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID>")
    with pytest.raises(IngestError, match="broken.xml"):
        build_index([shared / "samples" / "biopython" / "pubmed4.xml", broken], seed_index, embedder=embedder)
    assert answers(seed_index, embedder) == before


def test_stale_build_directory_is_cleaned_by_next_build(seed_index: Path, shared: Path, embedder: Embedder) -> None:
    stale = seed_index / ".build-deadbeef0000"
    stale.mkdir()
    (stale / "passages.sqlite").write_bytes(b"half-written")
    build_index([shared / "seed" / f"{SEED_PMID}.xml"], seed_index, embedder=embedder)
    assert not stale.exists()
    assert len([p for p in seed_index.iterdir() if p.name.startswith("snap-")]) == 1


def test_second_build_on_a_locked_index_fails_clearly(seed_index: Path, shared: Path, embedder: Embedder) -> None:
    lock = IndexStore(seed_index).lock()
    try:
        with pytest.raises(IndexStoreError, match="another build is running"):
            build_index([shared / "seed" / f"{SEED_PMID}.xml"], seed_index, embedder=embedder)
    finally:
        lock.release()


def test_last_record_wins_and_delete_citation_applies(
    shared: Path, embedder: Embedder, tmp_path: Path, subset_jsonl: Path
) -> None:
    three = tmp_path / "three.jsonl"
    lines = subset_jsonl.read_text().splitlines()
    pmids = [json.loads(line)["pmid"] for line in lines]
    assert {"21645374", "16418930"} <= set(pmids)
    keep = [line for line in lines if json.loads(line)["pmid"] in {"21645374", "16418930", pmids[5]}]
    three.write_text("\n".join(keep) + "\n")
    report = build_index(
        [three, shared / "seed" / f"{SEED_PMID}.xml", shared / "samples" / "update-with-deletions.xml"],
        tmp_path / "idx",
        embedder=embedder,
    )
    assert report.replaced == 1 and report.deleted == 2 and report.records_indexed == 2
    with Retriever(tmp_path / "idx", embedder=embedder) as r:
        seed = r.snapshot.passages.record(SEED_PMID)
        assert seed is not None and seed.version == 2 and seed.doi == "10.0000/example-doi-for-tests"
        assert {h.pmid for h in r.search("lace plant programmed cell death", k=5)} == {SEED_PMID, pmids[5]}


def test_build_with_nothing_to_index(seed_index: Path, tmp_path: Path, embedder: Embedder) -> None:
    before = answers(seed_index, embedder)
    empty = tmp_path / "noabstract.jsonl"
    empty.write_text('{"pmid": "1", "title": "No abstract here"}\n')
    with pytest.raises(QAError, match="no records with an abstract"):  # a new index: surely a mistake
        build_index([empty], tmp_path / "new-index", embedder=embedder)
    with pytest.raises(QAError, match="no records with an abstract"):  # so is a --full rebuild
        build_index([empty], seed_index, embedder=embedder, full=True)
    assert build_index([empty], seed_index, embedder=embedder).noop  # an update: nothing to do
    assert answers(seed_index, embedder) == before


def test_hit_is_a_plain_dataclass() -> None:
    hit = Hit(rank=1, pmid="1", title=None, journal=None, year=None, section=None, text="x", score=0.5)
    assert hit.best_sentence is None and hit.to_dict()["title"] is None


def test_index_copied_elsewhere_still_opens(small_index: Path, tmp_path: Path, embedder: Embedder) -> None:
    copy = tmp_path / "moved"
    shutil.copytree(small_index, copy)
    with Retriever(copy, embedder=embedder) as r:
        assert r.search(IL6_QUESTION, k=1)[0].pmid == SEED_PMID


def test_every_sentence_is_stored_once_with_a_unit_vector(small_index: Path) -> None:
    with Retriever(small_index) as r:
        record = r.snapshot.passages.record(SEED_PMID)
        sentences = r.snapshot.passages.sentences([SEED_PMID])[SEED_PMID]
        assert record is not None and len(sentences) >= 8
        assert [s.text for s in sentences] == [record.abstract[s.start : s.end] for s in sentences]
        assert len({s.start for s in sentences}) == len(sentences)  # overlapping passages, one row per sentence
        assert all(abs(float(np.linalg.norm(s.vector)) - 1) < 0.01 for s in sentences)
        chunks = r.snapshot.passages.chunks(r.snapshot.passages.chunk_ids_of([SEED_PMID])[SEED_PMID])
        in_chunks = {(c.start + a, c.start + b) for c in chunks.values() for a, b in c.sentences}
        assert {(s.start, s.end) for s in sentences} == in_chunks
