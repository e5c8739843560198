"""Ingest: turn PubMed files (XML, MEDLINE/.nbib, JSONL; plain or gzipped) into ``Record``s.

Every format yields the same ``Record`` so the rest of the pipeline never cares
where an abstract came from. XML is streamed with ``iterparse`` through
defusedxml (entity declarations and external references are refused), so a
200 MB baseline file never sits in memory and a hostile file cannot expand
entities or read local files.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from .errors import IngestError
from .records import (
    Bad,
    Deletion,
    Event,
    Record,
    Section,
    Skipped,
    clean_text,
    normalize_pmid,
    parse_year,
    record_from_dict,
)

MAX_ABSTRACT_CHARS = 100_000  # real abstracts are a few thousand characters; beyond this is not an abstract


def _checked(record: Record, where: object) -> Record:
    size = sum(len(s.text) for s in record.sections)
    if size > MAX_ABSTRACT_CHARS:
        raise IngestError(
            f"{where}: PMID {record.pmid} has an abstract of {size:,} characters "
            f"(more than {MAX_ABSTRACT_CHARS:,}); not a PubMed abstract"
        )
    return record


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
            else:
                text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline=None)
                if fmt == "medline":
                    yield from _read_medline(text, path, skip_bad)
                elif fmt == "jsonl":
                    yield from _read_jsonl(text, path, skip_bad)
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


def _text(el: Element | None) -> str | None:
    """Flatten inline markup (<i>, <sup>, ...) to plain text instead of dropping it."""
    if el is None:
        return None
    value = clean_text("".join(el.itertext()))
    return value or None


def _tolerant(make, skip_bad: bool) -> Event:  # type: ignore[no-untyped-def]
    """One record: its event, or a Bad event when ``skip_bad`` (otherwise the error propagates)."""
    try:
        return make()
    except IngestError as exc:
        if not skip_bad:
            raise
        return Bad(str(exc))


def _read_xml(raw: IO[bytes], path: Path, skip_bad: bool = False) -> Iterator[Event]:
    root: Element | None = None
    depth = 0
    seen_root = False
    try:
        for event, el in iterparse(
            raw, events=("start", "end"), forbid_dtd=False, forbid_entities=True, forbid_external=True
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
                continue
            depth -= 1
            if depth != 1 and not (depth == 0 and el.tag == "PubmedArticle"):
                continue
            if el.tag == "PubmedArticle":
                yield _tolerant(lambda el=el: _xml_article(el, path), skip_bad)
            elif el.tag == "PubmedBookArticle":
                yield Skipped(_text(el.find("BookDocument/PMID")), "book record (not a journal article)")
            elif el.tag == "DeleteCitation":
                pmids = tuple(n for n in (normalize_pmid(p.text or "") for p in el.findall("PMID")) if n)
                yield Deletion(pmids)
            if root is not None and depth == 1 and root.tag != "PubmedArticle":
                root.clear()  # keep memory flat while streaming
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
        raise IngestError(f"{path}: a <PubmedArticle> has no valid MedlineCitation/PMID (got {raw_pmid!r})")
    version = int(normalize_pmid(pmid_el.get("Version", "1")) or 1)
    article = cit.find("Article")
    if article is None:
        return Skipped(pmid, "no abstract")
    sections = []
    for node in article.findall("Abstract/AbstractText"):
        text = _text(node)
        if text:
            label = node.get("Label") or None
            sections.append(Section(label.strip() if label else None, text))
    if not sections:
        return Skipped(pmid, "no abstract")
    journal = (
        _text(article.find("Journal/Title"))
        or _text(article.find("Journal/ISOAbbreviation"))
        or _text(cit.find("MedlineJournalInfo/MedlineTA"))
    )
    pub = article.find("Journal/JournalIssue/PubDate")
    year = None
    if pub is not None:
        year = parse_year(_text(pub.find("Year"))) or parse_year(_text(pub.find("MedlineDate")))
    year = year or parse_year(_text(article.find("ArticleDate/Year")))
    mesh = tuple(t for t in (_text(d) for d in cit.findall("MeshHeadingList/MeshHeading/DescriptorName")) if t)
    doi = None
    for loc in article.findall("ELocationID"):
        if loc.get("EIdType") == "doi" and _text(loc):
            doi = _text(loc)
            break
    if doi is None:
        for aid in art.findall("PubmedData/ArticleIdList/ArticleId"):
            if aid.get("IdType") == "doi" and _text(aid):
                doi = _text(aid)
                break
    record = Record(
        pmid=pmid,
        version=version,
        title=_text(article.find("ArticleTitle")),
        sections=tuple(sections),
        journal=journal,
        year=year,
        mesh=mesh,
        doi=doi,
    )
    return _checked(record, path)


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


def _read_medline(text: IO[str], path: Path, skip_bad: bool = False) -> Iterator[Event]:
    from Bio import Medline  # only MEDLINE builds pay for Biopython's import

    count = 0
    for n, rec in enumerate(Medline.parse(text), start=1):
        count += 1
        event = _tolerant(lambda rec=rec, n=n: _medline_record(rec, n, path), skip_bad)
        yield event
    if count == 0:
        raise IngestError(f"{path}: no MEDLINE records found")


def _medline_record(rec: dict, n: int, path: Path) -> Event:
    pmid = normalize_pmid(rec.get("PMID") or "")
    if pmid is None:
        raise IngestError(
            f"{path}: MEDLINE record {n} has no valid PMID line (is this a PubMed 'PubMed format' export?)"
        )
    abstract = rec.get("AB") or ""
    sections = split_labelled_abstract(abstract)
    if not sections:
        return Skipped(pmid, "no abstract")
    doi = None
    for field_name in ("LID", "AID"):
        values = rec.get(field_name) or []
        for v in [values] if isinstance(values, str) else values:
            if v.endswith("[doi]"):
                doi = v[: -len("[doi]")].strip()
                break
        if doi:
            break
    mesh = tuple(m.split("/")[0].lstrip("*").strip() for m in (rec.get("MH") or []) if m.split("/")[0].strip())
    return _checked(
        Record(
            pmid=pmid,
            title=clean_text(rec["TI"]) if rec.get("TI") else None,
            sections=sections,
            journal=clean_text(rec.get("JT") or rec.get("TA") or "") or None,
            year=parse_year(rec.get("DP")),
            mesh=mesh,
            doi=doi,
        ),
        path,
    )


# ---------------------------------------------------------------- JSONL


def _read_jsonl(text: IO[str], path: Path, skip_bad: bool = False) -> Iterator[Event]:
    for lineno, line in enumerate(text, start=1):
        if not line.strip():
            continue
        yield _tolerant(lambda line=line, where=f"{path}:{lineno}": _jsonl_record(line, where), skip_bad)


def _jsonl_record(line: str, where: str) -> Event:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise IngestError(f"{where}: invalid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise IngestError(f"{where}: expected a JSON object per line")
    event = record_from_dict(obj, where)
    return _checked(event, where) if isinstance(event, Record) else event


__all__ = [
    "read_source",
    "probe_source",
    "expand_sources",
    "sniff_format",
    "split_labelled_abstract",
    "FORMATS",
    "MAX_ABSTRACT_CHARS",
]
