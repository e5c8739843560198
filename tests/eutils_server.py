"""A local stand-in for NCBI's E-utilities, on 127.0.0.1, built from the shared PubMed XML.

It answers ``esearch.fcgi`` (Count, RetMax, RetStart, QueryKey, WebEnv, IdList, or an
``<ERROR>`` body), ``efetch.fcgi`` (GET or POST ``id=``) and ``elink.fcgi`` (``linkname``
pubmed_pubmed_citedin or pubmed_pubmed, from ``links``) in the shapes NCBI uses, logs
every request with its time and parameters, and can be told to fail the next requests:
``429`` (with Retry-After), ``500``, ``drop`` (close the connection without an answer) or
``truncate`` (send half the body).

Hostile behaviours, set as attributes of the server:

* ``always``: one of the failures above for every request, forever (``"500"``, ``"429"``,
  ``"truncate"``, ``"drop"``); ``retry_after`` is the Retry-After header of a 429;
* ``drip``: send each answer's body one byte at a time, this many seconds apart;
* ``huge``: answer with this many bytes (``huge_declared``: with a Content-Length saying so);
  ``sent`` counts the bytes actually written, so a test sees the client stop early;
* ``efetch_error``: ``"inside"`` (an ``<ERROR>`` in the PubmedArticleSet, with half the
  articles) or ``"instead"`` (an ``eFetchResult`` holding only an ``<ERROR>``);
* ``omit``: PMIDs efetch leaves out (deleted or never existing records);
* ``count_shift``: esearch's Count, on the id-list pages, differs by this from the first answer;
* ``count_extra``: every Count is this much higher than the PMIDs esearch lists;
* ``redirect_to``: answer every request with a 307 to this base URL (same path and query);
* ``links``: ``(pmid, linkname) -> linked PMIDs`` for elink (none listed: a LinkSet without links, as NCBI
  answers); ``elink_error``: answer elink with an ``<ERROR>`` instead;
* ``body_instead``: answer every request with this body, status 200, as text/html (a captive portal).
"""

from __future__ import annotations

import gzip
import re
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse


def load_articles(path: Path) -> dict[str, bytes]:
    """PMID -> the raw <PubmedArticle> XML of each record, in file order."""
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    out: dict[str, bytes] = {}
    for match in re.finditer(r"<PubmedArticle>.*?</PubmedArticle>", text, re.S):
        block = match.group(0)
        pmid = re.search(r"<PMID[^>]*>(\d+)</PMID>", block).group(1)  # type: ignore[union-attr]
        out[pmid] = block.encode("utf-8")
    return out


