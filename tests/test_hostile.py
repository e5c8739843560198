"""Hostile and broken input: clear errors, --skip-bad, and property-based tests of parse -> chunk -> offsets."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from qa import Retriever, build_index
from qa.embed import Chunker, ChunkSettings, Embedder, resolve_model_path
from qa.errors import IngestError
from qa.ingest import read_source
from qa.records import Bad, Record

from .conftest import IL6_QUESTION, SEED_PMID


def test_skip_bad_indexes_the_good_and_lists_the_bad(
    tmp_path: Path, shared: Path, embedder: Embedder, pubmedqa_records: list[Record]
) -> None:
    good = [json.dumps({"pmid": r.pmid, "abstract": r.abstract}) for r in pubmedqa_records[-3:]]  # not in cut.xml
    jsonl = tmp_path / "mixed.jsonl"
    jsonl.write_text("\n".join([good[0], "{not json", good[1], '{"pmid": "x1", "abstract": "a"}',
                                json.dumps({"pmid": "77", "abstract": "word " * 30_000}), good[2]]) + "\n")  # fmt: skip
    xml = gzip.decompress((shared / "pubmedqa" / "pubmed-1000.xml.gz").read_bytes())
    cut = tmp_path / "cut.xml"
    cut.write_bytes(xml[: len(xml) // 100])  # breaks inside the 11th-or-so record
    nul = tmp_path / "nul.xml"
    nul.write_bytes(b"<PubmedArticleSet>\x00</PubmedArticleSet>")
    empty = tmp_path / "empty.xml"
    empty.write_bytes(b"")
    sources = [jsonl, cut, nul, empty, shared / "seed" / f"{SEED_PMID}.xml"]
    with pytest.raises(IngestError):
        build_index(sources, tmp_path / "strict", embedder=embedder)
    assert not (tmp_path / "strict" / "CURRENT").exists()
    report = build_index(sources, tmp_path / "tolerant", embedder=embedder, skip_bad=True)
    bad = "\n".join(report.bad)
    assert len(report.bad) == 6, bad
    assert "mixed.jsonl:2: invalid JSON" in bad and "mixed.jsonl:4" in bad and "mixed.jsonl:5" in bad
    assert "not a PubMed abstract" in bad and "cut.xml: malformed XML" in bad
    assert "nul.xml" in bad and "empty.xml: empty file" in bad
    kept_from_cut = [r for r in read_source(cut, skip_bad=True) if isinstance(r, Record)]
    assert len(kept_from_cut) >= 5
    assert report.records_indexed == 3 + len(kept_from_cut) + 1
    with Retriever(tmp_path / "tolerant", embedder=embedder) as r:
        assert r.search(IL6_QUESTION, k=1)[0].pmid == SEED_PMID


def test_huge_abstract_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    path.write_text(json.dumps({"pmid": "1", "abstract": "A" * 50_000_000}) + "\n")  # one 50 MB abstract
    with pytest.raises(IngestError, match="50,000,000 characters"):
        list(read_source(path))
    events = list(read_source(path, skip_bad=True))
    assert len(events) == 1 and isinstance(events[0], Bad)
    # an unterminated string of escaped quotes: the nesting check rescanned it from every quote (hours for this)
    path.write_text('{"pmid": "1", "abstract": "' + '\\"' * 200_000 + "\n")
    with pytest.raises(IngestError, match="invalid JSON"):
        list(read_source(path))


def test_invalid_utf8_inside_xml(tmp_path: Path) -> None:
    path = tmp_path / "latin1.xml"
    path.write_bytes(b"<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article><Abstract>"
                     b"<AbstractText>caf\xe9</AbstractText></Abstract></Article></MedlineCitation></PubmedArticle>"
                     b"</PubmedArticleSet>")  # fmt: skip
    with pytest.raises(IngestError, match="latin1.xml"):
        list(read_source(path))


# ------------------------------------------------------------------ property-based

_TOKENIZER = Tokenizer.from_file(f"{resolve_model_path(None)}/tokenizer.json")
CHUNKER = Chunker(_TOKENIZER, 256, ChunkSettings(chunk_tokens=64, overlap_sentences=1))

words = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
sentences = st.lists(words, min_size=1, max_size=20).map(lambda ws: " ".join(ws) + ".")
markup = st.sampled_from(["i", "b", "sup", "sub", "u"])


@st.composite
def abstract_text_xml(draw) -> str:  # type: ignore[no-untyped-def]
    parts = []
    for sentence in draw(st.lists(sentences, min_size=1, max_size=6)):
        if draw(st.booleans()):
            tag = draw(markup)
            parts.append(f"<{tag}>{escape(sentence)}</{tag}>")
        else:
            parts.append(escape(sentence))
    return " ".join(parts)


@st.composite
def pubmed_xml(draw) -> bytes:  # type: ignore[no-untyped-def]
    records = []
    for pmid in draw(st.lists(st.integers(1, 10**8), min_size=1, max_size=4, unique=True)):
        sections = []
        for _ in range(draw(st.integers(0, 4))):
            label = draw(st.one_of(st.none(), words))
            attr = f' Label="{escape(label, {chr(34): "&quot;"})}"' if label else ""
            sections.append(f"<AbstractText{attr}>{draw(abstract_text_xml())}</AbstractText>")
        title = draw(st.one_of(st.none(), abstract_text_xml()))
        year = draw(st.one_of(st.none(), st.integers(1800, 2030)))
        records.append(
            f'<PubmedArticle><MedlineCitation><PMID Version="1">{pmid}</PMID><Article>'
            + (
                f"<Journal><JournalIssue><PubDate><Year>{year}</Year></PubDate></JournalIssue></Journal>"
                if year
                else ""
            )
            + (f"<ArticleTitle>{title}</ArticleTitle>" if title else "")
            + (f"<Abstract>{''.join(sections)}</Abstract>" if sections else "")
            + "</Article></MedlineCitation></PubmedArticle>"
        )
    return ("<PubmedArticleSet>" + "".join(records) + "</PubmedArticleSet>").encode("utf-8")


@st.composite
def medline_text(draw) -> str:  # type: ignore[no-untyped-def]
    out = []
    for pmid in draw(st.lists(st.integers(1, 10**8), min_size=1, max_size=3, unique=True)):
        body = " ".join(draw(st.lists(sentences, min_size=0, max_size=5)))
        lines = [f"PMID- {pmid}", "TI  - " + draw(sentences)]
        if body.strip():
            wrapped = [body[i : i + 70] for i in range(0, len(body), 70)]
            lines.append("AB  - " + wrapped[0])
            lines += ["      " + w for w in wrapped[1:]]
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def check_roundtrip(events: list) -> int:  # type: ignore[type-arg]
    """Offsets slice back exactly; returns how many records were checked."""
    checked = 0
    for event in events:
        if not isinstance(event, Record):
            continue
        checked += 1
        abstract = event.abstract
        for (_, start, end), section in zip(event.section_spans, event.sections):
            assert abstract[start:end] == section.text
        for chunk in CHUNKER.chunk(event):
            assert abstract[chunk.start : chunk.end] == chunk.text
            assert chunk.n_tokens <= 256
            for s, e in chunk.sentences:
                assert chunk.start <= s <= e <= chunk.end
    return checked


def run_generated(tmp_path: Path, name: str, payload: bytes, outcomes: Counter[str]) -> None:
    """Parse one generated file: records (their offsets checked) or the project's own error, nothing else."""
    path = tmp_path / name
    path.write_bytes(payload)
    try:
        events = list(read_source(path))
    except IngestError as exc:
        assert "\n" not in str(exc)
        outcomes["refused"] += 1
        return
    outcomes["records checked"] += check_roundtrip(events)
    outcomes["files with records" if any(isinstance(e, Record) for e in events) else "files without records"] += 1


