"""Incremental builds: only new or changed records are embedded, deletions apply, ids stay in sync."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qa import Retriever, build_index
from qa.build import remove_records
from qa.cli import app
from qa.embed import Embedder
from qa.errors import QAError
from qa.query import Filters
from qa.records import Record, record_to_dict
from qa.store import IndexStore
from qa.store.verify import verify_index

from .conftest import IL6_QUESTION, SEED_PMID
from .helpers import passage_text_hashes


def write_jsonl(path: Path, records: list[Record]) -> Path:
    path.write_text("".join(json.dumps(record_to_dict(r)) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def base_template(
    tmp_path_factory: pytest.TempPathFactory, pubmedqa_records: list[Record], embedder: Embedder, shared: Path
) -> tuple[Path, Path]:
    """Built once per module: every test gets its own copy (``base``), so changing it is safe."""
    folder = tmp_path_factory.mktemp("base")
    source = write_jsonl(folder / "twenty.jsonl", pubmedqa_records[:20])
    index = folder / "index"
    build_index([source, shared / "seed" / f"{SEED_PMID}.xml"], index, embedder=embedder)
    return index, source


@pytest.fixture()
def base(tmp_path: Path, base_template: tuple[Path, Path]) -> tuple[Path, Path]:
    """A fresh copy of an index of 20 real records plus the seed; returns (index, jsonl of the 20)."""
    index, source = tmp_path / "index", tmp_path / "twenty.jsonl"
    shutil.copytree(base_template[0], index)
    shutil.copyfile(base_template[1], source)
    return index, source


def consistent(index: Path) -> None:
    """Every FAISS id has its passage row and vice versa, and vectors are the records' own."""
    snap = IndexStore(index).open()
    try:
        facts = snap.passages.consistency()
        assert facts.chunk_ids == set(snap.vectors.ids().tolist())
        assert facts.orphan_chunks == 0
        assert facts.bare_records == 0
        assert facts.lexical_rows == snap.manifest.records
        assert facts.sentence_records == snap.manifest.records  # every record has its sentence vectors
    finally:
        snap.close()


def test_rerun_on_unchanged_input_is_a_noop(base, shared: Path, embedder: Embedder) -> None:
    index, source = base
    snapshot = IndexStore(index).current_dir()
    report = build_index([source, shared / "seed" / f"{SEED_PMID}.xml"], index, embedder=embedder)
    assert report.noop and report.unchanged == 21 and report.chunks_embedded == 0
    assert IndexStore(index).current_dir() == snapshot  # no new snapshot written


def test_new_records_are_added_and_only_they_are_embedded(
    base, tmp_path: Path, pubmedqa_records: list[Record], embedder: Embedder
) -> None:
    index, _ = base
    before = IndexStore(index).manifest()
    more = write_jsonl(tmp_path / "more.jsonl", pubmedqa_records[20:25])
    report = build_index([more], index, embedder=embedder)
    assert (report.added, report.updated, report.unchanged, report.deleted) == (5, 0, 0, 0)
    after = IndexStore(index).manifest()
    assert after.records == before.records + 5
    assert report.chunks_embedded == after.chunks - before.chunks
    consistent(index)
    with Retriever(index, embedder=embedder) as r:
        assert r.search(IL6_QUESTION, k=1)[0].pmid == SEED_PMID  # old records still answer


def vectors_by_text(index: Path, pmid: str) -> dict[str, np.ndarray]:
    snap = IndexStore(index).open()
    try:
        hashes = passage_text_hashes(index, pmid)
        vectors = snap.vectors.vectors(list(hashes))
        return {h: vectors[i] for i, h in enumerate(hashes.values())}
    finally:
        snap.close()


