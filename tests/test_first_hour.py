"""What a new user meets in the first hour: wrong paths, wrong files, no network, help, and the bundled sample.

Each test here failed on the code before the house issue: a traceback, a
silent 20-50 s wait, a directory left behind, a misleading message or help.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

import qa.build.pipeline
from qa import build_index
from qa.cli import app
from qa.data import sample_path
from qa.embed import Embedder
from qa.errors import FetchError, IngestError, QAError
from qa.ingest import read_source
from qa.ingest.eutils import EUtils
from qa.query import Filters
from qa.records import Record

from .conftest import IL6_QUESTION, REPO, SEED_PMID
from .helpers import one_line_error

runner = CliRunner()


def run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), catch_exceptions=False)


# ----------------------------------------------------------- wrong --index


def test_index_pointing_at_a_file_is_one_clear_line(tmp_path: Path, shared: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# not an index\n")
    build = run("build", str(shared / "seed" / f"{SEED_PMID}.xml"), "--index", str(readme))
    assert "is a file, not an index folder" in one_line_error(build)
    ask = run("ask", "asthma", "--index", str(readme))
    assert "is a file, not an index folder" in one_line_error(ask)
    assert readme.read_text() == "# not an index\n"


# --------------------------------------------------- bad input, new index


def test_wrong_file_fails_before_the_encoder_is_prepared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Shopping list\n- milk\n- bread\n")

    def no_encoder(*args: object, **kwargs: object) -> None:
        raise AssertionError("the encoder was prepared before the sources were checked")

    monkeypatch.setattr(qa.build.pipeline, "Embedder", no_encoder)
    index = tmp_path / "new-index"
    with pytest.raises(IngestError, match="notes.txt: unrecognised format"):
        build_index([notes], index)
    assert not index.exists()


def test_failed_first_build_leaves_no_directory(tmp_path: Path, shared: Path, embedder: Embedder) -> None:
    good = (shared / "seed" / f"{SEED_PMID}.xml").read_text(encoding="utf-8")
    broken = tmp_path / "broken.xml"
    broken.write_text(good.replace("</PubmedArticleSet>", "<PubmedArticle><MedlineCitation>"), encoding="utf-8")
    index = tmp_path / "new-index"
    with pytest.raises(IngestError, match="broken.xml: malformed XML"):
        build_index([broken], index, embedder=embedder)  # the first record parses; the file breaks later
    assert not index.exists()


def test_failed_build_in_an_existing_folder_keeps_the_folder(tmp_path: Path, embedder: Embedder) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "keep.txt").write_text("user's file")
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"pmid": "1", "title": "no abstract"}\n')
    with pytest.raises(QAError, match="nothing to index"):
        build_index([empty], folder, embedder=embedder)
    assert (folder / "keep.txt").read_text() == "user's file"


# ------------------------------------------------------------- no network


def test_no_network_fails_fast_and_points_to_files() -> None:
    refused = EUtils("http://127.0.0.1:9/", backoff=0.0, sleep=lambda s: None)
    offline_hint = r"this needs the internet \(no network\?\); offline, build from files: qa build FILE"
    with refused, pytest.raises(FetchError, match=offline_hint):
        refused.search("asthma")
    assert refused.requests == 1  # not retried

    def no_dns(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution", request=request)

    offline = EUtils(backoff=0.0, sleep=lambda s: None, transport=httpx.MockTransport(no_dns))
    with offline, pytest.raises(FetchError, match="cannot reach https://eutils.ncbi.nlm.nih.gov/"):
        offline.search("asthma")
    assert offline.requests == 1


# ------------------------------------------------------------ help, usage


def test_usage_errors_are_one_line() -> None:
    missing = one_line_error(run("ask"), code=2)
    assert "Missing argument 'QUESTION'" in missing and "qa ask --help" in missing
    assert "'-k' / '--top'" in one_line_error(run("ask", "x", "-k", "0"), code=2)
    assert "No such option" in one_line_error(run("build", "--jsn"), code=2)


def test_help_texts_are_right() -> None:
    build = run("build", "--help").stdout
    unwrapped = "".join(build.split())  # help wraps to the terminal, even inside words such as onnx-int8
    assert "elseonnx-int8" in unwrapped and "elsetorch" not in unwrapped
    assert "DeleteCitation" in build and "withdraws()" not in unwrapped
    assert "--sample" in build
    ask = run("ask", "--help").stdout
    assert "Usage: qa ask [OPTIONS] QUESTION" in ask
    for text in (build, ask, run("remove", "--help").stdout):
        assert "<bool>" not in text and "<list[str]>" not in text and "{question}" not in text
    version = run("--version")
    assert version.exit_code == 0 and version.stdout.startswith("pubmed-qa ")


def test_no_filters_message_only_when_filters_are_set(small_index: Path) -> None:
    unmatched = run("ask", "zzzqqq", "--mode", "lexical", "--index", str(small_index))
    assert unmatched.exit_code == 0 and "filters" not in unmatched.output
    assert "No passages found" in unmatched.stdout
    filtered = run("ask", "asthma", "--year-from", "2090", "--index", str(small_index))
    assert "No record matches the filters (year 2090-)" in filtered.stderr


def test_filters_take_a_mesh_string() -> None:
    assert Filters(mesh="Asthma").mesh == ("Asthma",)
    assert Filters(mesh=["Asthma", "Child"]).mesh == ("Asthma", "Child")
    with pytest.raises(QAError, match="after year_to"):
        Filters(year_from=2020, year_to=2010)


# ---------------------------------------------------------- bundled sample


def test_bundled_sample_is_real_data_with_the_seed() -> None:
    records = [r for r in read_source(sample_path()) if isinstance(r, Record)]
    assert len(records) == 301
    assert records[-1].pmid == SEED_PMID and records[-1].title == "Interleukin-6 As a Therapeutic Target"
    assert (sample_path().parent / "LICENSE-pubmedqa").read_text().startswith("MIT License")


def test_fresh_copy_without_shared_data_answers_from_the_sample(tmp_path: Path) -> None:
    """The README's first command, in a copy of the repository with no ../shared beside it and no network."""
    copy = tmp_path / "pubmed-qa"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in tracked.splitlines():
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    env = {k: v for k, v in os.environ.items() if k not in ("QA_SHARED_DATA", "QA_INDEX", "QA_EUTILS_URL")}
    env["PYTHONPATH"] = str(copy)  # this copy's package, with its own bundled sample
    env["NO_PROXY"] = env["no_proxy"] = "*"
    qa_cmd = [sys.executable, "-m", "qa.cli"]
    build = subprocess.run([*qa_cmd, "build", "--sample"], cwd=copy, env=env, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    assert "301 records" in build.stdout
    ask = subprocess.run([*qa_cmd, "ask", IL6_QUESTION], cwd=copy, env=env, capture_output=True, text=True)
    assert ask.returncode == 0, ask.stderr
    assert ask.stdout.startswith("Answer") and f"[{SEED_PMID}]" in ask.stdout
    assert "siltuximab" in ask.stdout and (copy / "index" / "CURRENT").is_file()
    assert not (tmp_path / "shared").exists()