def assert_mostly_valid(outcomes: Counter[str]) -> None:
    # A generator that only made invalid input would pass the round trip vacuously; make sure it does not.
    files = outcomes["refused"] + outcomes["files with records"] + outcomes["files without records"]
    assert outcomes["files with records"] >= 0.4 * files, outcomes
    assert outcomes["records checked"] >= 0.6 * files, outcomes


def test_generated_pubmed_xml_parses_and_chunk_offsets_round_trip(tmp_path: Path) -> None:
    outcomes: Counter[str] = Counter()

    @settings(max_examples=60, deadline=None, derandomize=True)  # the same examples each run: a stable share
    @given(data=pubmed_xml())
    def run(data: bytes) -> None:
        run_generated(tmp_path, "gen.xml", data, outcomes)

    run()
    assert_mostly_valid(outcomes)


def test_generated_medline_parses_and_chunk_offsets_round_trip(tmp_path: Path) -> None:
    outcomes: Counter[str] = Counter()

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(text=medline_text())
    def run(text: str) -> None:
        run_generated(tmp_path, "gen.nbib", text.encode("utf-8"), outcomes)

    run()
    assert_mostly_valid(outcomes)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_give_records_or_our_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "junk.xml"
    path.write_bytes(b"<PubmedArticleSet>" + data)
    try:
        list(read_source(path))
    except IngestError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize(
    "obj",
    [
        {"pmid": "1", "abstract": "x", "version": "abc"},
        {"pmid": "1", "abstract": "x", "year": 1e400},
        {"pmid": "1", "abstract": "x", "mesh": 5},
        {"pmid": "1", "abstract": "x", "year": 10**30},
        {"pmid": "1", "sections": [{"label": 5, "text": "x"}]},
        {"pmid": "1", "sections": "not a list"},
        {"pmid": "²", "abstract": "x"},
        {"pmid": ["1"], "abstract": "x"},
    ],
)
def test_odd_jsonl_fields_give_records_or_our_error(tmp_path: Path, obj: dict) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps(obj) + "\n")
    try:
        events = list(read_source(path))
    except IngestError as exc:
        assert "odd.jsonl:1" in str(exc)
        return
    record = events[0]
    assert isinstance(record, Record) and record.year is None or record.year < 3000  # type: ignore[union-attr]


def test_pmids_are_normalised_and_a_bare_article_root_parses(tmp_path: Path, shared: Path) -> None:
    path = tmp_path / "zeros.jsonl"
    path.write_text(json.dumps({"pmid": "0025589616", "abstract": "x"}) + "\n")
    assert [r.pmid for r in read_source(path)] == ["25589616"]  # type: ignore[union-attr]
    xml = (shared / "seed" / f"{SEED_PMID}.xml").read_text()
    one = tmp_path / "one.xml"
    one.write_text(xml[xml.index("<PubmedArticle>") : xml.index("</PubmedArticle>") + len("</PubmedArticle>")])
    assert [r.pmid for r in read_source(one)] == [SEED_PMID]  # type: ignore[union-attr]
