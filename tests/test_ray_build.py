"""The Ray engine and `qa index from-shards`: a local Ray build of shared records checked against a local build.

One local Ray instance (2 CPUs, one worker) serves the whole module; the 200 records are built once
each way, and the idempotency tests work on copies of the shard folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qa import Retriever, build_index, remove_records
from qa.ask.evaluate import evaluate
from qa.build import index_from_shards
from qa.build.shards.format import SHARD_MANIFEST, SHARD_SET, Shard
from qa.cli import app
from qa.errors import QAError, ShardError
from qa.store import IndexStore, VectorIndex
from qa.store.layout import MANIFEST, VECTORS
from qa.store.verify import verify_index

from .conftest import IL6_QUESTION, SEED_PMID
from .helpers import PASSAGE_ROWS, index_rows, index_vectors, same_index

RECORDS, FILES = 200, 4
runner = CliRunner()


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray with 2 CPUs for the module; the library reuses it instead of starting its own."""
    try:
        import ray
    except ImportError:
        pytest.skip("RAY IS NOT INSTALLED: the Ray engine tests did not run (pip install -e '.[ray]' to run them)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_built(tmp_path_factory: pytest.TempPathFactory, ray_session, ray_sources: list[Path], ray_local_index: Path):
    """(index, shards, report, log lines) of a Ray build of the same files."""
    from qa.build.shards.ray import RayOptions, build_with_ray

    work = tmp_path_factory.mktemp("ray")
    index, shards = work / "index", work / "shards"
    # the encoder export takes ~10 s here: the build takes the one a folder already has, as it would an index's
    shutil.copytree(ray_local_index / "models", index / "models")
    lines: list[str] = []
    report = build_with_ray(ray_sources, index, ray_options=RayOptions(shards=shards, workers=1), log=lines.append,
                            progress=lambda stage, done, total: lines.append(f"progress {stage} {done}/{total}"))
    return index, shards, report, lines


def _manifest(index: Path) -> dict:
    data = json.loads((IndexStore(index).current_dir() / MANIFEST).read_text())
    return {k: v for k, v in data.items() if k not in ("built_at", "build_seconds", "files")}


def test_ray_build_equals_the_local_build(ray_built, ray_local_index: Path) -> None:
    index, shards, report, lines = ray_built
    assert report.shards == report.shards_made == FILES + 1 and report.workers == 1
    assert report.records_indexed == RECORDS + 1 and report.chunks == report.chunks_from_shards
    assert sum("made:" in line for line in lines) == FILES + 1
    made = [line for line in lines if line.startswith("progress make ")]  # a bar counts shards as they are made
    assert made == [f"progress make {i}/{FILES + 1}" for i in range(FILES + 2)], made
    assert lines.index(made[-1]) < lines.index(next(line for line in lines if line.startswith("progress shards")))
    # Passages are encoded one text at a time: their vectors are the local build's, bit for bit. Sentence
    # vectors are encoded in batches (exact=False), and a shard's batches are its file's records, not the
    # local build's 256 across files: the int8 encoder's per-batch scale moves them a little.
    same_index(index, ray_local_index, sentence_cosine=0.90)
    ids, va = index_vectors(index)
    assert np.array_equal(va, index_vectors(ray_local_index)[1])
    assert _manifest(index) == _manifest(ray_local_index)
    assert verify_index(index).ok
    for path in shards.iterdir():  # nothing unfinished left behind
        assert not path.name.startswith(".tmp-")


def test_same_answers_and_eval_metrics(ray_built, ray_local_index: Path, queries: dict[str, tuple[str, str]]) -> None:
    index = ray_built[0]
    indexed = {r[0] for r in index_rows(index, "SELECT pmid FROM records")}
    judged = {qid: q for qid, q in queries.items() if q[1] in indexed}
    chosen = dict(sorted(judged.items())[:40])
    assert len(chosen) >= 30
    questions = {qid: text for qid, (text, _) in chosen.items()}
    qrels = {qid: {pmid: 1} for qid, (_, pmid) in chosen.items()}
    figures = []
    for path in (index, ray_local_index):
        with Retriever(path) as retriever:
            assert retriever.ask(IL6_QUESTION, k=3).hits[0].pmid == SEED_PMID
            figures.append({m: asdict(evaluate(retriever, questions, qrels, mode=m)) for m in ("dense", "hybrid")})
    assert figures[0] == figures[1]
    assert figures[0]["hybrid"]["mrr_at_10"] > 0.5


def test_ivf_types_from_shards_equal_a_local_conversion(ray_built, ray_local_index: Path, tmp_path: Path) -> None:
    """Trained on the same sample before the vectors stream in: the very index a local build converts to."""
    _, shards, _, _ = ray_built
    flat = VectorIndex.read(IndexStore(ray_local_index).current_dir() / VECTORS)
    for kind in ("ivf-sq8", "ivf-pq"):
        index = tmp_path / kind
        index_from_shards(shards, index, index_type=kind)
        expected = tmp_path / f"{kind}.faiss"
        flat.converted(kind).write(expected)
        assert (IndexStore(index).current_dir() / VECTORS).read_bytes() == expected.read_bytes()
        assert verify_index(index).ok
        with Retriever(index) as retriever:
            assert retriever.ask(IL6_QUESTION, k=3).hits[0].pmid == SEED_PMID


def test_rerun_skips_complete_shards(ray_built, ray_sources: list[Path], tmp_path: Path) -> None:
    index, shards, _, _ = ray_built
    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    result = runner.invoke(
        app, ["build", *map(str, ray_sources), "--engine", "ray", "--shards", str(shards), "--index", str(copy)]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.count("complete from an earlier run, kept") == FILES + 1
    assert "up to date" in result.stdout and "made:" not in result.stderr


def test_unfinished_shard_is_made_again(ray_built, ray_sources: list[Path], tmp_path: Path) -> None:
    from qa.build.shards.ray import RayOptions, build_with_ray

    index, shards, _, _ = ray_built
    work_shards, work_index = tmp_path / "shards", tmp_path / "index"
    shutil.copytree(shards, work_shards)
    shutil.copytree(index / "models", work_index / "models")
    seed_shard = next(p for p in work_shards.iterdir() if p.name.startswith(SEED_PMID))
    (seed_shard / SHARD_MANIFEST).unlink()  # died before its manifest: unfinished
    (work_shards / f".tmp-{seed_shard.name}-0badf00d").mkdir()  # a temporary folder a killed worker left
    lines: list[str] = []
    report = build_with_ray(ray_sources, work_index, ray_options=RayOptions(shards=work_shards, workers=1),
                            log=lines.append)  # fmt: skip
    assert report.shards_made == 1 and sum("kept" in line for line in lines) == FILES
    Shard(seed_shard).verify()
    assert not [p for p in work_shards.iterdir() if p.name.startswith(".tmp-")]
    assert index_rows(work_index, PASSAGE_ROWS) == index_rows(index, PASSAGE_ROWS)


def test_killed_worker_is_retried_and_its_shard_made_once(
    ray_session, ray_built, shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qa.build.shards.ray import RayOptions, build_with_ray

    index = ray_built[0]
    marker = tmp_path / "crashed"
    monkeypatch.setenv("QA_TEST_CRASH_ONCE", f"shard-written:{marker}")  # SIGKILL before the rename, once
    work_index = tmp_path / "index"
    shutil.copytree(index, work_index)
    shards = tmp_path / "shards"
    report = build_with_ray([shared / "seed" / f"{SEED_PMID}.xml"], work_index,
                            ray_options=RayOptions(shards=shards, workers=1))  # fmt: skip
    assert marker.exists(), "the worker was not killed"
    assert report.shards_made == 1 and report.noop
    made = [p for p in shards.iterdir() if p.is_dir() and p.name != "models"]
    assert len(made) == 1 and made[0].name.startswith(SEED_PMID)
    Shard(made[0]).verify()


def test_damaged_shard_is_refused_in_one_line(ray_built, ray_sources: list[Path], tmp_path: Path) -> None:
    from qa.build.shards.ray import RayOptions, build_with_ray

    _, shards, _, _ = ray_built
    work = tmp_path / "shards"
    shutil.copytree(shards, work)
    victim = next(p for p in sorted(work.iterdir()) if p.name.startswith("part-1"))
    data = bytearray((victim / "vectors.npy").read_bytes())
    data[-7] ^= 0x01
    (victim / "vectors.npy").write_bytes(bytes(data))
    with pytest.raises(ShardError, match="vectors.npy does not match the checksum"):
        index_from_shards(work, tmp_path / "index")
    with pytest.raises(ShardError, match="vectors.npy does not match the checksum"):
        build_with_ray(ray_sources, tmp_path / "index", ray_options=RayOptions(shards=work, workers=1))
    result = runner.invoke(app, ["index", "from-shards", str(work), "--index", str(tmp_path / "index")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    err = result.stderr.strip()
    assert err.startswith("Error: shard part-1-") and "\n" not in err, err
    assert not (tmp_path / "index").exists()


def test_updates_and_removals_on_top_of_a_ray_build(
    ray_built, ray_local_index: Path, ray_sources: list[Path], shared: Path, tmp_path: Path
) -> None:
    """A daily update file (a revised record, two deletions) through either engine, then `qa remove`."""
    from qa.build.shards.ray import RayOptions, build_with_ray

    index, shards, _, _ = ray_built
    update = shared / "samples" / "update-with-deletions.xml"
    expected, by_local, by_ray = tmp_path / "expected", tmp_path / "local", tmp_path / "ray"
    for target, origin in ((expected, ray_local_index), (by_local, index), (by_ray, index)):
        shutil.copytree(origin, target)
    build_index([update], expected)
    build_index([update], by_local)
    work_shards = tmp_path / "shards"
    shutil.copytree(shards, work_shards)
    # the update file after the others: the seed PMID is in two shards (the later wins), two PMIDs deleted
    report = build_with_ray([*ray_sources, update], by_ray, ray_options=RayOptions(shards=work_shards, workers=1))
    assert (report.updated, report.deleted, report.shards_made) == (1, 2, 1)
    for built in (by_local, by_ray):
        same_index(built, expected, sentence_cosine=0.90)
        assert verify_index(built).ok
    for built in (expected, by_ray):
        remove_records([SEED_PMID], built)
    same_index(by_ray, expected, sentence_cosine=0.90)
    assert verify_index(by_ray).ok


def test_without_the_ray_extra_the_error_names_it(
    shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were not installed
    seed = str(shared / "seed" / f"{SEED_PMID}.xml")
    result = runner.invoke(app, ["build", seed, "--engine", "ray", "--index", str(tmp_path / "index")])
    assert result.exit_code == 1, result.output
    err = result.stderr.strip()
    assert err.startswith("Error: ") and "\n" not in err and "pip install 'pubmed-qa[ray]'" in err, err


def test_from_shards_needs_a_complete_build(tmp_path: Path) -> None:
    (tmp_path / "shards").mkdir()
    result = runner.invoke(app, ["index", "from-shards", str(tmp_path / "shards"), "--index", str(tmp_path / "i")])
    assert result.exit_code == 1 and f"no {SHARD_SET}" in result.stderr and "\n" not in result.stderr.strip()


def test_an_unreachable_address_fails_in_one_line_and_leaves_nothing(tmp_path: Path, shared: Path) -> None:
    import time

    from qa.cli import app

    index = tmp_path / "index"
    for address in ("127.0.0.1:1", "ray://127.0.0.1:1", "no-port"):
        started = time.monotonic()
        result = CliRunner().invoke(app, ["build", str(shared / "seed" / "25589616.xml"), "--engine", "ray",
                                          "--address", address, "--index", str(index)])  # fmt: skip
        assert result.exit_code == 1 and time.monotonic() - started < 30, result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
        assert not index.exists()  # no shards/models export, no lock, no folder


def test_a_killed_build_leaves_no_process_behind(
    tmp_path: Path, ray_sources: list[Path], ray_local_index: Path
) -> None:
    """SIGKILL `qa build --engine ray` while its workers embed: within 15 s nothing that the build or its local
    Ray started still runs. (Before the guard, its dashboard and runtime-env agents lingered about 60 s.)"""
    import signal
    import subprocess
    import time

    import psutil

    index = tmp_path / "index"
    shutil.copytree(ray_local_index / "models", index / "models")  # no encoder export: the build reaches Ray at once
    command = [sys.executable, "-m", "qa.cli", "build", *map(str, ray_sources), "--engine", "ray", "--workers", "1",
               "--index", str(index)]  # fmt: skip
    build = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    try:
        seen = []
        for line in build.stdout:  # type: ignore[union-attr]
            seen.append(line)
            if line.startswith("making "):
                break
        assert seen and seen[-1].startswith("making "), "".join(seen)
        time.sleep(1)
        started = psutil.Process(build.pid).children(recursive=True)
        assert any("raylet" in " ".join(p.cmdline()) for p in started), [p.cmdline()[:2] for p in started]
        os.kill(build.pid, signal.SIGKILL)
        build.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            alive = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            if not alive:
                break
            time.sleep(0.5)
        assert not alive, [(p.pid, p.name()) for p in alive]
    finally:
        if build.poll() is None:
            build.kill()


def test_a_shard_is_made_only_of_the_bytes_its_name_binds(tmp_path: Path, shared: Path) -> None:
    """A source edited after the build hashed it (and reverted later) must not leave a shard of the edited
    bytes under the original's name: the worker copies the file while hashing it and refuses a mismatch."""
    import hashlib

    from qa.build.shards.worker import _copy_as_named
    from qa.errors import ShardError

    source = tmp_path / "records.xml"
    shutil.copy2(shared / "seed" / "25589616.xml", source)
    named = hashlib.sha256(source.read_bytes()).hexdigest()
    work = tmp_path / "work"
    work.mkdir()
    copy = _copy_as_named(source, work / ".source", named)
    assert copy.read_bytes() == source.read_bytes() and copy.name == "records.xml"
    source.write_text(source.read_text().replace("Interleukin-6", "EDITED"))  # edited mid-build
    with pytest.raises(ShardError, match="records.xml changed while the build was reading it"):
        _copy_as_named(source, work / ".other", named)
    assert not (work / ".other" / "records.xml").exists()


def _retamper(victim: Path, name: str, data: bytes) -> None:
    """Write ``data`` as the shard's ``name`` and rewrite its checksum in shard.json: the tamper a checksum misses."""
    from qa.checksums import file_facts

    (victim / name).write_bytes(data)
    manifest = json.loads((victim / "shard.json").read_text())
    manifest["files"][name] = file_facts(victim / name)
    (victim / "shard.json").write_text(json.dumps(manifest))


def _first_passage_edit(change):  # type: ignore[no-untyped-def]
    def edit(victim: Path) -> None:
        lines = (victim / "passages.jsonl").read_text().splitlines()
        entry = json.loads(lines[0])
        change(entry["chunks"][0], entry)
        lines[0] = json.dumps(entry)
        _retamper(victim, "passages.jsonl", ("\n".join(lines) + "\n").encode())

    return edit


def _manifest_edit(key: str, value: object):  # type: ignore[no-untyped-def]
    def edit(victim: Path) -> None:
        manifest = json.loads((victim / "shard.json").read_text())
        manifest[key] = value
        (victim / "shard.json").write_text(json.dumps(manifest))

    return edit


def _npy_header(victim: Path) -> None:
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (" + b"9" * 5000 + b", 384), }"
    data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    _retamper(victim, "vectors.npy", data)


def _special(kind: str):  # type: ignore[no-untyped-def]
    def edit(victim: Path) -> None:
        (victim / "vectors.npy").unlink()
        if kind == "fifo":
            os.mkfifo(victim / "vectors.npy")
        else:
            (victim / "vectors.npy").symlink_to("/dev/zero")

    return edit


TAMPERS = {
    "start-as-string": _first_passage_edit(lambda c, e: c.update(start=str(c["start"]))),
    "start-as-float": _first_passage_edit(lambda c, e: c.update(start=float(c["start"]))),
    "negative-start": _first_passage_edit(lambda c, e: c.update(start=-5)),
    "missing-embed-text": _first_passage_edit(lambda c, e: c.pop("embed_text")),
    "sentences-not-pairs": _first_passage_edit(lambda c, e: c.update(sentences=[[1, 2, 3]])),
    "section-as-object": _first_passage_edit(lambda c, e: c.update(section={"a": 1})),
    "n-tokens-as-string": _first_passage_edit(lambda c, e: c.update(n_tokens="12")),
    "chunk-as-number": _first_passage_edit(lambda c, e: e.update(chunks=[7] + e["chunks"][1:])),
    "events-invalid-utf8": lambda v: _retamper(v, "events.jsonl", (v / "events.jsonl").read_bytes() + b"\xff\xfe\n"),
    "skipped-as-list": _manifest_edit("skipped", ["x"]),
    "count-as-string": _manifest_edit("passages", "12"),
    "npy-huge-header": _npy_header,
    "vectors-link-to-dev-zero": _special("link"),
    "vectors-fifo": _special("fifo"),
}  # fmt: skip


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_a_tampered_shard_is_refused_in_one_line(ray_built, tmp_path: Path, tamper: str) -> None:
    """Shards are untrusted input: each tamper, checksums rewritten where a checksum would catch it, gives one
    line naming the shard, never a traceback, a hang or a silently indexed shard."""
    _, shards, _, _ = ray_built
    work = tmp_path / "shards"
    shutil.copytree(shards, work)
    victim = next(p for p in sorted(work.iterdir()) if p.name.startswith("part-1"))
    TAMPERS[tamper](victim)
    with pytest.raises(QAError) as info:
        index_from_shards(work, tmp_path / "index")
    message = str(info.value)
    assert "\n" not in message and "part-1-" in message, message
    assert not (tmp_path / "index").exists()
