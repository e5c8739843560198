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
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Union
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from .errors import IngestError


@dataclass(frozen=True)
class Section:
    """One labelled part of an abstract (``label`` is None for unstructured abstracts)."""

    label: str | None
    text: str


@dataclass(frozen=True)
class Record:
    """One PubMed citation, reduced to what retrieval and citation need."""

    pmid: str
    sections: tuple[Section, ...]
    title: str | None = None
    journal: str | None = None
    year: int | None = None
    mesh: tuple[str, ...] = ()
    doi: str | None = None
    version: int = 1

    SEPARATOR = "\n"

    @property
    def abstract(self) -> str:
        """The whole abstract; chunk and hit offsets index into this string."""
        return self.SEPARATOR.join(s.text for s in self.sections)

    @property
    def section_spans(self) -> list[tuple[str | None, int, int]]:
        """``(label, start, end)`` of each section inside ``abstract``."""
        spans, pos = [], 0
        for s in self.sections:
            spans.append((s.label, pos, pos + len(s.text)))
            pos += len(s.text) + len(self.SEPARATOR)
        return spans

    @property
    def url(self) -> str:
        return pubmed_url(self.pmid)


@dataclass(frozen=True)
class Deletion:
    """PMIDs that a PubMed update file withdraws (``<DeleteCitation>``)."""

    pmids: tuple[str, ...]


@dataclass(frozen=True)
class Skipped:
    """A citation that was read but cannot be indexed, and why."""

    pmid: str | None
    reason: str


@dataclass(frozen=True)
class Bad:
    """A record (or the rest of a file) that could not be read, with ``skip_bad``: the one-line reason."""

    message: str


Event = Union[Record, Deletion, Skipped, Bad]

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


def normalize_pmid(value: object) -> str | None:
    """A PMID as PubMed writes it (ASCII digits, no leading zeros), or None if it is not one."""
    text = str(value).strip()
    if not text or not text.isascii() or not text.isdigit() or int(text) == 0:
        return None
    return str(int(text))


def pubmed_url(pmid: str) -> str:
    return f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/"


def clean_text(text: str) -> str:
    """Collapse the line wrapping and indentation that XML and MEDLINE add."""
    return " ".join(text.split())


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


def _year_from(text: str | None) -> int | None:
    if not text:
        return None
    m = re.search(r"\b(1[6-9]\d\d|2\d\d\d)\b", text)
    return int(m.group(1)) if m else None


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
        year = _year_from(_text(pub.find("Year"))) or _year_from(_text(pub.find("MedlineDate")))
    year = year or _year_from(_text(article.find("ArticleDate/Year")))
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
            year=_year_from(rec.get("DP")),
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


def _record_from_dict(obj: dict, where: str) -> Event:
    pmid = normalize_pmid(obj.get("pmid", ""))
    if pmid is None:
        raise IngestError(f'{where}: missing or non-numeric "pmid" ({obj.get("pmid")!r})')
    sections: tuple[Section, ...]
    if obj.get("sections"):
        try:
            sections = tuple(
                Section((str(s["label"]).strip() or None) if s.get("label") else None, clean_text(str(s["text"])))
                for s in obj["sections"]
                if clean_text(str(s.get("text") or ""))
            )
        except (TypeError, KeyError, AttributeError):
            raise IngestError(f'{where}: "sections" must be a list of {{"label", "text"}} objects') from None
    else:
        abstract = obj.get("abstract")
        if abstract is not None and not isinstance(abstract, str):
            raise IngestError(f'{where}: "abstract" must be a string')
        sections = (Section(None, clean_text(abstract)),) if abstract and clean_text(abstract) else ()
    if not sections:
        return Skipped(pmid, "no abstract")
    year = _year_from(str(obj.get("year") or ""))
    mesh = obj.get("mesh") or ()
    if isinstance(mesh, str):
        mesh = [m.strip() for m in mesh.split(";")]
    if not isinstance(mesh, (list, tuple)):
        raise IngestError(f'{where}: "mesh" must be a list of strings')
    title = obj.get("title")
    return Record(
        pmid=pmid,
        title=clean_text(str(title)) or None if title else None,
        sections=sections,
        journal=clean_text(str(obj["journal"])) or None if obj.get("journal") else None,
        year=year,
        mesh=tuple(str(m) for m in mesh if m),
        doi=str(obj["doi"]).strip() or None if obj.get("doi") else None,
        version=int(normalize_pmid(obj.get("version") or 1) or 1),
    )


def record_from_dict(obj: dict, where: str = "record") -> Event:
    """Build a Record from the JSONL shape ``{"pmid", "title", "abstract", ...}``."""
    try:
        return _record_from_dict(obj, where)
    except IngestError:
        raise
    except (TypeError, ValueError, OverflowError, AttributeError, KeyError) as exc:
        raise IngestError(f"{where}: unusable record ({type(exc).__name__}: {str(exc)[:100]})") from None


def record_to_dict(record: Record) -> dict:
    """The JSONL shape, lossless: ``record_from_dict(record_to_dict(r)) == r``."""
    return {
        "pmid": record.pmid,
        "version": record.version,
        "title": record.title,
        "abstract": record.abstract,
        "sections": [{"label": s.label, "text": s.text} for s in record.sections],
        "journal": record.journal,
        "year": record.year,
        "mesh": list(record.mesh),
        "doi": record.doi,
    }


__all__ = [
    "Record",
    "Section",
    "Deletion",
    "Skipped",
    "Bad",
    "Event",
    "read_source",
    "expand_sources",
    "sniff_format",
    "record_from_dict",
    "record_to_dict",
    "split_labelled_abstract",
    "pubmed_url",
    "normalize_pmid",
]
