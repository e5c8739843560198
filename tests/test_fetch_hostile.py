"""E-utilities misbehaving on purpose: nothing silently partial, nothing unbounded, the API key kept home.

Every test runs against the loopback server of ``eutils_server`` with an injected ``sleep``
(no backoff waits) and small caps, so the whole file takes seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa.errors import FetchError
from qa.ingest import fetch_records, read_source
from qa.ingest.eutils import DEFAULT_MAX_RECORDS, MAX_RETRY_AFTER, EUtils
from qa.records import Record

from .eutils_server import EUtilsServer

API_KEY = "k3y-SECRET-0123456789abcdef"
EMAIL = "someone@example.org"


@pytest.fixture()
def server(articles: dict[str, bytes]) -> Iterator[EUtilsServer]:
    with EUtilsServer(articles) as s:
        yield s


def client_for(server: EUtilsServer, **kw: object) -> EUtils:
    """Real HTTP and real retries, but no sleeping (and a key, to check it never leaks)."""
    options: dict = {"backoff": 0.0, "sleep": lambda s: None, "api_key": API_KEY, "email": EMAIL, **kw}
    return EUtils(server.url, **options)


def message(info: pytest.ExceptionInfo[FetchError]) -> str:
    """The error's text, checked for what every error must be: one line, no key, no body dump."""
    text = str(info.value)
    assert "\n" not in text and API_KEY not in text and len(text) < 600, text
    return text


def pmids_in(path: Path) -> list[str]:
    return [r.pmid for r in read_source(path) if isinstance(r, Record)]


# ------------------------------------------------------------ never silently partial


def test_efetch_error_inside_the_set_names_the_missing_pmids(server: EUtilsServer, tmp_path: Path) -> None:
    server.efetch_error = "inside"  # an <ERROR> in the PubmedArticleSet, with half the articles
    chosen = list(server.articles)[:50]
    out = tmp_path / "x.xml"
    with client_for(server) as client, pytest.raises(FetchError) as info:
        fetch_records(client, out, pmids=chosen)
    text = message(info)
    assert text.startswith("efetch did not return 25 of the 50 PMIDs")
    assert ", ".join(chosen[25:35]) in text and chosen[35] not in text and "and 15 more" in text
    assert "Unable to obtain query #1" in text and "backend timeout" not in text  # the error's first line only
    assert "--allow-partial" in text
    assert not out.exists()
    assert list(Path(f"{out}.partial").glob("batch-*.xml")) == []  # not stored as a complete batch
    # allowed: the same run completes from what was kept, and the report says what is missing
    server.log.clear()
    with client_for(server) as client:
        report = fetch_records(client, out, pmids=chosen, allow_partial=True)
    assert server.requests("efetch.fcgi") == [] and report.batches_resumed == 1
    assert report.missing == chosen[25:] and report.records == 25 and not report.complete
    assert pmids_in(out) == chosen[:25]
    assert any("25 of the 50 PMIDs" in w for w in report.warnings)
    assert any("Unable to obtain query #1" in w for w in report.warnings)
    as_dict = report.to_dict()
    assert as_dict["missing"] == chosen[25:] and as_dict["complete"] is False and as_dict["warnings"]


def test_efetch_error_instead_of_the_set(server: EUtilsServer, tmp_path: Path) -> None:
    server.efetch_error = "instead"  # <eFetchResult><ERROR>...</ERROR></eFetchResult>
    chosen = list(server.articles)[:12]
    with client_for(server) as client, pytest.raises(FetchError) as info:
        fetch_records(client, tmp_path / "x.xml", pmids=chosen)
    assert "did not return 12 of the 12" in message(info) and "and 2 more" in message(info)
    with client_for(server) as client:
        report = fetch_records(client, tmp_path / "y.xml", pmids=chosen, allow_partial=True)
    assert report.missing == chosen and report.records == 0


def test_efetch_returning_half_the_pmids_fails_and_keeps_only_complete_batches(
    server: EUtilsServer, tmp_path: Path
) -> None:
    chosen = list(server.articles)[:400]  # two batches; the second comes back half empty
    lost = chosen[200::2]
    server.omit = set(lost)
    out = tmp_path / "x.xml.gz"
    with client_for(server) as client, pytest.raises(FetchError) as info:
        fetch_records(client, out, pmids=chosen)
    text = message(info)
    assert "did not return 100 of the 400 PMIDs asked for: " + ", ".join(lost[:10]) + " and 90 more" in text
    partial = Path(f"{out}.partial")
    assert sorted(p.name for p in partial.glob("batch-*.xml")) == ["batch-000000.xml"]
    # PubMed answers in full again: only the incomplete batch is fetched again
    server.omit = set()
    server.log.clear()
    with client_for(server) as client:
        report = fetch_records(client, out, pmids=chosen)
    assert len(server.requests("efetch.fcgi")) == 1 and report.batches_resumed == 1
    assert report.complete and report.missing == [] and pmids_in(out) == chosen


