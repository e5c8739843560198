"""The store on its own: snapshots, vectors, BM25, filters and the index folder, with no model loaded.

Vectors here are small random unit vectors and passages are cut by hand, so
these tests run in a moment and pin the store's contract apart from the
encoder: what is written is what is read, by id, by PMID and by filter.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa.embed import Chunk
from qa.errors import IndexStoreError
from qa.query import Filters
from qa.records import Record, Section
from qa.store import IndexStore, Manifest, VectorIndex, describe, resolve_index_type
from qa.store.layout import IndexLayout

DIM = 8
RECORDS = [
    Record("101", (Section("RESULTS", "Tocilizumab blocks IL-6 signalling. Siltuximab binds IL-6."),),
           title="IL-6 blockade", journal="Ärztliche Praxis", year=2015, mesh=("Interleukin-6", "Ödema, Cerebral")),
    Record("202", (Section(None, "Statins lowered atrial fibrillation after bypass surgery."),),
           title="Statins and AF", journal="The Lancet", year=2011, mesh=("Atrial Fibrillation",)),
    Record("303", (Section("CONCLUSIONS", "Vitamin D did not prevent fractures in older adults."),),
           title=None, journal="BMJ", year=2019, mesh=("Vitamin D", "Fractures, Bone")),
]  # fmt: skip


def manifest() -> Manifest:
    return Manifest(model="test", dimension=DIM, max_seq_length=16, records=0, chunks=0, backend="torch",
                    chunking={"chunk_tokens": 128, "overlap_sentences": 1})  # fmt: skip


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def chunks_of(record: Record) -> list[Chunk]:
    """One passage per sentence, offsets into the abstract, as the chunker would report them."""
    out, start = [], 0
    abstract = record.abstract
    for ordinal, sentence in enumerate(s + "." for s in abstract.rstrip(".").split(". ")):
        begin = abstract.index(sentence, start)
        end = begin + len(sentence)
        out.append(Chunk(record.pmid, ordinal, record.sections[0].label, begin, end, sentence, sentence,
                         ((begin, end),), 10))  # fmt: skip
        start = end
    return out


def write(index: Path, records: list[Record], base: bool = False) -> dict[str, list[np.ndarray]]:
    """Write a snapshot of ``records`` (on top of the live one if ``base``); returns the vectors used."""
    store = IndexStore(index)
    lock = store.lock()
    snapshot = store.open() if base else None
    try:
        writer = store.begin(dimension=DIM, base=snapshot)
        vectors: dict[str, list[np.ndarray]] = {}
        for record in records:
            writer.put_record(record)
            chunks = chunks_of(record)
            vectors[record.pmid] = [unit(int(record.pmid) * 10 + c.ordinal) for c in chunks]
            writer.add_chunks(chunks, np.stack(vectors[record.pmid]))
        store.commit(writer, manifest())
    finally:
        if snapshot is not None:
            snapshot.close()
        lock.release()
    return vectors


@pytest.fixture()
def index(tmp_path: Path) -> tuple[Path, dict[str, list[np.ndarray]]]:
    path = tmp_path / "index"
    return path, write(path, RECORDS)


def test_what_is_written_is_read_back(index) -> None:  # type: ignore[no-untyped-def]
    path, vectors = index
    snapshot = IndexStore(path).open()
    try:
        assert snapshot.passages.pmids() == {"101", "202", "303"}
        assert snapshot.passages.record("101") == RECORDS[0]
        assert snapshot.manifest.records == 3 and snapshot.vectors.count == snapshot.manifest.chunks == 4
        # the nearest passage to a stored vector is that passage, with cosine 1
        found = snapshot.dense_search(vectors["202"][0], 1)
        ((cid, (pmid, score)),) = found.items()
        assert pmid == "202" and score == pytest.approx(1.0, abs=1e-5)
        stored = snapshot.passages.chunks([cid])[cid]
        assert (
            stored.text == "Statins lowered atrial fibrillation after bypass surgery."
            and stored.title == "Statins and AF"
        )
        facts = snapshot.passages.consistency()
        assert facts.chunk_ids == set(snapshot.vectors.ids().tolist()) and facts.integrity == "ok"
        assert (facts.orphan_chunks, facts.bare_records, facts.lexical_rows) == (0, 0, 3)
    finally:
        snapshot.close()


def test_bm25_finds_exact_terms_and_respects_allowed_pmids(index) -> None:  # type: ignore[no-untyped-def]
    path, _ = index
    snapshot = IndexStore(path).open()
    try:
        scores = snapshot.lexical.search("Which IL6 inhibitors exist?", 10)
        assert list(scores) == ["101"]  # "IL-6" in the text matches "IL6" in the question
        assert snapshot.lexical.search("IL-6", 10, allowed={202}) == {}
        assert snapshot.lexical.search("what is the", 10) == {}  # stopwords only: nothing to search
        ceiling = snapshot.lexical.ceiling("IL-6 tocilizumab")
        assert ceiling > scores["101"] > 0  # a record with every term would approach the ceiling
    finally:
        snapshot.close()


def test_filters_select_records_in_sql(index) -> None:  # type: ignore[no-untyped-def]
    path, _ = index
    snapshot = IndexStore(path).open()
    try:
        pmids = snapshot.passages.filter_pmids
        assert set(pmids(Filters(year_from=2012))) == {"101", "303"}
        assert set(pmids(Filters(year_to=2011))) == {"202"}
        assert pmids(Filters(journal="lancet")) == ["202"]
        assert pmids(Filters(mesh=("atrial fibrillation",))) == ["202"]
        assert pmids(Filters(mesh="Vitamin D")) == ["303"]  # a bare string is one descriptor, not its letters
        # "contains" means contains: LIKE's wildcards are plain characters here
        assert pmids(Filters(journal="%")) == [] and pmids(Filters(journal="_")) == []
        assert pmids(Filters(journal="e_L")) == []
        # Unicode case folding on both sides, not SQLite's ASCII-only lower()
        assert pmids(Filters(journal="ärztliche praxis")) == ["101"] == pmids(Filters(journal="ÄRZTLICHE"))
        assert pmids(Filters(mesh="ödema, cerebral")) == ["101"] == pmids(Filters(mesh="ÖDEMA, CEREBRAL"))
    finally:
        snapshot.close()


def test_update_on_a_base_keeps_old_records_and_removes_deleted(index) -> None:  # type: ignore[no-untyped-def]
    path, _ = index
    extra = Record("404", (Section(None, "Aspirin reduced recurrent stroke."),), year=2020)
    store = IndexStore(path)
    first = store.current_dir()
    write(path, [extra], base=True)
    assert store.current_dir() != first and not first.exists()  # the old snapshot is gone once replaced
    lock = store.lock()
    snapshot = store.open()
    try:
        writer = store.begin(dimension=DIM, base=snapshot)
        writer.stage_deletions(["202", "999"])
        plan = writer.plan()
        assert plan.deleted == ["202"] and plan.not_found == ["999"]
        assert writer.delete_records(plan.deleted) == 1
        store.commit(writer, manifest())
    finally:
        snapshot.close()
        lock.release()
    assert describe(path)["records"] == 3
    snapshot = store.open()
    try:
        assert snapshot.passages.pmids() == {"101", "303", "404"}
        assert "202" not in snapshot.lexical.search("statins", 10)
        assert snapshot.passages.consistency().chunk_ids == set(snapshot.vectors.ids().tolist())
    finally:
        snapshot.close()


def test_ivf_conversion_keeps_every_id_and_vector() -> None:
    flat = VectorIndex.empty(DIM)
    ids = np.arange(2000, dtype=np.int64) * 3
    vectors = np.stack([unit(i) for i in range(2000)])
    flat.add(ids, vectors)
    ivf = flat.converted("ivf-sq8")
    assert ivf.kind == "ivf-sq8" and sorted(ivf.ids().tolist()) == ids.tolist()
    assert np.allclose(ivf.vectors([ids[5]])[0], vectors[5], atol=0.02)  # 8-bit codes: close, not equal
    ivf.nprobe = ivf.lists  # search every list: as exact as the codes allow
    assert ivf.search(vectors[7], 1)[0][0] == ids[7]
    assert ivf.converted("flat").kind == "flat"


def test_ivf_pq_keeps_every_id_finds_near_vectors_and_removes() -> None:
    dim = 64  # PQ splits the dimensions into 64 one-byte codes, as it does for the model's 384
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(50, dim)).astype(np.float32)
    vectors = centers[rng.integers(0, 50, 3000)] + rng.normal(0, 0.05, (3000, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(3000, dtype=np.int64) * 7
    flat = VectorIndex.empty(dim)
    flat.add(ids, vectors)
    pq = flat.converted("ivf-pq")
    assert pq.kind == "ivf-pq" and sorted(pq.ids().tolist()) == ids.tolist()
    assert pq.code_bytes == 64
    assert float(pq.vectors([ids[5]])[0] @ vectors[5]) > 0.95  # lossy codes, but the same direction
    pq.nprobe = pq.lists
    found = [i for i, _ in pq.search(vectors[7], 10)]
    assert ids[7] in found
    pq.remove([int(ids[7])])
    assert ids[7] not in [i for i, _ in pq.search(vectors[7], 10)] and pq.count == 2999
    with pytest.raises(IndexStoreError, match="at least 256"):
        _tiny_pq(dim)


def _tiny_pq(dim: int) -> None:
    tiny = VectorIndex.empty(dim)
    tiny.add(np.arange(100, dtype=np.int64), np.eye(dim, dtype=np.float32)[np.arange(100) % dim])
    tiny.converted("ivf-pq")


def test_auto_index_type_grows_with_the_index_and_never_steps_back() -> None:
    assert resolve_index_type("auto", 99_999) == "flat"
    assert resolve_index_type("auto", 100_000) == "ivf-sq8"
    assert resolve_index_type("auto", 10_000_000) == "ivf-pq"
    assert resolve_index_type("auto", 9_999_000, current="ivf-pq") == "ivf-pq"  # shrinking a little keeps PQ
    assert resolve_index_type("flat", 20_000_000, current="ivf-pq") == "flat"  # an explicit type converts
    with pytest.raises(IndexStoreError, match="unknown index type"):
        resolve_index_type("hnsw", 10)


def test_the_index_folder_refuses_what_is_not_an_index(tmp_path: Path) -> None:
    a_file = tmp_path / "README.md"
    a_file.write_text("not an index")
    with pytest.raises(IndexStoreError, match="is a file, not an index folder"):
        IndexStore(a_file).lock()
    with pytest.raises(IndexStoreError, match="is a file, not an index folder"):
        IndexStore(a_file).current_dir()
    with pytest.raises(IndexStoreError, match="no index at"):
        IndexStore(tmp_path / "missing").current_dir()
    folder = tmp_path / "idx"
    folder.mkdir()
    for pointer in ("../etc", "snap-../../x", "x" * 300, "\udcff"):
        (folder / "CURRENT").write_text(pointer, encoding="utf-8", errors="surrogateescape")
        with pytest.raises(IndexStoreError, match="corrupt pointer"):
            IndexStore(folder).current_dir()


def test_layout_names_every_path_in_one_place(tmp_path: Path) -> None:
    layout = IndexLayout(tmp_path)
    assert layout.current == tmp_path / "CURRENT" and layout.lock == tmp_path / ".lock"
    assert layout.new_snapshot().name.startswith("snap-") and layout.new_build().name.startswith(".build-")
    assert layout.encoder_dir_for(None) == tmp_path / "models" / "all-MiniLM-L6-v2-onnx-int8"
    assert layout.fetch_file("abc").parent == tmp_path / "fetch"


@pytest.mark.parametrize(
    "change",
    [
        {"files": []},
        {"chunking": {"chunk_tokens": "128", "overlap_sentences": 1}},
        {"sources": "a.xml"},
        {"dimension": -1},
        {"records": True},
        {"nprobe": 10**9},
        {"backend": "tensorflow"},
        {"encoder_files": {"model.onnx": "not a checksum"}},
        {"files": {"vectors.faiss": {"bytes": -5, "sha256": "0" * 64}}},
    ],
)
def test_every_manifest_field_is_checked_by_type_and_range(index, change: dict) -> None:  # type: ignore[no-untyped-def]
    path, _ = index
    manifest_file = IndexStore(path).current_dir() / "manifest.json"
    data = json.loads(manifest_file.read_text())
    manifest_file.write_text(json.dumps({**data, **change}))
    with pytest.raises(IndexStoreError, match=f"invalid manifest \\({next(iter(change))} is"):
        IndexStore(path).open()

