"""Ingest: turn PubMed files (XML, MEDLINE/.nbib, JSONL; plain or gzipped) into ``Record``s.

Every format yields the same ``Record`` so the rest of the pipeline never cares
where an abstract came from. XML is streamed with ``iterparse`` through
defusedxml (entity declarations and external references are refused), so a
200 MB baseline file never sits in memory and a hostile file cannot expand
entities or read local files.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from ..citation import MONTH_NAMES, Author, Citation, day_number, month_number
from ..errors import IngestError
from ..records import (
    MAX_ABSTRACT_CHARS,  # re-exported: every field cap lives in records
    MAX_AFFILIATION_CHARS,
    MAX_KEYWORD_CHARS,
    MAX_NAME_CHARS,
    MAX_PMID_DIGITS,
    MAX_SHORT_CHARS,
    Bad,
    Deletion,
    Event,
    Record,
    Section,
    Skipped,
    checked,
    checked_authors,
    clean_text,
    field_text,
    load_json,
    mesh_terms,
    normalize_pmid,
    parse_version,
    parse_year,
    preview,
    record_from_dict,
    text_list,
)

# Decompressed input is bounded while it streams, before anything big is built: a 3 MB gzip can hold 3 GB.
MAX_RECORD_BYTES = 16 * 2**20  # one XML record or MEDLINE record (real ones: a few kB, rarely 1 MB)
MAX_JSONL_LINE_BYTES = 64 * 2**20  # one JSONL line; above 16 MB so an over-long abstract is reported by its size
MAX_JSON_SEPARATORS = 200_000  # commas, colons and brackets in one JSONL line: bounds the objects json builds
MAX_XML_ELEMENTS = 250_000  # elements of one XML record (the longest investigator lists have tens of thousands)
MAX_OTHER_ELEMENTS = 10_000  # top-level elements of a PubMed XML file that are not records (real files: none)
_RECORD_TAGS = frozenset({"PubmedArticle", "PubmedBookArticle", "DeleteCitation", "DeleteDocument"})
_SKIP_CHUNK = 2**20  # an over-long JSONL line is skipped this many bytes at a time


FORMATS = ("xml", "medline", "jsonl")
_SOURCE_SUFFIXES = (".xml", ".nbib", ".txt", ".medline", ".jsonl", ".json", ".gz")


# ---------------------------------------------------------------- sources


def expand_sources(paths: Iterable[str | Path]) -> list[Path]:
    """Files to read, in order; a directory contributes its recognised files, sorted."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(_SOURCE_SUFFIXES)
            )
            if not found:
                raise IngestError(f"{path}: directory holds no .xml, .nbib, .txt or .jsonl files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise IngestError(f"{path}: not a regular file")
        else:
            raise IngestError(f"{path}: no such file")
    return files


def read_source(path: str | Path, fmt: str | None = None, *, skip_bad: bool = False) -> Iterator[Event]:
    """Yield the records (and deletions) of one file, sniffing its format unless given.

    With ``skip_bad``, a bad record is reported as a ``Bad`` event and reading goes on; a file
    that breaks midway (malformed XML, truncated gzip) keeps the records read before the break.
    """
    path = Path(path)
    try:
        yield from _read_source(path, fmt, skip_bad)
    except IngestError as exc:
        if not skip_bad:
            raise
        yield Bad(str(exc))


def read_xml_bytes(body: bytes, where: str) -> Iterator[Event]:
    """The records of PubMed XML already in memory (an efetch answer), read as strictly as a file."""
    yield from _read_xml(io.BufferedReader(io.BytesIO(body)), Path(where))  # type: ignore[arg-type]


def probe_source(path: str | Path) -> None:
    """Sniff a file and parse its first record, so that a wrong file fails before any slow work starts."""
    events = read_source(path)
    try:
        next(events, None)
    finally:
        events.close()


def _read_source(path: Path, fmt: str | None, skip_bad: bool) -> Iterator[Event]:
    try:
        with _open_binary(path) as raw:
            head = raw.peek(512)[:512] if hasattr(raw, "peek") else b""
            fmt = fmt or sniff_format(head, path)
            if fmt == "xml":
                yield from _read_xml(raw, path, skip_bad)
            elif fmt == "medline":
                yield from _read_medline(raw, path, skip_bad)
            elif fmt == "jsonl":
                yield from _read_jsonl(raw, path, skip_bad)
            else:
                raise IngestError(f"{path}: unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    except IngestError:
        raise
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path}: not valid UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except LookupError as exc:  # an XML declaration naming an unknown encoding
        raise IngestError(f"{path}: unreadable ({exc})") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise IngestError(f"{path}: corrupt or truncated gzip data ({exc or type(exc).__name__})") from None
    except OSError as exc:
        raise IngestError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _open_binary(path: Path) -> IO[bytes]:
    raw = open(path, "rb")  # noqa: SIM115 - handed to the caller's with-block
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb"))  # type: ignore[arg-type]
    return io.BufferedReader(raw)  # type: ignore[arg-type]


def _lines(raw: IO[bytes], limit: int) -> Iterator[tuple[int, bytes | None]]:
    """``(number, line)`` of at most ``limit`` bytes each; a longer line is skipped in bounded chunks and given
    as None, so a one-line bomb never sits in memory. Lines end at LF, CRLF or CR, as universal newlines did."""
    number = 0
    while line := raw.readline(limit + 1):
        if len(line) > limit and not line.endswith(b"\n"):
            number += 1
            yield number, None  # a strict reader stops here; a tolerant one resumes to skip the rest
            while line and not line.endswith(b"\n"):
                line = raw.readline(_SKIP_CHUNK)
            continue
        if number == 0 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]
        for part in line.splitlines(keepends=True) if b"\r" in line else (line,):
            number += 1
            yield number, part


