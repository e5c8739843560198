"""E-utilities: the client that asks NCBI's E-utilities for a search's PMIDs and their records.

``esearch`` (with the history server) gives the query's PMIDs; ``elink`` the articles citing a PMID
or similar to it; ``efetch`` returns
their PubMed XML in batches of at most 200, each parsed (defusedxml's ``fromstring``)
and checked to hold the PMIDs asked for before it counts as done; the file parser
(``files``) reads the saved records only when they are built. NCBI's limits are honoured: at most 3 requests
a second, 10 with an API key; ``tool`` and ``email`` go with every request;
429 and 5xx answers, dropped connections and truncated bodies are retried with
exponential backoff and jitter, a bounded number of times (``Retry-After`` is
honoured up to ``MAX_RETRY_AFTER`` seconds).

Nothing is silently partial: an efetch answer that holds an ``<ERROR>`` or lacks
PMIDs that were asked for, and a search whose ``Count`` changes while its PMIDs
are listed, stop the fetch with an error naming what is missing, unless the
caller allows a partial result (``allow_partial``), which the report then lists.

Hostile servers are bounded: redirects are followed only within the base URL's
scheme, host and port (the API key never goes anywhere else); every answer must
arrive within a total deadline and stay under a size cap, both checked while the
body streams in; a search of more than ``DEFAULT_MAX_RECORDS`` records needs an
explicit limit.

Resumable fetches to a file are ``fetch``'s.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from ..errors import FetchError
from ..records import normalize_pmid

if TYPE_CHECKING:
    import httpx

DEFAULT_EUTILS_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
BATCH_SIZE = 200  # efetch records per request (NCBI asks for at most 200 with POSTed id lists)
ESEARCH_PAGE = 10_000  # esearch returns at most this many ids per request
DEFAULT_MAX_RECORDS = 10_000  # a search matching more needs an explicit limit (--max)
MAX_RETRY_AFTER = 60.0  # seconds: a longer Retry-After is waited this long
REQUEST_DEADLINE = 120.0  # seconds for one answer, redirects and the whole body included
MAX_BODY_BYTES = 256 * 1024 * 1024  # an answer larger than this is refused while it streams in
MAX_REDIRECTS = 5
ERROR_BODY_BYTES = 4096  # read at most this much of an error answer (for its first line)
TOOL = "pubmed-qa"
MAX_LINKS = 100_000  # linked PMIDs read from one elink answer (the most-cited papers have tens of thousands)
LINK_NAMES = {"cited-by": "pubmed_pubmed_citedin", "similar": "pubmed_pubmed"}  # what PubMed's pages list


@dataclass(frozen=True)
class Search:
    term: str
    count: int
    pmids: list[str]
    webenv: str | None = None
    query_key: str | None = None
    warnings: tuple[str, ...] = ()  # what allow_partial let through (a Count that changed mid-listing)


@dataclass(frozen=True)
class Batch:
    """One efetch answer: the body, the PMIDs asked for that it lacks, and PubMed's <ERROR>, if any."""

    body: bytes
    missing: list[str]
    error: str | None = None

    @property
    def complete(self) -> bool:
        return not self.missing and self.error is None


class _Retry(Exception):
    """A failure worth another try (429, 5xx, a dropped connection, a truncated body)."""


