"""Fetch: save what a PubMed search (or a PMID list) returns as one PubMed XML file, resumably.

A fetch keeps its progress in a folder beside the output (``<out>.partial/``): the PMID list and
every complete batch. Run again, it continues from the last complete batch; a batch that did not
arrive whole is never used as a complete one (it is kept apart, with the PMIDs it lacks, for a run
that allows partial results). The requests themselves are ``eutils.EUtils``'s.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, tostring

from defusedxml.ElementTree import iterparse

from ..errors import FetchError, QAError
from ..records import load_json, normalize_pmid
from .eutils import BATCH_SIZE, Batch, EUtils, missing_message, pmid_list


@dataclass
class FetchReport:
    output: str
    query: str | None
    count: int  # what PubMed has for the query
    wanted: int  # after --max
    records: int  # written to the output
    batches: int
    batches_resumed: int  # already complete from an earlier, interrupted run
    requests: int
    seconds: float
    missing: list[str] = field(default_factory=list)  # PMIDs asked for and not returned (allow_partial only)
    warnings: list[str] = field(default_factory=list)  # one line each: what makes this fetch partial

    @property
    def complete(self) -> bool:
        return not self.missing and not self.warnings

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "complete": self.complete}


ProgressCallback = Callable[[int, int], None]


def read_pmid_file(path: str | Path) -> list[str]:
    """PMIDs from a file: one per line, or the CSV the PubMed website exports (a "PMID" column)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise QAError(f"{path}: cannot read PMID list ({exc})") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise QAError(f"{path}: no PMIDs in the file")
    header = next(csv.reader([lines[0]]))
    pmids: list[str] = []
    if any(h.strip().upper() == "PMID" for h in header) and len(header) > 1:
        column = [h.strip().upper() for h in header].index("PMID")
        for row in csv.reader(lines[1:]):
            if len(row) > column and row[column].strip():
                pmids.append(row[column].strip())
    else:
        pmids = [ln.strip().split()[0] for ln in lines if ln.strip().upper() != "PMID"]
    bad = next((p for p in pmids if normalize_pmid(p) is None), None)
    if bad is not None:
        raise QAError(f"{path}: {bad!r} is not a PMID (expected one PMID per line, or PubMed's CSV export)")
    return list(dict.fromkeys(normalize_pmid(p) or p for p in pmids))


def fetch_records(
    client: EUtils,
    output: str | Path,
    *,
    query: str | None = None,
    pmids: list[str] | None = None,
    limit: int | None = None,
    progress: ProgressCallback | None = None,
    allow_partial: bool = False,
) -> FetchReport:
    """Save what a search (or PMID list) returns as one PubMed XML file (gzipped if it ends in .gz).

    Every PMID asked for must arrive: otherwise a FetchError names the missing ones (after the
    other batches were fetched and kept for the next run), unless ``allow_partial``, which saves
    what arrived and lists the rest in ``FetchReport.missing`` and ``warnings``.
    """
    started = time.perf_counter()
    output = Path(output)
    work = batch_folder(output)
    state = _load_state(work, query, pmids, limit)
    if state is not None and state.get("warnings") and not allow_partial:
        state = None  # that listing was partial, which this run does not allow: list again
    if state is None:
        warnings: list[str] = []
        if query is not None:
            found = client.search(query, limit=limit, allow_partial=allow_partial)
            ids, count, warnings = found.pmids, found.count, list(found.warnings)
        else:
            ids = list(dict.fromkeys(pmids or []))[: limit if limit is not None else None]
            count = len(ids)
        state = {"query": query, "pmids_given": pmids, "limit": limit, "count": count, "pmids": ids,
                 "warnings": warnings}  # fmt: skip
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        _write_atomic(work / "state.json", json.dumps(state).encode())
    ids = state["pmids"]
    batches = [ids[i : i + BATCH_SIZE] for i in range(0, len(ids), BATCH_SIZE)]
    parts: list[Path] = []
    missing: list[str] = []
    errors: list[str] = []
    done = resumed = 0
    for n, batch in enumerate(batches):
        target = work / f"batch-{n:06d}.xml"  # complete batches only
        kept = work / f"incomplete-{n:06d}.xml"  # a batch that lacks PMIDs: used only when partial is allowed
        note = work / f"incomplete-{n:06d}.json"  # what it lacks (written before it)
        previous = _read_note(note) if allow_partial and kept.is_file() else None
        if target.is_file():
            resumed += 1
            parts.append(target)
        elif previous is not None:
            resumed += 1
            parts.append(kept)
            missing.extend(previous.missing)
            errors.extend([previous.error] if previous.error else [])
        else:
            result = client.fetch_batch(batch)
            if result.complete:
                _write_atomic(target, result.body)  # renamed into place: never half a file
                kept.unlink(missing_ok=True)
                note.unlink(missing_ok=True)
                parts.append(target)
            else:
                _write_atomic(note, json.dumps({"missing": result.missing, "error": result.error}).encode())
                _write_atomic(kept, result.body)
                parts.append(kept)
                missing.extend(result.missing)
                errors.extend([result.error] if result.error else [])
        done += len(batch)
        if progress:
            progress(done, len(ids))
    if (missing or errors) and not allow_partial:
        raise FetchError(missing_message(missing, len(ids), errors))
    records = _merge(parts, output)
    warnings = list(state.get("warnings") or [])
    if missing:
        warnings.append(f"{len(missing):,} of the {len(ids):,} PMIDs asked for were not returned: {pmid_list(missing)}")
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        warnings.append(f"efetch answered with an error: {errors[0]}{more}")
    report = FetchReport(
        output=str(output), query=query, count=state["count"], wanted=len(ids), records=records,
        batches=len(batches), batches_resumed=resumed, requests=client.requests,
        seconds=round(time.perf_counter() - started, 2), missing=missing, warnings=warnings,
    )  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    return report


def batch_folder(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


def _read_note(path: Path) -> Batch | None:
    """What an incomplete batch lacks, as saved beside it (None: no usable note, fetch it again)."""
    try:
        note = load_json(path.read_text())
        missing = [str(p) for p in note["missing"]]
        error = note.get("error")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Batch(body=b"", missing=missing, error=str(error) if error else None)


def _load_state(work: Path, query: str | None, pmids: list[str] | None, limit: int | None) -> dict | None:
    """The saved state of an interrupted fetch of the same request, if any."""
    try:
        state = load_json((work / "state.json").read_text())
    except (OSError, ValueError):
        return None
    same = state.get("query") == query and state.get("pmids_given") == pmids and state.get("limit") == limit
    return state if same else None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _merge(batches: list[Path], output: Path) -> int:
    """Write the articles of every batch into one PubmedArticleSet."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    count = 0
    opener = gzip.open if output.name.endswith(".gz") else open
    with opener(tmp, "wb") as out:  # type: ignore[operator]
        out.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<PubmedArticleSet>\n')
        for batch in batches:
            for element in _articles(batch):
                out.write(tostring(element, encoding="utf-8", xml_declaration=False) + b"\n")
                count += 1
        out.write(b"</PubmedArticleSet>\n")
    os.replace(tmp, output)
    return count


def _articles(path: Path) -> Iterator[Element]:
    depth = 0
    for event, el in iterparse(str(path), events=("start", "end"), forbid_dtd=False):
        if event == "start":
            depth += 1
            continue
        depth -= 1
        if depth == 1 and el.tag in ("PubmedArticle", "PubmedBookArticle", "DeleteCitation"):
            yield el


def query_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


__all__ = ["FetchReport", "fetch_records", "read_pmid_file", "batch_folder", "query_digest"]
