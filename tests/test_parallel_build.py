"""Parallel chunking: a build whose chunking runs in worker processes writes exactly what a serial build writes.

The int8 ONNX encoder encodes passages one at a time and the build's batches do not depend on the number
of workers, so the vectors are compared byte for byte, not by cosine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from qa import build_index
from qa.build import batches, chunk_pool
from qa.build.chunk_pool import MIN_PARALLEL_RECORDS, ChunkPool, auto_workers
from qa.embed import Chunker, ChunkerSpec, ChunkSettings, Embedder
from qa.errors import QAError
from qa.records import Record, record_to_dict
from qa.store import IndexStore

from .conftest import SEED_PMID
from .helpers import passage_text_hashes


def contents(index: Path) -> dict[str, Any]:
    """What a build writes and a search reads: passage rows, hashes of the embedded texts, vectors, sentences."""
    snap = IndexStore(index).open()
    try:
        ids = sorted(int(i) for i in snap.vectors.ids())
        chunks = snap.passages.chunks(ids)
        pmids = sorted(snap.passages.pmids())
        return {
            "rows": [chunks[i] for i in ids],  # id, pmid, ordinal, section, offsets, text, sentences, citation
            "embedded": {p: passage_text_hashes(index, p) for p in pmids},
            "vectors": snap.vectors.vectors(ids),
            "sentences": {
                p: [(s.start, s.end, s.section, s.vector.tobytes()) for s in rows]
                for p, rows in snap.passages.sentences(pmids).items()
            },
            "records": [snap.passages.record(p) for p in pmids],
        }
    finally:
        snap.close()


def assert_same_index(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert len(a["rows"]) == len(b["rows"]) > 0
    assert a["rows"] == b["rows"]
    assert a["embedded"] == b["embedded"]
    assert a["records"] == b["records"]
    assert a["sentences"] == b["sentences"]
    assert a["vectors"].dtype == b["vectors"].dtype and a["vectors"].tobytes() == b["vectors"].tobytes()


def write_jsonl(path: Path, records: list[Record]) -> Path:
    path.write_text("".join(json.dumps(record_to_dict(r)) + "\n" for r in records), encoding="utf-8")
    return path


def test_parallel_build_is_identical_to_serial(
    tmp_path: Path, shared: Path, pubmedqa_records: list[Record], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100 real records (the first half of the shared 200-record subset, to stay within ~30 s) and the seed
    # record, in batches and tasks smaller than the defaults: 5 batches of 5 tasks each, so any reordering
    # between workers would show.
    monkeypatch.setattr(batches, "BATCH_RECORDS", 24)
    monkeypatch.setattr(chunk_pool, "TASK_RECORDS", 5)
    sources = [write_jsonl(tmp_path / "subset.jsonl", pubmedqa_records[:100]), shared / "seed" / f"{SEED_PMID}.xml"]
    index = tmp_path / "index"
    events: dict[int, list[tuple[str, int, int | None]]] = {1: [], 2: []}
    reports, built = {}, {}
    for workers in (1, 2):  # the second full build reuses the first one's int8 export in index/models
        reports[workers] = build_index(
            sources, index, full=True, backend="onnx-int8", workers=workers,
            progress=lambda stage, done, total, w=workers: events[w].append((stage, done, total)),
        )  # fmt: skip
        built[workers] = contents(index)
    assert_same_index(built[1], built[2])
    serial, parallel = reports[1], reports[2]
    assert (parallel.chunks, parallel.chunks_embedded, parallel.sentences_embedded, parallel.records_indexed) == (
        serial.chunks, serial.chunks_embedded, serial.sentences_embedded, serial.records_indexed,
    )  # fmt: skip
    embed_events = [e for e in events[1] if e[0] == "embed"]
    assert embed_events == [e for e in events[2] if e[0] == "embed"]
    done = [d for _, d, _ in embed_events]  # every batch's end, and steps inside each batch, never backwards
    assert done == sorted(done) and {0, 24, 48, 72, 96, 101} <= set(done) and len(done) > 6

    # An update: changed records re-embed, their unchanged passages keep their vectors, the same either way.
    changed = tmp_path / "changed.jsonl"
    with open(changed, "w", encoding="utf-8") as fh:
        for record in pubmedqa_records[:10]:
            data = record_to_dict(record)
            data["sections"][-1]["text"] += " Revised in this update."
            fh.write(json.dumps(data) + "\n")
    copy = tmp_path / "copy"
    shutil.copytree(index, copy)
    update_serial = build_index([changed], index, workers=1)
    update_parallel = build_index([changed], copy, workers=2)
    assert update_serial.updated == update_parallel.updated == 10
    assert update_serial.chunks_reused == update_parallel.chunks_reused > 0
    assert update_serial.chunks_embedded == update_parallel.chunks_embedded > 0
    assert_same_index(contents(index), contents(copy))

    # Crash safety: a parallel build killed mid-way leaves the index as it was and no worker process behind.
    before = contents(copy)
    more = write_jsonl(tmp_path / "more.jsonl", pubmedqa_records[300:310])
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "build", str(more), "--index", str(copy), "--workers", "2"],
        env={**os.environ, "QA_TEST_KILL_AT": "embed"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the workers are found by it afterwards
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")[-2000:]
    assert wait_for_group_to_exit(proc.pid, seconds=15) == []
    assert_same_index(before, contents(copy))
    assert build_index([more], copy, workers=2).added == 10  # and the next build cleans up and succeeds

    # Ctrl-C between two batches, with the workers busy: the pool stops, nothing is left behind or changed.
    before = contents(copy)
    monkeypatch.setattr(batches, "BATCH_RECORDS", 4)

    def interrupt(stage: str, done: int, total: int | None) -> None:
        if stage == "embed" and done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_index([write_jsonl(tmp_path / "late.jsonl", pubmedqa_records[310:330])], copy, workers=2,
                    progress=interrupt)  # fmt: skip
    assert worker_pids() == []
    assert_same_index(before, contents(copy))


def wait_for_group_to_exit(group: int, seconds: float) -> list[int]:
    """PIDs still in a process group after waiting up to ``seconds`` for them to go."""
    if not Path("/proc/self/stat").is_file():
        pytest.skip("needs /proc to find the worker processes")
    deadline = time.monotonic() + seconds
    while True:
        left = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                fields = stat.rsplit(")", 1)[1].split()
                if int(fields[2]) == group and fields[0] != "Z":  # pgrp; zombies are already gone
                    left.append(int(entry.name))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def worker_pids() -> list[int]:
    """This process's multiprocessing children (the pool's workers, not its resource tracker)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if ppid == os.getpid() and b"spawn_main" in cmdline:
                pids.append(int(entry.name))
    return pids