class EUtils:
    """A polite E-utilities client: rate-limited, retrying, bounded, one clear error when it gives up."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        email: str | None = None,
        max_retries: int = 5,
        backoff: float = 1.0,
        timeout: float = 60.0,
        deadline: float = REQUEST_DEADLINE,
        max_body_bytes: int = MAX_BODY_BYTES,
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
        self.timeout = timeout  # httpx's per-read (connect, write) timeout
        self.deadline = deadline  # the total time one answer may take
        self.max_body_bytes = max_body_bytes
        self.clock, self.sleep = clock, sleep
        self._last: float | None = None
        self.requests = 0
        self._origin = _origin(httpx.URL(self.base_url))
        # Redirects are followed by hand, only within the base URL's origin (see _exchange).
        self.client = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)

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
        method = "POST" if len(str(params.get("id", ""))) > 200 else "GET"
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            retry_after = None
            deadline_at = time.monotonic() + self.deadline
            try:
                status, headers, body = self._exchange(method, url, params, deadline_at)
                if status == 429 or status >= 500:
                    retry_after = headers.get("Retry-After")
                    raise _Retry(f"HTTP {status}")
                if status >= 400:
                    raise FetchError(self._scrub(f"{url} answered HTTP {status}: {_first_line(_text(body))}"))
                if status >= 300:
                    raise FetchError(f"{url} answered HTTP {status} without a usable Location")
                if check is not None:
                    check(body)
                return body
            except httpx.ConnectError as exc:
                if _unreachable(exc):  # no network or nothing listening: retrying only makes the user wait
                    raise FetchError(
                        self._scrub(
                            f"cannot reach {self.base_url} ({_first_line(str(exc)) or 'connection failed'}); "
                            "this needs the internet (no network?); offline, build from files: qa build FILE"
                        )
                    ) from None
                last_problem = str(exc) or type(exc).__name__
            except httpx.TimeoutException as exc:
                if time.monotonic() >= deadline_at:
                    raise self._too_slow(endpoint) from None
                last_problem = str(exc) or type(exc).__name__
            except (_Retry, httpx.TransportError, httpx.DecodingError) as exc:
                last_problem = str(exc) or type(exc).__name__
            if attempt < self.max_retries:
                delay = self.backoff * (2**attempt) * (0.5 + random.random())  # exponential, with jitter
                asked = _retry_after_seconds(retry_after)
                if asked is not None:
                    delay = max(delay, min(asked, MAX_RETRY_AFTER))
                self.sleep(delay)
        raise FetchError(
            self._scrub(
                f"E-utilities at {self.base_url} failed {self.max_retries + 1} times "
                f"({_first_line(last_problem)}); try again later"
            )
        )

    def _exchange(
        self, method: str, url: str, params: dict[str, Any] | None, deadline_at: float
    ) -> tuple[int, httpx.Headers, bytes]:
        """One answer, following same-origin redirects; its body read in chunks under the deadline and size cap."""
        import httpx

        endpoint = url.rsplit("/", 1)[-1].split("?", 1)[0]
        for _hop in range(MAX_REDIRECTS + 1):
            self._wait_turn()
            self.requests += 1
            remaining = deadline_at - time.monotonic()
            if remaining <= 0:
                raise self._too_slow(endpoint)
            send: dict[str, Any] = {}
            if params is not None:
                send = {"data": params} if method == "POST" else {"params": params}
            with self.client.stream(method, url, timeout=min(self.timeout, remaining), **send) as response:
                if response.is_redirect:
                    try:
                        target = response.url.join(response.headers["Location"])
                    except httpx.InvalidURL:
                        raise FetchError(f"{self.base_url} redirected {endpoint} to an invalid address") from None
                    if _origin(target) != self._origin:
                        where = f"{target.scheme}://{target.host}" + (f":{target.port}" if target.port else "")
                        raise FetchError(
                            f"{self.base_url} redirected {endpoint} to another server ({where}); not following it "
                            "(the API key and email go only to the E-utilities URL): check --eutils-url"
                        )
                    if response.status_code not in (307, 308) or method != "POST":
                        method, params = "GET", None  # the Location holds the whole request ...
                        target = target.copy_merge_params(self._identity(target))  # ... and NCBI's tool and email
                    # (a 307/308 to a POST: the same POST, body and all, to the new address)
                    url = str(target)
                    continue
                error = response.status_code >= 400
                return response.status_code, response.headers, self._read(response, endpoint, deadline_at, error)
        raise FetchError(f"{self.base_url} redirected {endpoint} more than {MAX_REDIRECTS} times; check --eutils-url")

    def _read(self, response: httpx.Response, endpoint: str, deadline_at: float, error: bool) -> bytes:
        """The body, chunk by chunk: the deadline is checked between chunks, the size cap as they arrive.

        An error answer is read only as far as its first line needs (``ERROR_BODY_BYTES``).
        """
        cap = self.max_body_bytes
        declared = response.headers.get("Content-Length", "")
        if not error and declared.strip().isdigit() and int(declared) > cap:
            raise self._too_large(endpoint, int(declared))
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            chunks.append(chunk)
            if error and size >= ERROR_BODY_BYTES:
                break
            if size > cap:
                raise self._too_large(endpoint, None)
            if time.monotonic() > deadline_at:
                raise self._too_slow(endpoint)
        return b"".join(chunks)

    def _identity(self, url: httpx.URL) -> dict[str, str]:
        """``tool`` and ``email``, which NCBI asks for on every request, where ``url`` lacks them."""
        wanted = {"tool": TOOL, **({"email": self.email} if self.email else {})}
        return {k: v for k, v in wanted.items() if k not in url.params}

    def _too_slow(self, endpoint: str) -> FetchError:
        return FetchError(
            f"no complete answer to {endpoint} from E-utilities at {self.base_url} within {self.deadline:g} s "
            "(a stalled or very slow connection); try again later"
        )

    def _too_large(self, endpoint: str, declared: int | None) -> FetchError:
        size = f"{declared:,} bytes" if declared is not None else f"more than {self.max_body_bytes:,} bytes"
        return FetchError(
            f"the answer to {endpoint} from E-utilities at {self.base_url} is {size}, over the limit of "
            f"{self.max_body_bytes:,}; stopped reading it (is the E-utilities URL right?)"
        )

    def _scrub(self, text: str) -> str:
        """A message without the API key, whatever an exception or a server put in it."""
        return text.replace(self.api_key, "***") if self.api_key else text

    # -- E-utilities -----------------------------------------------------------

    def search(self, term: str, *, limit: int | None = None, allow_partial: bool = False) -> Search:
        """The PMIDs of a PubMed search, in PubMed's order (``limit`` caps how many).

        Without a limit, a search of more than ``DEFAULT_MAX_RECORDS`` is refused. A Count that
        changes while the PMIDs are listed (or a listing shorter than it) is an error, unless
        ``allow_partial``: then the search returns what was listed, with a warning.
        """
        if not term.strip():
            raise FetchError("the PubMed query is empty")
        first = _esearch_xml(self.request("esearch.fcgi", {"db": "pubmed", "term": term, "usehistory": "y",
                                                            "retmax": 0}, check=_xml_check))  # fmt: skip
        count = _count(first)
        if limit is None and count > DEFAULT_MAX_RECORDS:
            raise FetchError(
                f"the search matches {count:,} records, more than {DEFAULT_MAX_RECORDS:,}: "
                f"pass --max {count} to fetch them (or narrow the search)"
            )
        webenv, key = first.findtext("WebEnv"), first.findtext("QueryKey")
        wanted = count if limit is None else min(count, limit)
        pmids: list[str] = []
        problem = ""
        while len(pmids) < wanted:
            page = min(ESEARCH_PAGE, wanted - len(pmids))
            params = {"db": "pubmed", "retstart": len(pmids), "retmax": page}
            params.update({"WebEnv": webenv, "query_key": key} if webenv and key else {"term": term})
            root = _esearch_xml(self.request("esearch.fcgi", params, check=_xml_check))
            now = _count(root)
            if now != count and not problem:
                problem = f"the search's Count changed from {count:,} to {now:,} while its PMIDs were listed"
                if not allow_partial:
                    break
            ids = [e.text.strip() for e in root.findall("IdList/Id") if e.text and e.text.strip()]
            if not ids:
                break
            pmids.extend(ids)
        pmids = list(dict.fromkeys(pmids[:wanted]))
        if not problem and len(pmids) < wanted:
            problem = f"esearch listed {len(pmids):,} distinct PMIDs of the {wanted:,} expected"
        if problem and not allow_partial:
            raise FetchError(f"{problem} (PubMed updated mid-fetch?); run again, or pass --allow-partial")
        return Search(
            term=term, count=count, pmids=pmids, webenv=webenv, query_key=key,
            warnings=(problem,) if problem else (),
        )  # fmt: skip

    def links(self, pmid: str, kind: str) -> list[str]:
        """PMIDs linked to ``pmid`` (``elink``): "cited-by" (pubmed_pubmed_citedin: the articles PubMed Central
        knows to cite it) or "similar" (pubmed_pubmed: PubMed's similar articles, most similar first)."""
        normal = normalize_pmid(pmid)
        if normal is None:
            raise FetchError(f"not a PMID: {str(pmid)[:40]!r}")
        if kind not in LINK_NAMES:
            raise FetchError(f"unknown link {kind!r}; choose one of {', '.join(LINK_NAMES)}")
        params = {"dbfrom": "pubmed", "db": "pubmed", "id": normal, "linkname": LINK_NAMES[kind], "retmode": "xml"}
        body = self.request("elink.fcgi", params, check=_xml_check)
        return _linked(fromstring(body), normal, LINK_NAMES[kind])

    def fetch_batch(self, pmids: list[str]) -> Batch:
        """PubMed XML of up to 200 PMIDs; retried until the body parses completely, then checked against ``pmids``."""
        parsed: list[Element] = []

        def check(body: bytes) -> None:
            parsed[:] = [_complete_pubmed_xml(body)]

        body = self.request("efetch.fcgi", {"db": "pubmed", "id": ",".join(pmids), "retmode": "xml"}, check=check)
        root = parsed[0]
        got = _returned_pmids(root)
        missing = [p for p in pmids if (normalize_pmid(p) or p) not in got]
        error = root.findtext("ERROR")
        return Batch(body=body, missing=missing, error=_first_line(error) if error is not None else None)


def _linked(root: Element, pmid: str, linkname: str) -> list[str]:
    """The PMIDs an elink answer links ``pmid`` to by ``linkname``, in PubMed's order, ``pmid`` itself left out."""
    if root.tag != "eLinkResult":
        raise FetchError(f"elink answered <{_first_line(root.tag)[:60]}>, not an eLinkResult (is the E-utilities URL "
                         "right?)")  # fmt: skip
    error = root.findtext("ERROR") or root.findtext("LinkSet/ERROR")
    if error:
        raise FetchError(f"PubMed elink failed: {_first_line(error)}")
    out: list[str] = []
    for group in root.findall("LinkSet/LinkSetDb"):
        if (group.findtext("LinkName") or "").strip() != linkname:
            continue
        for link in group.findall("Link/Id"):
            linked = normalize_pmid(link.text or "")
            if linked is None:
                raise FetchError(f"elink answered a link that is not a PMID: {_first_line(link.text or '')[:40]!r}")
            if linked != pmid:
                out.append(linked)
            if len(out) > MAX_LINKS:
                raise FetchError(f"elink answered more than {MAX_LINKS:,} links for PMID {pmid}; not a PubMed answer")
    return list(dict.fromkeys(out))


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    port = url.port or {"http": 80, "https": 443}.get(url.scheme, 0)
    return url.scheme, url.host, port


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _text(body: bytes) -> str:
    return body.decode("utf-8", "replace")


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


_HTML = re.compile(  # an HTML page, after an optional XML declaration and comments
    rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])", re.IGNORECASE | re.DOTALL
)


