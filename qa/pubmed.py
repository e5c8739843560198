"""Live PubMed: fetch records for a search (or a PMID list) through NCBI's E-utilities.

``esearch`` (with the history server) gives the query's PMIDs; ``efetch`` returns
their PubMed XML in batches of at most 200, each checked by the same parser as
files before it counts as done. NCBI's limits are honoured: at most 3 requests
a second, 10 with an API key; ``tool`` and ``email`` go with every request;
429 and 5xx answers, dropped connections and truncated bodies are retried with
exponential backoff and jitter, a bounded number of times.

A fetch keeps its progress in a folder beside the output (``<out>.partial/``):
the PMID list and every complete batch. Run again, it continues from the last
complete batch; a batch that did not arrive whole is never used.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError, tostring

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring, iterparse

from .errors import FetchError, QAError
from .records import normalize_pmid

DEFAULT_EUTILS_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
BATCH_SIZE = 200  # efetch records per request (NCBI asks for at most 200 with POSTed id lists)
ESEARCH_PAGE = 10_000  # esearch returns at most this many ids per request
TOOL = "pubmed-qa"


@dataclass(frozen=True)
class Search:
    term: str
    count: int
    pmids: list[str]
    webenv: str | None = None
    query_key: str | None = None


class _Retry(Exception):
    """A failure worth another try (429, 5xx, a dropped connection, a truncated body)."""


class EUtils:
    """A polite E-utilities client: rate-limited, retrying, one clear error when it gives up."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        email: str | None = None,
        max_retries: int = 5,
        backoff: float = 1.0,
        timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        transport: Any = None,
    ) -> None:
        import httpx

        self.base_url = (base_url or os.environ.get("QA_EUTILS_URL") or DEFAULT_EUTILS_URL).rstrip("/") + "/"
        self.api_key = api_key if api_key is not None else os.environ.get("NCBI_API_KEY") or None
        self.email = email if email is not None else os.environ.get("NCBI_EMAIL") or None
        self.interval = 1 / 10 if self.api_key else 1 / 3  # NCBI: 3 requests/s, 10 with a key
        self.max_retries = max_retries
        self.backoff = backoff
        self.clock, self.sleep = clock, sleep
        self._last: float | None = None
        self.requests = 0
        self.client = httpx.Client(timeout=timeout, transport=transport, follow_redirects=True)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> EUtils:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -----------------------------------------------------------

    def _wait_turn(self) -> None:
        now = self.clock()
        if self._last is not None:
            wait = self._last + self.interval - now
            if wait > 0:
                self.sleep(wait)
                now += wait
        self._last = now

    def request(self, endpoint: str, params: dict[str, Any], *, check: Callable[[bytes], None] | None = None) -> bytes:
        """GET (or POST, for long id lists) an endpoint; retried until ``check`` accepts the body."""
        import httpx

        params = {**params, "tool": TOOL}
        if self.email:
            params["email"] = self.email
        if self.api_key:
            params["api_key"] = self.api_key
        url = self.base_url + endpoint
        post = len(str(params.get("id", ""))) > 200
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            self._wait_turn()
            self.requests += 1
            retry_after = None
            try:
                response = self.client.post(url, data=params) if post else self.client.get(url, params=params)
                if response.status_code == 429 or response.status_code >= 500:
                    retry_after = response.headers.get("Retry-After")
                    raise _Retry(f"HTTP {response.status_code}")
                if response.status_code >= 400:
                    raise FetchError(f"{url} answered HTTP {response.status_code}: {_first_line(response.text)}")
                body = response.content
                if check is not None:
                    check(body)
                return body
            except httpx.ConnectError as exc:
                if _unreachable(exc):  # no network or nothing listening: retrying only makes the user wait
                    raise FetchError(
                        f"cannot reach {self.base_url} ({_first_line(str(exc)) or 'connection failed'}); "
                        "no network? build from files: qa build FILE"
                    ) from None
                last_problem = str(exc) or type(exc).__name__
            except (_Retry, httpx.TransportError, httpx.DecodingError) as exc:
                last_problem = str(exc) or type(exc).__name__
            if attempt < self.max_retries:
                delay = self.backoff * (2**attempt) * (0.5 + random.random())  # exponential, with jitter
                if retry_after and retry_after.strip().isdigit():
                    delay = max(delay, float(retry_after))
                self.sleep(delay)
        raise FetchError(
            f"E-utilities at {self.base_url} failed {self.max_retries + 1} times ({last_problem}); try again later"
        )

    # -- E-utilities -----------------------------------------------------------

    def search(self, term: str, *, limit: int | None = None) -> Search:
        """The PMIDs of a PubMed search, in PubMed's order (``limit`` caps how many)."""
        if not term.strip():
            raise FetchError("the PubMed query is empty")
        first = _esearch_xml(self.request("esearch.fcgi", {"db": "pubmed", "term": term, "usehistory": "y",
                                                            "retmax": 0}, check=_xml_check))  # fmt: skip
        count = int(first.findtext("Count") or 0)
        webenv, key = first.findtext("WebEnv"), first.findtext("QueryKey")
        wanted = count if limit is None else min(count, limit)
        pmids: list[str] = []
        while len(pmids) < wanted:
            page = min(ESEARCH_PAGE, wanted - len(pmids))
            params = {"db": "pubmed", "retstart": len(pmids), "retmax": page}
            params.update({"WebEnv": webenv, "query_key": key} if webenv and key else {"term": term})
            root = _esearch_xml(self.request("esearch.fcgi", params, check=_xml_check))
            ids = [e.text.strip() for e in root.findall("IdList/Id") if e.text and e.text.strip()]
            if not ids:
                break
            pmids.extend(ids)
        return Search(term=term, count=count, pmids=list(dict.fromkeys(pmids[:wanted])), webenv=webenv, query_key=key)

    def fetch(self, pmids: list[str]) -> bytes:
        """PubMed XML of up to 200 PMIDs; retried until the body parses completely."""
        return self.request(
            "efetch.fcgi", {"db": "pubmed", "id": ",".join(pmids), "retmode": "xml"}, check=_complete_pubmed_xml
        )


