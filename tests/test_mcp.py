"""``qa mcp`` as an AI assistant meets it: the official MCP SDK's client starts it as a subprocess
over stdio, lists its tools and calls each one on a real index."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

pytest.importorskip("mcp", reason="the serve extra is not installed: pip install -e '.[test]'")
from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402

from .conftest import IL6_QUESTION, REPO, SEED_PMID  # noqa: E402

CITATION_KEYS = {"pmid", "title", "year", "section", "text", "url"}


def _session(index: Path, calls):
    """Run ``calls(client)`` against a fresh ``qa mcp`` subprocess and return what it returns."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "qa.cli", "mcp", "--index", str(index)], cwd=str(REPO)
    )

    async def main():
        async with Client(params) as client:
            return await calls(client)

    return anyio.run(main)


def test_mcp_tools_answer_with_citations(small_index: Path) -> None:
    async def calls(client):
        tools = await client.list_tools()
        search = await client.call_tool(
            "search_abstracts", {"question": "IL-6 inhibitors siltuximab", "k": 3, "filters": {"year_from": 2010}}
        )
        first = await client.call_tool("ask", {"question": IL6_QUESTION, "k": 2})
        follow = await client.call_tool(
            "ask", {"question": "and in which cancers did they fail?", "previous": IL6_QUESTION, "k": 2}
        )
        record = await client.call_tool("get_record", {"pmid": SEED_PMID})
        missing = await client.call_tool("get_record", {"pmid": "99999999"})
        too_many = await client.call_tool("search_abstracts", {"question": "IL-6", "k": 500})
        return tools, search, first, follow, record, missing, too_many

    tools, search, first, follow, record, missing, too_many = _session(small_index, calls)

    by_name = {t.name: t for t in tools.tools}
    assert set(by_name) == {"search_abstracts", "ask", "get_record", "cite"}
    assert {"question", "k", "filters"} <= set(by_name["search_abstracts"].input_schema["properties"])
    assert {"question", "previous"} <= set(by_name["ask"].input_schema["properties"])
    assert all(t.output_schema for t in tools.tools) and all(t.description for t in tools.tools)

    assert not search.is_error
    hits = search.structured_content["hits"]
    assert hits[0]["pmid"] == SEED_PMID and all(h["year"] >= 2010 for h in hits)
    assert all(set(h) >= CITATION_KEYS for h in hits)

    answer = first.structured_content
    assert f"[{SEED_PMID}]" in answer["answer"]["text"]
    assert answer["hits"][0]["url"] == f"https://pubmed.ncbi.nlm.nih.gov/{SEED_PMID}/"
    assert follow.structured_content["query"] == f"{IL6_QUESTION} and in which cancers did they fail?"
    assert follow.structured_content["hits"][0]["pmid"] == SEED_PMID

    assert record.structured_content["title"] == "Interleukin-6 As a Therapeutic Target"
    assert record.structured_content["url"].endswith(f"/{SEED_PMID}/")

    assert missing.is_error and "99999999 is not in this index" in missing.content[0].text
    assert too_many.is_error and "50" in too_many.content[0].text


def test_qa_mcp_refuses_a_missing_index_in_one_line(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "qa.cli", "mcp", "--index", str(tmp_path / "none")],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1