def not_eutils(body: bytes, what: str) -> FetchError | None:
    """The error for an answer that is plainly not E-utilities XML -- an HTML page (a proxy's error page, a
    login page, a captive portal) or JSON -- which is never read as an empty search."""
    head = body[:4096]
    if _HTML.match(head):
        return FetchError(f"{what} answered an HTML page, not E-utilities XML (a proxy, a login page or a captive "
                          "portal?); check the network, or --eutils-url")  # fmt: skip
    if head.lstrip()[:1] in (b"{", b"["):
        return FetchError(f"{what} answered JSON, not E-utilities XML; check --eutils-url")
    return None


def _xml_check(body: bytes) -> None:
    problem = not_eutils(body, "E-utilities")
    if problem is not None:
        raise problem
    if not body.strip():
        raise _Retry("an empty answer")
    try:
        fromstring(body)
    except (ParseError, DefusedXmlException):
        raise _Retry("incomplete XML") from None


def _esearch_xml(body: bytes) -> Element:
    root = fromstring(body)
    if root.tag != "eSearchResult":
        raise FetchError(f"esearch answered <{_first_line(root.tag)[:60]}>, not an eSearchResult (is the "
                         "E-utilities URL right?)")  # fmt: skip
    error = root.findtext("ERROR")
    if error:
        raise FetchError(f"PubMed search failed: {_first_line(error)}")
    return root


