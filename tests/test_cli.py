"""The `qa` command through typer's CliRunner (and a real subprocess where the process matters)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qa.cli import app
from qa.store import IndexStore

from .conftest import IL6_QUESTION, SEED_PMID
from .helpers import one_line_error

runner = CliRunner()


def run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), input=input, catch_exceptions=False)


def test_help_explains_every_command() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in ("build", "ask", "chat", "info"):
        assert command in result.stdout
    build_help = run("build", "--help").stdout
    assert "--index" in build_help and "--model" in build_help and "MEDLINE" in build_help


def test_ask_prints_cited_passages(small_index: Path) -> None:
    result = run("ask", IL6_QUESTION, "--index", str(small_index), "-k", "3")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index(f"PMID {SEED_PMID}") < out.index("2. PMID")
    assert "Interleukin-6 As a Therapeutic Target" in out
    assert f"https://pubmed.ncbi.nlm.nih.gov/{SEED_PMID}/" in out
    assert "Clinically registered IL6 inhibitors include siltuximab" in out
    assert "3. PMID" in out and "4. PMID" not in out


def test_ask_json_has_the_documented_shape(small_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_INDEX", str(small_index))  # the environment variable picks the index
    result = run("ask", IL6_QUESTION, "--json", "-k", "4")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["question"] == IL6_QUESTION
    assert len(data["hits"]) == 4
    first = data["hits"][0]
    for key in ("rank", "pmid", "title", "journal", "year", "section", "text", "score", "url"):
        assert key in first
    assert first["rank"] == 1 and first["pmid"] == SEED_PMID and first["year"] == 2015
    assert first["url"] == f"https://pubmed.ncbi.nlm.nih.gov/{SEED_PMID}/"
    assert isinstance(first["score"], float)


def test_info_reports_the_index(small_index: Path) -> None:
    result = run("info", "--index", str(small_index), "--json")
    assert result.exit_code == 0
    facts = json.loads(result.stdout)
    manifest = IndexStore(small_index).manifest()
    assert facts["records"] == manifest.records and facts["passages"] == manifest.chunks
    assert facts["model"] == "all-MiniLM-L6-v2"
    text = run("info", "--index", str(small_index)).stdout
    assert "all-MiniLM-L6-v2" in text and str(manifest.records) in text


def test_chat_answers_line_by_line(small_index: Path) -> None:
    script = "/k 2\n" + IL6_QUESTION + "\n\n/bogus\n/help\nlace plant programmed cell death\n/quit\nnever asked\n"
    result = run("chat", "--index", str(small_index), "--json", input=script)
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["question"] for a in answers] == [IL6_QUESTION, "lace plant programmed cell death"]
    assert all(len(a["hits"]) == 2 for a in answers)
    assert answers[0]["hits"][0]["pmid"] == SEED_PMID
    assert "Unknown command /bogus" in result.stderr and "/quit" in result.stderr


def test_chat_text_mode_and_end_of_input(small_index: Path) -> None:
    result = run("chat", "--index", str(small_index), input=IL6_QUESTION + "\n")
    assert result.exit_code == 0
    assert f"PMID {SEED_PMID}" in result.stdout


def test_build_via_cli_and_rebuild(tmp_path: Path, shared: Path) -> None:
    index = tmp_path / "idx"
    result = run("build", str(shared / "seed" / f"{SEED_PMID}.nbib"), "--index", str(index), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["records_indexed"] == 1 and report["chunks"] >= 2 and report["chunks_per_second"] > 0
    text = run("build", str(shared / "samples" / "biopython" / "pubmed1.xml"), "--index", str(index)).stdout
    assert "Updated" in text and ": 2 records" in text and "1 no abstract" in text and "added 1," in text
    again = run("build", str(shared / "samples" / "biopython" / "pubmed1.xml"), "--index", str(index)).stdout
    assert "is up to date" in again and "unchanged 1" in again
    full = run("build", str(shared / "samples" / "biopython" / "pubmed1.xml"), "--index", str(index), "--full").stdout
    assert "Rebuilt" in full and ": 1 records" in full


# ------------------------------------------------------------------- errors


def test_errors_are_one_line_and_non_zero(tmp_path: Path, small_index: Path, shared: Path) -> None:
    one_line_error(run("ask", "anything", "--index", str(tmp_path / "none")), "no index", "qa build")
    one_line_error(run("info", "--index", str(tmp_path / "none")), "qa build")
    one_line_error(run("ask", "   ", "--index", str(small_index)), "empty")
    one_line_error(run("build", str(tmp_path / "missing.xml"), "--index", str(tmp_path / "i")), "no such file")
    one_line_error(
        run("build", str(shared / "samples" / "biopython" / "esearch1.xml"), "--index", str(tmp_path / "i")),
        "esearch1.xml",
        "eSearchResult",
    )
    other_model = tmp_path / "other-model"
    other_model.mkdir()
    one_line_error(run("ask", "x", "--index", str(small_index), "--model", str(other_model)), "built with model")


def test_malformed_file_keeps_the_old_index(seed_index: Path, tmp_path: Path) -> None:
    before = run("ask", IL6_QUESTION, "--index", str(seed_index), "--json").stdout
    bad = tmp_path / "bad.xml.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    one_line_error(run("build", str(bad), "--index", str(seed_index)), "bad.xml.gz", "gzip")
    assert run("ask", IL6_QUESTION, "--index", str(seed_index), "--json").stdout == before


# --------------------------------------------------------- real processes


def test_info_and_help_do_not_import_torch(small_index: Path) -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from qa.cli import app\n"
        f"r = CliRunner().invoke(app, ['info', '--index', {str(small_index)!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_real_process_has_no_third_party_noise(small_index: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "qa.cli", "ask", IL6_QUESTION, "--index", str(small_index), "-k", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert f"PMID {SEED_PMID}" in proc.stdout


def test_output_into_a_closed_pipe_ends_quietly(small_index: Path) -> None:
    """``qa ask ... | head -1``: the reader goes away early; no traceback, no hang."""
    ask = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "ask", IL6_QUESTION, "--index", str(small_index), "-k", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert ask.stdout.readline().strip() == b"Answer"
    ask.stdout.close()  # as head does after its line
    stderr = ask.stderr.read().decode()
    assert ask.wait(60) in (0, 1) and "Traceback" not in stderr, stderr[-500:]