def _decode(line: bytes, where: str) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{where}: not valid UTF-8 text ({exc.reason} at byte {exc.start})") from None


def sniff_format(head: bytes, path: Path) -> str:
    """Decide the format from the first bytes; the file name only breaks ties."""
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if not text:
        raise IngestError(f"{path}: empty file")
    if text.startswith(b"<"):
        return "xml"
    if text.startswith(b"{"):
        return "jsonl"
    if re.match(rb"PMID- ?\d", text) or re.match(rb"[A-Z]{2,4} ?- ", text):
        return "medline"
    if text.startswith(b"%PDF"):
        raise IngestError(f"{path}: this is a PDF, not PubMed records (expected PubMed XML, MEDLINE or JSONL)")
    raise IngestError(
        f"{path}: unrecognised format (expected PubMed XML, MEDLINE/.nbib text or JSONL; "
        f"file starts with {text[:20]!r})"
    )


# ---------------------------------------------------------------- PubMed XML


class _Oversized(Exception):
    """Raised from inside the XML parser's ``read`` so that a huge record stops before it is built."""


class _CappedReader:
    """A binary stream that hands over at most ``limit`` bytes between ``reset()`` calls (one per record)."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self.raw, self.limit, self.count = raw, limit, 0

    def read(self, size: int | None = -1) -> bytes:
        room = self.limit - self.count + 1  # one byte past the limit is enough to know
        data = self.raw.read(room if size is None or size < 0 else min(size, room))
        self.count += len(data)
        if self.count > self.limit:
            raise _Oversized
        return data

    def reset(self) -> None:
        self.count = 0


def _raw(el: Element | None) -> str | None:
    """All the text of an element, inline markup (<i>, <sup>, ...) flattened instead of dropped; not yet cleaned."""
    return None if el is None else "".join(el.itertext())


def _tolerant(make: Callable[[], Event], skip_bad: bool) -> Event:
    """One record: its event, or a Bad event when ``skip_bad`` (otherwise the error propagates)."""
    try:
        return make()
    except IngestError as exc:
        if not skip_bad:
            raise
        return Bad(str(exc))


def _read_xml(raw: IO[bytes], path: Path, skip_bad: bool = False) -> Iterator[Event]:
    source = _CappedReader(raw, MAX_RECORD_BYTES)
    root: Element | None = None
    depth = elements = 0
    number = 1  # of the record being read, for messages
    strangers = 0  # top-level elements that are not records: a bomb of millions of <x/> is not a PubMed file
    seen_root = False
    try:
        for event, el in iterparse(
            source, events=("start", "end"), forbid_dtd=False, forbid_entities=True, forbid_external=True
        ):
            if event == "start":
                if root is None:
                    root = el
                    seen_root = True
                    if el.tag not in ("PubmedArticleSet", "PubmedArticle", "PubmedBookArticleSet"):
                        raise IngestError(
                            f"{path}: XML root is <{el.tag}>, not <PubmedArticleSet> "
                            "(is this a PubMed efetch/baseline file?)"
                        )
                depth += 1
                elements += 1
                if elements > MAX_XML_ELEMENTS:
                    raise IngestError(
                        f"{path}: XML record {number:,} has more than {MAX_XML_ELEMENTS:,} elements; "
                        "not a PubMed record"
                    )
                continue
            depth -= 1
            if depth != 1 and not (depth == 0 and el.tag == "PubmedArticle"):
                continue
            if el.tag not in _RECORD_TAGS:
                strangers += 1
                if strangers > MAX_OTHER_ELEMENTS:
                    raise IngestError(f"{path}: more than {MAX_OTHER_ELEMENTS:,} top-level elements that are not "
                                      f"PubMed records (<{preview(el.tag)[:40]}>, ...); not a PubMed file")  # fmt: skip
            if el.tag == "PubmedArticle":
                yield _tolerant(lambda el=el: _xml_article(el, path), skip_bad)
            elif el.tag == "PubmedBookArticle":
                yield Skipped(
                    normalize_pmid(_raw(el.find("BookDocument/PMID")) or ""), "book record (not a journal article)"
                )
            elif el.tag == "DeleteCitation":
                pmids = tuple(n for n in (normalize_pmid(p.text or "") for p in el.findall("PMID")) if n)
                yield Deletion(pmids)
            if root is not None and depth == 1 and root.tag != "PubmedArticle":
                root.clear()  # keep memory flat while streaming
            source.reset()
            elements = 0
            number += 1
    except _Oversized:
        raise IngestError(
            f"{path}: XML record {number:,} is over {MAX_RECORD_BYTES:,} bytes; not a PubMed record"
        ) from None
    except ParseError as exc:
        line, col = getattr(exc, "position", (None, None))
        msg = str(exc).split(":")[0]
        where = f" at line {line}, column {col}" if line else ""
        raise IngestError(f"{path}: malformed XML{where} ({msg})") from None
    except DefusedXmlException as exc:
        raise IngestError(
            f"{path}: refused unsafe XML ({type(exc).__name__}: "
            "entity declarations and external references are not allowed)"
        ) from None
    if not seen_root:
        raise IngestError(f"{path}: no XML content")


def _xml_article(art: Element, path: Path) -> Event:
    cit = art.find("MedlineCitation")
    pmid_el = cit.find("PMID") if cit is not None else None
    raw_pmid = (pmid_el.text or "").strip() if pmid_el is not None else ""
    pmid = normalize_pmid(raw_pmid)
    if cit is None or pmid_el is None or pmid is None:
        raise IngestError(
            f"{path}: a <PubmedArticle> has no valid MedlineCitation/PMID "
            f"(got {preview(raw_pmid)}; a PMID is 1 to {MAX_PMID_DIGITS} digits)"
        )
    where = str(path)
    version = parse_version(pmid_el.get("Version"), f"{path}: PMID {pmid}")
    article = cit.find("Article")
    if article is None:
        return Skipped(pmid, "no abstract")
    sections = []
    for node in article.findall("Abstract/AbstractText"):
        text = field_text(_raw(node), "abstract", where, pmid)
        if text:
            label = node.get("Label")
            sections.append(Section(field_text(label, "section label", where, pmid) if label else None, text))
    if not sections:
        return Skipped(pmid, "no abstract")
    journals = (
        article.find("Journal/Title"),
        article.find("Journal/ISOAbbreviation"),
        cit.find("MedlineJournalInfo/MedlineTA"),
    )
    journal = next((j for j in (field_text(_raw(el), "journal", where, pmid) for el in journals) if j), None)
    pub = article.find("Journal/JournalIssue/PubDate")
    year = None
    if pub is not None:
        year = parse_year(_raw(pub.find("Year"))) or parse_year(_raw(pub.find("MedlineDate")))
    year = year or parse_year(_raw(article.find("ArticleDate/Year")))
    mesh = mesh_terms([_raw(d) for d in cit.findall("MeshHeadingList/MeshHeading/DescriptorName")], where, pmid)
    dois = [loc for loc in article.findall("ELocationID") if loc.get("EIdType") == "doi"]
    dois += [aid for aid in art.findall("PubmedData/ArticleIdList/ArticleId") if aid.get("IdType") == "doi"]
    doi = next((d for d in (field_text(_raw(el), "DOI", where, pmid) for el in dois) if d), None)
    record = Record(
        pmid=pmid,
        version=version,
        title=field_text(_raw(article.find("ArticleTitle")), "title", where, pmid),
        sections=tuple(sections),
        journal=journal,
        year=year,
        mesh=mesh,
        doi=doi,
        citation=_xml_citation(art, article, where, pmid),
    )
    return checked(record, where)


def _xml_author(el: Element, where: str, pmid: str) -> Author:
    def name(tag: str) -> str | None:
        return field_text(_raw(el.find(tag)), f"author {tag}", where, pmid, MAX_NAME_CHARS)

    affiliation = field_text(_raw(el.find("AffiliationInfo/Affiliation")), "affiliation", where, pmid,
                             MAX_AFFILIATION_CHARS)  # fmt: skip
    return Author(name("LastName"), name("ForeName"), name("Initials"), name("CollectiveName"), affiliation)


def _xml_citation(art: Element, article: Element, where: str, pmid: str) -> Citation:
    """Authors, issue, pages, dates, publication types, PMC ID, language and keywords of one article."""

    def short(el: Element | None, name: str) -> str | None:
        return field_text(_raw(el), name, where, pmid, MAX_SHORT_CHARS)

    issue = article.find("Journal/JournalIssue")
    pub = issue.find("PubDate") if issue is not None else None
    parts = [short(pub.find(t), "publication date") for t in ("Year", "Month", "Day")] if pub is not None else []
    month = month_number(parts[1]) if len(parts) > 1 else None
    if month and parts[1] and parts[1].isdigit():  # "2018 05 17" reads as PubMed writes it: "2018 May 17"
        parts[1] = MONTH_NAMES[month - 1]
    pub_date = " ".join(p for p in parts if p) or (short(pub.find("MedlineDate"), "publication date")
                                                   if pub is not None else None)  # fmt: skip
    pages = short(article.find("Pagination/MedlinePgn"), "pages")
    if not pages:
        pages = next((short(e, "pages") for e in article.findall("ELocationID") if e.get("EIdType") == "pii"), None)
    electronic = article.find("ArticleDate")
    e_date = None
    if electronic is not None:
        ymd = [short(electronic.find(t), "electronic date") for t in ("Year", "Month", "Day")]
        e_date = "-".join(p.zfill(2) for p in ymd if p) or None
    pmcid = next((short(a, "PMC ID") for a in art.findall("PubmedData/ArticleIdList/ArticleId")
                  if a.get("IdType") == "pmc"), None)  # fmt: skip
    authors = article.findall("AuthorList/Author")
    return Citation(
        authors=checked_authors([_xml_author(a, where, pmid) for a in authors], where, pmid),
        journal_iso=short(article.find("Journal/ISOAbbreviation"), "ISO abbreviation"),
        volume=short(issue.find("Volume"), "volume") if issue is not None else None,
        issue=short(issue.find("Issue"), "issue") if issue is not None else None,
        pages=pages,
        pub_date=pub_date,
        month=month,
        day=day_number(parts[2]) if len(parts) > 2 else None,
        electronic_date=e_date,
        publication_types=text_list([_raw(t) for t in article.findall("PublicationTypeList/PublicationType")],
                                    MAX_NAME_CHARS, "publication types", where, pmid),  # fmt: skip
        pmcid=pmcid,
        language=short(article.find("Language"), "language"),
        keywords=text_list([_raw(k) for k in art.findall("MedlineCitation/KeywordList/Keyword")], MAX_KEYWORD_CHARS,
                           "keywords", where, pmid),  # fmt: skip
    )


# ---------------------------------------------------------------- MEDLINE


# NLM writes structured abstracts in MEDLINE as "BACKGROUND: ... METHODS: ...".
_MEDLINE_LABEL = re.compile(r"(?:^|(?<=[.?!:;)\]]\s))([A-Z][A-Z0-9,&/()\- ]{2,60}[A-Z)]):\s+")


def split_labelled_abstract(text: str) -> tuple[Section, ...]:
    """Split ``"BACKGROUND: x. METHODS: y."`` into labelled sections; plain text stays one section."""
    text = clean_text(text)
    matches = list(_MEDLINE_LABEL.finditer(text))
    if not matches or matches[0].start() != 0:
        return (Section(None, text),) if text else ()
    sections = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[m.end() : end].strip()
        if body:
            sections.append(Section(m.group(1).strip(), body))
    return tuple(sections)


def _medline_lines(raw: IO[bytes], path: Path) -> Iterator[str]:
    """Lines for Biopython's parser, refusing an over-long line or record before the parser builds it."""
    size, number = 0, 1
    for lineno, line in _lines(raw, MAX_RECORD_BYTES):
        if line is None:
            raise IngestError(f"{path}:{lineno}: MEDLINE line over {MAX_RECORD_BYTES:,} bytes; not a PubMed record")
        text = _decode(line, f"{path}:{lineno}").rstrip("\r\n") + "\n"
        if text == "\n":  # what ends a record for Biopython
            if size:
                number += 1
            size = 0
        else:
            size += len(line)
            if size > MAX_RECORD_BYTES:
                raise IngestError(
                    f"{path}:{lineno}: MEDLINE record {number:,} is over {MAX_RECORD_BYTES:,} bytes; "
                    "not a PubMed record"
                )
        yield text