def test_workers_chunk_like_the_build_process_and_never_load_torch(
    embedder: Embedder, pubmedqa_records: list[Record]
) -> None:
    if not Path("/proc/self/maps").is_file():
        pytest.skip("needs /proc to look inside the worker processes")
    chunker = Chunker(embedder.tokenizer, embedder.max_seq_length, ChunkSettings())
    records = pubmedqa_records[:12]
    expected = [c for r in records for c in chunker.chunk(r)]
    with ChunkPool(chunker.spec(), 2, task_records=3) as pool:
        assert pool.submit(records).result() == expected
        pids = worker_pids()
        assert pids
        for pid in pids:
            libraries = Path(f"/proc/{pid}/maps").read_text()
            assert "libtorch" not in libraries and "tokenizers" in libraries


def test_a_worker_that_dies_is_one_line_error() -> None:
    broken = ChunkerSpec("this is not a tokenizer", 256, ChunkSettings())  # fails in the worker's initializer
    with ChunkPool(broken, 1) as pool, pytest.raises(QAError, match="chunking worker process stopped") as caught:
        pool.submit([Record("1", ())]).result()
    assert "\n" not in str(caught.value) and "--workers 1" in str(caught.value)


def test_auto_workers_leaves_a_core_to_the_build_process_and_small_builds_serial() -> None:
    many = MIN_PARALLEL_RECORDS * 10
    assert auto_workers(MIN_PARALLEL_RECORDS - 1, cpus=16) == 1
    assert auto_workers(many, cpus=16) == 4
    assert auto_workers(many, cpus=3) == 2
    assert auto_workers(many, cpus=2) == 2  # measured faster than the thread even on 2 cores
    assert auto_workers(many, cpus=1) == 1
    assert auto_workers(many, cpus=16, gpu=True) == 8  # a GPU encoder leaves the CPUs to chunking
    assert auto_workers(MIN_PARALLEL_RECORDS - 1, cpus=16, gpu=True) == 1


def test_workers_must_be_positive(shared: Path, tmp_path: Path) -> None:
    with pytest.raises(QAError, match="workers must be at least 1"):
        build_index([shared / "seed" / f"{SEED_PMID}.xml"], tmp_path / "index", workers=0)
    assert not (tmp_path / "index").exists()
