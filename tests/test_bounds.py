"""Bounds: decompression bombs, oversized fields, huge PMIDs and lone surrogates are refused in one line.

Each bomb is parsed in a child process whose peak memory is read with getrusage after it exits,
from a fresh measuring process so that other tests' children cannot inflate the figure.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from qa import build_index
from qa.embed import Chunker, ChunkSettings, Embedder, resolve_model_path
from qa.errors import IngestError
from qa.ingest import read_source
from qa.records import (
    MAX_MESH_TERMS,
    Bad,
    Record,
    Section,
    normalize_pmid,
    record_from_dict,
    record_to_dict,
)

from .conftest import REPO, SEED_PMID
from .helpers import ingest_error

BLOCK = 16 * 2**20  # one gzip member of 16 MiB of "a" compresses to ~16 kB
PEAK_LIMIT_MB = 500


def article(pmid: str = "1", abstract: str = "An abstract.", extra: str = "", version: str = "1") -> str:
    """One <PubmedArticle>; ``extra`` goes inside <Article>, before the abstract."""
    return (
        f'<PubmedArticle><MedlineCitation><PMID Version="{version}">{pmid}</PMID><Article>{extra}'
        f"<Abstract><AbstractText>{abstract}</AbstractText></Abstract></Article></MedlineCitation></PubmedArticle>"
    )


def xml_file(path: Path, *articles: str) -> Path:
    path.write_text("<PubmedArticleSet>" + "".join(articles or (article(),)) + "</PubmedArticleSet>")
    return path


def write_bomb(path: Path, head: bytes, fill_bytes: int, tail: bytes = b"") -> Path:
    """A gzip of ``head + b"a" * fill_bytes + tail`` written member by member: ~1 kB per MB expanded."""
    member = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = member.compress(b"a" * BLOCK) + member.flush()
    with open(path, "wb") as fh:
        fh.write(gzip.compress(head))
        for _ in range(fill_bytes // BLOCK):
            fh.write(block)
        fh.write(gzip.compress(tail))
    return path


_CHILD = """
import sys
from qa.errors import IngestError
from qa.ingest import read_source
events = []
try:
    events = [type(e).__name__ for e in read_source(sys.argv[1], skip_bad=sys.argv[2] == "skip")]
except IngestError as exc:
    print("REFUSED", exc)