def _read_medline(raw: IO[bytes], path: Path, skip_bad: bool = False) -> Iterator[Event]:
    from Bio import Medline  # only MEDLINE builds pay for Biopython's import

    count = 0
    try:
        for n, rec in enumerate(Medline.parse(_medline_lines(raw, path)), start=1):
            count += 1
            yield _tolerant(lambda rec=rec, n=n: _medline_record(rec, n, path), skip_bad)
    except (KeyError, IndexError):  # Biopython on a continuation line that follows a blank line
        raise IngestError(f"{path}: malformed MEDLINE (a continuation line outside any field)") from None
    if count == 0:
        raise IngestError(f"{path}: no MEDLINE records found")


def _medline_record(rec: dict, n: int, path: Path) -> Event:
    pmid = normalize_pmid(rec.get("PMID") or "")
    if pmid is None:
        raise IngestError(
            f"{path}: MEDLINE record {n} has no valid PMID line (got {preview(rec.get('PMID'))}; "
            "is this a PubMed 'PubMed format' export?)"
        )
    where = str(path)
    sections = split_labelled_abstract(field_text(rec.get("AB"), "abstract", where, pmid) or "")
    if not sections:
        return Skipped(pmid, "no abstract")
    doi = None
    for field_name in ("LID", "AID"):
        values = rec.get(field_name) or []
        for v in [values] if isinstance(values, str) else values:
            if v.endswith("[doi]"):
                doi = field_text(v[: -len("[doi]")].rstrip(), "DOI", where, pmid)
                break
        if doi:
            break
    return checked(
        Record(
            pmid=pmid,
            title=field_text(rec.get("TI"), "title", where, pmid),
            sections=sections,
            journal=field_text(rec.get("JT") or rec.get("TA"), "journal", where, pmid),
            year=parse_year(rec.get("DP")),
            mesh=mesh_terms([m.partition("/")[0].lstrip("*") for m in rec.get("MH") or []], where, pmid),
            doi=doi,
            citation=_medline_citation(rec, where, pmid),
        ),
        where,
    )


