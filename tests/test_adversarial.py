"""The adversarial pass, as tests: a tampered index, paths that lead outside it, hostile text and arguments.

Each case printed a traceback, followed a path out of the index folder, or answered silently from
damaged files before the hardening issue. (Hostile files and servers: test_bounds.py and
test_fetch_hostile.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qa import Retriever, build_index
from qa.cli import app
from qa.embed import Embedder
from qa.errors import IndexStoreError, QAError
from qa.records import Record, Section, record_to_dict
from qa.store import IndexStore
from qa.store.verify import verify_index

from .conftest import IL6_QUESTION, SEED_PMID
from .helpers import one_line_error

runner = CliRunner()


def run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), input=input, catch_exceptions=False)


def snapshot_file(index: Path, name: str) -> Path:
    return IndexStore(index).current_dir() / name


# --------------------------------------------------------- damaged files


def test_same_size_corruption_of_vectors_is_refused_on_load(seed_index: Path) -> None:
    vectors = snapshot_file(seed_index, "vectors.faiss")
    data = bytearray(vectors.read_bytes())
    for i in range(len(data) - 400, len(data) - 16, 4):  # flip sign bits of the last stored floats
        data[i + 3] ^= 0x80
    vectors.write_bytes(bytes(data))
    one_line_error(run("ask", IL6_QUESTION, "--index", str(seed_index)), "SHA-256 differs", "qa verify")
    assert not verify_index(seed_index).ok


def test_a_damaged_sqlite_page_is_one_line(seed_index: Path) -> None:
    passages = snapshot_file(seed_index, "passages.sqlite")
    data = bytearray(passages.read_bytes())
    data[8192:8192 + 64] = bytes(64)  # fmt: skip
    passages.write_bytes(bytes(data))
    one_line_error(run("ask", IL6_QUESTION, "--index", str(seed_index)), "passages.sqlite")
    with pytest.raises(IndexStoreError):
        Retriever(seed_index, verify=False).ask(IL6_QUESTION)  # unchecked, the read itself fails cleanly


def test_ask_verify_hashes_whatever_the_size(seed_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import qa.store.snapshot as snapshot_module

    monkeypatch.setattr(snapshot_module, "LOAD_HASH_LIMIT", 0)  # as if the index were large
    vectors = snapshot_file(seed_index, "vectors.faiss")
    data = bytearray(vectors.read_bytes())
    data[-8] ^= 0x80
    vectors.write_bytes(bytes(data))
    assert run("ask", IL6_QUESTION, "--index", str(seed_index)).exit_code == 0  # sizes only
    one_line_error(run("ask", IL6_QUESTION, "--index", str(seed_index), "--verify"), "SHA-256 differs")


# ------------------------------------------------------ outside the index


def test_a_symlinked_current_is_refused_without_showing_its_target(seed_index: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("snap-TOP-SECRET\n")
    current = seed_index / "CURRENT"
    current.unlink()
    current.symlink_to(secret)
    err = one_line_error(run("ask", IL6_QUESTION, "--index", str(seed_index)), "symbolic link")
    assert "TOP-SECRET" not in err


def test_a_snapshot_that_is_a_symlink_elsewhere_is_refused(seed_index: Path, tmp_path: Path) -> None:
    live = IndexStore(seed_index).current_dir()
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(live), elsewhere)
    live.symlink_to(elsewhere, target_is_directory=True)
    one_line_error(run("ask", IL6_QUESTION, "--index", str(seed_index)), "symbolic link")


def test_lock_that_is_a_directory_is_one_line(seed_index: Path, shared: Path) -> None:
    (seed_index / ".lock").unlink(missing_ok=True)
    (seed_index / ".lock").mkdir()
    one_line_error(run("build", str(shared / "seed" / f"{SEED_PMID}.xml"), "--index", str(seed_index)), ".lock")


def test_leftovers_of_crashes_are_cleaned_by_the_next_build(seed_index: Path, shared: Path, embedder: Embedder) -> None:
    (seed_index / ".CURRENT.dead0001").write_text("snap-x\n")
    export = seed_index / "models" / ".export-abandoned"
    export.mkdir(parents=True)
    (export / "big.onnx").write_bytes(b"0" * 1024)
    extra = Record("99000001", (Section(None, "Aspirin lowered the rate of stroke."),))
    jsonl = seed_index.parent / "one.jsonl"
    jsonl.write_text(json.dumps(record_to_dict(extra)) + "\n")
    build_index([jsonl], seed_index, embedder=embedder)
    assert not (seed_index / ".CURRENT.dead0001").exists() and not export.exists()


# ------------------------------------------------- terminal and arguments


def test_control_characters_never_reach_the_terminal(tmp_path: Path, embedder: Embedder) -> None:
    hostile = Record(
        "99000002",
        (Section("RESULTS", "Vitamin K \x1b[2J\x1b]0;pwned\x07 reversed warfarin bleeding in 4 hours."),),
        title="Warfarin \x1b[31mreversal\x1b[0m",
    )
    jsonl = tmp_path / "hostile.jsonl"
    jsonl.write_text(json.dumps(record_to_dict(hostile)) + "\n")
    index = tmp_path / "index"
    build_index([jsonl], index, embedder=embedder)
    text = run("ask", "vitamin K warfarin bleeding reversal", "--index", str(index)).stdout
    assert "\x1b" not in text and "\x07" not in text and "reversed warfarin bleeding" in text
    # whatever reaches the presenter (an API caller's Hit, say) is shown escaped, never executed
    from rich.console import Console

    from qa.cli.present import render_hits
    from qa.query import Hit

    out = Console(file=(buffer := __import__("io").StringIO()), width=200, force_terminal=False)
    render_hits(out, [Hit(1, "1", "T\x1b]0;x\x07", None, None, None, "A \x1b[2J B", 1.0)])
    shown = buffer.getvalue()
    assert "\x1b" not in shown and "\\x1b[2J" in shown and "\\x1b]0;x\\x07" in shown


def test_invalid_utf8_question_and_huge_numbers_are_handled(small_index: Path) -> None:
    script = (
        f"import sys; sys.argv = ['qa', 'ask', 'IL-6 inhibitors \\udcff\\udcfe', '--index', {str(small_index)!r}]\n"
    )
    script += "from qa.cli import main; main()\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and f"PMID {SEED_PMID}" in proc.stdout
    big = run("ask", "x", "--index", str(small_index), "--year-from", "99999999999999999999")
    one_line_error(big, "--year-from", code=2)


def test_chat_survives_bad_bytes_and_bad_commands(small_index: Path) -> None:
    lines = [b"\xff\xfe broken bytes \xc3\x28", "/k ²".encode(), "/filter year>=²".encode(), b"/k 0",
             b"/filter journal=%", b"/filter off", IL6_QUESTION.encode(), b"/quit"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "qa.cli", "chat", "--index", str(small_index), "--json", "-k", "1"],
        input=b"\n".join(lines) + b"\n",
        capture_output=True,
        timeout=180,
    )
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")
    answers = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert answers[-1]["hits"][0]["pmid"] == SEED_PMID  # still answering after every bad line
    assert proc.stderr.count(b"Error:") >= 3


def test_filters_refuse_out_of_range_years() -> None:
    from qa.query import Filters

    with pytest.raises(QAError, match="year_from"):
        Filters(year_from=10**20)


# ------------------------------------------------------ verify and swaps


def test_verify_reports_no_false_problem_while_builds_swap(seed_index: Path, embedder: Embedder) -> None:
    records = [Record(str(99100000 + i), (Section(None, f"Trial {i} of drug {i} lowered blood pressure."),))
               for i in range(6)]  # fmt: skip
    sources = []
    for i, record in enumerate(records):
        path = seed_index.parent / f"swap{i}.jsonl"
        path.write_text(json.dumps(record_to_dict(record)) + "\n")
        sources.append(path)
    stop = threading.Event()

    def rebuild() -> None:
        i = 0
        while not stop.is_set():
            build_index([sources[i % len(sources)]], seed_index, embedder=embedder)
            i += 1

    builder = threading.Thread(target=rebuild)
    builder.start()
    reports = []
    deadline = time.monotonic() + 120
    try:  # at least 80 checks, and on until several swaps happened under them (a loaded machine builds slowly)
        while len(reports) < 80 or (len({r.snapshot for r in reports}) < 3 and time.monotonic() < deadline):
            reports.append(verify_index(seed_index))
    finally:
        stop.set()
        builder.join()
    bad = [r.problems for r in reports if not r.ok]
    assert not bad, bad[:3]
    assert len({r.snapshot for r in reports}) > 1  # the swaps really happened under the checks


def test_index_outside_paths_in_the_manifest_are_refused(seed_index: Path, tmp_path: Path) -> None:
    manifest = snapshot_file(seed_index, "manifest.json")
    data = json.loads(manifest.read_text())
    own = {p for p in tmp_path.rglob("*.onnx")}  # the index's own encoder, in its models/ folder
    assert own and all((seed_index / "models") in p.parents for p in own)
    for bad in ("../../../../etc", str(tmp_path), "models/../../x"):
        manifest.write_text(json.dumps({**data, "backend": "onnx-int8", "encoder": bad}))
        # the sizes and checksums of the other files still match, so only the encoder path is at fault
        one_line_error(run("ask", IL6_QUESTION, "--index", str(seed_index)), "outside")
        assert set(tmp_path.rglob("*.onnx")) == own  # nothing exported anywhere else
    assert os.path.isdir(seed_index)


# ------------------------------------------------------------ JSON from disk, bounded


def test_json_from_disk_is_bounded_in_depth_and_refuses_nan() -> None:
    from qa.records import MAX_JSON_DEPTH, load_json

    assert load_json('{"a": [1, {"b": "[[[[ not brackets ]]]]"}]}') == {"a": [1, {"b": "[[[[ not brackets ]]]]"}]}
    with pytest.raises(ValueError, match=f"deeper than {MAX_JSON_DEPTH}"):
        load_json("[" * 100_000 + "]" * 100_000)
    for constant in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ValueError, match="not a JSON number"):
            load_json(f'{{"year": {constant}}}')


def test_a_deeply_nested_manifest_or_jsonl_line_is_one_line(seed_index: Path, tmp_path: Path) -> None:
    from qa.store import IndexStore

    live = IndexStore(seed_index).current_dir()
    (live / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    result = runner.invoke(app, ["info", "--index", str(seed_index)])
    assert result.exit_code == 1 and "unreadable manifest (JSON nested deeper than" in result.output
    assert "Traceback" not in result.output and "RecursionError" not in result.output
    lines = tmp_path / "nan.jsonl"
    lines.write_text('{"pmid": "1", "abstract": "A finding.", "year": NaN}\n')
    result = runner.invoke(app, ["build", str(lines), "--index", str(tmp_path / "i")])
    assert result.exit_code == 1 and "NaN is not a JSON number" in result.output


@pytest.mark.parametrize("damage", ["nan", "inf", "zero", "x1000"])
def test_vectors_that_are_not_unit_are_never_indexed_and_verify_finds_them(
    seed_index: Path, tmp_path: Path, damage: str
) -> None:
    """Tampered vectors with the checksums rewritten: `qa verify` fails, and they cannot be added to an index."""
    from qa.checksums import file_facts
    from qa.store.vectors import VectorIndex

    store = IndexStore(seed_index)
    live = store.current_dir()
    vectors = VectorIndex.read(live / "vectors.faiss")
    ids = vectors.ids()
    x = vectors.vectors(ids)
    x[0] = {"nan": np.nan, "inf": np.inf, "zero": 0.0, "x1000": x[0] * 1000}[damage]
    with pytest.raises(IndexStoreError, match="refused to index"):
        VectorIndex.empty(x.shape[1]).add(ids, x)
    tampered = VectorIndex.empty(x.shape[1])
    tampered._index.add_with_ids(x.astype(np.float32), ids)  # behind the check, as a tampered file would be
    tampered.write(live / "vectors.faiss")
    manifest = json.loads((live / "manifest.json").read_text())
    manifest["files"]["vectors.faiss"] = file_facts(live / "vectors.faiss")  # checksums rewritten to match
    (live / "manifest.json").write_text(json.dumps(manifest))
    report = verify_index(seed_index)
    assert not report.ok and any("not unit length" in p or "NaN or infinity" in p for p in report.problems), report


@pytest.mark.parametrize("name", ["model.onnx", "tokenizer.json"])
def test_an_encoder_file_replaced_by_a_link_to_an_identical_copy_is_refused(
    seed_index: Path, tmp_path: Path, name: str
) -> None:
    """The checksums would match (the copy is identical), but a link inside the index is never followed."""
    store = IndexStore(seed_index)
    folder = store.layout.encoder_dir_from(store.manifest().encoder)
    outside = tmp_path / name
    shutil.copy2(folder / name, outside)
    (folder / name).unlink()
    (folder / name).symlink_to(outside)
    result = runner.invoke(app, ["ask", IL6_QUESTION, "--index", str(seed_index)])
    assert result.exit_code == 1 and f"{name} is not a regular file inside the index" in result.output
    report = verify_index(seed_index)
    assert not report.ok


def test_an_encoder_folder_holding_a_link_is_never_copied(tmp_path: Path) -> None:
    from qa.embed.onnx import install_encoder
    from qa.errors import ModelError

    source = tmp_path / "models" / "enc"
    source.mkdir(parents=True)
    (source / "model.onnx").write_bytes(b"x")
    (source / "tokenizer.json").symlink_to("/etc/passwd")
    with pytest.raises(ModelError, match="tokenizer.json is not a regular file"):
        install_encoder(source, tmp_path / "index" / "models" / "enc")
    assert not (tmp_path / "index").exists()