def test_deleted_pmids_are_an_error_unless_partial_is_allowed(server: EUtilsServer, tmp_path: Path) -> None:
    gone = ["99999901", "99999902"]  # deleted, or never existed: efetch just leaves them out
    chosen = list(server.articles)[:5] + gone
    with client_for(server) as client, pytest.raises(FetchError) as info:
        fetch_records(client, tmp_path / "x.xml", pmids=chosen)
    assert "did not return 2 of the 7 PMIDs asked for: 99999901, 99999902 (" in message(info)
    with client_for(server) as client:
        report = fetch_records(client, tmp_path / "x.xml", pmids=chosen, allow_partial=True)
    assert report.missing == gone and report.records == 5 and report.wanted == 7
    assert pmids_in(tmp_path / "x.xml") == chosen[:5]


def test_a_count_that_changes_while_listing_is_an_error(server: EUtilsServer, tmp_path: Path) -> None:
    server.count_shift = 3  # new papers between the count request and the id-list requests
    out = tmp_path / "x.xml"
    with client_for(server) as client, pytest.raises(FetchError) as info:
        fetch_records(client, out, query="all")
    assert "Count changed from 1,000 to 1,003" in message(info) and "--allow-partial" in message(info)
    assert server.requests("efetch.fcgi") == [] and not out.exists()
    with client_for(server) as client:
        report = fetch_records(client, out, query="all", allow_partial=True)
    assert report.records == 1000 and not report.complete
    assert any("1,000 to 1,003" in w for w in report.warnings)


def test_a_listing_shorter_than_the_count_is_an_error(server: EUtilsServer) -> None:
    server.count_extra = 10  # Count says 1,010 on every answer; only 1,000 PMIDs are listed
    with client_for(server) as client, pytest.raises(FetchError) as info:
        client.search("all")
    assert message(info).startswith("esearch listed 1,000 distinct PMIDs of the 1,010 expected")
    with client_for(server) as client:
        found = client.search("all", allow_partial=True)
    assert len(found.pmids) == 1000 and found.warnings


def test_a_huge_search_needs_an_explicit_limit(server: EUtilsServer, tmp_path: Path) -> None:
    assert DEFAULT_MAX_RECORDS == 10_000
    server.visible = list(server.articles) + [str(90_000_000 + i) for i in range(9_001)]
    with client_for(server) as client, pytest.raises(FetchError) as info:
        fetch_records(client, tmp_path / "x.xml", query="all")
    assert message(info) == (
        "the search matches 10,001 records, more than 10,000: pass --max 10001 to fetch them (or narrow the search)"
    )
    assert server.requests("efetch.fcgi") == [] and len(server.requests("esearch.fcgi")) == 1
    with client_for(server) as client:
        found = client.search("all", limit=10_001)  # an explicit limit of any size is fine
    assert len(found.pmids) == 10_001 and found.count == 10_001


# ------------------------------------------------------------ redirects keep the key home


def test_a_redirect_to_another_server_is_refused_and_gets_no_key(
    server: EUtilsServer, articles: dict[str, bytes]
) -> None:
    with EUtilsServer(articles) as other:
        server.redirect_to = other.url  # same host name, another port: another origin
        with client_for(server) as client:
            with pytest.raises(FetchError) as info:
                client.search("all")  # GET: the key is in the query string
            text = message(info)
            assert "redirected esearch.fcgi to another server (http://127.0.0.1:" in text
            assert other.url.split("/")[2] in text and "--eutils-url" in text
            with pytest.raises(FetchError, match="another server"):
                client.fetch_batch(list(server.articles)[:60])  # POST: the key is in the body
        assert server.requests("esearch.fcgi")[0]["api_key"] == API_KEY  # the key went to the base URL...
        assert server.requests("efetch.fcgi")[0]["api_key"] == API_KEY
        assert "id" in server.requests("efetch.fcgi")[0]  # (a POSTed id list)
        assert other.log == []  # ...and nothing at all to the other server


def test_a_redirect_within_the_same_server_is_followed(server: EUtilsServer) -> None:
    server.redirect_to = server.url.replace("/entrez/eutils/", "/moved/eutils/")
    chosen = list(server.articles)[:60]
    with client_for(server) as client:
        assert len(client.search("all", limit=30).pmids) == 30
        batch = client.fetch_batch(chosen)  # a 307 to a POST: the same POST again
    assert batch.complete and batch.missing == []
    assert len(server.log) == 2 * 3  # every request answered once with a redirect, once for real


# ------------------------------------------------------------ bounded waits and sizes