def _listed(rec: dict, tag: str) -> list[str]:
    value = rec.get(tag) or []
    return [value] if isinstance(value, str) else list(value)


def _medline_authors(rec: dict, where: str, pmid: str) -> tuple[Author, ...]:
    """FAU ("O'Byrne, Paul M") with AU ("O'Byrne PM") for initials; CN for group names, after the people.

    Biopython keeps AD lines as one list without saying whose they are; the first is the first author's."""
    full, short, groups = _listed(rec, "FAU"), _listed(rec, "AU"), _listed(rec, "CN")

    def part(v: str | None, key: str) -> str | None:
        return field_text(v, f"author {key}", where, pmid, MAX_NAME_CHARS)

    authors = []
    for i, name in enumerate(full or short):
        if full:
            last, _, fore = name.partition(",")
        else:
            last, fore = name.rpartition(" ")[0] or name, ""
        initials = short[i].rpartition(" ")[2] if i < len(short) and " " in short[i] else None
        authors.append(Author(part(last, "last"), part(fore.strip() or None, "fore"), part(initials, "initials")))
    authors += [Author(collective=field_text(g, "group name", where, pmid, MAX_NAME_CHARS)) for g in groups]
    affiliations = _listed(rec, "AD")
    if authors and affiliations:
        first = authors[0]
        authors[0] = Author(first.last, first.fore, first.initials, first.collective,
                            field_text(affiliations[0], "affiliation", where, pmid, MAX_AFFILIATION_CHARS))  # fmt: skip
    return checked_authors(authors, where, pmid)