def test_changed_record_is_re_embedded_and_unchanged_passages_reuse_vectors(
    base, tmp_path: Path, pubmedqa_records: list[Record], embedder: Embedder
) -> None:
    index, _ = base
    original = pubmedqa_records[3]
    old_vectors = vectors_by_text(index, original.pmid)
    sections = list(original.sections)
    sections[-1] = type(sections[-1])(sections[-1].label, sections[-1].text + " This sentence was added in a revision.")
    revised = Record(**{**original.__dict__, "sections": tuple(sections), "version": 2})
    report = build_index([write_jsonl(tmp_path / "rev.jsonl", [revised])], index, embedder=embedder)
    assert (report.added, report.updated) == (0, 1)
    assert report.chunks_reused >= 1 and report.chunks_embedded >= 1  # only the changed section's passages
    assert report.sentences_embedded == 1  # the added sentence; the others keep their vectors
    consistent(index)
    new_vectors = vectors_by_text(index, original.pmid)
    kept = set(old_vectors) & set(new_vectors)
    assert len(kept) == report.chunks_reused and set(new_vectors) - kept
    for h in kept:  # a reused vector is exactly the old one
        assert np.array_equal(old_vectors[h], new_vectors[h])
    with Retriever(index, embedder=embedder) as r:
        stored = r.snapshot.passages.record(original.pmid)
        assert stored is not None and stored.version == 2 and stored.abstract.endswith("added in a revision.")
        assert r.search("This sentence was added in a revision", k=1, mode="lexical")[0].pmid == original.pmid


def test_lexical_scores_after_updates_equal_a_fresh_build(
    base, tmp_path: Path, pubmedqa_records: list[Record], embedder: Embedder, shared: Path
) -> None:
    """The FTS5 table keeps no copy of the text, so a revised or removed record's terms are taken out by
    replaying its stored text: after a revision and a removal, every BM25 score equals a fresh build's of
    the same records, the old wording no longer matches, and FTS5's own integrity check passes."""
    index, _ = base
    original, removed = pubmedqa_records[3], pubmedqa_records[5]
    sections = list(original.sections)
    sections[0] = type(sections[0])(sections[0].label, "Zebrafish otoliths were counted. " + sections[0].text[40:])
    revised = Record(**{**original.__dict__, "sections": tuple(sections), "version": 2})
    build_index([write_jsonl(tmp_path / "rev.jsonl", [revised])], index, embedder=embedder)
    remove_records([removed.pmid], index, embedder=embedder)
    final = [revised if r.pmid == original.pmid else r for r in pubmedqa_records[:20] if r.pmid != removed.pmid]
    fresh = tmp_path / "fresh"
    seed = shared / "seed" / f"{SEED_PMID}.xml"
    build_index([write_jsonl(tmp_path / "final.jsonl", final), seed], fresh, embedder=embedder)
    old_words = original.sections[0].text[:40]
    questions = ["zebrafish otoliths", old_words, removed.title or removed.abstract[:60], IL6_QUESTION]
    with Retriever(index, embedder=embedder) as updated, Retriever(fresh, embedder=embedder) as rebuilt:
        for q in questions:
            a, b = updated.snapshot.lexical.search(q, 30), rebuilt.snapshot.lexical.search(q, 30)
            assert a.keys() == b.keys() and all(abs(a[p] - b[p]) <= 1e-9 * abs(b[p]) for p in b), q
        assert original.pmid in updated.snapshot.lexical.search("zebrafish otoliths", 5)
        assert removed.pmid not in updated.snapshot.lexical.search(removed.title or removed.abstract[:60], 30)
    db = sqlite3.connect(IndexStore(index).current_dir() / "passages.sqlite")
    try:
        db.execute("INSERT INTO lexical(lexical) VALUES ('integrity-check')")  # raises on a corrupt index
    finally:
        db.close()
    consistent(index)


def test_delete_citation_in_an_update_file_removes_records(base, shared: Path, embedder: Embedder) -> None:
    index, _ = base
    report = build_index([shared / "samples" / "update-with-deletions.xml"], index, embedder=embedder)
    # the update file revises the seed (version 2) and withdraws two PubMedQA records
    assert report.updated == 1 and report.deleted == 2 and report.not_found == []
    consistent(index)
    with Retriever(index, embedder=embedder) as r:
        assert r.snapshot.passages.record("21645374") is None and r.snapshot.passages.record("16418930") is None
        assert r.snapshot.passages.record(SEED_PMID).version == 2  # type: ignore[union-attr]
        pmids = {h.pmid for h in r.search("lace plant programmed cell death mitochondria", k=30)}
        assert "21645374" not in pmids