def test_retry_after_is_capped(server: EUtilsServer) -> None:
    assert MAX_RETRY_AFTER == 60
    for header in ("86400", "Wed, 21 Oct 2099 07:28:00 GMT"):
        server.always, server.retry_after = "429", header
        server.log.clear()
        delays: list[float] = []
        with client_for(server, sleep=delays.append, max_retries=3) as client, pytest.raises(FetchError) as info:
            client.search("all")
        assert "failed 4 times (HTTP 429)" in message(info) and len(server.log) == 4
        assert [d for d in delays if d > 1] == [60.0, 60.0, 60.0]  # (the others: the rate limit's short waits)


def test_500_forever_gives_up_after_bounded_retries(server: EUtilsServer) -> None:
    server.always = "500"
    with client_for(server, max_retries=2) as client, pytest.raises(FetchError) as info:
        client.search("all")
    assert "failed 3 times (HTTP 500); try again later" in message(info) and len(server.log) == 3


def test_truncated_bodies_forever_give_up(server: EUtilsServer) -> None:
    server.always = "truncate"
    with client_for(server, max_retries=2) as client, pytest.raises(FetchError) as info:
        client.fetch_batch(list(server.articles)[:20])
    assert "failed 3 times" in message(info) and len(server.log) == 3


def test_a_dripping_server_hits_the_total_deadline(server: EUtilsServer) -> None:
    server.drip = 1.0  # one byte a second: never a read timeout, never an answer
    started = time.monotonic()
    with client_for(server, deadline=2.0) as client, pytest.raises(FetchError) as info:
        client.search("all")
    elapsed = time.monotonic() - started
    assert 1.5 < elapsed < 4.0
    assert message(info).startswith("no complete answer to esearch.fcgi from E-utilities at ")
    assert "within 2 s" in message(info) and len(server.log) == 1  # not retried


@pytest.mark.parametrize("declared", [False, True])
def test_a_huge_body_is_refused_while_it_streams(server: EUtilsServer, declared: bool) -> None:
    server.huge, server.huge_declared = 500_000_000, declared
    started = time.monotonic()
    with client_for(server, max_body_bytes=1_000_000) as client, pytest.raises(FetchError) as info:
        client.search("all")
    assert time.monotonic() - started < 5
    text = message(info)
    assert text.startswith("the answer to esearch.fcgi from E-utilities at ") and "over the limit of 1,000,000" in text
    assert ("is 500,000,000 bytes" if declared else "more than 1,000,000 bytes") in text
    assert len(server.log) == 1  # not retried
    time.sleep(0.2)
    assert server.sent < 50_000_000  # the client stopped reading long before the end


# ------------------------------------------------------------ answers checked for what they are

PORTAL = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body><p>Accept the terms of use<br></body></html>"


@pytest.mark.parametrize("body", [PORTAL, b'<?xml version="1.0"?>\n<html><body>Proxy error</body></html>',
                                  b'{"error": "service unavailable"}'])  # fmt: skip
def test_a_page_that_is_not_eutils_xml_is_an_error_never_an_empty_search(
    server: EUtilsServer, tmp_path: Path, body: bytes
) -> None:
    server.body_instead = body  # status 200, as a captive portal or a proxy answers
    out = tmp_path / "out.xml"
    with client_for(server) as client, pytest.raises(FetchError) as info:
        fetch_records(client, out, query="all")
    text = message(info)
    assert "not E-utilities XML" in text and ("HTML page" in text or "JSON" in text), text
    assert len(server.log) == 1 and not out.exists()  # refused at once: retrying a portal only makes you wait
    with client_for(server) as client, pytest.raises(FetchError, match="not E-utilities XML"):
        client.fetch_batch(list(server.articles)[:3])


def test_an_answer_of_another_kind_is_an_error(server: EUtilsServer) -> None:
    server.body_instead = b"<eLinkResult><LinkSet><DbFrom>pubmed</DbFrom></LinkSet></eLinkResult>"
    with client_for(server) as client, pytest.raises(FetchError) as info:
        client.search("all")
    assert "esearch answered <eLinkResult>, not an eSearchResult" in message(info)


def test_tool_and_email_go_with_every_request_of_the_fault_suite(server: EUtilsServer, tmp_path: Path) -> None:
    """Retries, a 307 to a POST, redirected GETs (whose Location holds the request) and elink: NCBI asks for
    ``tool`` and ``email`` on every one."""
    server.failures.extend(["429", "truncate", "500", "drop"])
    pmids = list(server.articles)
    server.links[(pmids[0], "pubmed_pubmed_citedin")] = pmids[1:3]
    with client_for(server) as client:
        fetch_records(client, tmp_path / "a.xml", query="all", limit=250)
        client.links(pmids[0], "cited-by")
    server.redirect_to = server.url.replace("/entrez/eutils/", "/moved/eutils/")
    with client_for(server) as client:
        client.search("all", limit=10)
        client.fetch_batch(pmids[:60])
    assert len(server.log) >= 12
    missing = [(endpoint, params) for _, endpoint, params in server.log
               if params.get("tool") != "pubmed-qa" or params.get("email") != EMAIL]  # fmt: skip
    assert not missing, missing
