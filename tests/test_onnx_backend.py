"""The int8 ONNX backend: built once per index, identical vectors at build and query time, no torch to ask."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa import Retriever, build_index
from qa.embed import Chunker, ChunkSettings, Embedder
from qa.errors import ModelError, QAError
from qa.records import Record, record_to_dict
from qa.store import IndexStore
from qa.store.verify import verify_index

from .conftest import IL6_QUESTION, SEED_PMID

BUILD_STAGES: list[str] = []  # what the first onnx build reported, in order


@pytest.fixture(scope="module")
def onnx_index(tmp_path_factory: pytest.TempPathFactory, pubmedqa_records: list[Record], shared: Path) -> Path:
    work = tmp_path_factory.mktemp("onnx")
    source = work / "forty.jsonl"
    source.write_text("".join(json.dumps(record_to_dict(r)) + "\n" for r in pubmedqa_records[:40]))
    index = work / "index"
    build_index(
        [source, shared / "seed" / f"{SEED_PMID}.xml"],
        index,
        backend="onnx-int8",
        progress=lambda stage, done, total: BUILD_STAGES.append(stage),
    )
    return index


def test_the_one_time_export_is_announced_before_reading(onnx_index: Path) -> None:
    stages = list(dict.fromkeys(BUILD_STAGES))
    assert stages[0] == "prepare" and stages.index("prepare") < stages.index("read") < stages.index("embed")


def test_manifest_and_encoder_folder(onnx_index: Path) -> None:
    manifest = IndexStore(onnx_index).manifest()
    assert manifest.backend == "onnx-int8" and manifest.encoder == "models/all-MiniLM-L6-v2-onnx-int8"
    folder = onnx_index / manifest.encoder
    assert (folder / "model.onnx").is_file() and (folder / "tokenizer.json").is_file()
    settings = json.loads((folder / "encoder.json").read_text())
    assert settings["pooling"] == "mean" and settings["max_seq_length"] == 256


def test_query_encoder_gives_the_build_vectors(onnx_index: Path, pubmedqa_records: list[Record]) -> None:
    with Retriever(onnx_index) as r:
        record = pubmedqa_records[2]
        chunker = Chunker(r.embedder.tokenizer, r.embedder.max_seq_length, ChunkSettings())
        chunks = chunker.chunk(record)
        ids = sorted(r.snapshot.passages.chunk_ids_of([record.pmid])[record.pmid])
        stored = r.snapshot.vectors.vectors(ids)
        fresh = r.embedder.encode([c.embed_text for c in chunks])  # one at a time, as at query time
        assert np.allclose(stored, fresh, atol=1e-6)


def test_int8_vectors_stay_close_to_fp32(onnx_index: Path, queries) -> None:
    questions = [q for q, _ in list(queries.values())[:50]]
    with Retriever(onnx_index) as r:
        int8 = r.embedder.encode(questions)
    fp32 = Embedder(backend="torch").encode(questions)
    cosines = (int8 * fp32).sum(axis=1)
    assert cosines.min() > 0.97 and cosines.mean() > 0.99


def test_ask_on_an_onnx_index_never_imports_torch(onnx_index: Path) -> None:
    code = (
        "import sys\n"
        "from qa import Retriever\n"
        f"r = Retriever({str(onnx_index)!r})\n"
        f"resp = r.ask({IL6_QUESTION!r}, k=3)\n"
        "print(resp.hits[0].pmid)\n"
        "print(','.join(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == SEED_PMID and out[1] == ""


def test_backend_must_match_to_update(onnx_index: Path, shared: Path) -> None:
    with pytest.raises(QAError, match="--full"):
        build_index([shared / "seed" / f"{SEED_PMID}.xml"], onnx_index, backend="torch")


def test_bad_backend_settings() -> None:
    with pytest.raises(ModelError, match="unknown backend"):
        Embedder(backend="tensorrt")
    with pytest.raises(ModelError, match="--backend torch"):
        Embedder(backend="onnx-int8", encoder_dir=Path("/tmp/x"), device="cuda")


@pytest.fixture()
def onnx_copy(onnx_index: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "index"
    shutil.copytree(onnx_index, copy)
    return copy


@pytest.mark.parametrize("damage", ["delete model", "flip model bytes", "garble tokenizer", "truncate settings"])
def test_a_damaged_encoder_is_refused_and_never_re_exported(onnx_copy: Path, damage: str) -> None:
    folder = onnx_copy / IndexStore(onnx_copy).manifest().encoder  # type: ignore[operator]
    model = folder / "model.onnx"
    if damage == "delete model":
        model.unlink()
    elif damage == "flip model bytes":
        data = bytearray(model.read_bytes())
        for i in range(len(data) // 2, len(data) // 2 + 160):  # same size, different weights
            data[i] ^= 0xFF
        model.write_bytes(bytes(data))
    elif damage == "garble tokenizer":
        (folder / "tokenizer.json").write_text("{not json")
    else:
        (folder / "encoder.json").write_text('{"max_seq')
    before = sorted(p.relative_to(onnx_copy) for p in onnx_copy.rglob("*"))
    with pytest.raises(QAError, match="qa build --full"):
        Retriever(onnx_copy)
    assert sorted(p.relative_to(onnx_copy) for p in onnx_copy.rglob("*")) == before  # nothing exported
    report = verify_index(onnx_copy)
    assert not report.ok and any("encoder" in p for p in report.problems)