def _medline_citation(rec: dict, where: str, pmid: str) -> Citation:
    def short(tag: str, name: str) -> str | None:
        value = rec.get(tag)
        return field_text(value if isinstance(value, str) else None, name, where, pmid, MAX_SHORT_CHARS)

    pub_date = short("DP", "publication date")
    words = (pub_date or "").split()
    pmc = short("PMC", "PMC ID")
    return Citation(
        authors=_medline_authors(rec, where, pmid),
        journal_iso=short("TA", "ISO abbreviation"),
        volume=short("VI", "volume"),
        issue=short("IP", "issue"),
        pages=short("PG", "pages"),
        pub_date=pub_date,
        month=month_number(words[1]) if len(words) > 1 and "-" not in words[1] else None,
        day=day_number(words[2]) if len(words) > 2 else None,
        publication_types=text_list(_listed(rec, "PT"), MAX_NAME_CHARS, "publication types", where, pmid),
        pmcid=pmc,
        language=next(iter(_listed(rec, "LA")), None),
        keywords=text_list(_listed(rec, "OT"), MAX_KEYWORD_CHARS, "keywords", where, pmid),
    )


# ---------------------------------------------------------------- JSONL


def _read_jsonl(raw: IO[bytes], path: Path, skip_bad: bool = False) -> Iterator[Event]:
    for lineno, line in _lines(raw, MAX_JSONL_LINE_BYTES):
        if line is None or line.strip():
            yield _tolerant(lambda line=line, where=f"{path}:{lineno}": _jsonl_record(line, where), skip_bad)


