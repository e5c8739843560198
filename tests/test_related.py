"""Citing and similar articles through E-utilities elink, against the local E-utilities server and its faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qa.cli import app
from qa.errors import FetchError
from qa.ingest import EUtils
from qa.store import IndexStore

from .eutils_server import EUtilsServer

runner = CliRunner()
CITED_IN, SIMILAR = "pubmed_pubmed_citedin", "pubmed_pubmed"


@pytest.fixture()
def server(articles: dict[str, bytes]):  # type: ignore[no-untyped-def]
    with EUtilsServer(articles) as s:
        pmids = list(articles)
        s.links[(pmids[0], CITED_IN)] = pmids[1:6]
        s.links[(pmids[0], SIMILAR)] = [pmids[0], *pmids[10:14], pmids[10]]  # PubMed lists the PMID itself first
        yield s


def client(server: EUtilsServer, **kw) -> EUtils:  # type: ignore[no-untyped-def]
    return EUtils(server.url, backoff=0.0, sleep=lambda s: None, **kw)


def test_links_are_read_in_pubmeds_order_without_the_pmid_itself(server: EUtilsServer) -> None:
    pmids = list(server.articles)
    with client(server, email="me@example.org") as c:
        assert c.links(pmids[0], "cited-by") == pmids[1:6]
        assert c.links(pmids[0], "similar") == pmids[10:14]  # itself dropped, the repeat once
        assert c.links(pmids[20], "cited-by") == []  # a LinkSet with no LinkSetDb: nothing cites it
    asked = server.requests("elink.fcgi")
    assert [a["linkname"] for a in asked] == [CITED_IN, SIMILAR, CITED_IN]
    assert all(a["dbfrom"] == a["db"] == "pubmed" and a["tool"] == "pubmed-qa" and a["email"] == "me@example.org"
               for a in asked)  # fmt: skip


def test_elink_faults_are_retried_or_refused_in_one_line(server: EUtilsServer) -> None:
    pmid = next(iter(server.articles))
    server.failures.extend(["429", "truncate", "500"])
    with client(server) as c:
        assert len(c.links(pmid, "cited-by")) == 5  # after a 429, half a body and a 500
    assert len(server.requests("elink.fcgi")) == 4
    server.elink_error = True
    with client(server) as c, pytest.raises(FetchError, match="PubMed elink failed: Invalid uid"):
        c.links(pmid, "cited-by")
    with client(server) as c, pytest.raises(FetchError, match="not a PMID"):
        c.links("12ab", "cited-by")


def test_an_answer_that_is_not_elink_is_an_error_not_an_empty_list(server: EUtilsServer) -> None:
    """A proxy's page or another E-utility's answer where an eLinkResult should be: refused, never "no links"."""
    pmid = next(iter(server.articles))
    for body, message in ((b"<html><body><h1>Sign in to the network</h1></body></html>", "an HTML page"),
                          (b"<eSearchResult><Count>0</Count></eSearchResult>", "elink answered <eSearchResult>"),
                          (b"<html><body>Proxy error<br></body></html>", "an HTML page"),
                          (b"<notes>nothing to do with PubMed</notes>", "elink answered <notes>")):  # fmt: skip
        server.body_instead = body
        with client(server, max_retries=1) as c, pytest.raises(FetchError, match=message):
            c.links(pmid, "cited-by")


def test_qa_related_lists_them_and_marks_those_indexed(server: EUtilsServer, tmp_path: Path) -> None:
    pmids = list(server.articles)
    index = tmp_path / "index"
    built = runner.invoke(app, ["build", "--pmids", str(_pmid_file(tmp_path, pmids[1:3])), "--index", str(index),
                                "--eutils-url", server.url])  # fmt: skip
    assert built.exit_code == 0, built.output
    result = runner.invoke(app, ["related", pmids[0], "--index", str(index), "--eutils-url", server.url, "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [r["pmid"] for r in listed] == pmids[1:6]
    assert [r["indexed"] for r in listed] == [True, True, False, False, False]
    assert all(r["year"] and r["title"] is None for r in listed)  # the shared corpus withholds titles and journals
    shown = runner.invoke(app, ["related", pmids[0], "--similar", "--max", "2", "--index", str(index),
                                "--eutils-url", server.url])  # fmt: skip
    assert shown.exit_code == 0 and f"1. PMID {pmids[10]}" in shown.stdout and f"2. PMID {pmids[11]}" in shown.stdout
    assert f"PMID {pmids[12]}" not in shown.stdout
    none = runner.invoke(app, ["related", pmids[20], "--eutils-url", server.url, "--index", str(tmp_path / "no")])
    assert none.exit_code == 0 and "PubMed lists no such articles" in none.stdout


def test_qa_build_cited_by_adds_them_through_the_fetch_path(server: EUtilsServer, tmp_path: Path) -> None:
    pmids = list(server.articles)
    index = tmp_path / "index"
    result = runner.invoke(app, ["build", "--cited-by", pmids[0], "--index", str(index), "--eutils-url", server.url])
    assert result.exit_code == 0, result.output
    store = IndexStore(index)
    passages = store.open_passages()
    try:
        assert passages.pmids() == set(pmids[1:6])
    finally:
        passages.close()
    similar = runner.invoke(app, ["build", "--similar", pmids[0], "--max", "2", "--index", str(index),
                                  "--eutils-url", server.url])  # fmt: skip
    assert similar.exit_code == 0 and store.manifest().records == 7
    nothing = runner.invoke(app, ["build", "--cited-by", pmids[20], "--index", str(index), "--eutils-url", server.url])
    assert nothing.exit_code == 1 and "lists no citing articles" in nothing.output and store.manifest().records == 7
    both = runner.invoke(app, ["build", "--cited-by", pmids[0], "--similar", pmids[0], "--index", str(index)])
    assert both.exit_code == 1 and "not several" in both.output


def test_offline_it_says_in_one_line_that_it_needs_the_internet(tmp_path: Path) -> None:
    result = runner.invoke(app, ["related", "25589616", "--eutils-url", "http://127.0.0.1:9/"])
    assert result.exit_code == 1 and "needs the internet" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def _pmid_file(tmp_path: Path, pmids: list[str]) -> Path:
    path = tmp_path / "pmids.txt"
    path.write_text("\n".join(pmids) + "\n")
    return path
