"""Live PubMed against a local E-utilities server: batches, retries, rate limit, resume, update."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qa import Retriever
from qa.cli import app
from qa.errors import FetchError
from qa.ingest import EUtils, fetch_records, read_pmid_file, read_source
from qa.records import Record
from qa.store import IndexStore

from .eutils_server import EUtilsServer

runner = CliRunner()


@pytest.fixture()
def server(articles: dict[str, bytes]):  # type: ignore[no-untyped-def]
    with EUtilsServer(articles) as s:
        yield s


def fast_client(server: EUtilsServer, **kw) -> EUtils:  # type: ignore[no-untyped-def]
    """A client for tests: real HTTP, real retries, but no sleeping between requests."""
    return EUtils(server.url, backoff=0.0, sleep=lambda s: None, **kw)


def pmids_in(path: Path) -> list[str]:
    return [r.pmid for r in read_source(path) if isinstance(r, Record)]


def test_fetches_a_1000_record_search_in_batches(server: EUtilsServer, tmp_path: Path) -> None:
    out = tmp_path / "all.xml.gz"
    with fast_client(server, email="me@example.org") as client:
        report = fetch_records(client, out, query="all")
    assert report.count == report.wanted == report.records == 1000 and report.batches == 5
    got = pmids_in(out)
    assert len(got) == len(set(got)) == 1000 and got == list(server.articles)
    fetches = server.requests("efetch.fcgi")
    assert len(fetches) == 5 and all(len(f["id"].split(",")) <= 200 for f in fetches)
    searches = server.requests("esearch.fcgi")
    assert searches[0]["usehistory"] == "y" and searches[1]["WebEnv"].startswith("MCID_")
    assert all(p["tool"] == "pubmed-qa" and p["email"] == "me@example.org" for _, _, p in server.log)
    assert not (tmp_path / "all.xml.gz.partial").exists()


def test_failures_are_survived_with_nothing_lost_or_duplicated(server: EUtilsServer, tmp_path: Path) -> None:
    server.failures.extend(["429", "500"])  # the first esearch
    out = tmp_path / "all.xml"
    with fast_client(server) as client:
        found = client.search("all")
        assert found.count == 1000
        server.failures.extend(["drop", "truncate", "429", "500", "truncate"])  # efetch batches
        report = fetch_records(client, out, query="all")
    got = pmids_in(out)
    assert len(got) == len(set(got)) == 1000
    assert report.requests >= 5 + 5 + 2  # every failure cost a retry


def test_gives_up_after_bounded_retries_with_one_line(server: EUtilsServer, tmp_path: Path) -> None:
    server.failures.extend(["500"] * 10)
    with fast_client(server, max_retries=3) as client, pytest.raises(FetchError) as info:
        client.search("all")
    assert "failed 4 times" in str(info.value) and "\n" not in str(info.value)
    assert len(server.log) == 4


def test_error_body_and_unreachable_server(server: EUtilsServer, tmp_path: Path) -> None:
    with fast_client(server) as client, pytest.raises(FetchError, match="Invalid query syntax"):
        client.search("this is an error")
    result = runner.invoke(
        app, ["fetch", "anything", "-o", str(tmp_path / "x.xml"), "--eutils-url", "http://127.0.0.1:9/"]
    )
    assert result.exit_code == 1
    err = result.stderr.strip()
    assert err.startswith("Error: ") and "\n" not in err and "127.0.0.1:9" in err


def test_interrupted_fetch_resumes_from_the_last_complete_batch(server: EUtilsServer, tmp_path: Path) -> None:
    out = tmp_path / "all.xml.gz"
    server.fail_efetch_after = 2  # the third batch keeps failing: the run stops
    with fast_client(server, max_retries=2) as client, pytest.raises(FetchError):
        fetch_records(client, out, query="all")
    partial = tmp_path / "all.xml.gz.partial"
    assert sorted(p.name for p in partial.glob("batch-*.xml")) == ["batch-000000.xml", "batch-000001.xml"]
    assert not out.exists() and not list(partial.glob("*.tmp"))  # no half batch kept
    server.fail_efetch_after = None
    server.log.clear()
    with fast_client(server) as client:
        report = fetch_records(client, out, query="all")
    assert report.batches_resumed == 2
    assert len(server.requests("efetch.fcgi")) == 3 and server.requests("esearch.fcgi") == []
    got = pmids_in(out)
    assert len(got) == len(set(got)) == 1000


def test_rate_limit_with_a_fake_clock() -> None:
    import httpx

    now = [0.0]
    starts: list[float] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def answer(request: httpx.Request) -> httpx.Response:
        starts.append(now[0])
        return httpx.Response(200, content=b"<eSearchResult><Count>0</Count></eSearchResult>")

    for key, per_second in ((None, 3), ("secret", 10)):
        starts.clear()
        client = EUtils("http://eutils.test/", api_key=key, clock=lambda: now[0], sleep=sleep,
                        transport=httpx.MockTransport(answer))  # fmt: skip
        for _ in range(10):
            client.request("esearch.fcgi", {"term": "x"})
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        assert min(gaps) >= 1 / per_second - 1e-9
        assert (starts[-1] - starts[0]) / 9 == pytest.approx(1 / per_second)


def test_rate_limit_holds_in_real_time(server: EUtilsServer) -> None:
    with EUtils(server.url) as client:  # the real clock: at most 3 requests a second
        for _ in range(7):
            client.request("esearch.fcgi", {"db": "pubmed", "term": "all", "retmax": 0})
    times = [t for t, _, _ in server.log]
    assert times[-1] - times[0] >= 6 / 3 - 0.05
    assert all(p.get("api_key") is None for _, _, p in server.log)


def test_pmid_files(tmp_path: Path) -> None:
    plain = tmp_path / "ids.txt"
    plain.write_text("21645374\n\n16418930\n21645374\n")
    assert read_pmid_file(plain) == ["21645374", "16418930"]
    exported = tmp_path / "csv-export.csv"
    exported.write_text('PMID,Title,Authors\n21645374,"Do mitochondria, really?","A, B"\n9488747,"x","y"\n')
    assert read_pmid_file(exported) == ["21645374", "9488747"]
    bad = tmp_path / "bad.txt"
    bad.write_text("21645374\nabc\n")
    with pytest.raises(Exception, match="not a PMID"):
        read_pmid_file(bad)


def test_build_from_a_search_answers_and_update_adds_only_new(
    server: EUtilsServer, tmp_path: Path, queries, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA_EUTILS_URL", server.url)
    index = tmp_path / "index"
    server.visible = list(server.articles)[:60]  # "PubMed" today
    result = runner.invoke(app, ["build", "--pubmed", "all", "--max", "40", "--index", str(index), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["records_indexed"] == 40
    manifest = IndexStore(index).manifest()
    assert manifest.pubmed == {"query": "all", "max": 40}
    indexed = set(list(server.articles)[:40])
    asked = [(q, p) for q, p in queries.values() if p in indexed][:8]
    with Retriever(index) as r:
        found = sum(p in [h.pmid for h in r.search(q, k=5)] for q, p in asked)
    assert found >= 7
    # new papers appear at the top of the search; `qa update` adds only those
    server.visible = list(server.articles)[60:63] + list(server.articles)[:60]
    server.log.clear()
    result = runner.invoke(app, ["update", "--index", str(index), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["added"] == 3 and report["records_indexed"] == 43
    fetched = [i for p in server.requests("efetch.fcgi") for i in p["id"].split(",")]
    assert sorted(fetched) == sorted(list(server.articles)[60:63])
    again = json.loads(runner.invoke(app, ["update", "--index", str(index), "--json"]).stdout)
    assert again["noop"] and again["records_indexed"] == 43
    server.body_instead = b"<html><body><h1>Welcome to the hotel Wi-Fi</h1></body></html>"  # status 200
    portal = runner.invoke(app, ["update", "--index", str(index)])
    assert portal.exit_code == 1 and "HTML page, not E-utilities XML" in portal.output, portal.output
    assert "up to date" not in portal.output and IndexStore(index).manifest().records == 43


def test_a_failed_first_pubmed_build_leaves_no_folder(
    server: EUtilsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither a refused answer before the fetch nor a failure after it leaves .lock, fetch/ or models/ behind.
    The clients the CLI makes back off 100 times faster than by default: each failing request is retried the
    same five times, in about 0.3 s instead of 31 s (this test took a minute)."""
    default_init = EUtils.__init__

    def quick_init(self: EUtils, *args: object, **kwargs: object) -> None:
        default_init(self, *args, **{"backoff": 0.01, **kwargs})  # type: ignore[arg-type]

    monkeypatch.setattr(EUtils, "__init__", quick_init)
    index = tmp_path / "new-index"
    server.body_instead = b"<!DOCTYPE html><html><body>Proxy error</body></html>"
    result = runner.invoke(app, ["build", "--pubmed", "all", "--index", str(index), "--eutils-url", server.url])
    assert result.exit_code == 1 and "HTML page" in result.output and not index.exists()
    server.body_instead = None
    server.fail_efetch_after = 1  # the search and a first batch work, then efetch fails for good
    result = runner.invoke(app, ["build", "--pubmed", "all", "--max", "400", "--index", str(index),
                                 "--eutils-url", server.url])  # fmt: skip
    assert result.exit_code == 1 and not index.exists(), result.output
    fetched = runner.invoke(app, ["fetch", "all", "-o", str(tmp_path / "x.xml"), "--eutils-url", server.url])
    assert fetched.exit_code == 1 and not (tmp_path / "x.xml").exists()
    assert "failed 6 times" in result.output and "failed 6 times" in fetched.output  # after every retry


def test_fetch_cli_with_pmids_file(server: EUtilsServer, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    chosen = list(server.articles)[100:105]
    ids.write_text("\n".join(chosen) + "\n")
    out = tmp_path / "five.xml.gz"
    result = runner.invoke(app, ["fetch", "--pmids", str(ids), "-o", str(out), "--eutils-url", server.url])
    assert result.exit_code == 0, result.output
    assert "Saved 5 records" in result.stdout
    assert pmids_in(out) == chosen
    with gzip.open(out) as fh:
        assert fh.read(5) == b"<?xml"