def _jsonl_record(line: bytes | None, where: str) -> Event:
    if line is None:
        raise IngestError(f"{where}: line over {MAX_JSONL_LINE_BYTES:,} bytes; not a PubMed record")
    if sum(line.count(c) for c in (b",", b":", b"[", b"{")) > MAX_JSON_SEPARATORS:
        raise IngestError(f"{where}: more than {MAX_JSON_SEPARATORS:,} JSON values in one line; not a PubMed record")
    try:
        obj = load_json(_decode(line, where))
    except json.JSONDecodeError as exc:
        raise IngestError(f"{where}: invalid JSON ({exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # NaN, a number of more than 4,300 digits, nesting too deep
        raise IngestError(f"{where}: unusable JSON ({str(exc)[:80]})") from None
    if not isinstance(obj, dict):
        raise IngestError(f"{where}: expected a JSON object per line")
    return record_from_dict(obj, where)


__all__ = [
    "read_source",
    "read_xml_bytes",
    "probe_source",
    "expand_sources",
    "sniff_format",
    "split_labelled_abstract",
    "FORMATS",
    "MAX_ABSTRACT_CHARS",
    "MAX_RECORD_BYTES",
    "MAX_JSONL_LINE_BYTES",
    "MAX_JSON_SEPARATORS",
    "MAX_XML_ELEMENTS",
]
