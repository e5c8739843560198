"""Shared fixtures: real data from ../shared/data, one model and one small index per test session.

Embedding runs at a few dozen passages a second on CI's two cores, so the
index over a few hundred real abstracts is built once and reused read-only.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from qa import build_index
from qa.embed import Embedder, quiet_third_party
from qa.embed.onnx import encoder_dir_name
from qa.ingest import read_source
from qa.records import Record, record_to_dict

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("QA_SHARED_DATA", REPO.parent / "shared" / "data"))
SEED_PMID = "25589616"
IL6_QUESTION = "Which IL-6 inhibitors are clinically registered?"  # answered by the seed record
SUBSET_SIZE = 200

quiet_third_party()

# Optional extras and the tests that need them: missing ones are named in the header of every run, and
# under CI (CI=true) they stop the run, since CI installs them all.
EXTRAS = {"fastapi": "serve", "uvicorn": "serve", "mcp": "serve", "schemathesis": "test", "selenium": "test",
          "ray": "ray"}  # fmt: skip


def _missing_extras() -> list[str]:
    return [f"{module} ({extra})" for module, extra in EXTRAS.items() if importlib.util.find_spec(module) is None]


def pytest_report_header(config: pytest.Config) -> str:
    missing = _missing_extras()
    if not missing:
        return "optional extras: all installed (serve, ray, schemathesis, selenium)"
    return f"OPTIONAL EXTRAS MISSING, their tests are SKIPPED: {', '.join(missing)}; pip install -e '.[test]'"


def pytest_sessionstart(session: pytest.Session) -> None:
    missing = _missing_extras()
    if missing and os.environ.get("CI") == "true":
        pytest.exit(f"CI installs every extra, but these are missing: {', '.join(missing)}", returncode=1)


def _require_shared() -> Path:
    if not (SHARED / "pubmedqa" / "pubmed-1000.xml.gz").is_file():
        pytest.fail(f"test data not found at {SHARED}; clone next to ../shared or set QA_SHARED_DATA", pytrace=False)
    return SHARED


@pytest.fixture(scope="session")
def shared() -> Path:
    return _require_shared()


@pytest.fixture(scope="session")
def pubmedqa_records(shared: Path) -> list[Record]:
    return [r for r in read_source(shared / "pubmedqa" / "pubmed-1000.xml.gz") if isinstance(r, Record)]


@pytest.fixture(scope="session")
def articles(shared: Path) -> dict[str, bytes]:
    """PMID -> raw <PubmedArticle> XML of the shared corpus: what the local E-utilities server answers with."""
    from .eutils_server import load_articles

    return load_articles(shared / "pubmedqa" / "pubmed-1000.xml.gz")


@pytest.fixture(scope="session")
def queries(shared: Path) -> dict[str, tuple[str, str]]:
    """query id -> (question, relevant PMID), from the BEIR files."""
    texts = {}
    with open(shared / "pubmedqa" / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            obj = json.loads(line)
            texts[obj["_id"]] = obj["text"]
    out = {}
    with open(shared / "pubmedqa" / "qrels.tsv", encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            qid, pmid, _score = line.rstrip("\n").split("\t")
            out[qid] = (texts[qid], pmid)
    return out


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    """The default backend (onnx-int8), exported once per session into a folder of its own; builds given it
    copy the export into their index's models/ folder. The torch backend has its own tests."""
    return Embedder(encoder_dir=tmp_path_factory.mktemp("encoder") / encoder_dir_name(None))


@pytest.fixture(scope="session")
def subset_jsonl(tmp_path_factory: pytest.TempPathFactory, pubmedqa_records: list[Record]) -> Path:
    """The first SUBSET_SIZE PubMedQA records as JSONL (so builds exercise two formats at once)."""
    path = tmp_path_factory.mktemp("data") / "subset.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for record in pubmedqa_records[:SUBSET_SIZE]:
            fh.write(json.dumps(record_to_dict(record)) + "\n")
    return path


@pytest.fixture(scope="session")
def small_index(tmp_path_factory: pytest.TempPathFactory, shared: Path, subset_jsonl: Path, embedder: Embedder) -> Path:
    """An index of SUBSET_SIZE real abstracts plus the seed record; treat as read-only."""
    index = tmp_path_factory.mktemp("index") / "index"
    build_index([subset_jsonl, shared / "seed" / f"{SEED_PMID}.xml"], index, embedder=embedder)
    return index


@pytest.fixture()
def seed_index(tmp_path: Path, shared: Path, embedder: Embedder) -> Path:
    """A throwaway index of the seed record alone (a few passages: cheap to rebuild)."""
    index = tmp_path / "seed-index"
    build_index([shared / "seed" / f"{SEED_PMID}.xml"], index, embedder=embedder)
    return index


@pytest.fixture(scope="session")
def api(small_index: Path):
    """``qa serve``'s app over the small index on a real 127.0.0.1 port, for the HTTP, schema and browser tests."""
    pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[test]'")
    from .serving import live_server

    with live_server(small_index) as live:
        yield live


@pytest.fixture(scope="session")
def ray_sources(tmp_path_factory: pytest.TempPathFactory, shared: Path, pubmedqa_records: list[Record]) -> list[Path]:
    """The Ray tests' sources: the first 200 shared records as 4 JSONL files, then the seed record's XML."""
    folder = tmp_path_factory.mktemp("sources")
    files = []
    for i in range(4):
        path = folder / f"part-{i}.jsonl"
        part = pubmedqa_records[i * 50 : (i + 1) * 50]
        path.write_text("".join(json.dumps(record_to_dict(r)) + "\n" for r in part))
        files.append(path)
    return [*files, shared / "seed" / f"{SEED_PMID}.xml"]


@pytest.fixture(scope="session")
def ray_local_index(tmp_path_factory: pytest.TempPathFactory, ray_sources: list[Path]) -> Path:
    """A local build of ``ray_sources``: what every Ray build of them must equal."""
    index = tmp_path_factory.mktemp("local") / "index"
    build_index(ray_sources, index)
    return index