def _count(root: Element) -> int:
    text = (root.findtext("Count") or "0").strip()
    if not text.isdigit():
        raise FetchError(f"esearch answered a Count that is not a number: {_first_line(text)[:40]!r}")
    return int(text)


def _complete_pubmed_xml(body: bytes) -> Element:
    """A truncated or garbled batch is retried, never indexed; an <ERROR> answer is returned for the caller to judge."""
    problem = not_eutils(body, "efetch")
    if problem is not None:
        raise problem
    try:
        root = fromstring(body)
    except (ParseError, DefusedXmlException):
        raise _Retry("truncated or malformed efetch body") from None
    if root.tag != "PubmedArticleSet" and root.find("ERROR") is None:
        raise FetchError(
            f"efetch answered <{_first_line(root.tag)[:60]}>, not PubMed XML (is the E-utilities URL right?)"
        )
    return root


def _returned_pmids(root: Element) -> set[str]:
    """The PMIDs of the articles in an efetch answer."""
    found: set[str] = set()
    for article in root:
        if article.tag == "PubmedArticle":
            text = article.findtext("MedlineCitation/PMID")
        elif article.tag == "PubmedBookArticle":
            text = article.findtext("BookDocument/PMID")
        else:
            continue
        pmid = normalize_pmid(text or "")
        if pmid:
            found.add(pmid)
    return found


def missing_message(missing: list[str], asked: int, errors: list[str]) -> str:
    said = f"; PubMed said: {_first_line(errors[0])[:120]}" if errors else ""
    if not missing:
        return f"efetch answered with an error{said}; run again, or pass --allow-partial to keep what arrived"
    return (
        f"efetch did not return {len(missing):,} of the {asked:,} PMIDs asked for: {pmid_list(missing)} "
        f"(deleted, not in PubMed, or a failed batch{said}); run again to retry them, "
        "or pass --allow-partial to save the records that arrived"
    )


def pmid_list(pmids: list[str], shown: int = 10) -> str:
    head = ", ".join(pmids[:shown])
    return head + (f" and {len(pmids) - shown:,} more" if len(pmids) > shown else "")


__all__ = [
    "DEFAULT_EUTILS_URL",
    "DEFAULT_MAX_RECORDS",
    "MAX_BODY_BYTES",
    "MAX_RETRY_AFTER",
    "REQUEST_DEADLINE",
    "BATCH_SIZE",
    "LINK_NAMES",
    "Batch",
    "EUtils",
    "Search",
    "missing_message",
    "pmid_list",
]