class EUtilsServer:
    def __init__(self, articles: dict[str, bytes]) -> None:
        self.articles = articles
        self.visible = list(articles)  # what a search can find (tests add "new papers" by growing it)
        self.failures: deque[str] = deque()  # applied to the next requests, in order
        self.fail_efetch_after: int | None = None  # fail every efetch after this many succeeded
        self.log: list[tuple[float, str, dict[str, str]]] = []
        self.efetch_ok = 0
        # hostile behaviours (see the module's docstring)
        self.always: str | None = None
        self.retry_after = "0"
        self.drip: float | None = None
        self.huge: int | None = None
        self.huge_declared = False
        self.sent = 0
        self.efetch_error: str | None = None
        self.omit: set[str] = set()
        self.count_shift = 0
        self.count_extra = 0
        self.redirect_to: str | None = None
        self.links: dict[tuple[str, str], list[str]] = {}
        self.elink_error = False
        self.body_instead: bytes | None = None
        self.stopping = threading.Event()
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/entrez/eutils/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> EUtilsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def search(self, term: str) -> list[str]:
        if term.strip().lower() == "all":
            return list(self.visible)
        words = [w.lower() for w in re.findall(r"\w+", term) if w.upper() not in ("AND", "OR")]
        return [p for p in self.visible if all(w in self.articles[p].decode().lower() for w in words)]

    def _handler(self):  # type: ignore[no-untyped-def]
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802
                self._answer(parse_qs(urlparse(self.path).query))

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(parse_qs(self.rfile.read(length).decode()))

            def _answer(self, query: dict[str, list[str]]) -> None:
                params = {k: v[0] for k, v in query.items()}
                endpoint = urlparse(self.path).path.rsplit("/", 1)[-1]
                server.log.append((time.monotonic(), endpoint, params))
                moved = urlparse(server.redirect_to or "")
                here = moved.netloc == server.url.split("/")[2] and self.path.startswith(moved.path)
                if server.redirect_to is not None and not here:  # already at the new address: answer
                    self.send_response(307)
                    target = server.redirect_to.rstrip("/") + "/" + self.path.split("/")[-1]
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                failure = server.failures.popleft() if server.failures else server.always
                if failure == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if failure in ("429", "500"):
                    self.send_response(int(failure))
                    if failure == "429":
                        self.send_header("Retry-After", server.retry_after)
                    self.end_headers()
                    self.wfile.write(b'{"error":"API rate limit exceeded"}')
                    return
                truncate = failure == "truncate"
                if server.huge is not None:
                    self._huge(server.huge)
                    return
                if server.body_instead is not None:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(server.body_instead)))
                    self.end_headers()
                    self.wfile.write(server.body_instead)
                    return
                if endpoint == "esearch.fcgi":
                    body = self._esearch(params)
                elif endpoint == "elink.fcgi":
                    body = self._elink(params)
                elif endpoint == "efetch.fcgi":
                    if server.fail_efetch_after is not None and server.efetch_ok >= server.fail_efetch_after:
                        self.send_response(503)
                        self.end_headers()
                        return
                    body = self._efetch(params)
                    server.efetch_ok += 1
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.drip is not None:
                    self._drip(body, server.drip)
                    return
                self.wfile.write(body[: len(body) // 2] if truncate else body)
                if truncate:
                    self.close_connection = True

            def _drip(self, body: bytes, seconds: float) -> None:
                self.close_connection = True
                try:
                    for i in range(len(body)):
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                        if server.stopping.wait(seconds):
                            return
                except OSError:  # the client gave up
                    return

            def _huge(self, size: int) -> None:
                """An answer of ``size`` bytes, written in chunks until the client stops reading."""
                self.close_connection = True
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                if server.huge_declared:
                    self.send_header("Content-Length", str(size))
                self.end_headers()
                chunk = b"<!-- " + b"x" * 65_000 + b" -->\n"
                try:
                    self.wfile.write(b"<PubmedArticleSet>\n")
                    while server.sent < size and not server.stopping.is_set():
                        self.wfile.write(chunk)
                        server.sent += len(chunk)
                except OSError:  # the client gave up
                    return

            def _esearch(self, p: dict[str, str]) -> bytes:
                term = p.get("term")
                if term is None and p.get("WebEnv"):
                    term = server.webenvs.get(p["WebEnv"], "")
                if term is not None and "error" in term.lower():
                    return b"<?xml version='1.0'?><eSearchResult><ERROR>Invalid query syntax</ERROR></eSearchResult>"
                ids = server.search(term or "")
                start, count = int(p.get("retstart", 0)), int(p.get("retmax", 20))
                page = ids[start : start + count]
                total = len(ids) + server.count_extra + (server.count_shift if count > 0 else 0)
                webenv = p.get("WebEnv") or f"MCID_{uuid.uuid4().hex[:16]}"
                server.webenvs[webenv] = term or ""
                id_list = "".join(f"<Id>{i}</Id>" for i in page)
                return (
                    "<?xml version='1.0' encoding='UTF-8' ?>\n"
                    '<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch 20060628//EN" '
                    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">\n'
                    f"<eSearchResult><Count>{total}</Count><RetMax>{len(page)}</RetMax>"
                    f"<RetStart>{start}</RetStart><QueryKey>1</QueryKey><WebEnv>{webenv}</WebEnv>"
                    f"<IdList>{id_list}</IdList></eSearchResult>\n"
                ).encode()

            def _elink(self, p: dict[str, str]) -> bytes:
                """NCBI's eLinkResult (the shape of a real answer, e.g. Biopython's Tests/Entrez/elink1.xml)."""
                head = (
                    '<?xml version="1.0" encoding="UTF-8" ?>\n'
                    '<!DOCTYPE eLinkResult PUBLIC "-//NLM//DTD elink 20101123//EN" '
                    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20101123/elink.dtd">\n<eLinkResult>\n'
                )
                if server.elink_error:
                    return (head + "<ERROR>Invalid uid 0 at position=0</ERROR>\n</eLinkResult>\n").encode()
                pmid, name = p.get("id", ""), p.get("linkname", "")
                linked = server.links.get((pmid, name), [])
                db = ""
                if linked:
                    ids = "".join(f"\t\t\t<Link>\n\t\t\t\t<Id>{i}</Id>\n\t\t\t</Link>\n" for i in linked)
                    db = (f"\t\t<LinkSetDb>\n\t\t\t<DbTo>pubmed</DbTo>\n\t\t\t<LinkName>{name}</LinkName>\n"
                          f"{ids}\t\t</LinkSetDb>\n")  # fmt: skip
                return (
                    f"{head}\t<LinkSet>\n\t\t<DbFrom>pubmed</DbFrom>\n\t\t<IdList>\n\t\t\t<Id>{pmid}</Id>\n"
                    f"\t\t</IdList>\n{db}\t</LinkSet>\n</eLinkResult>\n"
                ).encode()

            def _efetch(self, p: dict[str, str]) -> bytes:
                ids = [i for i in p.get("id", "").split(",") if i]
                error = b"<ERROR>Unable to obtain query #1\nbackend timeout</ERROR>"
                if server.efetch_error == "instead":
                    return b'<?xml version="1.0" ?>\n<eFetchResult>\n' + error + b"\n</eFetchResult>\n"
                found = [i for i in ids if i in server.articles and i not in server.omit]
                if server.efetch_error == "inside":
                    found = found[: len(found) // 2]
                parts = [server.articles[i] for i in found]
                if server.efetch_error == "inside":
                    parts.append(error)
                return (
                    b'<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, '
                    b'1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
                    b"<PubmedArticleSet>\n" + b"\n".join(parts) + b"\n</PubmedArticleSet>\n"
                )

        server.webenvs = {}
        return Handler

    webenvs: dict[str, str]

    def requests(self, endpoint: str) -> list[dict[str, str]]:
        return [p for _, e, p in self.log if e == endpoint]