def _unreachable(exc: Exception) -> bool:
    """A failed name lookup or a refused connection: the same on every retry."""
    text = str(exc).lower()
    cause = exc.__cause__ or exc.__context__
    errno = getattr(cause, "errno", None)
    import socket

    return (
        isinstance(cause, (socket.gaierror, ConnectionRefusedError))
        or errno in (111, -2, -3, -5)
        or any(
            m in text
            for m in (
                "name resolution",
                "name or service not known",
                "nodename nor servname",
                "connection refused",
                "getaddrinfo failed",
            )
        )  # fmt: skip
    )


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:200]


def _xml_check(body: bytes) -> None:
    try:
        fromstring(body)
    except (ParseError, DefusedXmlException):
        raise _Retry("incomplete XML") from None


def _esearch_xml(body: bytes) -> Element:
    root = fromstring(body)
    error = root.findtext("ERROR")
    if error:
        raise FetchError(f"PubMed search failed: {error.strip()}")
    return root


def _complete_pubmed_xml(body: bytes) -> None:
    """A truncated or garbled batch is retried, never indexed."""
    try:
        root = fromstring(body)
    except (ParseError, DefusedXmlException):
        raise _Retry("truncated or malformed efetch body") from None
    if root.tag != "PubmedArticleSet":
        error = root.findtext("ERROR") or root.tag
        raise FetchError(f"efetch answered <{root.tag}>: {error}")


# ---------------------------------------------------------------- resumable fetch


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

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


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
) -> FetchReport:
    """Save what a search (or PMID list) returns as one PubMed XML file (gzipped if it ends in .gz)."""
    started = time.perf_counter()
    output = Path(output)
    work = batch_folder(output)
    state = _load_state(work, query, pmids, limit)
    resumed = 0
    if state is None:
        if query is not None:
            found = client.search(query, limit=limit)
            ids, count = found.pmids, found.count
        else:
            ids = list(dict.fromkeys(pmids or []))[: limit if limit is not None else None]
            count = len(ids)
        state = {"query": query, "pmids_given": pmids, "limit": limit, "count": count, "pmids": ids}
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        _write_atomic(work / "state.json", json.dumps(state).encode())
    ids = state["pmids"]
    batches = [ids[i : i + BATCH_SIZE] for i in range(0, len(ids), BATCH_SIZE)]
    done = 0
    for n, batch in enumerate(batches):
        target = work / f"batch-{n:06d}.xml"
        if target.is_file():
            resumed += 1
        else:
            _write_atomic(target, client.fetch(batch))  # complete bodies only; renamed into place
        done += len(batch)
        if progress:
            progress(done, len(ids))
    records = _merge(sorted(work.glob("batch-*.xml")), output)
    report = FetchReport(
        output=str(output), query=query, count=state["count"], wanted=len(ids), records=records,
        batches=len(batches), batches_resumed=resumed, requests=client.requests,
        seconds=round(time.perf_counter() - started, 2),
    )  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    return report


def batch_folder(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


def _load_state(work: Path, query: str | None, pmids: list[str] | None, limit: int | None) -> dict | None:
    """The saved state of an interrupted fetch of the same request, if any."""
    try:
        state = json.loads((work / "state.json").read_text())
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


__all__ = ["EUtils", "FetchReport", "Search", "fetch_records", "read_pmid_file", "DEFAULT_EUTILS_URL"]