print("EVENTS", *events)
"""

_MEASURE = """
import json, resource, subprocess, sys
proc = subprocess.run([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], capture_output=True, text=True,
                      preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30)))
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr[-2000:], "peak_mb": peak}))
"""


def parse_in_child(path: Path, skip_bad: bool = False) -> tuple[list[str], float]:
    """Output lines of a child that parses ``path``, and its peak memory in MB (capped at 3 GiB of address space)."""
    args = [sys.executable, "-c", _MEASURE, _CHILD, str(path), "skip" if skip_bad else "strict"]
    result = json.loads(subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True, timeout=300).stdout)
    assert result["rc"] == 0, result["err"]
    print(f"{path.name}: peak {result['peak_mb']:.0f} MB")  # shown with pytest -s
    return result["out"].splitlines(), result["peak_mb"]


BOMBS = {
    "giant-abstract.xml.gz": (
        "<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article><Abstract><AbstractText>",
        "</AbstractText></Abstract></Article></MedlineCitation></PubmedArticle></PubmedArticleSet>",
    ),
    "giant-line.jsonl.gz": ('{"pmid": "1", "abstract": "', '"}\n'),
    "giant-line.nbib.gz": ("PMID- 1\nAB  - ", "\n"),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_gzip_bomb_is_refused_in_one_line_with_bounded_memory(tmp_path: Path, name: str) -> None:
    head, tail = BOMBS[name]
    bomb = write_bomb(tmp_path / name, head.encode(), 3 * 2**30, tail.encode())
    assert bomb.stat().st_size < 4 * 2**20  # 3 MB on disk, 3 GB expanded
    lines, peak = parse_in_child(bomb)
    assert lines[0].startswith("REFUSED") and str(bomb) in lines[0], lines
    assert len(lines) == 2 and lines[1] == "EVENTS", lines  # the message is one line
    assert "over 16,777,216 bytes" in lines[0] or "over 67,108,864 bytes" in lines[0], lines[0]
    assert peak < PEAK_LIMIT_MB


def test_oversized_jsonl_line_is_skipped_and_the_next_line_read(tmp_path: Path) -> None:
    good = json.dumps({"pmid": "2", "abstract": "Fine."}) + "\n"
    bomb = write_bomb(tmp_path / "long.jsonl.gz", b'{"pmid": "1", "abstract": "', 200 * 2**20, b'"}\n' + good.encode())
    lines, peak = parse_in_child(bomb, skip_bad=True)
    assert lines == ["EVENTS Bad Record"], lines
    assert peak < PEAK_LIMIT_MB
    [bad, record] = list(read_source(bomb, skip_bad=True))
    assert isinstance(bad, Bad) and f"{bomb}:1: line over" in bad.message and "\n" not in bad.message
    assert isinstance(record, Record) and record.pmid == "2"


def test_small_line_limit_skips_only_that_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("qa.ingest.files.MAX_JSONL_LINE_BYTES", 100)
    path = tmp_path / "lines.jsonl"
    lines = [{"pmid": "1", "abstract": "a"}, {"pmid": "2", "abstract": "b" * 500}, {"pmid": "3", "abstract": "c"}]
    path.write_text("".join(json.dumps(obj) + "\r\n" for obj in lines))
    events = list(read_source(path, skip_bad=True))
    assert [type(e).__name__ for e in events] == ["Record", "Bad", "Record"]
    assert f"{path}:2: line over 100 bytes" in events[1].message  # type: ignore[union-attr]
    with pytest.raises(IngestError, match=r"lines\.jsonl:2: line over"):
        list(read_source(path))


def test_the_byte_cap_is_per_record_not_per_file(tmp_path: Path) -> None:
    padding = "<!--" + "x" * (6 * 2**20) + "-->"  # 6 MB a record, 18 MB a file: over the cap only as a whole
    xml = xml_file(tmp_path / "padded.xml", *(article(str(n), f"Abstract {n}.", padding) for n in (1, 2, 3)))
    assert [r.pmid for r in read_source(xml)] == ["1", "2", "3"]  # type: ignore[union-attr]
    nbib = tmp_path / "padded.nbib"
    nbib.write_text("".join(f"PMID- {n}\nXX  - {'x' * 6 * 2**20}\nAB  - Abstract {n}.\n\n" for n in (1, 2, 3)))
    assert [r.pmid for r in read_source(nbib)] == ["1", "2", "3"]  # type: ignore[union-attr]


def test_many_small_xml_elements_are_refused(tmp_path: Path) -> None:
    path = xml_file(tmp_path / "elements.xml", article(extra="<a/>" * 300_000))
    with pytest.raises(IngestError, match="XML record 1 has more than 250,000 elements"):
        list(read_source(path))


# ------------------------------------------------------------------ per-field caps

TEN_MB = "t" * 10_000_000


def test_ten_megabyte_title_is_refused_in_every_format(tmp_path: Path) -> None:
    xml = xml_file(tmp_path / "title.xml", article(extra=f"<ArticleTitle>{TEN_MB}</ArticleTitle>"))
    nbib = tmp_path / "title.nbib"
    nbib.write_text(f"PMID- 1\nTI  - {TEN_MB}\nAB  - An abstract.\n")
    jsonl = tmp_path / "title.jsonl"
    jsonl.write_text(json.dumps({"pmid": "1", "title": TEN_MB, "abstract": "x"}) + "\n")
    for path in (xml, nbib, jsonl):
        ingest_error(path, "PMID 1 has a title of 10,000,000 characters (more than 10,000)")
    good = json.dumps({"pmid": "2", "abstract": "Fine."})
    jsonl.write_text(jsonl.read_text() + good + "\n")
    assert [type(e).__name__ for e in read_source(jsonl, skip_bad=True)] == ["Bad", "Record"]


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"journal": "j" * 1_001}, "journal of 1,001 characters"),
        ({"doi": "10.1/" + "d" * 1_000}, "DOI of 1,005 characters"),
        ({"mesh": ["m" * 501]}, "MeSH term of 501 characters"),
        ({"mesh": ["Humans"] * (MAX_MESH_TERMS + 1)}, "1,001 MeSH terms (more than 1,000)"),
        ({"sections": [{"label": "L" * 501, "text": "x"}]}, "section label of 501 characters"),
        ({"abstract": "a " * 60_000}, "abstract of 120,000 characters"),
    ],
)
def test_field_caps(fields: dict, fragment: str) -> None:
    with pytest.raises(IngestError, match=re.escape(fragment)) as info:
        record_from_dict({"pmid": "1", "abstract": "x", **fields}, "f.jsonl:1")
    assert str(info.value).startswith("f.jsonl:1: PMID 1 has ") and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "fields",
    [{"title": {"text": "x"}}, {"journal": 3.5}, {"doi": ["10.1/x"]}, {"mesh": [["Humans"]]},
     {"sections": [{"label": ["L"], "text": "x"}]}, {"sections": [{"label": "L", "text": {"t": 1}}]}],
)  # fmt: skip
def test_a_text_field_that_is_not_text_is_refused(fields: dict) -> None:
    """A JSON object or list where text belongs was once stored as its Python repr ("{'text': 'x'}")."""
    with pytest.raises(IngestError, match="must be text") as info:
        record_from_dict({"pmid": "1", "abstract": "x", **fields}, "f.jsonl:1")
    assert str(info.value).startswith("f.jsonl:1: PMID 1: ") and "\n" not in str(info.value)


def test_field_caps_in_xml_and_medline(tmp_path: Path) -> None:
    mesh = "".join(f"<MeshHeading><DescriptorName>T{n}</DescriptorName></MeshHeading>" for n in range(1_001))
    xml = xml_file(
        tmp_path / "mesh.xml", article().replace("</Article>", f"</Article><MeshHeadingList>{mesh}</MeshHeadingList>")
    )
    ingest_error(xml, "1,001 MeSH terms")
    nbib = tmp_path / "fields.nbib"
    nbib.write_text(f"PMID- 1\nAB  - An abstract.\nJT  - {'j' * 2_000}\n")
    ingest_error(nbib, "journal of 2,000 characters")
    nbib.write_text(f"PMID- 1\nAB  - An abstract.\nLID - 10.1/{'d' * 2_000} [doi]\n")
    ingest_error(nbib, "DOI of 2,005 characters")


# ------------------------------------------------------------------ PMIDs

HUGE_PMIDS = [str(2**63), "9" * 5_000, "1" * 13]


def test_normalize_pmid_is_bounded() -> None:
    assert normalize_pmid("000025589616") == "25589616"
    assert normalize_pmid("9" * 12) == "9" * 12
    assert normalize_pmid(25589616) == "25589616"
    for bad in [*HUGE_PMIDS, 2**63, 10**5_000, True, "0", "-1", "1e5", "²"]:
        assert normalize_pmid(bad) is None, bad


@pytest.mark.parametrize(
    "pmid", [*HUGE_PMIDS, 2**63, 10**5_000], ids=["2^63", "5000-digits", "13-digits", "int-2^63", "int-10^5000"]
)
def test_record_from_dict_refuses_huge_pmids(pmid: object) -> None:
    with pytest.raises(IngestError) as info:
        record_from_dict({"pmid": pmid, "abstract": "x"}, "r")
    message = str(info.value)
    assert message.startswith('r: missing or non-numeric "pmid"') and "\n" not in message and len(message) < 200


@pytest.mark.parametrize("pmid", HUGE_PMIDS, ids=["2^63", "5000-digits", "13-digits"])
def test_every_parser_refuses_huge_pmids(tmp_path: Path, pmid: str) -> None:
    xml = xml_file(tmp_path / "pmid.xml", article(pmid))
    nbib = tmp_path / "pmid.nbib"
    nbib.write_text(f"PMID- {pmid}\nAB  - An abstract.\n")
    jsonl = tmp_path / "pmid.jsonl"
    jsonl.write_text(f'{{"pmid": "{pmid}", "abstract": "x"}}\n{{"pmid": {pmid}, "abstract": "x"}}\n')
    for path in (xml, nbib, jsonl):
        ingest_error(path, "PMID")
    assert [type(e).__name__ for e in read_source(jsonl, skip_bad=True)] == ["Bad", "Bad"]


@pytest.mark.parametrize("version", ["99999999999999999999", "1000", "0", "abc"])
def test_versions_are_bounded(tmp_path: Path, version: str) -> None:
    xml = xml_file(tmp_path / "version.xml", article(version=version))
    ingest_error(xml, "version must be a number from 1 to 999")
    jsonl = tmp_path / "version.jsonl"
    jsonl.write_text(json.dumps({"pmid": "1", "abstract": "x", "version": version}) + "\n")
    ingest_error(jsonl, "version must be a number from 1 to 999")
    jsonl.write_text(json.dumps({"pmid": "1", "abstract": "x", "version": 2}) + "\n")
    assert [r.version for r in read_source(jsonl)] == [2]  # type: ignore[union-attr]


def test_skip_bad_build_goes_on_past_a_huge_pmid(tmp_path: Path, shared: Path, embedder: Embedder) -> None:
    jsonl = tmp_path / "pmids.jsonl"
    jsonl.write_text(
        f'{{"pmid": {2**63}, "abstract": "Overflow."}}\n{{"pmid": "{"9" * 5_000}", "abstract": "Long."}}\n'
    )
    report = build_index(
        [jsonl, shared / "seed" / f"{SEED_PMID}.xml"], tmp_path / "index", embedder=embedder, skip_bad=True
    )
    assert len(report.bad) == 2 and report.records_indexed == 1, report.bad


# ------------------------------------------------------------------ text safety


def test_lone_surrogates_and_controls_never_reach_a_record(tmp_path: Path) -> None:
    path = tmp_path / "surrogates.jsonl"
    obj = {
        "pmid": "1",
        "title": "Ti\ud800tle\x00",
        "sections": [{"label": "RE\udfffSULTS", "text": "It\x07 worked\ud83d.\tTwice\x1b."}],
        "journal": "J\ud800",
        "mesh": ["M\udc00esh", "Humans"],
        "doi": "10.1/\ud800x",
    }
    path.write_text(json.dumps(obj) + "\n")  # json.dumps writes the lone surrogates as \ud800 escapes
    [record] = list(read_source(path))
    assert isinstance(record, Record)
    texts = [record.title, record.journal, record.doi, *record.mesh, record.abstract, record.sections[0].label]
    for text in texts:
        assert text is not None
        text.encode("utf-8")  # would raise on a lone surrogate
        assert text.isprintable()
    assert record.title == "Ti\ufffdtle"
    assert record.sections == (Section("RE\ufffdSULTS", "It worked\ufffd. Twice."),)
    assert record.mesh == ("M\ufffdesh", "Humans") and record.doi == "10.1/\ufffdx"
    assert record_from_dict(record_to_dict(record)) == record  # cleaning is idempotent
    tokenizer = Tokenizer.from_file(f"{resolve_model_path(None)}/tokenizer.json")
    assert Chunker(tokenizer, 256, ChunkSettings(chunk_tokens=64)).chunk(record)  # crashed with TypeError before
    nbib = tmp_path / "controls.nbib"
    nbib.write_bytes(b"PMID- 1\nTI  - A\x00 title\x7f\nAB  - Text\x01 here.\n")
    [medline] = list(read_source(nbib))
    assert medline.title == "A title" and medline.abstract == "Text here."  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ('{"pmid": 1' + "0" * 5_000 + ', "abstract": "x"}', "unusable JSON"),
        ('{"pmid": "1", "v": ' + "[" * 100_000 + "]" * 100_000 + "}", "unusable JSON"),
        ('{"pmid": "1", "abstract": "x", "v": [' + "[]," * 250_000 + "[]]}", "more than 200,000 JSON values"),
    ],
)
def test_hostile_json_lines_give_one_line_errors(tmp_path: Path, line: str, fragment: str) -> None:
    path = tmp_path / "hostile.jsonl"
    path.write_text(line + "\n")
    ingest_error(path, f"{path}:1: {fragment}")


def test_stray_medline_continuation_line_is_our_error(tmp_path: Path) -> None:
    path = tmp_path / "stray.nbib"
    path.write_text("PMID- 1\nAB  - An abstract.\n\n      stray continuation\n")
    ingest_error(path, "malformed MEDLINE")


def test_millions_of_empty_elements_are_refused_in_a_moment(tmp_path: Path) -> None:
    """A 3 MB gzip of 750 million ``<x/>`` kept a build busy for over 20 minutes: each empty element is its own
    tiny "record", so no per-record bound saw it. Top-level elements that are not records are now counted."""
    import time

    bomb = tmp_path / "empty-elements.xml.gz"
    member = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = member.compress(b"<x/>" * (BLOCK // 4)) + member.flush()
    with open(bomb, "wb") as fh:
        fh.write(gzip.compress(b'<?xml version="1.0"?>\n<PubmedArticleSet>'))
        for _ in range(3 * 2**30 // BLOCK):
            fh.write(block)
        fh.write(gzip.compress(b"</PubmedArticleSet>"))
    assert bomb.stat().st_size < 4 * 2**20
    started = time.monotonic()
    lines, peak = parse_in_child(bomb)
    assert lines[0].startswith("REFUSED") and "more than 10,000 top-level elements that are not" in lines[0]
    assert time.monotonic() - started < 60 and peak < PEAK_LIMIT_MB