def test_remove_command(base, embedder: Embedder) -> None:
    index, _ = base
    before = IndexStore(index).manifest()
    result = CliRunner().invoke(app, ["remove", SEED_PMID, "99999999", "--index", str(index), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["deleted"] == 1 and report["not_found"] == ["99999999"] and report["chunks_embedded"] == 0
    assert IndexStore(index).manifest().records == before.records - 1
    consistent(index)
    with Retriever(index, embedder=embedder) as r:
        assert SEED_PMID not in {h.pmid for h in r.search(IL6_QUESTION, k=10)}
    bad = CliRunner().invoke(app, ["remove", "abc", "--index", str(index)])
    assert bad.exit_code == 1 and "not a PMID" in bad.stderr
    with pytest.raises(QAError, match="qa build"):
        remove_records(["1"], index.parent / "nowhere")


def test_full_rebuild_drops_what_is_not_in_the_sources(base, shared: Path, embedder: Embedder) -> None:
    index, _ = base
    report = build_index([shared / "seed" / f"{SEED_PMID}.xml"], index, embedder=embedder, full=True)
    assert report.full and report.records_indexed == 1
    consistent(index)


def test_changing_settings_needs_full(base, shared: Path, embedder: Embedder) -> None:
    index, _ = base
    with pytest.raises(QAError, match="--full"):
        build_index([shared / "seed" / f"{SEED_PMID}.xml"], index, embedder=embedder, chunk_tokens=64)
    report = build_index([shared / "seed" / f"{SEED_PMID}.xml"], index, embedder=embedder, chunk_tokens=64, full=True)
    assert IndexStore(index).manifest().chunking["chunk_tokens"] == 64 and report.records_indexed == 1


def test_interrupted_update_keeps_the_previous_index(
    base, tmp_path: Path, pubmedqa_records: list[Record], embedder: Embedder
) -> None:
    index, _ = base
    snapshot = IndexStore(index).current_dir()
    with Retriever(index, embedder=embedder) as r:
        before = [(h.pmid, h.score) for h in r.search(IL6_QUESTION, k=5)]

    def interrupt(stage: str, done: int, total: int | None) -> None:
        # Ctrl-C once the records are staged and the new snapshot is half made, as embedding starts
        # (a kill in the middle of embedding is the SIGKILL test's "embed" fault point)
        if stage == "embed":
            raise KeyboardInterrupt

    more = write_jsonl(tmp_path / "more.jsonl", pubmedqa_records[20:600])
    with pytest.raises(KeyboardInterrupt):
        build_index([more], index, embedder=embedder, progress=interrupt)
    assert IndexStore(index).current_dir() == snapshot
    with Retriever(index, embedder=embedder) as r:
        assert [(h.pmid, h.score) for h in r.search(IL6_QUESTION, k=5)] == before
    consistent(index)


def test_ids_stay_unique_across_updates(
    base, tmp_path: Path, pubmedqa_records: list[Record], embedder: Embedder
) -> None:
    index, _ = base
    remove_records([pubmedqa_records[0].pmid], index, embedder=embedder)
    build_index([write_jsonl(tmp_path / "a.jsonl", pubmedqa_records[30:33])], index, embedder=embedder)
    snap = IndexStore(index).open()
    try:
        ids = snap.vectors.ids()
        assert len(set(ids.tolist())) == len(ids)
    finally:
        snap.close()
    consistent(index)


def test_index_type_follows_the_size() -> None:
    from qa.store import IVF_THRESHOLD, resolve_index_type

    assert resolve_index_type("auto", IVF_THRESHOLD - 1) == "flat"
    assert resolve_index_type("auto", IVF_THRESHOLD) == "ivf-sq8"
    assert resolve_index_type("flat", 10**7) == "flat"
    with pytest.raises(QAError):
        resolve_index_type("hnsw", 10)


def test_ivf_index_builds_updates_and_answers(
    tmp_path: Path, pubmedqa_records: list[Record], embedder: Embedder, shared: Path
) -> None:
    source = write_jsonl(tmp_path / "forty.jsonl", pubmedqa_records[:40])
    index = tmp_path / "ivf"
    build_index([source, shared / "seed" / f"{SEED_PMID}.xml"], index, embedder=embedder, index_type="ivf-sq8")
    assert IndexStore(index).manifest().index_type == "ivf-sq8"
    consistent(index)
    with Retriever(index, embedder=embedder) as r:
        assert r.search(IL6_QUESTION, k=3)[0].pmid == SEED_PMID
        filtered = r.search(IL6_QUESTION, k=3, mode="dense", filters=Filters(journal="clinical"))
        assert [h.pmid for h in filtered] == [SEED_PMID]
    # an update keeps the trained IVF index and stays in sync
    report = build_index([write_jsonl(tmp_path / "more.jsonl", pubmedqa_records[40:45])], index, embedder=embedder)
    assert report.added == 5 and IndexStore(index).manifest().index_type == "ivf-sq8"
    remove_records([pubmedqa_records[0].pmid], index, embedder=embedder)
    consistent(index)
    # and converting back to exact search is a rebuild of the vector index only
    report = build_index([tmp_path / "more.jsonl"], index, embedder=embedder, index_type="flat")
    assert report.chunks_embedded == 0 and IndexStore(index).manifest().index_type == "flat"
    consistent(index)


def test_ivf_pq_index_answers_updates_and_verifies(
    tmp_path: Path, small_index: Path, pubmedqa_records: list[Record], embedder: Embedder
) -> None:
    index = tmp_path / "pq"
    shutil.copytree(small_index, index)
    more = write_jsonl(tmp_path / "more.jsonl", pubmedqa_records[300:303])
    report = build_index([more], index, embedder=embedder, index_type="ivf-pq")  # converts, embeds only the 3
    assert report.added == 3 and IndexStore(index).manifest().index_type == "ivf-pq"
    consistent(index)
    assert verify_index(index).ok
    with Retriever(index, embedder=embedder) as r:
        assert r.search(IL6_QUESTION, k=3)[0].pmid == SEED_PMID
        assert f"[{SEED_PMID}]" in r.ask(IL6_QUESTION, k=3).answer.text
    remove_records([pubmedqa_records[300].pmid], index, embedder=embedder)
    assert IndexStore(index).manifest().index_type == "ivf-pq"  # updates keep the trained codes
    consistent(index)


def test_input_with_nothing_to_index_is_a_noop_on_an_existing_index(base, tmp_path: Path, embedder: Embedder) -> None:
    index, _ = base
    empty = tmp_path / "noabstract.jsonl"
    empty.write_text('{"pmid": "5", "title": "No abstract"}\n')
    report = build_index([empty], index, embedder=embedder)
    assert report.noop and report.skipped == {"no abstract": 1}


def test_a_deletion_of_a_record_read_in_the_same_build_counts_once(
    base, tmp_path: Path, pubmedqa_records: list[Record], embedder: Embedder
) -> None:
    index, _ = base
    pmid = pubmedqa_records[0].pmid  # indexed, then re-read and withdrawn in one build
    update = tmp_path / "update.xml"
    update.write_text(f"<PubmedArticleSet><DeleteCitation><PMID>{pmid}</PMID></DeleteCitation></PubmedArticleSet>")
    again = write_jsonl(tmp_path / "again.jsonl", [pubmedqa_records[0]])
    report = build_index([again, update], index, embedder=embedder)
    assert report.deleted == 1
    consistent(index)


def test_filtered_search_on_ivf_is_exact(tmp_path: Path, pubmedqa_records: list[Record], embedder: Embedder) -> None:
    source = write_jsonl(tmp_path / "sixty.jsonl", pubmedqa_records[:60])
    index = tmp_path / "ivf"
    build_index([source], index, embedder=embedder, index_type="ivf-sq8")
    year = pubmedqa_records[7].year
    expected = {r.pmid for r in pubmedqa_records[:60] if r.year == year}
    with Retriever(index, embedder=embedder) as r:
        r.snapshot.vectors.nprobe = 1  # a tiny probe would miss most lists
        hits = r.search("patients", k=10, mode="dense", filters=Filters(year_from=year, year_to=year))
    assert {h.pmid for h in hits} == expected
