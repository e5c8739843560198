"""``qa mcp`` as an AI assistant meets it: the official MCP SDK's client starts it as a subprocess
over stdio, lists its tools and calls each one on a real index."""

from __future__ import annotations

import json
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


def _start(index: Path):  # type: ignore[no-untyped-def]
    import subprocess

    proc = subprocess.Popen([sys.executable, "-m", "qa.cli", "mcp", "--index", str(index)], cwd=str(REPO),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    client = {"name": "t", "version": "1"}
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": client}}  # fmt: skip
    proc.stdin.write((json.dumps(hello) + "\n").encode())
    proc.stdin.flush()
    assert json.loads(proc.stdout.readline())["id"] == 1
    proc.stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
    return proc


def _call(request_id: int, arguments: dict) -> str:
    params = {"name": "ask", "arguments": arguments}
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})


def test_every_request_gets_a_reply_whatever_it_holds(small_index: Path) -> None:
    """Lines the SDK would leave unanswered (the client then waits forever) are answered with JSON-RPC errors."""
    lines = [
        _call(2, {"question": "IL-6 inhibitors", "k": 1}).replace("IL-6", "\\ud800 IL-6"),
        '{"jsonrpc": "1.0", "id": 3, "method": "tools/list"}',
        '{"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": "x"}',
        '[{"jsonrpc": "2.0", "id": 5, "method": "tools/list"}]',
        '{"jsonrpc": "2.0", "id": 6, "method": "prompts/get", "params": {"name": "x"}}',
        _call(7, {"question": "x", "k": "5"}),
        _call(8, {"question": "x", "k": True}),
        _call(9, {"question": "x", "kk": 1}),
        "not json at all",
        '{"jsonrpc": "2.0", "id": 11, "method": "tools/list", "pad": "' + "x" * 2_000_000 + '"}',
        '{"jsonrpc": "2.0", "id": 12, "method": "tools/list"}',
    ]
    proc = _start(small_index)
    try:
        for line in lines:
            proc.stdin.write(line.encode() + b"\n")
        proc.stdin.flush()
        replies = [json.loads(proc.stdout.readline()) for _ in lines]
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
        stderr = proc.stderr.read().decode()
    by_id = {r["id"]: r for r in replies if r["id"] is not None}
    assert sorted(by_id) == [2, 3, 4, 6, 7, 8, 9, 12] and sum(r["id"] is None for r in replies) == 3
    assert "result" in by_id[2] and not by_id[2]["result"].get("isError")  # the surrogate became U+FFFD
    assert by_id[3]["error"]["code"] == -32600 and by_id[4]["error"]["code"] == -32602
    assert "no prompts" in by_id[6]["error"]["message"]
    assert all("k must be an integer" in by_id[i]["error"]["message"] for i in (7, 8))
    assert "unknown argument 'kk'" in by_id[9]["error"]["message"]
    messages = " ".join(r["error"]["message"] for r in replies if r["id"] is None)
    assert "batches are not supported" in messages and "not JSON" in messages and "over 1,048,576 bytes" in messages
    assert "tools" in by_id[12]["result"]  # and the server is still answering
    assert "Traceback" not in stderr and proc.returncode == 0, stderr


def test_the_server_ends_quietly_when_its_client_goes_away(small_index: Path) -> None:
    proc = _start(small_index)
    proc.stdin.write((_call(2, {"question": "IL-6"}) + "\n").encode())
    proc.stdin.flush()
    proc.stdout.close()  # the client stops reading mid-call ...
    proc.stdin.close()  # ... and goes away
    proc.wait(timeout=60)
    stderr = proc.stderr.read().decode()
    assert proc.returncode in (0, 1) and "Traceback" not in stderr and len(stderr.strip().splitlines()) <= 1, stderr
